"""Page states and their event handlers, called directly as a browser's events would call them.

Each handler resolves the person from the session cookie of the event's connection, on
the server, every time; these tests hand it a cookie (or none, or a plain user's) and
check what changes in the store.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from dashboard.pages.admin_invites import InvitesAdminState
from dashboard.pages.admin_margin import MarginAdminState
from dashboard.pages.admin_models import ModelsAdminState
from dashboard.pages.admin_usage import UsageAdminState
from dashboard.pages.admin_user import UserAdminState
from dashboard.pages.admin_users import UsersAdminState
from dashboard.pages.api_keys import KeysState
from dashboard.pages.auth import AuthPageState
from dashboard.pages.credits import CreditsState
from dashboard.pages.images import ImagesState
from dashboard.pages.logs import LogsState
from dashboard.pages.overview import OverviewState
from dashboard.state import NOT_ADMIN
from dashboard.views import UserRow
from store import credits, invites, keys, logs, registry, sessions, tasks, usage, users
from store.db import session_for
from store.models import ApiKey, Invite, LedgerEntry, ModelAudit, RedemptionCode, User, utcnow
from store.money import parse_credits

from ..conftest import TEST_SECRET
from ..factories import flat_seed_prices, make_key, make_user
from .conftest import cookie_for, redirect_target, set_connection, state_for, toast_says
from .test_store_usage import log

PAGES = [
    (OverviewState, "/"),
    (KeysState, "/settings/api-keys"),
    (CreditsState, "/credits"),
    (LogsState, "/logs"),
    (ImagesState, "/images"),
    (ModelsAdminState, "/admin/models"),
    (UsersAdminState, "/admin/users"),
    (MarginAdminState, "/admin/margin"),
    (UsageAdminState, "/admin/usage"),
    (UserAdminState, "/admin/users/1"),
    (InvitesAdminState, "/admin/users"),
]


def snapshot(engine) -> dict:
    """Everything an admin handler could change."""
    with session_for(engine) as s:
        return {
            "users": [
                (u.id, u.balance, u.is_admin, u.api_enabled, u.max_key_rpm, u.low_balance_threshold)
                for u in s.exec(select(User).order_by(User.id))
            ],
            "ledger": len(s.exec(select(LedgerEntry)).all()),
            "models": [m.model_dump() for m in registry.list_models(s)],
            "audit": len(s.exec(select(ModelAudit)).all()),
            "keys": [k.model_dump(exclude={"last_used_at"}) for k in s.exec(select(ApiKey).order_by(ApiKey.id))],
            "invites": [i.model_dump() for i in s.exec(select(Invite).order_by(Invite.id))],
            "codes": [c.model_dump() for c in s.exec(select(RedemptionCode).order_by(RedemptionCode.id))],
        }


def balance(engine, user) -> int:
    with session_for(engine) as s:
        return credits.balance(s, user_id=user.id)


# ---------------------------------------------------------------- who may do what


@pytest.mark.parametrize("state_cls, path", PAGES[1:])
async def test_signed_out_pages_send_you_to_sign_in_and_back(state_cls, path, dash_settings):
    state = state_for(state_cls, cookie="", path=path)
    assert redirect_target(await state.load()) == f"/login?next={path.replace('/', '%2F')}"
    assert state.signed_in is False


async def test_signed_out_home_is_the_landing_page(dash_settings):
    state = state_for(OverviewState, cookie="", path="/")
    assert await state.load() is None and not state.signed_in and state.balance == "0"


@pytest.mark.parametrize("cookie", ["", "platform_session=forged-token", "other=1"])
async def test_a_forged_or_missing_cookie_signs_nobody_in(cookie, user, engine):
    state = state_for(KeysState, cookie=cookie, path="/settings/api-keys")
    assert redirect_target(await state.create_key({"name": "x", "rate_limit": "1"})) is not None
    assert snapshot(engine)["keys"] == []


async def test_an_expired_session_signs_nobody_in(user, engine):
    with session_for(engine) as s:
        token = sessions.create_session(s, secret_key=TEST_SECRET, user_id=user.id, ttl=timedelta(seconds=-1))
    state = state_for(KeysState, cookie=f"platform_session={token}", path="/settings/api-keys")
    assert redirect_target(await state.load()) is not None


USER = object()  # stands for the signed-in plain user's own id
INVITE = object()  # stands for the id of an open invite


def make_invite(engine, credits_: int = 0) -> tuple[int, str]:
    """An open invite: its id and its token."""
    with session_for(engine) as s:
        issued = invites.create_invite(s, secret_key=TEST_SECRET, credits_=credits_)
        return issued.invite.id, issued.token


ADMIN_CALLS = [
    (ModelsAdminState, "start_add", ()),
    (ModelsAdminState, "start_edit", ("openai/gpt-5",)),
    (
        ModelsAdminState,
        "save_model",
        (
            {
                "mode": "edit",
                "id": "openai/gpt-5",
                "display_name": "GPT-5",
                "category": "chat",
                "capabilities": "chat",
                "credit_cost": "0",
                "enabled": "on",
                "provider": "openrouter",
                "upstream_id": "x",
            },
        ),
    ),
    (
        ModelsAdminState,
        "save_model",
        (
            {
                "mode": "add",
                "id": "evil/free",
                "display_name": "Free",
                "category": "chat",
                "capabilities": "chat",
                "credit_cost": "0",
                "enabled": "on",
                "provider": "openrouter",
                "upstream_id": "x",
            },
        ),
    ),
    (UsersAdminState, "start_grant", (USER,)),
    (UsersAdminState, "grant_credits", ({"user_id": USER, "amount": "1000", "note": "free money"},)),
    (UsersAdminState, "start_key_limit", (USER,)),
    (UsersAdminState, "set_key_limit", ({"user_id": USER, "max_key_rpm": "0"},)),
    (UsersAdminState, "set_api_enabled", (USER, False)),
    (UsersAdminState, "set_admin", (USER, True)),
    (UsersAdminState, "search_users", ({"search": "example"},)),
    (UsersAdminState, "set_sort", ("email_asc",)),
    (UsersAdminState, "next_page", ()),
    (UsersAdminState, "previous_page", ()),
    (UserAdminState, "start_grant", (USER,)),
    (UserAdminState, "grant_credits", ({"user_id": USER, "amount": "1000", "note": "free money"},)),
    (UserAdminState, "start_key_limit", (USER,)),
    (UserAdminState, "set_key_limit", ({"user_id": USER, "max_key_rpm": "0"},)),
    (UserAdminState, "set_api_enabled", (USER, False)),
    (UserAdminState, "set_admin", (USER, True)),
    (MarginAdminState, "set_days", ("7",)),
    (UsageAdminState, "set_days", ("7",)),
    (InvitesAdminState, "create_invite", ({"credits": "500", "days": "7"},)),
    (InvitesAdminState, "withdraw_invite", (INVITE,)),
    (InvitesAdminState, "create_codes", ({"count": "3", "credits": "1000"},)),
]


def own(arg, user_id: int, invite_id: int = 0):
    if arg is USER:
        return user_id
    if arg is INVITE:
        return invite_id
    if isinstance(arg, dict):
        return {k: str(user_id) if v is USER else v for k, v in arg.items()}
    return arg


@pytest.mark.parametrize("state_cls, handler, args", ADMIN_CALLS)
async def test_a_plain_user_calling_an_admin_handler_is_refused_and_nothing_changes(
    state_cls, handler, args, user, engine
):
    invite_id, _token = make_invite(engine)
    before = snapshot(engine)
    state = state_for(state_cls, cookie=cookie_for(engine, user), path="/admin/x")
    result = await getattr(state, handler)(*[own(a, user.id, invite_id) for a in args])
    assert toast_says(result, NOT_ADMIN)
    assert snapshot(engine) == before
    assert getattr(state, "form_open", False) is False and getattr(state, "grant_open", False) is False
    assert getattr(state, "limit_open", False) is False
    assert getattr(state, "invite_summary", "") == "" and getattr(state, "codes_summary", "") == ""


@pytest.mark.parametrize("state_cls, handler, args", ADMIN_CALLS)
async def test_a_signed_out_caller_of_an_admin_handler_is_sent_to_sign_in(state_cls, handler, args, user, engine):
    invite_id, _token = make_invite(engine)
    before = snapshot(engine)
    result = await getattr(state_for(state_cls, cookie=""), handler)(*[own(a, user.id, invite_id) for a in args])
    assert redirect_target(result).startswith("/login") and snapshot(engine) == before


@pytest.mark.parametrize("state_cls, path", PAGES[5:])
async def test_a_plain_user_on_an_admin_page_gets_no_admin_data(state_cls, path, user, engine):
    make_user(engine, email="someone@example.com")
    state = state_for(state_cls, cookie=cookie_for(engine, user), path=path)
    assert await state.load() is None
    assert state.is_admin is False
    assert getattr(state, "models", []) == [] and getattr(state, "users", []) == []
    assert getattr(state, "rows", []) == [] and getattr(state, "totals", {}) == {}
    assert getattr(state, "by_user", []) == [] and getattr(state, "per_day", []) == []
    assert getattr(state, "ledger", []) == [] and getattr(state, "keys", []) == []
    assert getattr(state, "found", False) is False and getattr(state, "user", None) in (None, UserRow())
    assert getattr(state, "invites", []) == [] and getattr(state, "codes", []) == []
    assert getattr(state, "alerts", []) == []


async def test_a_role_change_applies_to_the_very_next_event(admin, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    assert state.is_admin and len(state.users) == 1
    with session_for(engine) as s:
        users.set_user_flags(s, user_id=admin.id, is_admin=False)
    assert toast_says(await state.set_api_enabled(admin.id, False), NOT_ADMIN)
    assert state.is_admin is False and snapshot(engine)["users"][0][3] is True


async def test_what_a_tab_holds_is_dropped_when_someone_else_signs_in(user, engine):
    other = make_user(engine)
    make_key(engine, user, name="first person's key")
    state = state_for(KeysState, cookie=cookie_for(engine, user), path="/settings/api-keys")
    await state.load()
    assert [k.name for k in state.keys] == ["first person's key"]
    set_connection(state, cookie=cookie_for(engine, other), path="/settings/api-keys")
    await state.create_key({"name": "", "rate_limit": "1"})  # any handler resolves the session first
    assert state.keys == [] and state.email == other.email


# ---------------------------------------------------------------- sign-in pages


@pytest.mark.parametrize(
    "code, message",
    [
        ("credentials", "Wrong email or password."),
        ("taken", "An account with this email already exists. Sign in instead."),
        ("<script>", ""),
    ],
)
async def test_sign_in_page_shows_the_message_for_its_error_code(code, message, dash_settings):
    state = state_for(AuthPageState, path=f"/login?error={code}&next=%2Flogs")
    assert await state.load() is None
    assert state.error == message and state.next == "/logs"


async def test_sign_in_page_keeps_only_a_local_next(dash_settings):
    state = state_for(AuthPageState, path="/login?next=https%3A%2F%2Fevil.example")
    await state.load()
    assert state.next == ""


async def test_signed_in_visitors_of_sign_in_go_home(user, engine):
    state = state_for(AuthPageState, cookie=cookie_for(engine, user), path="/login")
    assert redirect_target(await state.load()) == "/"


# ---------------------------------------------------------------- API keys


# Creating a key and showing it once: tests/dashboard/test_tab_state.py (the key never enters state).


async def test_disable_enable_and_revoke(user, engine):
    make_key(engine, user, name="k")
    state = state_for(KeysState, cookie=cookie_for(engine, user))
    await state.load()
    key_id = state.keys[0].id
    await state.set_enabled(key_id, False)
    assert state.keys[0].status == "disabled"
    await state.set_enabled(key_id, True)
    assert state.keys[0].status == "active"
    state.ask_revoke(key_id, "k")
    assert state.revoke_id == key_id
    await state.revoke_key(key_id)
    assert state.keys[0].status == "revoked" and state.revoke_id == 0
    await state.set_enabled(key_id, True)
    assert state.error == "A revoked key cannot be changed." and state.keys[0].status == "revoked"


async def test_nobody_can_touch_someone_elses_key(user, engine):
    other = make_user(engine)
    make_key(engine, other, name="theirs")
    before = snapshot(engine)
    state = state_for(KeysState, cookie=cookie_for(engine, user))
    await state.load()
    other_key = before["keys"][0]["id"]
    await state.set_enabled(other_key, False)
    assert state.error == "No such key."
    await state.revoke_key(other_key)
    assert snapshot(engine) == before and state.keys == []


# ---------------------------------------------------------------- credits, overview, logs, images


async def test_credits_page_balance_and_ledger_newest_first_paged(user, engine):
    with session_for(engine) as s:
        for i in range(30):
            credits.grant(s, user_id=user.id, amount=parse_credits("0.5"), note=f"gift {i}")
    state = state_for(CreditsState, cookie=cookie_for(engine, user))
    await state.load()
    assert state.balance == "115" and len(state.entries) == 25 and state.has_next
    assert state.entries[0].detail == "gift 29" and state.entries[0].amount == "+0.5"
    await state.next_page()
    assert (
        state.page == 2
        and [e.detail for e in state.entries] == [f"gift {i}" for i in range(4, -1, -1)] + ["starting credits"]
        and not state.has_next
    )
    await state.previous_page()
    assert state.page == 1 and state.entries[0].detail == "gift 29"


async def test_credits_page_shows_each_request_as_one_line_with_its_hold_and_charge(user, engine):
    with session_for(engine) as s:
        credits.debit_for_request(s, user_id=user.id, cost=parse_credits("0.21"), ref="req-1", model="openai/gpt-5")
        credits.settle(s, ref="req-1", cost=parse_credits("0.010044"))
        credits.debit_for_request(s, user_id=user.id, cost=parse_credits("3"), ref="req-2", model="openai/gpt-5")
        credits.debit_for_request(
            s, user_id=user.id, cost=parse_credits("10"), ref="task-3", model="google/nano-banana-pro"
        )
        credits.refund(s, ref="task-3", note="provider error")
        credits.grant(s, user_id=user.id, amount=parse_credits("-1.25"), note="correction")
    state = state_for(CreditsState, cookie=cookie_for(engine, user))
    await state.load()
    assert state.balance == "95.739956"
    assert [(e.kind, e.detail, e.amount, e.positive) for e in state.entries] == [
        ("grant", "correction", "-1.25", False),
        ("refunded", "Image google/nano-banana-pro · held 10, refunded (provider error)", "0", False),
        ("request", "Chat openai/gpt-5 · charged 3", "-3", False),
        ("request", "Chat openai/gpt-5 · held 0.21, charged 0.010044", "-0.010044", False),
        ("grant", "starting credits", "+100", True),
    ]


async def test_overview(user, engine):
    key = make_key(engine, user)
    with session_for(engine) as s:
        key_id = keys.verify_key(s, secret_key=TEST_SECRET, raw=key).key_id
        logs.write_request_logs(s, [log(user.id, i, key=key_id, at=utcnow(), cost="0.046") for i in range(12)])
        credits.grant(s, user_id=user.id, amount=parse_credits("5.5"), note="bonus")
    state = state_for(OverviewState, cookie=cookie_for(engine, user))
    await state.load()
    assert state.signed_in and state.balance == "105.5"
    assert len(state.chart) == 14 and state.chart[-1]["requests"] == 12 and state.chart[-1]["credits"] == 0.552
    assert (state.requests_total, state.credits_total) == (12, "0.552")
    assert state.recent[0].credits == "0.046"
    assert len(state.recent) == 10 and state.recent[0].request_id == f"req-{user.id}-11"
    assert state.recent[0].key == "test key · sk_live_abcd…" and state.recent[0].model == "openai/gpt-5"


async def test_logs_filters_paging_and_details(user, engine):
    other = make_user(engine)
    with session_for(engine) as s:
        logs.write_request_logs(
            s, [log(user.id, i, status=200 if i % 3 else 429) for i in range(120)] + [log(other.id, 1)]
        )
    state = state_for(LogsState, cookie=cookie_for(engine, user), path="/logs")
    await state.load()
    assert len(state.rows) == 50 and state.has_next and state.export_href == "/export/logs.csv"
    assert "openai/gpt-5" in state.model_options
    await state.next_page()
    await state.next_page()
    assert state.page == 3 and len(state.rows) == 20 and not state.has_next
    await state.apply_filters({"key": "all", "model": "all", "status": "429", "since": "", "until": ""})
    assert state.page == 1 and len(state.rows) == 40 and {r.status for r in state.rows} == {429}
    assert state.export_href == "/export/logs.csv?status=429"
    await state.show_detail(state.rows[0].id)
    assert state.detail_open and state.detail.request_id == state.rows[0].request_id


async def test_logs_show_each_requests_tokens_and_exact_charge(user, engine):
    with session_for(engine) as s:
        logs.write_request_logs(
            s,
            [
                log(user.id, 1, cost="0.010044", prompt_tokens=1000, completion_tokens=500, total_tokens=1500),
                log(user.id, 2, cost="3", at=utcnow()),
            ],
        )
    state = state_for(LogsState, cookie=cookie_for(engine, user))
    await state.load()
    assert [(r.credits, r.prompt_tokens, r.completion_tokens) for r in state.rows] == [
        ("3", "", ""),
        ("0.010044", "1,000", "500"),
    ]
    await state.show_detail(state.rows[1].id)
    assert (state.detail.credits, state.detail.total_tokens) == ("0.010044", "1,500")


async def test_bad_log_filters_change_nothing(user, engine):
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(user.id, i) for i in range(3)])
    state = state_for(LogsState, cookie=cookie_for(engine, user))
    await state.load()
    await state.apply_filters({"status": "5xx"})
    applied, rows = dict(state.applied), list(state.rows)
    await state.apply_filters({"since": "2025-02-01", "until": "2025-01-01"})
    assert state.error == "The 'from' date is after the 'to' date. The list still shows the last filter that worked."
    assert state.showing == "Showing requests with status 5xx."
    assert state.applied == applied and state.rows == rows


async def test_someone_elses_log_row_does_not_open(user, engine):
    other = make_user(engine)
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(other.id, 1)])
        theirs = usage.logs_page(s, user_id=other.id)[0].id
    state = state_for(LogsState, cookie=cookie_for(engine, user))
    await state.show_detail(theirs)
    assert state.detail_open is False and state.detail.request_id == ""


async def test_images_lists_your_tasks_with_signed_thumbnail_urls(user, engine):
    with session_for(engine) as s:
        task, _ = tasks.create_task(
            s,
            user_id=user.id,
            model="google/nano-banana-pro",
            provider="replicate",
            upstream_id="google/nano-banana-pro",
            prompt="a red bicycle",
            size="1024x1024",
            n=1,
            unit_cost=parse_credits("0.25"),
            timeout_s=600,
        )
        tasks.complete_task(s, task_id=task.id, token=None, outputs=[f"{task.id}/0.png"])
    state = state_for(ImagesState, cookie=cookie_for(engine, user))
    await state.load()
    [row] = state.tasks
    assert (row.prompt, row.status, row.credits) == ("a red bicycle", "succeeded", "0.25")
    assert row.images[0].startswith(f"/api/v1/files/{task.id}/0.png?expires=") and "sig=" in row.images[0]
    other = make_user(engine)
    other_state = state_for(ImagesState, cookie=cookie_for(engine, other))
    await other_state.load()
    assert other_state.tasks == []


# ---------------------------------------------------------------- admin: models


MODEL_FORM = {
    "mode": "edit",
    "id": "openai/gpt-5-mini",
    "display_name": "GPT-5 mini",
    "category": "chat",
    "capabilities": "chat, reasoning",
    "credit_cost": "4",
    "enabled": "on",
    "provider": "openrouter",
    "upstream_id": "openai/gpt-5-mini",
}


async def test_admin_edits_a_model_and_the_change_is_audited(admin, engine):
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin), path="/admin/models")
    await state.load()
    assert {m.id for m in state.models} >= {"openai/gpt-5", "openai/gpt-5-mini"}
    assert {c.actor for c in state.changes} == {"seed"}  # the default registry's entries, added by migrate
    await state.start_edit("openai/gpt-5-mini")
    assert state.form_open and not state.adding and state.form.id == "openai/gpt-5-mini"
    result = await state.save_model({**MODEL_FORM, "credit_cost": "9", "enabled": ""})
    assert toast_says(result, "Saved") and state.form_open is False and state.error == ""
    with session_for(engine) as s:
        entry = registry.get_model(s, model_id="openai/gpt-5-mini")
    assert (entry.credit_cost, entry.enabled, entry.capabilities) == (9_000_000, False, ["chat", "reasoning"])
    change = state.changes[0]  # newest first
    assert change.actor == admin.email and change.model_id == "openai/gpt-5-mini"
    assert "credit cost: 1 → 9" in change.change and "enabled: True → False" in change.change


async def test_admin_prices_a_model_by_tokens_with_decimals_and_sees_a_typical_call(admin, engine):
    flat_seed_prices(engine)  # from the seed document's flat price to tokens
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin), path="/admin/models")
    await state.load()
    await state.start_edit("openai/gpt-5-mini")
    assert state.draft == {
        "pricing": "per_request",
        "credit_cost": "1",
        "prompt_price": "0",
        "completion_price": "0",
        "markup": "1",
        "cache_read_price": "",  # flat_seed_prices unset them: the prompt price applies
        "cache_write_price": "",
        "max_prompt_tokens": "",
    }
    assert state.preview == "Every call costs 1 credit (× n when a call asks for n images or choices)."
    for name, value in (
        ("pricing", "per_token"),
        ("credit_cost", "0.001"),
        ("prompt_price", "1.25"),
        ("completion_price", "10"),
    ):
        state.set_draft(name, value)
    # 0.001 + 1,000 × 1.25 / 1M + 500 × 10 / 1M
    assert state.preview == "A typical call (1,000 prompt + 500 completion tokens) costs 0.00725 credits."
    state.set_draft("completion_price", "ten")
    assert state.preview == "No preview: completion price must be a number such as 2.5."
    form = {
        **MODEL_FORM,
        "pricing": "per_token",
        "credit_cost": "0.001",
        "prompt_price": "1.25",
        "completion_price": "10",
        "markup": "1",
        "max_output_tokens": "8,000",
    }
    assert toast_says(await state.save_model(form), "Saved")
    with session_for(engine) as s:
        entry = registry.get_model(s, model_id="openai/gpt-5-mini")
    assert (
        entry.pricing,
        entry.credit_cost,
        entry.prompt_price,
        entry.completion_price,
        entry.markup,
        entry.max_output_tokens,
    ) == ("per_token", 1_000, 1_250_000, 10_000_000, 1_000_000, 8_000)
    [row] = [m for m in state.models if m.id == "openai/gpt-5-mini"]
    assert (row.pricing, row.credit_cost, row.price, row.typical) == (
        "per_token",
        "0.001",
        "0.001 + 1.25 in / 10 out per 1M",
        "0.00725",
    )
    assert set(state.changes[0].change.split("; ")) == {
        "pricing: per_request → per_token",
        "credit cost: 1 → 0.001",
        "prompt price: 0 → 1.25",
        "completion price: 0 → 10",
        "max output tokens: 16384 → 8000",
        "capabilities: chat → chat, reasoning",
    }

    await state.start_edit("openai/gpt-5-mini")  # the form opens with the saved prices
    state.set_draft("pricing", "upstream_cost")
    state.set_draft("markup", "1.2")
    # 0.001 + (1,000 × 1.25 + 500 × 10) / 1M × 1.2 at the reference prices
    assert state.preview.startswith(
        "A typical call (1,000 prompt + 500 completion tokens) costs about 0.0085 "
        "credits at the reference prices × markup"
    )
    await state.save_model({**form, "pricing": "upstream_cost", "markup": "1.2"})
    assert set(state.changes[0].change.split("; ")) == {"pricing: per_token → upstream_cost", "markup: 1 → 1.2"}
    [row] = [m for m in state.models if m.id == "openai/gpt-5-mini"]
    assert row.price == "0.001 + upstream cost × 1.2 (ref. 1.25 in / 10 out per 1M)"


async def test_a_preview_changes_nothing_stored(admin, engine):
    flat_seed_prices(engine)
    before = snapshot(engine)
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin))
    await state.load()
    await state.start_edit("openai/gpt-5")
    state.set_draft("credit_cost", "0.5")
    state.set_draft("is_admin", "true")  # not a price: ignored
    assert state.preview.startswith("Every call costs 0.5 credits") and "is_admin" not in state.draft
    assert snapshot(engine) == before


async def test_admin_adds_a_model(admin, engine):
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin))
    await state.start_add()
    assert state.adding and state.form_open
    assert state.form.enabled is False  # not public before the admin has priced it
    await state.save_model({**MODEL_FORM, "mode": "add", "id": "acme/new-chat", "display_name": "Acme"})
    with session_for(engine) as s:
        assert registry.get_model(s, model_id="acme/new-chat").display_name == "Acme"
    assert state.changes[0].change == "added"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"credit_cost": "-1"}, "Credit cost must be"),
        ({"credit_cost": "abc"}, "Credit cost must be"),
        ({"credit_cost": "1000001"}, "Credit cost must be from 0 to 1000000 credits"),
        ({"credit_cost": "0.0000001"}, "Credit cost has more than 6 decimal places"),
        ({"credit_cost": ""}, "Credit cost must be a number such as 2.5"),
        ({"credit_cost": "NaN"}, "Credit cost must be a finite number"),
        ({"pricing": "per_word"}, "Pricing must be one of per_request, per_token, upstream_cost"),
        ({"pricing": "per_token", "prompt_price": "1,5"}, "Prompt price must be a number such as 2.5"),
        ({"pricing": "per_token", "completion_price": "-2"}, "Completion price must be from 0 to"),
        ({"pricing": "upstream_cost", "markup": "0"}, "Markup must be above 0"),
        ({"pricing": "upstream_cost", "markup": "1.0000005"}, "Markup has more than 6 decimal places"),
        ({"max_output_tokens": "0"}, "Max output tokens must be a whole number from 1 to 2,000,000"),
        ({"max_output_tokens": "lots"}, "Max output tokens must be a whole number"),
        ({"category": "image", "pricing": "per_token"}, "Only chat and embedding models can be priced by tokens"),
        ({"display_name": ""}, "Display name must be 1 to 200 characters."),
        ({"category": "video"}, "Category must be one of"),
        ({"provider": "nowhere"}, "Provider must be one of"),
        ({"upstream_id": ""}, "Upstream id must be 1 to 200 characters."),
        ({"id": "no such/model"}, "Model id must be"),
        ({"id": "acme/missing"}, "No model"),
        ({"mode": "add"}, "A model with id"),
    ],
)
async def test_bad_model_form_says_why_and_changes_nothing(change, message, admin, engine):
    before = snapshot(engine)
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin))
    await state.start_edit("openai/gpt-5-mini")
    await state.save_model({**MODEL_FORM, **change})
    assert state.error.startswith(message), state.error
    assert snapshot(engine) == before


# ---------------------------------------------------------------- admin: users


async def test_admin_grants_and_removes_credits_with_a_note(admin, user, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin))
    await state.load()
    await state.start_grant(user.id)
    assert state.grant_open and state.grant_user.email == user.email and state.grant_user.balance == "100"
    assert toast_says(
        await state.grant_credits({"user_id": str(user.id), "amount": "2.5", "note": "welcome"}), "Credits updated"
    )
    await state.grant_credits({"user_id": str(user.id), "amount": "-30.000001", "note": "refund reversal"})
    assert balance(engine, user) == 72_499_999
    with session_for(engine) as s:
        rows = credits.ledger_page(s, user_id=user.id, limit=2)
        assert credits.ledger_sum(s, user_id=user.id) == 72_499_999
    assert [(r.amount, r.note, r.actor_user_id) for r in rows] == [
        (-30_000_001, "refund reversal", admin.id),
        (2_500_000, "welcome", admin.id),
    ]
    assert [u.balance for u in state.users if u.id == user.id] == ["72.499999"]


@pytest.mark.parametrize(
    "form, message",
    [
        ({"amount": "0", "note": "x"}, "Amount must be a number other than 0"),
        ({"amount": "0.000000", "note": "x"}, "Amount must be a number other than 0"),
        ({"amount": "ten", "note": "x"}, "Amount must be a number such as 2.5"),
        ({"amount": "", "note": "x"}, "Amount must be a number of credits"),
        ({"amount": "1.0000001", "note": "x"}, "Amount has more than 6 decimal places"),
        ({"amount": "Infinity", "note": "x"}, "Amount must be a finite number"),
        ({"amount": "1000000000.000001", "note": "x"}, "Amount must be a number other than 0 (at most a billion"),
        ({"amount": "10", "note": ""}, "Add a note saying why"),
        ({"amount": "10", "note": "   "}, "Add a note saying why"),
        ({"amount": "10", "note": "n" * 501}, "The note is 501 characters; at most 500 fit."),
        ({"amount": "10", "note": "n" * 2000}, "The note is 2,000 characters; at most 500 fit."),
        ({"amount": "-100.000001", "note": "too much"}, "The balance would drop below zero"),
        ({"amount": "10", "note": "x", "user_id": "999"}, "No such user"),
        ({"amount": "10", "note": "x", "user_id": "abc"}, "No such user"),
    ],
)
async def test_bad_grant_says_why_and_changes_nothing(form, message, admin, user, engine):
    before = snapshot(engine)
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin))
    await state.grant_credits({"user_id": str(user.id), **form})
    assert state.error.startswith(message), state.error
    assert snapshot(engine) == before


async def test_admin_disables_api_access_and_makes_admins(admin, user, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin))
    await state.load()
    await state.set_api_enabled(user.id, False)
    await state.set_admin(user.id, True)
    with session_for(engine) as s:
        changed = s.get(User, user.id)
    assert (changed.api_enabled, changed.is_admin) == (False, True)
    await state.set_admin(user.id, False)
    await state.set_api_enabled(user.id, True)
    assert [(u.is_admin, u.api_enabled) for u in state.users if u.id == user.id] == [(False, True)]


async def test_an_admin_cannot_remove_their_own_admin_role(admin, engine):
    state = state_for(UsersAdminState, cookie=cookie_for(engine, admin))
    assert toast_says(await state.set_admin(admin.id, False), "your own admin role")
    assert snapshot(engine)["users"][0][2] is True
