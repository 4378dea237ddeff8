"""Engines and sessions. One engine per database URL per process."""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session


@functools.lru_cache(maxsize=8)
def get_engine(url: str, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """Return this process's engine for `url`, creating it once."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    in_memory = not database or database == ":memory:"
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    pool = {} if in_memory else {"pool_size": 10, "max_overflow": 20}
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        # WAL lets readers run beside the one writer; busy_timeout makes writers
        # queue instead of failing under concurrency.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def session_for(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
