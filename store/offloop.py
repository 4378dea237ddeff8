"""The one way to run a store call off the event loop (the API, the pipeline worker and
the dashboard all come here).

`await run_store(engine, fn, **kwargs)` calls `fn(session, **kwargs)` in a worker thread
with a session of its own (a Core connection for a function marked `on_connection`),
closed at the call's end: on SQLite a `@reads` function gets
a session of the read engine (it reads beside the writer), any other one a session of
`engine`, whose transactions begin IMMEDIATE (see store.db). Each engine has one bounded thread
pool, a thread per pooled connection (DB_POOL_SIZE + DB_MAX_OVERFLOW), so a call never
waits in a thread for a connection and at most that many run at once; the rest queue in
the pool. On SQLite the read engine has a pool of its own, so reads never queue behind
writers that wait for the lock. Nothing here touches the database on the event loop.

A call, once started, runs to its end even if its caller is cancelled (a thread cannot be
stopped halfway through a transaction).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from .db import engine_for, session_for, threads_for, wants_connection

T = TypeVar("T")

_POOLS: weakref.WeakKeyDictionary[Engine, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


async def run_store(engine: Engine, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """`fn(session, **kwargs)` in a worker thread of `engine`'s pool; its result or its exception."""
    bound = engine_for(engine, fn)

    def call() -> T:
        if wants_connection(fn):  # store.db.on_connection: a Core connection, no ORM session
            with bound.connect() as connection:
                return fn(connection, **kwargs)
        with session_for(bound) as session:
            return fn(session, **kwargs)

    return await asyncio.get_running_loop().run_in_executor(_pool(bound), call)


def run_store_blocking(engine: Engine, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """`run_store` for a caller that is a thread of its own (the request-log writer): the
    call runs in `engine`'s pool all the same, so on SQLite this process's writes take
    turns in its one writer thread instead of meeting in SQLite's busy handler, which
    sleeps in steps of up to 100 ms (a request's hold stuck behind a log batch waited
    that long). Never call it from a thread of the pool itself."""
    bound = engine_for(engine, fn)

    def call() -> T:
        with session_for(bound) as session:
            return fn(session, **kwargs)

    return _pool(bound).submit(call).result()


def _pool(engine: Engine) -> ThreadPoolExecutor:
    pool = _POOLS.get(engine)
    if pool is None:
        with _POOLS_LOCK:  # the API's and the dashboard's loops may ask at once
            pool = _POOLS.get(engine)
            if pool is None:
                pool = _POOLS[engine] = ThreadPoolExecutor(threads_for(engine), thread_name_prefix="store")
    return pool


class GroupCommit:
    """Short writes of the request path (a hold, a settlement), many to one transaction.

    `await group.run(fn, **kwargs)` queues the store function `fn(session, **kwargs)`; a
    drain in the engine's store pool takes everything queued (up to `max_batch`), runs each
    inside one transaction in a savepoint of its own (`InBatch`: its commit keeps what it
    wrote, its rollback, or an exception, undoes only that), commits once and hands each
    caller its result. Calls that arrive while a drain runs form the next batch, so under
    load one commit, one transaction start and one thread hop serve a whole batch, and one
    account's holds wait for its row lock once per batch, not once per call. Alone, a call
    runs at once: nothing waits to fill a batch.

    If the batch cannot commit (the database refused or failed it), each call runs again in
    a transaction of its own, so one bad call fails alone. A call, once queued, runs to its
    end even if its caller is cancelled, as `run_store`'s do.
    """

    def __init__(self, engine: Engine, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[tuple[Callable[..., Any], dict[str, Any], bool, asyncio.Future]] = []
        self._lock = threading.Lock()
        self._draining = False
        self.batches = 0  # how many transactions served how many calls (the bench reports it)
        self.calls = 0

    async def run(self, fn: Callable[..., T], /, *, savepoint: bool = True, **kwargs: Any) -> T:
        """`fn(session, **kwargs)` in the next batch. `savepoint=False` for a call that only
        writes once it knows it will succeed (a debit whose one conditional statement
        decides): it runs without a savepoint's two statements, and should it roll back
        after all, the batch is run again one call at a time."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self._lock:
            self._queue.append((fn, kwargs, savepoint, future))
            start, self._draining = not self._draining, True
        if start:
            _pool(self._engine).submit(self._drain, loop)
        return await future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            results = self._write(batch)
        finally:
            with self._lock:
                self._draining = bool(self._queue)
                more = self._draining
            if more:  # behind whatever else waits for this thread (the log writer's batches)
                _pool(self._engine).submit(self._drain, loop)
        loop.call_soon_threadsafe(_deliver, batch, results)

    def _write(self, batch: list) -> list[tuple[bool, Any]]:
        self.batches += 1
        self.calls += len(batch)
        try:
            with self._engine.connect() as connection, connection.begin():
                return [_in_batch(connection, fn, kwargs, savepoint) for fn, kwargs, savepoint, _ in batch]
        except Exception:  # the batch as a whole failed, or a call without a savepoint undid: each alone
            return [self._alone(fn, kwargs) for fn, kwargs, _, _ in batch]

    def _alone(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[bool, Any]:
        try:
            with self._engine.connect() as connection, connection.begin():
                return _in_batch(connection, fn, kwargs, True)
        except Exception as exc:
            return False, exc


class _Undone(Exception):
    """A call without a savepoint rolled back what it had done: the batch cannot keep it."""


class InBatch:
    """A store function's session inside a group commit (duck-typed as the Core connection
    it is given elsewhere): `commit` keeps what the function wrote so far (the batch commits
    it), `rollback` undoes only what it wrote since. The savepoint that makes that possible
    is opened by the first statement after each (a call refused by a read writes nothing and
    pays for none). Without one (`savepoint=False`), a rollback after any statement gives
    the batch up (`_Undone`): it runs again one call at a time."""

    def __init__(self, connection: Any, savepoint: bool) -> None:
        self._connection = connection
        self._use_savepoints = savepoint
        self._savepoint: Any = None
        self._executed = False

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if self._use_savepoints and self._savepoint is None:
            self._savepoint = self._connection.begin_nested()
        self._executed = True
        return self._connection.execute(*args, **kwargs)

    def commit(self) -> None:
        if self._savepoint is not None:
            self._savepoint.commit()
            self._savepoint = None
        self._executed = False

    def rollback(self) -> None:
        if self._savepoint is not None:
            self._savepoint.rollback()
            self._savepoint = None
        elif self._executed and not self._use_savepoints:
            raise _Undone
        self._executed = False


def _in_batch(connection: Any, fn: Callable[..., Any], kwargs: dict[str, Any], savepoint: bool) -> tuple[bool, Any]:
    session = InBatch(connection, savepoint)
    try:
        result = fn(session, **kwargs)
    except _Undone:
        raise
    except Exception as exc:  # refused (InsufficientCredits, …) or failed: its writes undone
        session.rollback()
        return False, exc
    session.commit()
    return True, result


def _deliver(batch: list, results: list[tuple[bool, Any]]) -> None:
    for (_, _, _, future), (ok, value) in zip(batch, results, strict=True):
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
