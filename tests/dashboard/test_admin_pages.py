"""The admin's pages as their handlers run them: Users (search, sort, pages), one user's
page, Usage, the no-upstream banner; and the fixes of the Logs and Models pages."""

from __future__ import annotations

import pytest

from dashboard.pages.admin_models import ModelsAdminState, typical_call
from dashboard.pages.admin_usage import UsageAdminState
from dashboard.pages.admin_user import UserAdminState, user_id_of
from dashboard.pages.admin_users import UsersAdminState
from dashboard.pages.logs import LogsState
from dashboard.pages.overview import OverviewState
from dashboard.state import NOT_ADMIN
from store import logs, usage
from store.db import session_for
from store.models import utcnow
from store.settings import get_settings

from ..factories import credits_of, make_key, make_user
from .conftest import cookie_for, state_for, toast_says
from .test_states import snapshot
from .test_store_usage import log

# ---------------------------------------------------------------- Users


@pytest.fixture
def crowd(engine, admin):
    """The admin and 59 users with balances 1..59 credits."""
    return [make_user(engine, email=f"p{i:02d}@example.com", credits=i) for i in range(1, 60)]


async def test_users_list_pages_25_at_a_time_newest_first(admin, crowd, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    assert (state.total, state.page, state.pages, len(state.users)) == (60, 1, 3, 25)
    assert state.users[0].email == "p59@example.com"
    await state.next_page()
    await state.next_page()
    assert state.page == 3 and [u.email for u in state.users][-1] == admin.email
    await state.next_page()  # there is no page 4
    assert state.page == 3
    await state.previous_page()
    assert state.page == 2 and state.users[0].email == "p34@example.com"


async def test_users_search_and_sort(admin, crowd, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    await state.next_page()
    await state.search_users({"search": "P1"})
    assert (
        state.page == 1
        and state.total == 10
        and {u.email for u in state.users} == {f"p{i}@example.com" for i in range(10, 20)}
    )
    await state.set_sort("balance_desc")
    assert [u.balance for u in state.users[:3]] == ["19", "18", "17"]
    await state.search_users({"search": ""})
    await state.set_sort("email_asc")
    emails = [u.email for u in state.users]
    assert emails == sorted(emails)
    assert toast_says(await state.set_sort("password"), "Choose a sort order")
    assert toast_says(await state.search_users({"search": "x" * 255}), "A search is at most 254 characters.")


async def test_your_own_row_says_so_and_offers_no_remove_admin(admin, user, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    assert {u.email: u.you for u in state.users} == {admin.email: True, user.email: False}
    # (the page hides Remove admin on the row marked `you`; the handler refuses it anyway)
    assert toast_says(await state.set_admin(admin.id, False), "your own admin role")


async def test_a_grant_from_the_list_keeps_its_page_and_search(admin, crowd, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    await state.search_users({"search": "p0"})
    target = state.users[0]
    await state.start_grant(target.id)
    assert toast_says(
        await state.grant_credits({"user_id": str(target.id), "amount": "2.5", "note": "bonus"}), "Credits updated"
    )
    assert state.search == "p0" and state.total == 9
    assert [u.balance for u in state.users if u.id == target.id] == [str(int(target.balance) + 2.5)]


# ---------------------------------------------------------------- one user's page


@pytest.mark.parametrize(
    "path, expected",
    [("/admin/users/12", 12), ("/admin/users/12/", 12), ("/admin/users/x", None), ("/admin/users/٣", None)],
)
def test_the_user_id_comes_from_the_path(path, expected):
    assert user_id_of(path) == expected


async def test_a_users_page_shows_their_account_keys_requests_and_ledger(admin, user, engine):
    make_key(engine, user, name="laptop")
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(user.id, i, at=utcnow(), cost="0.5", latency_ms=40) for i in range(3)])
    state = state_for(UserAdminState, cookie=cookie_for(engine, admin), path=f"/admin/users/{user.id}")
    await state.load()
    assert state.found and state.loaded
    assert (state.user.email, state.user.balance, state.user.you) == (user.email, "100", False)
    assert [k.name for k in state.keys] == ["laptop"]
    assert [r.request_id for r in state.recent] == [f"req-{user.id}-{i}" for i in (2, 1, 0)]
    assert [e.detail for e in state.ledger] == ["starting credits"]
    assert state.totals == {"requests": "3", "errors": "0", "spend": "1.5", "latency": "40 ms"}


async def test_the_actions_on_a_users_page_change_that_user(admin, user, engine):
    state = state_for(UserAdminState, cookie=cookie_for(engine, admin), path=f"/admin/users/{user.id}")
    await state.load()
    await state.start_grant(user.id)
    assert state.grant_open and state.grant_user.email == user.email
    assert toast_says(
        await state.grant_credits({"user_id": str(user.id), "amount": "-40", "note": "correction"}), "Credits updated"
    )
    assert credits_of(engine, user) == 60 and state.user.balance == "60"
    assert state.ledger[0].detail == "correction" and state.ledger[0].amount == "-40"
    await state.set_api_enabled(user.id, False)
    await state.set_admin(user.id, True)
    assert (state.user.api_enabled, state.user.is_admin) == (False, True)
    await state.start_grant(admin.id)  # not the user this page shows: nothing opens
    assert state.grant_user.id == user.id


async def test_a_missing_user_is_said_so(admin, engine):
    state = state_for(UserAdminState, cookie=cookie_for(engine, admin), path="/admin/users/99999")
    await state.load()
    assert (state.found, state.loaded, state.keys, state.user.email) == (False, True, [], "")


# ---------------------------------------------------------------- Usage


async def test_usage_page_totals_per_day_and_top_lists(admin, user, engine):
    other = make_user(engine, email="zed@example.com")
    with session_for(engine) as s:
        logs.write_request_logs(
            s,
            [log(user.id, 1, at=utcnow(), cost="2.5", latency_ms=100)]
            + [log(user.id, 2, at=utcnow(), cost="0", status=502, latency_ms=300)]
            + [log(other.id, 1, at=utcnow(), cost="0.25", model="openai/gpt-5-mini", latency_ms=20)],
        )
    state = state_for(UsageAdminState, cookie=cookie_for(engine, admin), path="/admin/usage")
    await state.load()
    assert state.totals == {"spend": "2.75", "requests": "3", "errors": "1 (33.3 %)", "latency": "140 ms"}
    assert len(state.per_day) == 30 and state.per_day[-1]["requests"] == 3 and state.per_day[-1]["spend"] == 2.75
    assert [(u.label, u.requests, u.errors, u.spend, u.ref) for u in state.by_user] == [
        (user.email, "2", "1", "2.5", user.id),
        ("zed@example.com", "1", "0", "0.25", other.id),
    ]
    assert [m.label for m in state.by_model] == ["openai/gpt-5", "openai/gpt-5-mini"]
    assert state.user_chart[0] == {"name": user.email, "spend": 2.5}
    await state.set_days("7")
    assert state.days == "7" and len(state.per_day) == 7
    assert toast_says(await state.set_days("365"), "Choose 7, 30 or 90 days.") and state.days == "7"


# ---------------------------------------------------------------- the no-upstream banner


@pytest.mark.parametrize("key, shown", [(None, True), ("", True), ("sk-or-123", False)])
async def test_an_admin_is_told_when_no_upstream_is_configured(key, shown, admin, user, engine, monkeypatch):
    if key is None:
        monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENROUTER_API_KEY", key)
    get_settings.cache_clear()
    admin_tab = state_for(OverviewState, cookie=cookie_for(engine, admin))
    await admin_tab.load()
    assert admin_tab.upstream_missing is shown
    user_tab = state_for(OverviewState, cookie=cookie_for(engine, user))
    await user_tab.load()
    assert user_tab.upstream_missing is False  # nothing a plain user can do about it


async def test_a_plain_user_gets_nothing_of_a_users_page(user, engine):
    other = make_user(engine, credits=7)
    before = snapshot(engine)
    state = state_for(UserAdminState, cookie=cookie_for(engine, user), path=f"/admin/users/{other.id}")
    assert await state.load() is None
    assert (state.found, state.user.email, state.ledger) == (False, "", [])
    assert toast_says(await state.grant_credits({"user_id": str(user.id), "amount": "5", "note": "x"}), NOT_ADMIN)
    assert snapshot(engine) == before


# ---------------------------------------------------------------- Logs and Models fixes


async def test_log_details_show_tokens_and_what_an_error_means(user, engine):
    with session_for(engine) as s:
        logs.write_request_logs(
            s,
            [
                log(user.id, 1, prompt_tokens=12, completion_tokens=3, total_tokens=15),
                log(user.id, 2, status=502, cost="0", at=utcnow()),
            ],
        )
        ids = [r.id for r in usage.logs_page(s, user_id=user.id)]
    state = state_for(LogsState, cookie=cookie_for(engine, user), path="/logs")
    await state.load()
    assert [(r.token_line, r.error_code) for r in state.rows] == [("—", "provider_error"), ("12 / 3", "")]
    await state.show_detail(ids[0])
    assert state.detail.token_detail == "—"
    assert state.detail.error_text == "The upstream provider failed or timed out; the credits were refunded."
    await state.show_detail(ids[1])
    assert (state.detail.token_detail, state.detail.error_text) == ("12 prompt / 3 completion / 15 total", "")


async def test_logs_say_which_filter_the_rows_show(user, engine):
    make_key(engine, user, name="laptop")
    state = state_for(LogsState, cookie=cookie_for(engine, user), path="/logs")
    await state.load()
    assert state.showing == "Showing all requests."
    key_value, key_label = state.key_options[0]
    await state.apply_filters({"key": key_value, "status": "errors", "since": "2025-01-01", "until": "2025-01-31"})
    assert state.showing == f"Showing requests with key {key_label}, status errors, 2025-01-01 to 2025-01-31 (UTC)."
    await state.apply_filters({"since": "2025-02-02", "until": "2025-02-01"})
    assert state.error.startswith("The 'from' date is after the 'to' date.")
    assert state.showing.startswith(
        f"Showing requests with key {key_label}"
    )  # the rows are still the last good filter's


@pytest.mark.parametrize(
    "draft, preview",
    [
        ({"credit_cost": "-1"}, "No preview: credit cost must be from 0 to 1000000 credits."),
        ({"credit_cost": "1"}, "Every call costs 1 credit (× n when a call asks for n images or choices)."),
        ({"credit_cost": "1.5"}, "Every call costs 1.5 credits (× n when a call asks for n images or choices)."),
        ({"credit_cost": "0"}, "Every call costs 0 credits (× n when a call asks for n images or choices)."),
        ({"pricing": "per_token", "prompt_price": "-3"}, "No preview: prompt price must be from 0 to 1000000 credits."),
        ({"markup": "0"}, "No preview: markup must be above 0 and at most 100."),
    ],
)
def test_the_price_preview_never_shows_a_price_saving_would_refuse(draft, preview):
    base = {"pricing": "per_request", "credit_cost": "2", "prompt_price": "0", "completion_price": "0", "markup": "1"}
    assert typical_call({**base, **draft}) == preview


async def test_a_new_model_starts_disabled(admin, engine):
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin), path="/admin/models")
    await state.load()
    await state.start_add()
    assert (state.form.enabled, state.form.credit_cost, state.preview) == (
        False,
        "0",
        "Every call costs 0 credits (× n when a call asks for n images or choices).",
    )
