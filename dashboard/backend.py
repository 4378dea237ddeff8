"""The dashboard's way into the store: the configured engine, and store calls off the event loop.

Reflex runs event handlers on its event loop; every store call goes through `run`,
which is the store's one off-loop helper (store.offloop.run_store): the work runs in a
worker thread with a session of its own. A function marked `@store.db.reads` reads beside
SQLite's writer and never waits for its lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from store.db import get_engine
from store.offloop import run_store
from store.settings import Settings, get_settings

T = TypeVar("T")


def settings() -> Settings:
    return get_settings()


def engine() -> Engine:
    s = get_settings()
    return get_engine(s.database_url, s.db_pool_size, s.db_max_overflow, s.sqlite_busy_timeout_s)


async def run(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Call `fn(session, **kwargs)` in a worker thread with its own session."""
    return await run_store(engine(), fn, **kwargs)
