"""Engines and sessions. One engine per database URL per process."""

from __future__ import annotations

import functools
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session


DEFAULT_BUSY_TIMEOUT_S = 5.0


def get_engine(url: str, pool_size: int = 10, max_overflow: int = 20,
               busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """Return this process's engine for `url`, creating it once.

    On SQLite, a write that cannot have the lock within `busy_timeout_s` fails with
    "database is locked" (see `is_locked`) rather than wait on.
    """
    return _engine(url, pool_size, max_overflow, float(busy_timeout_s))  # one cache key, however called


@functools.lru_cache(maxsize=8)
def _engine(url: str, pool_size: int, max_overflow: int, busy_timeout_s: float) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, pool_size, max_overflow, busy_timeout_s)
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


def _sqlite_engine(url: str, database: str | None, pool_size: int, max_overflow: int,
                   busy_timeout_s: float) -> Engine:
    in_memory = not database or database == ":memory:"
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    pool = {} if in_memory else {"pool_size": pool_size, "max_overflow": max_overflow}
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}, **pool)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        # WAL lets readers run beside the one writer; busy_timeout makes writers
        # queue instead of failing under concurrency.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    _take_turns_writing(engine, busy_timeout_s)
    return engine


def is_locked(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked": a writer held the lock past the busy timeout."""
    return isinstance(exc, sa.exc.OperationalError) and "database is locked" in str(exc.orig)


@dataclass(eq=False)
class _WriteTurn:
    lock: threading.Lock
    timeout_s: float


_WRITE_TURNS: weakref.WeakKeyDictionary[Engine, _WriteTurn] = weakref.WeakKeyDictionary()
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _take_turns_writing(engine: Engine, busy_timeout_s: float) -> None:
    """Let this process's writers queue on a lock instead of in SQLite's busy handler.

    SQLite has one writer at a time, and a connection that finds the database locked
    sleeps in steps of up to 100 ms before it looks again. Under load (every API request
    debits, the log writer inserts batches) those sleeps made the p99 ~1 s. Here a
    connection takes the engine's lock before its transaction's first write and gives
    it back when the transaction ends, so writers of one process hand over at once;
    other processes still meet SQLite's busy timeout as before. A turn not had within
    the busy timeout fails the write as SQLite would ("database is locked"), so a
    writer waits no longer here than in SQLite's own handler, and never hangs.
    """
    turn = _WRITE_TURNS[engine] = _WriteTurn(threading.Lock(), busy_timeout_s)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before_write(conn, _cursor, statement, _params, _context, _executemany):
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            _take_write_turn(turn, conn.info, statement)

    def _done(info: dict) -> None:
        if info.pop("writing", False):
            turn.lock.release()

    @sa.event.listens_for(engine, "commit")
    @sa.event.listens_for(engine, "rollback")
    def _ended(conn):
        _done(conn.info)

    @sa.event.listens_for(engine.pool, "reset")  # returned to the pool mid-transaction
    def _reset(_dbapi_connection, record, _reset_state):
        _done(record.info)

    @sa.event.listens_for(engine.pool, "checkin")
    def _checkin(_dbapi_connection, record):
        _done(record.info)


def _take_write_turn(turn: _WriteTurn, info: dict, statement: str) -> None:
    if not info.get("writing"):
        if not turn.lock.acquire(timeout=turn.timeout_s):
            raise sa.exc.OperationalError(statement, None, sqlite3.OperationalError("database is locked"))
        info["writing"] = True


class Prepared:
    """A Core statement compiled once per dialect and run straight on the DBAPI cursor.

    For the statements of every API request (the debit): SQLAlchemy's execution layer
    costs ~0.1 ms a statement on this machine, the DBAPI call a tenth of that. Values go
    through the column types' own bind processors, so the rows are exactly what
    SQLAlchemy would write; a write takes the engine's write turn like any other.
    `run` returns the DBAPI cursor (for RETURNING rows).
    """

    def __init__(self, statement: sa.Executable, *, write: bool) -> None:
        self._statement = statement
        self._write = write
        self._plans: dict[tuple[str, frozenset[str]], tuple[str, Callable[[dict], Any]]] = {}

    def run(self, connection: sa.Connection, params: dict[str, Any]):
        dialect = connection.dialect
        key = (dialect.name, frozenset(params))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(dialect, list(params))
        sql, arguments = plan
        values = arguments(params)
        if self._write and (turn := _WRITE_TURNS.get(connection.engine)) is not None:
            _take_write_turn(turn, connection.info, sql)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, values)
        except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it (IntegrityError, ...)
            raise sa.exc.DBAPIError.instance(sql, values, exc, dialect.loaded_dbapi.Error) from exc
        return cursor

    def _plan(self, dialect, keys: list[str]) -> tuple[str, Callable[[dict], Any]]:
        compiled = self._statement.compile(dialect=dialect, column_keys=keys)
        fixed = {name: bind.value for name, bind in compiled.binds.items() if name not in keys}
        processors = {name: proc for name, bind in compiled.binds.items()
                      if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}

        def values(params: dict[str, Any]) -> dict[str, Any]:
            merged = {**fixed, **params}
            for name, proc in processors.items():
                if name in merged:
                    merged[name] = proc(merged[name])
            return merged

        if compiled.positional:
            order = tuple(compiled.positiontup)
            return compiled.string, lambda params: tuple(map(values(params).__getitem__, order))
        return compiled.string, values


NOT_NOW = object()  # InlineWriter.try_call's answer when the write would have to wait


class InlineWriter:
    """SQLite only: a short write run on the calling thread, when it need not wait.

    The debit of every API request is one short transaction; handing it to a worker
    thread and back costs two thread wake-ups (~0.1-0.2 ms here), more than the write.
    `try_call` runs it right where it is called (the event loop), but only when that
    cannot block: this process's write turn must be free (else NOT_NOW at once), and
    its connection has a busy timeout of 0, so a database locked by another process
    fails at once (NOT_NOW, nothing written) instead of stalling the loop. NOT_NOW
    means: do it the normal way, in a worker thread.
    """

    def __init__(self, engine: Engine) -> None:
        self._turn = _WRITE_TURNS[engine].lock
        self._conn: sa.Connection | None = None
        self.engine = sa.create_engine(engine.url, pool_size=1, max_overflow=0,
                                       connect_args={"check_same_thread": False, "timeout": 0})

        @sa.event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=0")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    @staticmethod
    def supports(engine: Engine) -> bool:
        return engine in _WRITE_TURNS and engine.url.database not in (None, "", ":memory:")

    def try_call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """`fn(connection, **kwargs)`, or NOT_NOW (nothing done) when it would have to wait."""
        if not self._turn.acquire(blocking=False):
            return NOT_NOW
        try:
            # One Core connection, kept: an ORM session, or a pool checkout per call, costs
            # more than the write itself. Only the event loop's thread comes here.
            conn = self._conn
            if conn is None or conn.closed or conn.invalidated:
                conn = self._conn = self.engine.connect()
            try:
                return fn(conn, **kwargs)
            except sa.exc.OperationalError as exc:
                conn.rollback()
                if "locked" in str(exc.orig) or "busy" in str(exc.orig):
                    return NOT_NOW
                raise
            except BaseException:
                if conn.in_transaction():
                    conn.rollback()
                raise
        finally:
            self._turn.release()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()


def session_for(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
