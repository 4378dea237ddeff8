"""How the store meets SQLite's one write lock: a write transaction takes it at its start
(BEGIN IMMEDIATE) and waits for it no longer than the busy timeout; a `@reads` call runs
off the loop beside a held lock; the off-loop helper runs every call in a worker thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from store import credits
from store.db import get_engine, is_locked, read_engine, reads, session_for
from store.offloop import run_store

from ..factories import make_user


@pytest.fixture
def held_lock(database_url):
    """Another process's writer, holding SQLite's write lock."""
    holder = sqlite3.connect(sa.engine.make_url(database_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield
    holder.execute("ROLLBACK")
    holder.close()


def test_a_write_transaction_waits_the_busy_timeout_at_its_start_then_fails_locked(database_url, engine, held_lock):
    quick = get_engine(database_url, busy_timeout_s=0.3)
    started = time.monotonic()
    with session_for(quick) as s, pytest.raises(sa.exc.OperationalError) as failed:
        s.execute(sa.select(1))  # even a first statement that reads: the transaction began IMMEDIATE
    assert is_locked(failed.value)
    assert 0.25 <= time.monotonic() - started < 3


def test_the_read_engine_reads_beside_a_held_lock(database_url, engine, held_lock):
    quick = get_engine(database_url, busy_timeout_s=0.3)
    with session_for(read_engine(quick)) as s:
        started = time.monotonic()
        assert s.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0
        assert time.monotonic() - started < 0.2


async def test_reads_run_beside_a_held_lock_and_writes_fail_locked(database_url, engine):
    user = make_user(engine, credits=7)
    quick = get_engine(database_url, busy_timeout_s=0.5)
    holder = sqlite3.connect(sa.engine.make_url(database_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        write = asyncio.create_task(run_store(quick, credits.grant, user_id=user.id, amount=1_000_000))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        assert await run_store(quick, credits.balance, user_id=user.id) == 7_000_000
        assert time.monotonic() - started < 0.2
        assert not write.done()
        with pytest.raises(sa.exc.OperationalError) as failed:
            await write
        assert is_locked(failed.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await run_store(quick, credits.ledger_sum, user_id=user.id) == 7_000_000


@reads
def _sneaky_write(session, *, user_id: int) -> None:
    session.execute(sa.text("UPDATE users SET balance = 0 WHERE id = :id"), {"id": user_id})


async def test_a_read_that_writes_fails_instead_of_writing(engine):
    user = make_user(engine, credits=3)
    with pytest.raises(sa.exc.OperationalError, match="readonly"):
        await run_store(engine, _sneaky_write, user_id=user.id)
    assert await run_store(engine, credits.balance, user_id=user.id) == 3_000_000


async def test_store_calls_run_in_worker_threads(engine):
    loop_thread = threading.current_thread()

    def where(_session) -> threading.Thread:
        return threading.current_thread()

    thread = await run_store(engine, where)
    assert thread is not loop_thread and thread.name.startswith("store")


async def test_parallel_debits_never_overspend(engine):
    user = make_user(engine, credits=10)
    results = await asyncio.gather(
        *(
            run_store(engine, credits.debit_for_request, user_id=user.id, cost=1_000_000, ref=f"r{i}")
            for i in range(25)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 10
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id) == 0
