"""Many short writes to one transaction (store.offloop.GroupCommit): each call's result is
its own, a refused call leaves nothing behind while the others in its batch stand, and a
batch that cannot commit is retried call by call."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlmodel import select

from store import credits
from store.db import session_for
from store.errors import InsufficientCredits
from store.models import LedgerEntry, User
from store.money import MICRO
from store.offloop import GroupCommit

from ..factories import make_user

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def ledger(engine, user_id: int) -> list[tuple[str, int]]:
    with session_for(engine) as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id))
        return [(r.kind, r.amount) for r in rows]


@BOTH
async def test_concurrent_debits_share_transactions_and_never_overspend(engine):
    user = make_user(engine, credits=10)
    group = GroupCommit(engine)

    async def debit(i: int):
        return await group.run(credits.debit_for_request, user_id=user.id, cost=MICRO, ref=f"r{i}")

    results = await asyncio.gather(*(debit(i) for i in range(40)), return_exceptions=True)
    admitted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(admitted), len(refused)) == (10, 30)
    assert sorted(admitted) == [b * MICRO for b in range(10)]  # each saw its own new balance
    assert group.calls == 40 and group.batches < 40  # calls that waited shared a transaction
    assert ledger(engine, user.id) == [("grant", 10 * MICRO)] + [("charge", -MICRO)] * 10
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id) == 0


def _charge_then_fail(session, *, user_id: int, ref: str) -> None:
    """Writes, then fails before it commits (as a store function whose second step raises)."""
    session.execute(sa.update(User).where(User.id == user_id).values(balance=User.balance - MICRO))
    raise RuntimeError("a fault after the write")


@BOTH
async def test_a_call_that_fails_after_writing_leaves_nothing_and_the_others_stand(engine):
    user = make_user(engine, credits=5)
    group = GroupCommit(engine)
    results = await asyncio.gather(
        group.run(credits.debit_for_request, user_id=user.id, cost=MICRO, ref="a"),
        group.run(_charge_then_fail, user_id=user.id, ref="b"),
        group.run(credits.debit_for_request, user_id=user.id, cost=MICRO, ref="c"),
        return_exceptions=True,
    )
    assert results[0] == 4 * MICRO and isinstance(results[1], RuntimeError) and results[2] == 3 * MICRO
    with session_for(engine) as s:
        refs = [r.ref for r in s.exec(select(LedgerEntry).where(LedgerEntry.kind == "charge"))]
        assert sorted(refs) == ["a", "c"]
        assert credits.balance(s, user_id=user.id) == 3 * MICRO


@BOTH
async def test_a_batch_that_cannot_commit_is_retried_call_by_call(engine):
    user = make_user(engine, credits=5)
    group = GroupCommit(engine)
    await group.run(credits.debit_for_request, user_id=user.id, cost=MICRO, ref="dup")
    # the second charge of one ref breaks the unique (kind, ref): alone, it fails alone
    results = await asyncio.gather(
        group.run(credits.debit_for_request, user_id=user.id, cost=MICRO, ref="dup"),
        group.run(credits.debit_for_request, user_id=user.id, cost=MICRO, ref="fresh"),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception) and results[1] == 3 * MICRO
    assert [kind for kind, _ in ledger(engine, user.id)] == ["grant", "charge", "charge"]


@BOTH
async def test_calls_without_savepoints_share_a_batch_and_one_that_undoes_makes_it_run_alone(engine):
    user = make_user(engine, credits=2)
    group = GroupCommit(engine)
    results = await asyncio.gather(
        *(
            group.run(credits.debit_for_request, savepoint=False, user_id=user.id, cost=MICRO, ref=f"s{i}")
            for i in range(4)
        ),
        return_exceptions=True,
    )
    # two fit; the refused ones rolled back after their statement: their batches ran call by call
    assert sorted(type(r).__name__ for r in results) == ["InsufficientCredits", "InsufficientCredits", "int", "int"]
    assert [kind for kind, _ in ledger(engine, user.id)] == ["grant", "charge", "charge"]
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id) == 0
