"""Engines and sessions. One engine per database URL per process.

SQLite runs as SQLAlchemy documents for the sqlite3 driver ("Transactions with SQLite and
the sqlite3 driver"): the driver's own BEGIN handling is off (`isolation_level = None`)
and SQLAlchemy's `begin` event emits the BEGIN, so every transaction is a real one
(reads, savepoints and DDL included).

On the engine `get_engine` returns, every transaction begins IMMEDIATE: it takes the
write lock at its start, so a store function that reads and then writes never meets a
lock it cannot upgrade. It waits for the lock in SQLite's busy handler for at most the
busy timeout, then fails with "database is locked" (`is_locked`) before it has done
anything. The price: a session holds the lock from its first statement until it
commits or rolls back, so nothing may keep one open while it waits for something else
(store.offloop closes each call's session at its end).

Reads must not wait for that lock. `read_engine(engine)` is a second engine on the same
file, with a pool of its own, whose transactions are plain (deferred) `BEGIN` and whose
connections are `query_only`: in WAL mode it reads one consistent snapshot beside the
writer and never waits for it, and a "read" that tried to write fails loudly instead.
Store functions that only read are marked `@reads`, and store.offloop runs them there.

On PostgreSQL (MVCC: readers never wait for writers) both are the one engine.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

DEFAULT_BUSY_TIMEOUT_S = 5.0
F = TypeVar("F", bound=Callable[..., Any])


def get_engine(
    url: str, pool_size: int = 10, max_overflow: int = 20, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> Engine:
    """Return this process's engine for `url`, creating it once.

    On SQLite, a write that cannot have the lock within `busy_timeout_s` fails with
    "database is locked" (see `is_locked`) rather than wait on.
    """
    return _engine(url, pool_size, max_overflow, float(busy_timeout_s))  # one cache key, however called


@functools.lru_cache(maxsize=8)
def _engine(url: str, pool_size: int, max_overflow: int, busy_timeout_s: float) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = sa.create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)
        _THREADS[engine] = pool_size + max_overflow
        return engine
    engine = _sqlite_engine(url, pool_size, max_overflow, busy_timeout_s, begin="BEGIN IMMEDIATE")
    if _in_memory(engine):  # exists once, a connection per thread: one thread, nothing beside it
        _THREADS[engine] = 1
        return engine
    reader = _sqlite_engine(url, pool_size, max_overflow, busy_timeout_s, begin="BEGIN", query_only=True)
    _READERS[engine] = reader
    # SQLite runs one write transaction at a time, and each of the engine's transactions
    # is one: a second thread would only wait in the busy handler, which polls in sleeps
    # of up to 100 ms. One thread, so this process's writes queue in its pool instead and
    # follow each other at once; the busy timeout is left to wait for other processes.
    _THREADS[engine], _THREADS[reader] = 1, pool_size + max_overflow
    return engine


def _in_memory(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


def _sqlite_engine(
    url: str, pool_size: int, max_overflow: int, busy_timeout_s: float, *, begin: str, query_only: bool = False
) -> Engine:
    database = sa.engine.make_url(url).database
    in_memory = not database or database == ":memory:"
    if database and not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    pool = {} if in_memory else {"pool_size": pool_size, "max_overflow": max_overflow}
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}, **pool)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # the driver emits no BEGIN of its own: `_begin` does
        # WAL lets readers run beside the one writer; busy_timeout makes a writer wait
        # for the lock (up to the timeout) instead of failing at once.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        if query_only:
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql(begin)

    return engine


# A SQLite engine's read engine (it connects on first use only); each engine's thread count.
_READERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_THREADS: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
_READ_ONLY: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def reads(fn: F) -> F:
    """Mark a store function `fn(session, ...)` that only reads: store.offloop runs it on
    the read engine (see the module's docstring), where it never waits for the write lock."""
    _READ_ONLY.add(fn)
    return fn


_CORE: set[Callable[..., Any]] = set()


def on_connection(fn: F) -> F:
    """Mark a store function `fn(connection, ...)` of the request path that needs no ORM:
    store.offloop gives it a Core connection (an ORM session costs more than its two
    statements). It must commit or roll back what it begins."""
    _CORE.add(fn)
    return fn


def wants_connection(fn: Callable[..., Any]) -> bool:
    return fn in _CORE


def read_engine(engine: Engine) -> Engine:
    """`engine`'s read engine: on a SQLite file, one whose sessions read beside the writer
    and cannot write; else `engine` itself."""
    return _READERS.get(engine, engine)


def engine_for(engine: Engine, fn: Callable[..., Any]) -> Engine:
    """The engine a store call of `fn` runs on: the read engine for a `@reads` function."""
    return read_engine(engine) if fn in _READ_ONLY else engine


def threads_for(engine: Engine) -> int:
    """How many store calls on `engine` may run at once: one per pooled connection
    (DB_POOL_SIZE + DB_MAX_OVERFLOW), but one for a SQLite engine that writes (see `_engine`)."""
    return _THREADS.get(engine, 1)


def is_locked(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked": a writer held the lock past the busy timeout."""
    return isinstance(exc, sa.exc.OperationalError) and "database is locked" in str(exc.orig)


def session_for(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def rowcount(result: sa.Result[Any]) -> int:
    """How many rows the UPDATE or DELETE that gave `result` matched. `Session.execute` is
    typed to return a Result; for these statements it is a CursorResult, which counts them."""
    assert isinstance(result, sa.CursorResult)
    return result.rowcount
