"""Admin → Users: invites and redemption codes, made from the page and shown once (in the
event's answer, never in the tab's state), listed with what became of them; and Admin →
Usage: the recent operator alerts. Plain users are refused on the server (test_states)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from dashboard.pages.admin_invites import INVITE_LINK_ID, NEW_CODES_ID, InvitesAdminState
from dashboard.pages.admin_usage import UsageAdminState
from store import accounts, alerts, codes, invites
from store.db import session_for
from store.models import utcnow
from store.money import MICRO
from store.settings import get_settings

from ..conftest import TEST_SECRET
from ..factories import make_user
from .conftest import cookie_for, state_for, toast_says
from .test_states import snapshot
from .test_tab_state import sent_text, stored_bytes

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

TOKEN = re.compile(r"/register\?invite=([A-Za-z0-9_-]{20,})")
CODE = re.compile(r"(?<![0-9A-Z])[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}(?![0-9A-Z])")


async def admin_page(engine, admin) -> InvitesAdminState:
    state = state_for(InvitesAdminState, cookie=cookie_for(engine, admin), path="/admin/users")
    await state.load()
    return state


def revealed(event, element_id: str) -> str:
    """The page script an `rx.call_script` event runs: it must write into `element_id`."""
    assert event.handler.fn.__qualname__ == "_call_script", event
    script = dict((name._js_expr, value) for name, value in event.args)["javascript_code"]._var_value
    assert f'document.getElementById("{element_id}")' in script, script
    return script


@both_databases
async def test_an_invite_is_shown_once_and_signs_up_one_account_with_its_credits(admin, engine):
    state = await admin_page(engine, admin)
    assert state.invites == []
    result = await state.create_invite({"credits": "5", "days": "3"})
    [token] = TOKEN.findall(revealed(result, INVITE_LINK_ID))
    assert "/register?invite=" + token in revealed(result, INVITE_LINK_ID)
    assert token not in sent_text(state) and token.encode() not in stored_bytes(state)
    with session_for(engine) as s:
        invite = invites.check_invite(s, secret_key=TEST_SECRET, token=token)
    assert invite is not None and invite.credits == 5 * MICRO and invite.created_by_user_id == admin.id
    assert abs(
        invite.expires_at.replace(tzinfo=None) - (utcnow() + timedelta(days=3)).replace(tzinfo=None)
    ) < timedelta(minutes=1)
    ends = invite.expires_at.strftime("%Y-%m-%d %H:%M")
    assert state.invite_summary == f"It signs up one account with 5 credits until {ends} UTC."
    assert state.invite_open is False
    [row] = state.invites
    assert (row.status, row.credits, row.used_by, row.expires) == ("open", "5", "", ends)

    with session_for(engine) as s:
        user = accounts.register(
            s, email="invited@example.com", password="a fine password", invite_token=token, secret_key=TEST_SECRET
        )
    assert user.balance == 5 * MICRO
    await state.load()
    assert (state.invites[0].status, state.invites[0].used_by) == ("used", "invited@example.com")
    assert toast_says(await state.withdraw_invite(row.id), "This invite was used already.")

    state.dismiss_invite()
    assert state.invite_summary == ""


@both_databases
async def test_the_link_has_the_public_address_when_one_is_set(admin, engine, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://llm.example.com/")
    get_settings.cache_clear()
    state = await admin_page(engine, admin)
    result = await state.create_invite({"credits": "", "days": "7"})
    assert re.search(r"https://llm\.example\.com/register\?invite=[A-Za-z0-9_-]{20,}", revealed(result, INVITE_LINK_ID))
    assert state.invite_summary.startswith("It signs up one account until ")


@both_databases
async def test_a_withdrawn_invite_stops_working(admin, engine):
    state = await admin_page(engine, admin)
    [token] = TOKEN.findall(revealed(await state.create_invite({"days": "7"}), INVITE_LINK_ID))
    assert toast_says(await state.withdraw_invite(state.invites[0].id), "Invite withdrawn")
    assert state.invites[0].status == "ended"
    with session_for(engine) as s:
        assert invites.check_invite(s, secret_key=TEST_SECRET, token=token) is None
    assert toast_says(await state.withdraw_invite(999), "No such invite.")


@both_databases
@pytest.mark.parametrize(
    "fields, message",
    [
        ({"credits": "-1", "days": "7"}, "Invite credits must be from 0 to 1,000,000,000."),
        ({"credits": "ten", "days": "7"}, "Credits must be a number such as 2.5."),
        ({"credits": "1.0000001", "days": "7"}, "Credits has more than 6 decimal places."),
        ({"credits": "1", "days": "0"}, "The lifetime in days must be a whole number from 1 to 365."),
        ({"credits": "1", "days": "366"}, "The lifetime in days must be a whole number from 1 to 365."),
        ({"credits": "1", "days": "a week"}, "The lifetime in days must be a whole number from 1 to 365."),
        ({"credits": "1", "days": ""}, "The lifetime in days must be a whole number from 1 to 365."),
    ],
)
async def test_a_bad_invite_form_says_why_and_makes_nothing(fields, message, admin, engine):
    state = await admin_page(engine, admin)
    state.set_invite_open(True)
    before = snapshot(engine)
    assert await state.create_invite(fields) is None
    assert (state.invite_error, state.invite_open, state.invite_summary) == (message, True, "")
    assert snapshot(engine) == before


@both_databases
async def test_codes_are_shown_once_listed_and_redeemed_once(admin, engine):
    user = make_user(engine)
    state = await admin_page(engine, admin)
    result = await state.create_codes({"count": "3", "credits": "2.5", "days": "30"})
    made = CODE.findall(revealed(result, NEW_CODES_ID))
    assert len(set(made)) == 3
    for code in made:
        assert code not in sent_text(state) and code.encode() not in stored_bytes(state)
    assert state.codes_summary == "3 codes of 2.5 credits each, valid for 30 days."
    assert [(c.status, c.credits, c.used) for c in state.codes] == [("unused", "2.5", "")] * 3
    with session_for(engine) as s:
        assert codes.redeem(s, secret_key=TEST_SECRET, user_id=user.id, code=made[0]) == 2_500_000
    await state.load()
    used = [c for c in state.codes if c.status == "used"]
    assert len(used) == 1 and used[0].used.endswith(f" by {user.email}")
    one = await state.create_codes({"count": "1", "credits": "1", "days": ""})
    assert len(CODE.findall(revealed(one, NEW_CODES_ID))) == 1
    assert state.codes_summary == "1 code of 1 credit each, valid until used."
    assert state.codes[0].expires == "never"
    state.dismiss_codes()
    assert state.codes_summary == ""


@both_databases
@pytest.mark.parametrize(
    "fields, message",
    [
        ({"count": "0", "credits": "5"}, "The number of codes must be a whole number from 1 to 1,000."),
        ({"count": "1001", "credits": "5"}, "The number of codes must be a whole number from 1 to 1,000."),
        ({"count": "", "credits": "5"}, "The number of codes must be a whole number from 1 to 1,000."),
        ({"count": "2", "credits": "0"}, "Credits must be more than 0 and at most 1,000,000,000."),
        ({"count": "2", "credits": ""}, "Credits must be more than 0 and at most 1,000,000,000."),
        ({"count": "2", "credits": "lots"}, "Credits must be a number such as 2.5."),
        (
            {"count": "2", "credits": "5", "days": "3651"},
            "The lifetime in days must be a whole number from 1 to 3,650.",
        ),
    ],
)
async def test_a_bad_codes_form_says_why_and_makes_nothing(fields, message, admin, engine):
    state = await admin_page(engine, admin)
    state.set_codes_open(True)
    before = snapshot(engine)
    assert await state.create_codes(fields) is None
    assert (state.codes_error, state.codes_open, state.codes_summary) == (message, True, "")
    assert snapshot(engine) == before


@both_databases
async def test_the_usage_page_lists_recent_alerts_newest_first(admin, engine):
    with session_for(engine) as s:
        conn = s.connection()
        alerts.enqueue(
            conn,
            kind=alerts.LOW_BALANCE,
            payload={"user_id": 1, "email": "ann@example.com", "balance": "1.2", "threshold": "5"},
        )
        alerts.enqueue(
            conn,
            kind=alerts.KEY_BUDGET,
            payload={
                "user_id": 1,
                "email": "ann@example.com",
                "key_prefix": "sk_live_abcd",
                "key_name": "agent",
                "percent": 80,
                "spent": "8",
                "budget": "10",
                "period": "month",
            },
        )
        alerts.enqueue(conn, kind=alerts.UPSTREAM_ERRORS, payload={"errors": 25, "window_s": 60.0, "process": "web-1"})
        s.commit()
    state = state_for(UsageAdminState, cookie=cookie_for(engine, admin), path="/admin/usage")
    await state.load()
    assert [(a.kind, a.summary, a.status) for a in state.alerts] == [
        ("upstream errors", "25 provider errors within 60.0 s (web-1)", "pending"),
        (
            "key budget",
            "ann@example.com: key “agent” (sk_live_abcd…) reached 80 % of its budget this month (8 / 10)",
            "pending",
        ),
        ("low balance", "ann@example.com: balance 1.2, below their threshold of 5", "pending"),
    ]
