"""The Credits page: the billing routes' answers as messages, the packs on sale only while
Stripe is configured, the person's payments, and their low-balance alert threshold, whose
banner every signed-in page shows while the balance is below it."""

from __future__ import annotations

import pytest

from dashboard.pages.api_keys import KeysState
from dashboard.pages.credits import CANCELLED, PAID, THRESHOLD_SAVED, CreditsState
from dashboard.pages.logs import LogsState
from dashboard.pages.overview import OverviewState
from dashboard.state import SessionState
from store import credits, payments
from store.db import session_for
from store.money import MICRO
from store.packs import parse_packs
from store.settings import get_settings

from .conftest import cookie_for, state_for, toast_says
from .test_states import snapshot

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


async def credits_page(engine, user, query: str = "") -> CreditsState:
    state = state_for(CreditsState, cookie=cookie_for(engine, user), path=f"/credits{query}")
    await state.load()
    return state


def banner(state) -> tuple[bool, str, str]:
    base = state._get_root_state().get_substate(SessionState.get_full_name().split("."))
    return base.balance_low, base.balance_text, base.threshold_text


@both_databases
@pytest.mark.parametrize(
    "query, message, ok",
    [
        ("", "", True),
        ("?checkout=success&session_id=cs_test_1", PAID, True),
        ("?checkout=cancelled", CANCELLED, True),
        ("?redeemed=2.5", "Code redeemed: 2.5 credits added to your balance.", True),
        ("?redeemed=1", "Code redeemed: 1 credit added to your balance.", True),
        ("?redeemed=%3Cscript%3E", "", True),
        ("?error=code", "This code is not valid (used, expired or mistyped).", False),
        ("?error=unavailable", "Buying credits is not set up on this platform.", False),
        ("?error=stripe", "The payment page could not be opened. Try again in a moment.", False),
        ("?error=%3Cb%3Ehi", "", False),
    ],
)
async def test_what_a_billing_route_sent_back_is_said(query, message, ok, user, engine):
    state = await credits_page(engine, user, query)
    assert (state.message, state.message_ok) == (message, ok)


@both_databases
async def test_packs_are_on_sale_only_while_stripe_is_configured(user, engine, monkeypatch):
    state = await credits_page(engine, user)
    assert (state.packs, state.currency) == ([], "")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.setenv("CREDIT_PACKS", "10:5.00,2.5:1.25")
    get_settings.cache_clear()
    state = await credits_page(engine, user)
    assert state.packs == []  # no webhook secret: nothing could credit a payment
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("STRIPE_CURRENCY", "eur")
    get_settings.cache_clear()
    state = await credits_page(engine, user)
    assert state.packs == [
        {"id": "10", "label": "10 credits", "price": "5.00"},
        {"id": "2.5", "label": "2.5 credits", "price": "1.25"},
    ]
    assert state.currency == "EUR"


@both_databases
async def test_the_persons_own_payments_are_listed_newest_first(user, engine, admin):
    pack, other_pack = parse_packs("10:5.00,50:20.00")
    with session_for(engine) as s:
        payments.open_checkout(s, user_id=user.id, pack=pack, session_id="cs_1", currency="usd")
        payments.complete_checkout(
            s,
            event_id="evt_1",
            event_type="checkout.session.completed",
            session_id="cs_1",
            payment_status="paid",
            payment_intent="pi_1",
            amount_total=500,
            currency="usd",
        )
        payments.open_checkout(s, user_id=user.id, pack=other_pack, session_id="cs_2", currency="usd")
        payments.open_checkout(s, user_id=admin.id, pack=pack, session_id="cs_3", currency="usd")
    state = await credits_page(engine, user)
    assert [(p.credits, p.price, p.status) for p in state.payments] == [
        ("50", "20.00 USD", "pending"),
        ("10", "5.00 USD", "paid"),
    ]
    assert state.balance == "110"


@both_databases
async def test_a_threshold_above_the_balance_shows_the_banner_on_every_page(user, engine):
    state = await credits_page(engine, user)
    assert banner(state) == (False, "100", "")
    result = await state.set_threshold({"threshold": "150.5"})
    assert toast_says(result, THRESHOLD_SAVED) and state.threshold == "150.5" and state.threshold_error == ""
    assert banner(state) == (True, "100", "150.5")  # at once, on this page
    for page, path in ((OverviewState, "/"), (KeysState, "/settings/api-keys"), (LogsState, "/logs")):
        other = state_for(page, cookie=cookie_for(engine, user), path=path)
        await other.load()
        assert banner(other) == (True, "100", "150.5"), page
    with session_for(engine) as s:
        credits.grant(s, user_id=user.id, amount=51 * MICRO, note="top-up")
    assert banner(await credits_page(engine, user)) == (False, "151", "150.5")
    state = await credits_page(engine, user)
    assert state.threshold == "150.5"
    await state.set_threshold({"threshold": ""})
    assert (state.threshold, banner(state)) == ("", (False, "151", ""))
    assert snapshot(engine)["users"][0][5] is None


@both_databases
@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "The low-balance threshold must be more than 0 and at most 1,000,000,000."),
        ("-5", "The low-balance threshold must be more than 0 and at most 1,000,000,000."),
        ("1000000000.5", "The low-balance threshold must be more than 0 and at most 1,000,000,000."),
        ("five", "The threshold must be a number such as 2.5."),
        ("1.0000001", "The threshold has more than 6 decimal places."),
    ],
)
async def test_a_bad_threshold_says_why_and_changes_nothing(text, message, user, engine):
    state = await credits_page(engine, user)
    before = snapshot(engine)
    assert await state.set_threshold({"threshold": text}) is None
    assert state.threshold_error == message and banner(state) == (False, "100", "")
    assert snapshot(engine) == before
