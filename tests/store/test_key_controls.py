"""Key controls in the store: a budget per period, a model allow-list and an expiry, checked
by the debit itself; what a settlement or refund gives back leaves the key's spend too,
exactly once and only in the period the hold counted in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from store import budgets, credits, holds, keys
from store.errors import InsufficientCredits, InvalidInput, KeyBudgetExceeded, KeyNotUsable, ModelNotAllowed
from store.models import CLEAR, ApiKey, LedgerEntry, utcnow
from store.money import MICRO

from ..conftest import TEST_SECRET
from ..factories import make_user

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def issue(session, user, **controls) -> ApiKey:
    return keys.issue_key(
        session,
        secret_key=TEST_SECRET,
        user_id=user.id,
        name="k",
        rate_limit_per_minute=0,
        controls=keys.KeyControls(**controls),
    ).key


def spent(session, key: ApiKey) -> int:
    value = session.execute(sa.select(ApiKey.budget_spent).where(ApiKey.id == key.id)).scalar_one()
    session.rollback()
    return value


# A model call's hold has its durable record (store.holds), which its settlement closes.
HOLD = holds.HoldInfo(owner="test", lease_s=60, endpoint="/api/v1/chat/completions", stream=False)


def debit(session, user, key, cost, ref, model="openai/gpt-5"):
    return credits.debit_for_request(
        session, user_id=user.id, cost=cost, ref=ref, model=model, key_id=key.id, hold=HOLD
    )


@both_databases
def test_the_budget_refuses_a_hold_it_cannot_cover_and_changes_nothing(session, engine):
    user = make_user(engine, credits=100)
    key = issue(session, user, budget=5 * MICRO)
    assert debit(session, user, key, 3 * MICRO, "r1") == 97 * MICRO
    with pytest.raises(KeyBudgetExceeded):
        debit(session, user, key, 3 * MICRO, "r2")
    assert credits.balance(session, user_id=user.id) == 97 * MICRO
    assert credits.ledger_sum(session, user_id=user.id) == 97 * MICRO
    assert spent(session, key) == 3 * MICRO
    assert debit(session, user, key, 2 * MICRO, "r3") == 95 * MICRO  # exactly what is left
    assert spent(session, key) == 5 * MICRO
    charge = session.exec(select(LedgerEntry).where(LedgerEntry.ref == "r1")).one()
    assert charge.api_key_id == key.id and charge.key_period_start is None  # a budget for the key's life


@both_databases
def test_the_balance_still_refuses_under_a_budget(session, engine):
    user = make_user(engine, credits=2)
    key = issue(session, user, budget=50 * MICRO)
    with pytest.raises(InsufficientCredits):
        debit(session, user, key, 3 * MICRO, "r1")
    assert spent(session, key) == 0  # the key's half rolled back with the user's


@both_databases
def test_settlement_and_refund_give_back_to_the_key_exactly_once(session, engine):
    user = make_user(engine, credits=100)
    key = issue(session, user, budget=10 * MICRO, budget_period="month")
    debit(session, user, key, 4 * MICRO, "a")
    assert credits.settle(session, ref="a", cost=1 * MICRO) == 1 * MICRO
    assert spent(session, key) == 1 * MICRO
    assert credits.settle(session, ref="a", cost=0) is None  # settled already: nothing more back
    assert spent(session, key) == 1 * MICRO
    debit(session, user, key, 3 * MICRO, "b")
    credits.settle_hold(session, user_id=user.id, ref="b", held=3 * MICRO, cost=MICRO // 2)
    assert spent(session, key) == 1 * MICRO + MICRO // 2
    debit(session, user, key, 2 * MICRO, "c")
    assert credits.refund(session, ref="c") is True
    assert credits.refund(session, ref="c") is False
    assert credits.refund(session, ref="a") is True  # after its settlement: the rest of it
    assert spent(session, key) == MICRO // 2
    assert credits.balance(session, user_id=user.id) == credits.ledger_sum(session, user_id=user.id)
    assert credits.balance(session, user_id=user.id) == 100 * MICRO - MICRO // 2


@both_databases
def test_a_new_period_starts_from_nothing_and_an_old_hold_gives_nothing_back_to_it(session, engine):
    user = make_user(engine, credits=100)
    key = issue(session, user, budget=5 * MICRO, budget_period="day")
    debit(session, user, key, 5 * MICRO, "yesterday")
    with pytest.raises(KeyBudgetExceeded):
        debit(session, user, key, 1 * MICRO, "refused")
    # As if that hold had been taken yesterday: its period start (on the key and on the
    # charge row) a day earlier.
    today = budgets.period_starts(utcnow())["day"]
    yesterday = today - timedelta(days=1)
    session.execute(sa.update(ApiKey).where(ApiKey.id == key.id).values(budget_period_start=yesterday))
    session.execute(sa.update(LedgerEntry).where(LedgerEntry.ref == "yesterday").values(key_period_start=yesterday))
    session.commit()
    debit(session, user, key, 4 * MICRO, "today")
    assert spent(session, key) == 4 * MICRO
    row = session.exec(select(ApiKey).where(ApiKey.id == key.id)).one()
    assert budgets.aware(row.budget_period_start) == today
    assert credits.settle(session, ref="yesterday", cost=0) == 0  # 5 back to the balance...
    assert spent(session, key) == 4 * MICRO  # ...not to today's spend
    assert credits.balance(session, user_id=user.id) == 96 * MICRO


@both_databases
def test_the_allow_list_refuses_other_models_even_free_ones(session, engine):
    user = make_user(engine, credits=10)
    key = issue(session, user, models=("openai/gpt-5-mini",))
    assert debit(session, user, key, MICRO, "ok", model="openai/gpt-5-mini") == 9 * MICRO
    for cost in (MICRO, 0):
        with pytest.raises(ModelNotAllowed):
            debit(session, user, key, cost, f"no-{cost}", model="openai/gpt-5")
    assert credits.balance(session, user_id=user.id) == 9 * MICRO
    assert session.exec(select(LedgerEntry).where(LedgerEntry.ref == f"no-{MICRO}")).first() is None


@both_databases
def test_an_expired_key_is_refused_by_the_debit_and_by_verification(session, engine):
    user = make_user(engine, credits=10)
    issued = keys.issue_key(session, secret_key=TEST_SECRET, user_id=user.id, name="k", rate_limit_per_minute=0)
    key = issued.key
    record = keys.verify_key(session, secret_key=TEST_SECRET, raw=issued.secret)
    assert record is not None and not record.expired()
    session.execute(sa.update(ApiKey).where(ApiKey.id == key.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    with pytest.raises(KeyNotUsable) as refused:
        debit(session, user, key, MICRO, "late")
    assert refused.value.revoked is True  # 401 invalid_api_key
    assert keys.verify_key(session, secret_key=TEST_SECRET, raw=issued.secret) is None
    assert credits.balance(session, user_id=user.id) == 10 * MICRO


@both_databases
def test_edit_key_sets_and_clears_controls(session, engine):
    user = make_user(engine)
    key = issue(session, user)
    when = datetime(2099, 1, 31, tzinfo=UTC)
    edited = keys.edit_key(
        session,
        key_id=key.id,
        budget=25 * MICRO,
        budget_period="week",
        models=["openai/gpt-5", "openai/gpt-5", "openai/gpt-5-mini"],
        expires_at=when,
    )
    assert (edited.budget, edited.budget_period, keys.models_of(edited)) == (
        25 * MICRO,
        "week",
        ("openai/gpt-5", "openai/gpt-5-mini"),
    )
    assert budgets.aware(edited.expires_at) == when
    status = keys.budget_of(edited)
    assert (status.budget, status.spent, status.remaining, status.reset_word) == (25 * MICRO, 0, 25 * MICRO, "weekly")
    cleared = keys.edit_key(session, key_id=key.id, budget=CLEAR, models=CLEAR, expires_at=CLEAR)
    assert (cleared.budget, cleared.budget_period, cleared.allowed_models, cleared.expires_at) == (
        None,
        None,
        None,
        None,
    )


@both_databases
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"budget": 0}, "budget must be more than 0"),
        ({"budget": -5}, "budget must be more than 0"),
        ({"budget": CLEAR, "budget_period": "month"}, "a budget period needs a budget"),
        ({"budget": MICRO, "budget_period": "year"}, "budget period must be day, week, month or none"),
        ({"models": ["openai/gpt-5", "no/such-model"]}, "unknown model 'no/such-model'"),
        ({"models": []}, "at least one model"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expiry must be in the future"),
        ({"name": "ok", "budget": 0}, "budget must be more than 0"),  # nothing half-written
    ],
)
def test_bad_controls_say_why_and_change_nothing(session, engine, changes, message):
    user = make_user(engine)
    key = issue(session, user, budget=3 * MICRO, budget_period="day")
    with pytest.raises(InvalidInput, match=message):
        keys.edit_key(session, key_id=key.id, **changes)
    stored = session.exec(select(ApiKey).where(ApiKey.id == key.id)).one()
    assert (stored.name, stored.budget, stored.budget_period, stored.allowed_models, stored.expires_at) == (
        "k",
        3 * MICRO,
        "day",
        None,
        None,
    )


@both_databases
def test_a_user_edits_only_their_own_keys(session, engine):
    owner, other = make_user(engine), make_user(engine)
    key = issue(session, owner)
    with pytest.raises(Exception, match="no such key"):
        keys.edit_key(session, key_id=key.id, user_id=other.id, budget=MICRO)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T18:30:00+02:00", datetime(2027, 1, 31, 16, 30, tzinfo=UTC)),
        ("2027-01-31T18:30Z", datetime(2027, 1, 31, 18, 30, tzinfo=UTC)),
        ("none", CLEAR),
        ("", CLEAR),
    ],
)
def test_expiry_text(text, expected):
    assert keys.parse_expiry(text) == expected


def test_control_text_parsers():
    assert keys.parse_budget("2.5") == 2_500_000
    assert keys.parse_budget("None") is CLEAR
    assert keys.parse_period("monthly") == "month"
    assert keys.parse_models(" a/b , c ,") == ("a/b", "c")
    for parse, text in (
        (keys.parse_budget, "lots"),
        (keys.parse_budget, "0"),
        (keys.parse_period, "hourly"),
        (keys.parse_expiry, "next tuesday"),
    ):
        with pytest.raises(InvalidInput):
            parse(text)


def test_periods_start_at_utc_midnight_monday_and_the_first():
    now = datetime(2026, 12, 10, 15, 4, tzinfo=UTC)  # a Thursday
    assert budgets.period_starts(now) == {
        "day": datetime(2026, 12, 10, tzinfo=UTC),
        "week": datetime(2026, 12, 7, tzinfo=UTC),
        "month": datetime(2026, 12, 1, tzinfo=UTC),
    }
    assert budgets.next_start("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert budgets.next_start("week", now) == datetime(2026, 12, 14, tzinfo=UTC)


@both_databases
def test_the_path_for_keys_without_a_budget_keeps_every_check(session, engine):
    user = make_user(engine, credits=10)
    key = issue(session, user, models=("openai/gpt-5-mini",))

    def quick(cost, ref, model="openai/gpt-5-mini"):
        return credits.debit_for_request(
            session, user_id=user.id, cost=cost, ref=ref, model=model, key_id=key.id, key_budgeted=False
        )

    assert quick(MICRO, "a") == 9 * MICRO
    assert session.exec(select(LedgerEntry).where(LedgerEntry.ref == "a")).one().api_key_id is None  # not counted
    with pytest.raises(ModelNotAllowed):
        quick(MICRO, "b", model="openai/gpt-5")
    with pytest.raises(InsufficientCredits):
        quick(20 * MICRO, "c")
    keys.edit_key(session, key_id=key.id, budget=2 * MICRO)  # the caller's record does not know yet
    assert quick(2 * MICRO, "d") == 7 * MICRO  # the key's own statement ran after all
    with pytest.raises(KeyBudgetExceeded):
        quick(MICRO, "e")
    assert spent(session, key) == 2 * MICRO
    session.execute(sa.update(ApiKey).where(ApiKey.id == key.id).values(budget=None, enabled=False))
    session.commit()
    with pytest.raises(KeyNotUsable) as refused:
        quick(MICRO, "f")
    assert refused.value.revoked is False  # disabled: 403
    assert credits.balance(session, user_id=user.id) == 7 * MICRO == credits.ledger_sum(session, user_id=user.id)
