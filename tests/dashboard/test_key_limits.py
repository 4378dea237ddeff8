"""The ceiling on the rate limits a user may give their own keys: an admin sets it on the
Users page and on the user's own page (store.users.set_user_flags); the API Keys page
prefills and explains a rate limit within it, and POST /auth/keys refuses one above it."""

from __future__ import annotations

import pytest
from limits import RateLimitItemPerMinute

from dashboard.pages.admin_user import UserAdminState
from dashboard.pages.admin_users import UsersAdminState
from dashboard.pages.api_keys import KeysState
from store import accounts, keys, users
from store.db import session_for
from store.models import User
from store.settings import get_settings

from ..conftest import TEST_SECRET
from .conftest import cookie_for, state_for, toast_says
from .test_auth_routes import serving
from .test_states import snapshot
from .test_tab_state import create_through_the_route

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

DEFAULT_HINT = "0 = any, unlimited included; empty = the platform's default (600/min)."


def ceiling_of(engine, user) -> int | None:
    with session_for(engine) as s:
        found = s.get(User, user.id)
        assert found is not None
        return found.max_key_rpm


def platform(monkeypatch, **env: str) -> None:
    """Settings as the server would read them from its environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


# ---------------------------------------------------------------- an admin sets it


@both_databases
async def test_an_admin_sets_a_users_key_limit_from_the_list(admin, user, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    shown = {u.email: (u.key_limit, u.max_key_rpm) for u in state.users}
    assert shown == {admin.email: ("600/min (default)", ""), user.email: ("600/min (default)", "")}
    await state.start_key_limit(user.id)
    assert state.limit_open and state.limit_user.email == user.email and state.limit_hint == DEFAULT_HINT

    steps = [("100", 100, "100/min", "100"), ("0", 0, "any", "0"), ("2,500", 2500, "2,500/min", "2500")]
    steps.append(("", None, "600/min (default)", ""))  # empty: back to the platform's MAX_KEY_RPM
    for typed, stored, words, field in steps:
        assert toast_says(await state.set_key_limit({"user_id": str(user.id), "max_key_rpm": typed}), "Key limit saved")
        assert (state.limit_open, state.limit_error) == (False, "")
        assert ceiling_of(engine, user) == stored
        [row] = [u for u in state.users if u.id == user.id]
        assert (row.key_limit, row.max_key_rpm) == (words, field)
    assert ceiling_of(engine, admin) is None


@both_databases
async def test_an_admin_sets_a_key_limit_on_the_users_own_page(admin, user, engine):
    state = state_for(UserAdminState, cookie=cookie_for(engine, admin), path=f"/admin/users/{user.id}")
    await state.load()
    assert state.user.key_limit == "600/min (default)"
    await state.start_key_limit(admin.id)  # not the user this page shows: nothing opens
    assert state.limit_open is False
    await state.start_key_limit(user.id)
    assert state.limit_open and state.limit_user.id == user.id
    assert toast_says(await state.set_key_limit({"user_id": str(user.id), "max_key_rpm": "30"}), "Key limit saved")
    assert ceiling_of(engine, user) == 30
    assert (state.user.key_limit, state.user.max_key_rpm) == ("30/min", "30")


@pytest.mark.parametrize(
    "max_key_rpm, own, words",
    [("0", None, "any (default)"), ("0", 40, "40/min"), ("1000000", None, "1,000,000/min (default)")],
)
async def test_the_limit_shown_is_the_one_that_applies(max_key_rpm, own, words, admin, user, engine, monkeypatch):
    platform(monkeypatch, MAX_KEY_RPM=max_key_rpm)
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    if own is not None:
        await state.set_key_limit({"user_id": str(user.id), "max_key_rpm": str(own)})
    await state.load()
    assert [u.key_limit for u in state.users if u.id == user.id] == [words]


BAD_LIMIT = (
    "The key limit must be a whole number of requests per minute from 0 to 1,000,000 (0: any), "
    "or empty for the platform's default."
)


@both_databases
@pytest.mark.parametrize(
    "form, message",
    [
        ({"max_key_rpm": "-1"}, BAD_LIMIT),
        ({"max_key_rpm": "ten"}, BAD_LIMIT),
        ({"max_key_rpm": "1.5"}, BAD_LIMIT),
        ({"max_key_rpm": "1000001"}, BAD_LIMIT),
        ({"max_key_rpm": "²"}, BAD_LIMIT),
        ({"max_key_rpm": "9" * 5000}, BAD_LIMIT),
        ({"max_key_rpm": "10", "user_id": "99999"}, "No such user."),
        ({"max_key_rpm": "10", "user_id": "abc"}, "No such user."),
    ],
)
async def test_a_bad_key_limit_says_why_and_changes_nothing(form, message, admin, user, engine):
    with session_for(engine) as s:  # a ceiling of their own, which bad input must leave as it is
        users.set_user_flags(s, user_id=user.id, max_key_rpm=50)
    before = snapshot(engine)
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    await state.start_key_limit(user.id)
    assert await state.set_key_limit({"user_id": str(user.id), **form}) is None
    assert (state.limit_error, state.limit_open) == (message, True)
    assert snapshot(engine) == before and ceiling_of(engine, user) == 50


# ---------------------------------------------------------------- the API Keys page


@pytest.mark.parametrize(
    "default, max_key_rpm, own, prefill, hint",
    [
        ("60", "600", None, "60", "At most 600 requests per minute for this account."),
        ("60", "600", 10, "10", "At most 10 requests per minute for this account."),
        ("1000", "600", None, "600", "At most 600 requests per minute for this account."),
        ("0", "600", None, "600", "At most 600 requests per minute for this account."),  # never unlimited under one
        ("0", "600", 0, "0", "Requests per minute; 0 means unlimited."),
        ("60", "600", 0, "60", "Requests per minute; 0 means unlimited."),
        ("60", "0", None, "60", "Requests per minute; 0 means unlimited."),
        ("60", "0", 1500, "60", "At most 1,500 requests per minute for this account."),
    ],
)
async def test_the_create_form_is_prefilled_within_the_accounts_ceiling(
    default, max_key_rpm, own, prefill, hint, user, engine, monkeypatch
):
    platform(monkeypatch, DEFAULT_RATE_LIMIT_PER_MINUTE=default, MAX_KEY_RPM=max_key_rpm)
    if own is not None:
        with session_for(engine) as s:
            users.set_user_flags(s, user_id=user.id, max_key_rpm=own)
    state = state_for(KeysState, cookie=cookie_for(engine, user), path="/settings/api-keys")
    await state.load()
    assert (state.default_rate_limit, state.rate_limit_hint) == (prefill, hint)


@pytest.fixture
async def web(dash_settings):
    async with serving(accounts.LoginLimiter(per_client=RateLimitItemPerMinute(50)), []) as client:
        yield client


@both_databases
async def test_a_key_over_the_ceiling_an_admin_set_is_refused_with_the_routes_message(web, admin, user, engine):
    limits = state_for(UserAdminState, cookie=cookie_for(engine, admin), path=f"/admin/users/{user.id}")
    await limits.load()
    await limits.set_key_limit({"user_id": str(user.id), "max_key_rpm": "20"})

    cookie = cookie_for(engine, user)
    page = state_for(KeysState, cookie=cookie, path="/settings/api-keys")
    await page.load()
    assert (page.default_rate_limit, page.rate_limit_hint) == ("20", "At most 20 requests per minute for this account.")
    for over in ("21", "0"):  # 0 is unlimited: over any ceiling
        refused = await create_through_the_route(web, cookie, name="too fast", rate_limit=over)
        message = "Rate limit must be from 1 to 20 per minute for this account."
        assert (refused.status_code, refused.json()) == (400, {"error": message})
        await page.key_created(refused.json())  # what the page script reports
        assert (page.error, page.new_key_name, page.keys) == (message, "", [])

    created = await create_through_the_route(web, cookie, name="within", rate_limit=page.default_rate_limit)
    assert created.status_code == 201
    with session_for(engine) as s:
        assert keys.verify_key(s, secret_key=TEST_SECRET, raw=created.json()["key"]).rate_limit_per_minute == 20
    await page.key_created({"name": "within"})
    assert page.error == "" and [(k.name, k.rate_limit) for k in page.keys] == [("within", "20/min")]

    await limits.set_key_limit({"user_id": str(user.id), "max_key_rpm": "0"})  # any, unlimited included
    assert (await create_through_the_route(web, cookie, name="unlimited", rate_limit="0")).status_code == 201
