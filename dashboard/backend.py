"""The dashboard's way into the store: the configured engine, and store calls off the event loop.

Reflex runs event handlers on its event loop; every store call goes through `run`,
which does the work in a worker thread with a session of its own.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import anyio
from sqlalchemy.engine import Engine

from store.db import get_engine, session_for
from store.settings import Settings, get_settings

T = TypeVar("T")


def settings() -> Settings:
    return get_settings()


def engine() -> Engine:
    s = get_settings()
    return get_engine(s.database_url, s.db_pool_size, s.db_max_overflow, s.sqlite_busy_timeout_s)


async def run(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Call `fn(session, **kwargs)` in a worker thread with its own session."""
    bound = engine()

    def call() -> T:
        with session_for(bound) as session:
            return fn(session, **kwargs)

    return await anyio.to_thread.run_sync(call)
