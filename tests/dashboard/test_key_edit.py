"""API Keys: the list shows each key's budget, models and expiry, and the Edit dialog
changes a key's name, rate limit and controls through store.keys.edit_key; bad input says
why and changes nothing. The handlers resolve the person from the session cookie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dashboard.auth_routes import RATE_LIMIT_ERROR
from dashboard.pages.api_keys import KeysState, create_script
from store import budgets, credits, keys, users
from store.db import session_for
from store.models import ApiKey, utcnow
from store.money import MICRO

from ..conftest import TEST_SECRET
from ..factories import make_user
from .conftest import cookie_for, state_for, toast_says
from .test_states import snapshot

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def issue(engine, user, name: str = "agent", rpm: int = 60, **controls) -> int:
    with session_for(engine) as s:
        issued = keys.issue_key(
            s,
            secret_key=TEST_SECRET,
            user_id=user.id,
            name=name,
            rate_limit_per_minute=rpm,
            controls=keys.KeyControls(**controls) if controls else None,
        )
        return issued.key.id


def stored(engine, key_id: int) -> ApiKey:
    with session_for(engine) as s:
        return s.get(ApiKey, key_id)


def expire(engine, key_id: int, when: datetime) -> None:
    """An expiry in the past (edit_key refuses to set one)."""
    with session_for(engine) as s:
        s.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(expires_at=when))
        s.commit()


async def keys_page(engine, user) -> KeysState:
    state = state_for(KeysState, cookie=cookie_for(engine, user), path="/settings/api-keys")
    await state.load()
    return state


def form(key_id: int, **fields: str) -> dict:
    base = {"key_id": str(key_id), "name": "agent", "rate_limit": "60", "budget": "", "budget_period": "none"}
    return {**base, "models": "", "expires": "", **fields}


@both_databases
async def test_the_list_shows_each_keys_budget_models_and_expiry(user, engine):
    budgeted = issue(
        engine,
        user,
        "budgeted",
        budget=10 * MICRO,
        budget_period="month",
        models=("openai/gpt-5", "openai/gpt-5-mini"),
        expires_at=datetime(2099, 1, 31, tzinfo=UTC),
    )
    lifetime = issue(engine, user, "lifetime", budget=5 * MICRO)
    plain = issue(engine, user, "plain")
    gone = issue(engine, user, "gone")
    expire(engine, gone, utcnow() - timedelta(minutes=1))
    with session_for(engine) as s:
        credits.debit_for_request(
            s, user_id=user.id, cost=2_500_000, ref="req-1", model="openai/gpt-5", key_id=budgeted
        )
    state = await keys_page(engine, user)
    rows = {row.id: row for row in state.keys}
    resets = budgets.next_start("month", utcnow()).strftime("%Y-%m-%d")
    b = rows[budgeted]
    assert (b.budget, b.models, b.expires, b.status) == (
        f"2.5 / 10 per month · resets {resets}",
        "openai/gpt-5, openai/gpt-5-mini",
        "2099-01-31 00:00",
        "active",
    )
    assert (b.budget_value, b.period_value, b.models_value, b.expires_value) == (
        "10",
        "month",
        "openai/gpt-5, openai/gpt-5-mini",
        "2099-01-31T00:00",
    )
    assert (rows[lifetime].budget, rows[lifetime].period_value) == ("0 / 5 in total", "none")
    assert (rows[plain].budget, rows[plain].models, rows[plain].expires, rows[plain].budget_value) == (
        "—",
        "any",
        "never",
        "",
    )
    assert (rows[gone].status, rows[gone].enabled) == ("expired", True)


@both_databases
async def test_edit_sets_every_control_and_the_api_sees_it(user, engine):
    key_id = issue(engine, user)
    state = await keys_page(engine, user)
    await state.start_edit(key_id)
    assert state.edit_open and state.editing.id == key_id and state.editing.rpm_value == "60"
    result = await state.save_key(
        form(
            key_id,
            name="agent (capped)",
            rate_limit="30",
            budget="7.5",
            budget_period="week",
            models="openai/gpt-5-mini",
            expires="2099-06-30T12:00",
        )
    )
    assert toast_says(result, "Key saved") and state.edit_open is False and state.edit_error == ""
    key = stored(engine, key_id)
    assert (key.name, key.rate_limit_per_minute, key.budget, key.budget_period) == (
        "agent (capped)",
        30,
        7_500_000,
        "week",
    )
    assert keys.models_of(key) == ("openai/gpt-5-mini",)
    assert budgets.aware(key.expires_at) == datetime(2099, 6, 30, 12, 0, tzinfo=UTC)
    [row] = state.keys
    assert row.budget.startswith("0 / 7.5 per week · resets ") and row.rate_limit == "30/min"


@both_databases
async def test_edit_with_empty_fields_removes_the_controls(user, engine):
    key_id = issue(
        engine,
        user,
        budget=3 * MICRO,
        budget_period="day",
        models=("openai/gpt-5",),
        expires_at=datetime(2099, 1, 1, tzinfo=UTC),
    )
    state = await keys_page(engine, user)
    await state.save_key(form(key_id))
    key = stored(engine, key_id)
    assert (key.budget, key.budget_period, key.allowed_models, key.expires_at) == (None, None, None, None)
    assert (state.keys[0].budget, state.keys[0].models, state.keys[0].expires) == ("—", "any", "never")


@both_databases
@pytest.mark.parametrize(
    "fields, message",
    [
        ({"budget": "ten"}, "Budget must be a number such as 2.5."),
        ({"budget": "0"}, "Budget must be more than 0 and at most 1,000,000,000 credits."),
        ({"budget": "1.0000001"}, "Budget has more than 6 decimal places."),
        ({"budget": "", "budget_period": "week"}, "A budget period needs a budget."),
        ({"budget": "5", "budget_period": "fortnight"}, "Budget period must be day, week, month or none."),
        ({"models": "openai/gpt-5, made/up"}, "Unknown model 'made/up'; `python -m store models` lists them."),
        ({"expires": "2001-01-01T00:00"}, "Expiry must be in the future."),
        ({"expires": "soon"}, "Expiry 'soon' is not an ISO date or time such as 2027-01-31."),
        ({"rate_limit": "601"}, "Rate limit must be from 1 to 600 per minute for this account."),
        ({"rate_limit": "0"}, "Rate limit must be from 1 to 600 per minute for this account."),
        ({"rate_limit": "fast"}, RATE_LIMIT_ERROR),
        ({"name": "  "}, "Key name must not be empty."),
        ({"name": "n" * 101}, "Key name must be at most 100 characters."),
        ({"key_id": "abc"}, "No such key."),
        ({"key_id": "999"}, "No such key."),
    ],
)
async def test_a_bad_edit_says_why_and_changes_nothing(fields, message, user, engine):
    key_id = issue(engine, user, budget=4 * MICRO, budget_period="month")
    state = await keys_page(engine, user)
    await state.start_edit(key_id)
    before = snapshot(engine)
    assert await state.save_key({**form(key_id, budget="4", budget_period="month"), **fields}) is None
    assert state.edit_error == message
    assert state.edit_open is True  # the dialog stays open with the message
    assert snapshot(engine) == before


@both_databases
async def test_nobody_edits_someone_elses_key_nor_a_revoked_one(user, engine):
    other = make_user(engine)
    theirs = issue(engine, other, "theirs")
    mine = issue(engine, user, "mine")
    with session_for(engine) as s:
        keys.revoke_key(s, key_id=mine)
    state = await keys_page(engine, user)
    await state.start_edit(theirs)
    assert state.edit_open is False
    await state.start_edit(mine)  # revoked: nothing to edit
    assert state.edit_open is False
    before = snapshot(engine)
    await state.save_key(form(theirs, name="mine now"))
    assert state.edit_error == "No such key."
    await state.save_key(form(mine, name="back"))
    assert state.edit_error == "A revoked key cannot be changed."
    assert snapshot(engine) == before


@both_databases
async def test_what_the_form_shows_unchanged_is_left_as_it_is(user, engine):
    """An expired key can be renamed (its past expiry is kept), and a rate limit over a
    ceiling lowered since stays until it is changed."""
    key_id = issue(engine, user, rpm=100)
    past = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)
    expire(engine, key_id, past)
    with session_for(engine) as s:
        users.set_user_flags(s, user_id=user.id, max_key_rpm=20)
    state = await keys_page(engine, user)
    shown = state.keys[0]
    assert (shown.status, shown.expires_value, shown.rpm_value) == ("expired", "2025-01-02T03:04", "100")
    await state.save_key(form(key_id, name="renamed", rate_limit="100", expires="2025-01-02T03:04"))
    assert state.edit_error == ""
    key = stored(engine, key_id)
    assert (key.name, key.rate_limit_per_minute, budgets.aware(key.expires_at)) == ("renamed", 100, past)
    await state.save_key(form(key_id, name="renamed", rate_limit="50", expires="2025-01-02T03:04"))
    assert state.edit_error == "Rate limit must be from 1 to 20 per minute for this account."
    await state.save_key(form(key_id, name="renamed", rate_limit="20", expires="2099-01-01T00:00"))
    key = stored(engine, key_id)
    assert (key.rate_limit_per_minute, budgets.aware(key.expires_at)) == (20, datetime(2099, 1, 1, tzinfo=UTC))
    assert state.keys[0].status == "active"


def test_the_create_script_posts_every_control_and_nothing_else():
    script = create_script(
        {
            "name": "agent",
            "rate_limit": "30",
            "budget": "12.5",
            "budget_period": "month",
            "models": "openai/gpt-5",
            "expires": "2099-01-31T00:00",
            "is_admin": "true",
        }
    )
    assert (
        '{"name": "agent", "rate_limit": "30", "budget": "12.5", "budget_period": "month", '
        '"models": "openai/gpt-5", "expires": "2099-01-31T00:00"}'
    ) in script
    assert "is_admin" not in script
