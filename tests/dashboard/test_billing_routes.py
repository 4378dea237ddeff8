"""Buying credits through Stripe Checkout, against a fake of Stripe's API on a real socket,
with the platform's routes on a real server: the checkout, then the webhook with valid,
replayed, forged, stale and tampered signatures; refunds and disputes; redemption codes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from fastapi import FastAPI
from limits import RateLimitItemPerMinute
from sqlmodel import select

from dashboard.auth_routes import build_router
from dashboard.billing_routes import billing_message
from store import accounts, codes, credits
from store.db import session_for
from store.models import Alert, LedgerEntry, Payment, PaymentEvent
from store.money import MICRO
from store.settings import get_settings

from ..conftest import TEST_SECRET
from ..factories import make_user
from ..fakes.stripe_api import ServedStripe, signature_header
from ..serving import serve
from .conftest import cookie_for

STRIPE_KEY = "sk_test_fake_0123456789"
WEBHOOK_SECRET = "whsec_test_fake_abcdef"
ORIGIN = "http://platform.test"


@pytest.fixture
def stripe_fake():
    with ServedStripe(STRIPE_KEY) as fake:
        yield fake


@pytest.fixture
def site(dash_settings, monkeypatch, stripe_fake):
    """The routes on a real server, configured for the fake Stripe: (base URL, fake)."""
    for name, value in {
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_fake.base_url,
        "CREDIT_PACKS": "10:5.00,50:20.00",
        "PUBLIC_BASE_URL": ORIGIN,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = FastAPI()
    app.include_router(build_router(accounts.LoginLimiter(per_client=RateLimitItemPerMinute(100))))
    with serve(app) as (base, _):
        yield base, stripe_fake
    get_settings.cache_clear()


def post(base: str, path: str, cookie: str = "", **form) -> httpx.Response:
    return httpx.post(f"{base}{path}", data=form, headers={"cookie": cookie, "origin": base}, timeout=10)


def deliver(base: str, payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, header=None):
    signature = signature_header(payload, secret, timestamp) if header is None else header
    return httpx.post(
        f"{base}/billing/stripe-webhook",
        content=payload,
        headers={"stripe-signature": signature, "content-type": "application/json"},
        timeout=10,
    )


def checkout(base: str, engine, user, pack: str = "10") -> str:
    """Start a checkout as `user`; returns the Checkout Session id."""
    r = post(base, "/billing/checkout", cookie_for(engine, user), pack=pack)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("https://checkout.stripe.test/c/pay/cs_test_")
    return r.headers["location"].rsplit("/", 1)[1]


def balance(engine, user) -> int:
    with session_for(engine) as s:
        value = credits.balance(s, user_id=user.id)
        assert value == credits.ledger_sum(s, user_id=user.id)
        return value


def grants(engine, user) -> list[LedgerEntry]:
    with session_for(engine) as s:
        return list(s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id, LedgerEntry.kind == "grant")))


def where(response) -> tuple[str, dict[str, str]]:
    assert response.status_code == 303, response.text
    url = urlsplit(response.headers["location"])
    return url.path, {k: v[0] for k, v in parse_qs(url.query).items()}


# ---------------------------------------------------------------- checkout


def test_checkout_asks_stripe_for_the_packs_price_and_redirects_there(site, engine):
    base, fake = site
    user = make_user(engine, email="buyer@example.com")
    session_id = checkout(base, engine, user, pack="50")
    [call] = [r for r in fake.requests if r["path"] == "/v1/checkout/sessions"]
    form = call["form"]
    assert call["headers"]["authorization"] == f"Bearer {STRIPE_KEY}"
    assert {k: form[k] for k in form if not k.startswith("line_items")} == {
        "mode": "payment",
        "client_reference_id": str(user.id),
        "customer_email": "buyer@example.com",
        "metadata[user_id]": str(user.id),
        "metadata[pack]": "50",
        "success_url": f"{ORIGIN}/credits?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{ORIGIN}/credits?checkout=cancelled",
    }
    assert {k: v for k, v in form.items() if k.startswith("line_items")} == {
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "2000",
        "line_items[0][price_data][product_data][name]": "50 credits",
    }
    with session_for(engine) as s:
        payment = s.exec(select(Payment)).one()
    assert (payment.session_id, payment.user_id, payment.credits, payment.amount, payment.status) == (
        session_id,
        user.id,
        50 * MICRO,
        2000,
        "open",
    )
    assert balance(engine, user) == 0  # the return from Checkout credits nothing


def test_checkout_refuses_unknown_packs_strangers_and_other_sites(site, engine):
    base, fake = site
    user = make_user(engine)
    assert where(post(base, "/billing/checkout", cookie_for(engine, user), pack="11")) == (
        "/credits",
        {"error": "pack"},
    )
    assert where(post(base, "/billing/checkout", "", pack="10")) == ("/login", {"next": "/credits"})
    foreign = httpx.post(
        f"{base}/billing/checkout",
        data={"pack": "10"},
        headers={"cookie": cookie_for(engine, user), "origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert fake.requests == []
    assert billing_message("pack") == "Choose one of the credit packs on offer."


def test_a_stripe_failure_sends_back_to_the_credits_page_and_records_nothing(site, engine):
    base, fake = site
    user = make_user(engine)
    fake.fail_next(500)
    fake.fail_next(500)
    fake.fail_next(500)  # stripe-python retries what Stripe marks as retryable
    assert where(post(base, "/billing/checkout", cookie_for(engine, user), pack="10")) == (
        "/credits",
        {"error": "stripe"},
    )
    with session_for(engine) as s:
        assert s.exec(select(Payment)).all() == []


def test_without_stripe_settings_buying_is_unavailable(dash_settings, engine, monkeypatch):
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    app = FastAPI()
    app.include_router(build_router(accounts.LoginLimiter()))
    user = make_user(engine)
    with serve(app) as (base, _):
        assert where(post(base, "/billing/checkout", cookie_for(engine, user), pack="10")) == (
            "/credits",
            {"error": "unavailable"},
        )
        assert deliver(base, b"{}").status_code == 404


# ---------------------------------------------------------------- the webhook


def test_a_signed_completion_credits_the_pack_once_with_a_row_naming_the_payment(site, engine):
    base, fake = site
    user = make_user(engine, credits=1)
    session_id = checkout(base, engine, user)
    payload = fake.completed(session_id)
    first = deliver(base, payload)
    assert (first.status_code, first.json()) == (200, {"received": True, "result": "credited"})
    replay = deliver(base, payload)  # Stripe retries; an attacker replays: the same event id
    assert (replay.status_code, replay.json()["result"]) == (200, "duplicate")
    assert balance(engine, user) == 11 * MICRO
    [row] = [g for g in grants(engine, user) if g.ref and g.ref.startswith("payment:")]
    intent = fake.sessions[session_id]["payment_intent"]
    assert row.amount == 10 * MICRO
    assert row.note == f"Stripe payment {intent} (checkout {session_id}): 10 credits for 5.00 USD"
    with session_for(engine) as s:
        payment = s.exec(select(Payment)).one()
        assert (payment.status, payment.payment_intent) == ("paid", intent)
        assert [e.event_id for e in s.exec(select(PaymentEvent))] == [orjson.loads(payload)["id"]]
    # Another event about the same session (a second delivery path) credits nothing more.
    again = deliver(base, fake.completed(session_id))
    assert again.json()["result"] == "duplicate" and balance(engine, user) == 11 * MICRO


@pytest.mark.parametrize(
    "how",
    ["wrong secret", "stale timestamp", "tampered body", "no signature", "not a signature"],
)
def test_a_forged_or_stale_event_is_refused_with_400_and_changes_nothing(site, engine, how):
    base, fake = site
    user = make_user(engine)
    session_id = checkout(base, engine, user)
    payload = fake.completed(session_id)
    if how == "wrong secret":
        r = deliver(base, payload, secret="whsec_someone_else")
    elif how == "stale timestamp":
        r = deliver(base, payload, timestamp=int(time.time()) - 3600)
    elif how == "tampered body":
        signed = signature_header(payload, WEBHOOK_SECRET)
        tampered = payload.replace(b'"amount_total":500', b'"amount_total":501')
        assert tampered != payload
        r = deliver(base, tampered, header=signed)
    elif how == "no signature":
        r = deliver(base, payload, header="")
    else:
        r = deliver(base, payload, header="v1=deadbeef")
    assert (r.status_code, r.json()) == (400, {"error": "invalid signature"})
    assert balance(engine, user) == 0
    with session_for(engine) as s:
        assert s.exec(select(PaymentEvent)).all() == []
        assert s.exec(select(Payment)).one().status == "open"
    # the genuine event still works afterwards
    assert deliver(base, payload).json()["result"] == "credited"


def test_sessions_that_are_not_paid_or_not_ours_credit_nothing(site, engine):
    base, fake = site
    user = make_user(engine)
    session_id = checkout(base, engine, user)
    pending = deliver(base, fake.completed(session_id, paid=False))
    assert pending.json()["result"] == "ignored" and balance(engine, user) == 0
    # the delayed payment succeeds later: that event credits the pack
    succeeded = fake.event(
        "checkout.session.async_payment_succeeded", {**fake.sessions[session_id], "payment_status": "paid"}
    )
    assert deliver(base, succeeded).json()["result"] == "credited" and balance(engine, user) == 10 * MICRO
    foreign = {**fake.sessions[session_id], "id": "cs_test_made_elsewhere", "payment_status": "paid"}
    assert deliver(base, fake.event("checkout.session.completed", foreign)).json()["result"] == "ignored"
    cheaper = checkout(base, engine, user)
    fake.completed(cheaper)
    underpaid = {**fake.sessions[cheaper], "amount_total": 1}
    assert deliver(base, fake.event("checkout.session.completed", underpaid)).json()["result"] == "ignored"
    unknown = deliver(base, fake.event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert (unknown.status_code, unknown.json()["result"]) == (200, "ignored")
    assert balance(engine, user) == 10 * MICRO


def test_refunds_and_disputes_take_the_credits_back_in_proportion(site, engine):
    base, fake = site
    user = make_user(engine)
    session_id = checkout(base, engine, user, pack="50")  # 50 credits for 20.00
    deliver(base, fake.completed(session_id))
    partial = fake.refunded(session_id, amount_refunded=500)  # a quarter of the money
    assert deliver(base, partial).json()["result"] == "reversed"
    assert deliver(base, partial).json()["result"] == "duplicate"
    assert balance(engine, user) == 37_500_000
    # the dispute of the rest takes the other three quarters
    assert deliver(base, fake.disputed(session_id, amount=1500)).json()["result"] == "reversed"
    assert balance(engine, user) == 0
    with session_for(engine) as s:
        payment = s.exec(select(Payment)).one()
        assert (payment.status, payment.credits_reversed, payment.shortfall) == ("reversed", 50 * MICRO, 0)
    notes = [g.note for g in grants(engine, user) if g.amount < 0]
    intent = fake.sessions[session_id]["payment_intent"]
    assert notes[0].startswith(f"Stripe refund of payment {intent} (event evt_") and notes[0].endswith(
        ": 12.5 credits taken back"
    )
    assert "Stripe dispute of payment" in notes[1] and notes[1].endswith(": 37.5 credits taken back")
    # A full refund after that changes nothing more: everything was taken back already.
    assert deliver(base, fake.refunded(session_id, amount_refunded=2000)).json()["result"] == "ignored"


def test_a_refund_of_spent_credits_takes_what_is_there_and_alerts_the_operator(site, engine, monkeypatch):
    base, fake = site
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://alerts.example.com/hook")
    get_settings.cache_clear()
    user = make_user(engine)
    session_id = checkout(base, engine, user)
    deliver(base, fake.completed(session_id))
    with session_for(engine) as s:  # 7 of the 10 credits were spent since
        credits.debit_for_request(s, user_id=user.id, cost=7 * MICRO, ref="spent", model="openai/gpt-5")
    assert deliver(base, fake.refunded(session_id, amount_refunded=1000)).json()["result"] == "reversed"
    assert balance(engine, user) == 0  # never below zero
    with session_for(engine) as s:
        payment = s.exec(select(Payment)).one()
        assert (payment.credits_reversed, payment.shortfall, payment.status) == (10 * MICRO, 7 * MICRO, "reversed")
        [alert] = s.exec(select(Alert)).all()
    assert (alert.kind, alert.payload["taken_back"], alert.payload["shortfall"], alert.payload["event"]) == (
        "payment_shortfall",
        "3",
        "7",
        "refund",
    )
    [note] = [g.note for g in grants(engine, user) if g.amount < 0]
    assert note.endswith(": 3 credits taken back, 7 could not be (spent)")


# ---------------------------------------------------------------- redemption codes


def test_a_code_redeems_once_through_the_route(site, engine):
    base, _ = site
    user = make_user(engine)
    with session_for(engine) as s:
        [code] = codes.create_codes(s, secret_key=TEST_SECRET, count=1, credits_=2_500_000)
    cookie = cookie_for(engine, user)
    assert where(post(base, "/billing/redeem", cookie, code=code.lower())) == ("/credits", {"redeemed": "2.5"})
    assert where(post(base, "/billing/redeem", cookie, code=code)) == ("/credits", {"error": "code"})
    assert where(post(base, "/billing/redeem", "", code=code)) == ("/login", {"next": "/credits"})
    assert balance(engine, user) == 2_500_000


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_one_event_delivered_eight_times_at_once_credits_once(site, engine):
    base, fake = site
    user = make_user(engine)
    session_id = checkout(base, engine, user)
    payload = fake.completed(session_id)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: deliver(base, payload), range(8)))
    assert sorted(a.json()["result"] for a in answers) == ["credited"] + ["duplicate"] * 7
    assert balance(engine, user) == 10 * MICRO
    refund = fake.refunded(session_id, amount_refunded=500)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: deliver(base, refund), range(8)))
    assert sorted(a.json()["result"] for a in answers) == ["duplicate"] * 7 + ["reversed"]
    assert balance(engine, user) == 0
