"""The ledger's rules: balance equals the ledger sum, never negative; refunds once."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from store import credits
from store.errors import InsufficientCredits, InvalidInput, NotFound
from store.models import LedgerEntry
from store.money import MICRO

from ..factories import make_user


def test_debit_charges_and_records(session, engine):
    user = make_user(engine, credits=10)
    assert credits.debit_for_request(session, user_id=user.id, cost=3 * MICRO, ref="r1", model="m") == 7 * MICRO
    entry = session.exec(select(LedgerEntry).where(LedgerEntry.ref == "r1")).one()
    assert (entry.amount, entry.balance_after, entry.kind, entry.model) == (-3 * MICRO, 7 * MICRO, "charge", "m")


def test_debit_short_balance_changes_nothing(session, engine):
    user = make_user(engine, credits=2)
    with pytest.raises(InsufficientCredits):
        credits.debit_for_request(session, user_id=user.id, cost=3 * MICRO, ref="r1")
    assert credits.balance(session, user_id=user.id) == 2 * MICRO
    assert credits.ledger_sum(session, user_id=user.id) == 2 * MICRO


def test_zero_cost_writes_nothing(session, engine):
    user = make_user(engine, credits=0)
    assert credits.debit_for_request(session, user_id=user.id, cost=0, ref="free") == 0
    assert session.exec(select(LedgerEntry).where(LedgerEntry.ref == "free")).first() is None


def test_refund_returns_the_charge_exactly_once(session, engine):
    user = make_user(engine, credits=10)
    credits.debit_for_request(session, user_id=user.id, cost=4 * MICRO, ref="r1")
    assert credits.refund(session, ref="r1", note="upstream failed") is True
    assert credits.refund(session, ref="r1") is False
    assert credits.balance(session, user_id=user.id) == 10 * MICRO
    assert credits.refund(session, ref="never-charged") is False
    assert credits.ledger_sum(session, user_id=user.id) == 10 * MICRO


def test_a_ref_is_charged_once(session, engine):
    user = make_user(engine, credits=10)
    credits.debit_for_request(session, user_id=user.id, cost=1 * MICRO, ref="same")
    with pytest.raises(Exception):
        credits.debit_for_request(session, user_id=user.id, cost=1 * MICRO, ref="same")
    session.rollback()
    assert credits.balance(session, user_id=user.id) == 9 * MICRO


def test_grant_rules(session, engine):
    user = make_user(engine, credits=5)
    assert credits.grant(session, user_id=user.id, amount=-5 * MICRO, note="take back") == 0
    with pytest.raises(InsufficientCredits):
        credits.grant(session, user_id=user.id, amount=-1)  # one micro-credit too many
    with pytest.raises(InvalidInput):
        credits.grant(session, user_id=user.id, amount=0)
    with pytest.raises(NotFound):
        credits.grant(session, user_id=999_999, amount=1 * MICRO)
    with pytest.raises(InvalidInput):
        credits.debit_for_request(session, user_id=user.id, cost=-1, ref="neg")


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_grants_are_bounded_so_the_ledger_sum_cannot_overflow(session, engine):
    user = make_user(engine, credits=5)
    for amount in (9 * 10**18, -9 * 10**18, credits.MAX_BALANCE + 1):
        with pytest.raises(InvalidInput, match="amount must be between"):
            credits.grant(session, user_id=user.id, amount=amount)
    assert credits.grant(session, user_id=user.id, amount=credits.MAX_BALANCE - 5 * MICRO) == credits.MAX_BALANCE
    with pytest.raises(InvalidInput, match="the balance would exceed 1,000,000,000"):
        credits.grant(session, user_id=user.id, amount=1)
    assert (
        credits.balance(session, user_id=user.id) == credits.MAX_BALANCE == credits.ledger_sum(session, user_id=user.id)
    )
    # a refund is never capped: what was charged always comes back
    credits.debit_for_request(session, user_id=user.id, cost=3 * MICRO, ref="r")
    credits.grant(session, user_id=user.id, amount=3 * MICRO)
    assert credits.refund(session, ref="r") is True
    assert (
        credits.balance(session, user_id=user.id)
        == credits.MAX_BALANCE + 3 * MICRO
        == credits.ledger_sum(session, user_id=user.id)
    )


def test_ledger_page_is_newest_first_and_keyset_paged(session, engine):
    user = make_user(engine, credits=1)
    for i in range(5):
        credits.grant(session, user_id=user.id, amount=(i + 1) * MICRO)
    first = credits.ledger_page(session, user_id=user.id, limit=4)
    rest = credits.ledger_page(session, user_id=user.id, limit=4, before_id=first[-1].id)
    assert [e.amount for e in first] == [5 * MICRO, 4 * MICRO, 3 * MICRO, 2 * MICRO]
    assert [e.amount for e in rest] == [1 * MICRO, 1 * MICRO]


operations = st.lists(
    st.tuples(st.sampled_from(["grant", "debit", "refund"]), st.integers(-20, 20)), min_size=1, max_size=25
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_any_sequence_keeps_balance_equal_to_ledger_and_non_negative(engine, ops):
    from store.db import session_for

    user = make_user(engine, credits=0)
    expected = 0
    charged: dict[str, int] = {}
    with session_for(engine) as session:
        for i, (op, amount) in enumerate(ops):
            ref = f"{user.id}-{i}"
            if op == "grant" and amount != 0:
                try:
                    credits.grant(session, user_id=user.id, amount=amount)
                    expected += amount
                except InsufficientCredits:
                    assert expected + amount < 0
            elif op == "debit" and amount >= 0:
                try:
                    credits.debit_for_request(session, user_id=user.id, cost=amount, ref=ref)
                    expected -= amount
                    if amount:
                        charged[ref] = amount
                except InsufficientCredits:
                    assert expected < amount
            elif op == "refund" and charged:
                ref_to_refund = sorted(charged)[abs(amount) % len(charged)]
                if credits.refund(session, ref=ref_to_refund):
                    expected += charged[ref_to_refund]
            balance = credits.balance(session, user_id=user.id)
            assert balance == expected == credits.ledger_sum(session, user_id=user.id)
            assert balance >= 0
