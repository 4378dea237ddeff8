"""Page states and their event handlers, called directly as a browser's events would call them.

Each handler resolves the person from the session cookie of the event's connection, on
the server, every time; these tests hand it a cookie (or none, or a plain user's) and
check what changes in the store.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from dashboard.pages.admin_models import ModelsAdminState
from dashboard.pages.admin_users import UsersAdminState
from dashboard.pages.api_keys import KeysState
from dashboard.pages.auth import AuthPageState
from dashboard.pages.credits import CreditsState
from dashboard.pages.images import ImagesState
from dashboard.pages.logs import LogsState
from dashboard.pages.overview import OverviewState
from dashboard.state import NOT_ADMIN
from store import credits, keys, logs, registry, sessions, tasks, usage, users
from store.db import session_for
from store.models import ApiKey, LedgerEntry, ModelAudit, User, utcnow

from ..conftest import TEST_SECRET
from ..factories import make_key, make_user
from .conftest import cookie_for, redirect_target, set_connection, state_for, toast_says
from .test_store_usage import log

PAGES = [(OverviewState, "/"), (KeysState, "/settings/api-keys"), (CreditsState, "/credits"),
         (LogsState, "/logs"), (ImagesState, "/images"), (ModelsAdminState, "/admin/models"),
         (UsersAdminState, "/admin/users")]


def snapshot(engine) -> dict:
    """Everything an admin handler could change."""
    with session_for(engine) as s:
        return {
            "users": [(u.id, u.balance, u.is_admin, u.api_enabled) for u in s.exec(select(User).order_by(User.id))],
            "ledger": len(s.exec(select(LedgerEntry)).all()),
            "models": [m.model_dump() for m in registry.list_models(s)],
            "audit": len(s.exec(select(ModelAudit)).all()),
            "keys": [(k.id, k.enabled, k.revoked_at) for k in s.exec(select(ApiKey).order_by(ApiKey.id))],
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
    assert await state.load() is None and not state.signed_in and state.balance == 0


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

ADMIN_CALLS = [
    (ModelsAdminState, "start_add", ()),
    (ModelsAdminState, "start_edit", ("openai/gpt-5",)),
    (ModelsAdminState, "save_model", ({"mode": "edit", "id": "openai/gpt-5", "display_name": "GPT-5",
                                       "category": "chat", "capabilities": "chat", "credit_cost": "0",
                                       "enabled": "on", "provider": "openrouter", "upstream_id": "x"},)),
    (ModelsAdminState, "save_model", ({"mode": "add", "id": "evil/free", "display_name": "Free",
                                       "category": "chat", "capabilities": "chat", "credit_cost": "0",
                                       "enabled": "on", "provider": "openrouter", "upstream_id": "x"},)),
    (UsersAdminState, "start_grant", (USER,)),
    (UsersAdminState, "grant_credits", ({"user_id": USER, "amount": "1000", "note": "free money"},)),
    (UsersAdminState, "set_api_enabled", (USER, False)),
    (UsersAdminState, "set_admin", (USER, True)),
]


def own(arg, user_id: int):
    if arg is USER:
        return user_id
    if isinstance(arg, dict):
        return {k: str(user_id) if v is USER else v for k, v in arg.items()}
    return arg


@pytest.mark.parametrize("state_cls, handler, args", ADMIN_CALLS)
async def test_a_plain_user_calling_an_admin_handler_is_refused_and_nothing_changes(
        state_cls, handler, args, user, engine):
    before = snapshot(engine)
    state = state_for(state_cls, cookie=cookie_for(engine, user), path="/admin/x")
    result = await getattr(state, handler)(*[own(a, user.id) for a in args])
    assert toast_says(result, NOT_ADMIN)
    assert snapshot(engine) == before
    assert getattr(state, "form_open", False) is False and getattr(state, "grant_open", False) is False


@pytest.mark.parametrize("state_cls, handler, args", ADMIN_CALLS)
async def test_a_signed_out_caller_of_an_admin_handler_is_sent_to_sign_in(state_cls, handler, args, user, engine):
    before = snapshot(engine)
    result = await getattr(state_for(state_cls, cookie=""), handler)(*[own(a, user.id) for a in args])
    assert redirect_target(result).startswith("/login") and snapshot(engine) == before


@pytest.mark.parametrize("state_cls, path", PAGES[5:])
async def test_a_plain_user_on_an_admin_page_gets_no_admin_data(state_cls, path, user, engine):
    make_user(engine, email="someone@example.com")
    state = state_for(state_cls, cookie=cookie_for(engine, user), path=path)
    assert await state.load() is None
    assert state.is_admin is False
    assert getattr(state, "models", []) == [] and getattr(state, "users", []) == []


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


@pytest.mark.parametrize("code, message", [("credentials", "Wrong email or password."),
                                           ("taken", "An account with this email already exists. Sign in instead."),
                                           ("<script>", "")])
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
    other_key = before["keys"][0][0]
    await state.set_enabled(other_key, False)
    assert state.error == "No such key."
    await state.revoke_key(other_key)
    assert snapshot(engine) == before and state.keys == []


# ---------------------------------------------------------------- credits, overview, logs, images


async def test_credits_page_balance_and_ledger_newest_first_paged(user, engine):
    with session_for(engine) as s:
        for i in range(30):
            credits.grant(s, user_id=user.id, amount=1, note=f"gift {i}")
    state = state_for(CreditsState, cookie=cookie_for(engine, user))
    await state.load()
    assert state.balance == 130 and len(state.entries) == 25 and state.has_next
    assert state.entries[0].detail == "gift 29" and state.entries[0].amount == "+1"
    await state.next_page()
    assert state.page == 2 and [e.detail for e in state.entries] == [f"gift {i}" for i in range(4, -1, -1)] + [
        "starting credits"] and not state.has_next
    await state.previous_page()
    assert state.page == 1 and state.entries[0].detail == "gift 29"


async def test_overview(user, engine):
    key = make_key(engine, user)
    with session_for(engine) as s:
        key_id = keys.verify_key(s, secret_key=TEST_SECRET, raw=key).key_id
        logs.write_request_logs(s, [log(user.id, i, key=key_id, at=utcnow()) for i in range(12)])
        credits.grant(s, user_id=user.id, amount=5, note="bonus")
    state = state_for(OverviewState, cookie=cookie_for(engine, user))
    await state.load()
    assert state.signed_in and state.balance == 105
    assert len(state.chart) == 14 and state.chart[-1]["requests"] == 12 and state.chart[-1]["credits"] == 36
    assert (state.requests_total, state.credits_total) == (12, 36)
    assert len(state.recent) == 10 and state.recent[0].request_id == f"req-{user.id}-11"
    assert state.recent[0].key == "test key · sk_live_abcd…" and state.recent[0].model == "openai/gpt-5"


async def test_logs_filters_paging_and_details(user, engine):
    other = make_user(engine)
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(user.id, i, status=200 if i % 3 else 429) for i in range(120)]
                                + [log(other.id, 1)])
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


async def test_bad_log_filters_change_nothing(user, engine):
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(user.id, i) for i in range(3)])
    state = state_for(LogsState, cookie=cookie_for(engine, user))
    await state.load()
    await state.apply_filters({"status": "5xx"})
    applied, rows = dict(state.applied), list(state.rows)
    await state.apply_filters({"since": "2025-02-01", "until": "2025-01-01"})
    assert state.error == "the 'from' date is after the 'to' date"
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
        task, _ = tasks.create_task(s, user_id=user.id, model="google/nano-banana-pro", provider="replicate",
                                    upstream_id="google/nano-banana-pro", prompt="a red bicycle", size="1024x1024",
                                    n=1, unit_cost=4, timeout_s=600)
        tasks.complete_task(s, task_id=task.id, token=None, outputs=[f"{task.id}/0.png"])
    state = state_for(ImagesState, cookie=cookie_for(engine, user))
    await state.load()
    [row] = state.tasks
    assert (row.prompt, row.status, row.credits) == ("a red bicycle", "succeeded", 4)
    assert row.images[0].startswith(f"/api/v1/files/{task.id}/0.png?expires=") and "sig=" in row.images[0]
    other = make_user(engine)
    other_state = state_for(ImagesState, cookie=cookie_for(engine, other))
    await other_state.load()
    assert other_state.tasks == []


# ---------------------------------------------------------------- admin: models


MODEL_FORM = {"mode": "edit", "id": "openai/gpt-5-mini", "display_name": "GPT-5 mini", "category": "chat",
              "capabilities": "chat, reasoning", "credit_cost": "4", "enabled": "on", "provider": "openrouter",
              "upstream_id": "openai/gpt-5-mini"}


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
    assert (entry.credit_cost, entry.enabled, entry.capabilities) == (9, False, ["chat", "reasoning"])
    change = state.changes[0]  # newest first
    assert change.actor == admin.email and change.model_id == "openai/gpt-5-mini"
    assert "credit_cost: 1 → 9" in change.change and "enabled: True → False" in change.change


async def test_admin_adds_a_model(admin, engine):
    state = state_for(ModelsAdminState, cookie=cookie_for(engine, admin))
    await state.start_add()
    assert state.adding and state.form_open
    await state.save_model({**MODEL_FORM, "mode": "add", "id": "acme/new-chat", "display_name": "Acme"})
    with session_for(engine) as s:
        assert registry.get_model(s, model_id="acme/new-chat").display_name == "Acme"
    assert state.changes[0].change == "added"


@pytest.mark.parametrize("change, message", [
    ({"credit_cost": "-1"}, "Credit cost must be"),
    ({"credit_cost": "abc"}, "Credit cost must be"),
    ({"credit_cost": "1000001"}, "Credit cost must be"),
    ({"display_name": ""}, "Display_name must be"),
    ({"category": "video"}, "Category must be one of"),
    ({"provider": "nowhere"}, "Provider must be one of"),
    ({"upstream_id": ""}, "Upstream_id must be"),
    ({"id": "no such/model"}, "Model id must be"),
    ({"id": "acme/missing"}, "No model"),
    ({"mode": "add"}, "A model with id"),
])
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
    assert state.grant_open and state.grant_user.email == user.email
    assert toast_says(await state.grant_credits({"user_id": str(user.id), "amount": "50", "note": "welcome"}),
                      "Credits updated")
    await state.grant_credits({"user_id": str(user.id), "amount": "-30", "note": "refund reversal"})
    assert balance(engine, user) == 120
    with session_for(engine) as s:
        rows = credits.ledger_page(s, user_id=user.id, limit=2)
        assert credits.ledger_sum(s, user_id=user.id) == 120
    assert [(r.amount, r.note, r.actor_user_id) for r in rows] == [(-30, "refund reversal", admin.id),
                                                                   (50, "welcome", admin.id)]
    assert [u.balance for u in state.users if u.id == user.id] == [120]


@pytest.mark.parametrize("form, message", [
    ({"amount": "0", "note": "x"}, "Amount must be a whole number other than 0"),
    ({"amount": "ten", "note": "x"}, "Amount must be a whole number"),
    ({"amount": "1.5", "note": "x"}, "Amount must be a whole number"),
    ({"amount": "10", "note": ""}, "Add a note"),
    ({"amount": "10", "note": "n" * 501}, "Add a note"),
    ({"amount": "-101", "note": "too much"}, "The balance would drop below zero"),
    ({"amount": "10", "note": "x", "user_id": "999"}, "No such user"),
    ({"amount": "10", "note": "x", "user_id": "abc"}, "No such user"),
])
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
