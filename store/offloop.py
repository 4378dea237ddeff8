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
