"""Sign-up by invitation and buying credits, in Chromium against a server of its own as
`make run` starts it with SIGNUP_POLICY=invite and Stripe configured (a fake of Stripe's
API served over HTTP, and its events signed as Stripe signs them): the sign-up page without
an invite has no form, an invite link signs a new person up and in, and a pack bought on the
Credits page is credited by the signed webhook, not by the return from Checkout.

Playwright's sync API, as in test_browser.py (a module of its own: no asyncio loop here).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from dashboard.pages.auth import INVITE_NEEDED
from dashboard.pages.credits import CANCELLED, PAID

from ..fakes.stripe_api import FakeStripe, ServedStripe, signature_header
from ..fakes.upstream import ServedUpstream
from .conftest import LiveServer, make_run, server_env
from .test_browser import ARGS, CHROMIUM, WAIT_MS

pytestmark = pytest.mark.e2e

STRIPE_KEY = "sk_test_browser_0123456789"
WEBHOOK_SECRET = "whsec_test_browser_abcdef"
PASSWORD = "billing password 1"
SIZES = {"1280": {"width": 1280, "height": 800}, "390": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[LiveServer, FakeStripe]]:
    tmp = tmp_path_factory.mktemp("billing")
    web = tmp_path_factory.getbasetemp() / "billing-frontend"  # its own .web: another server may run
    with ServedUpstream() as upstream, ServedStripe(STRIPE_KEY) as stripe:
        env = server_env(
            tmp,
            upstream.base_url,
            SIGNUP_POLICY="invite",
            SIGNUP_CREDITS="1",
            STRIPE_SECRET_KEY=STRIPE_KEY,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            STRIPE_API_BASE=stripe.base_url,
            CREDIT_PACKS="10:5.00,50:20.00",
            REFLEX_WEB_WORKDIR=str(web / "web"),
            REFLEX_STATES_WORKDIR=str(web / "states"),
        )
        env.pop("PUBLIC_BASE_URL", None)
        with make_run(env, upstream, tmp / "server.log") as server:
            yield server, stripe


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser, site):
    contexts = []

    def opener(size: dict) -> Page:
        context = browser.new_context(base_url=site[0].base_url, viewport=size)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield opener
    for context in contexts:
        context.close()


def invite_link(server: LiveServer, credits_: str) -> str:
    """`python -m store invite`: the link it prints, on this server's own address."""
    made = server.cli("invite", "--credits", credits_)
    assert made.returncode == 0, made.stderr
    [link] = re.findall(r"https?://\S+/register\?invite=\S+", made.stdout)
    return server.base_url + link[link.index("/register") :]


def sign_up(page: Page, link: str) -> str:
    page.goto(link)
    expect(page.locator("#signup-note")).to_contain_text("You are signing up with an invite")
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return email


def deliver(server: LiveServer, payload: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/billing/stripe-webhook",
        content=payload,
        headers={"stripe-signature": signature_header(payload, WEBHOOK_SECRET), "content-type": "application/json"},
        timeout=10,
    )


@pytest.mark.parametrize("width", list(SIZES))
def test_without_an_invite_there_is_no_sign_up_form_and_with_one_a_person_lands_signed_in(tab, site, width):
    server, _stripe = site
    page = tab(SIZES[width])
    page.goto("/register")
    expect(page.locator("#signup-note")).to_have_text(INVITE_NEEDED)
    expect(page.get_by_label("Email")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign up")).to_have_count(0)
    refused = httpx.post(
        f"{server.base_url}/auth/register",
        data={"email": f"sneaky-{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD},
        timeout=10,
    )
    assert (refused.status_code, refused.headers["location"]) == (303, "/register?error=invite")  # the server says no

    sign_up(page, invite_link(server, "2.5"))
    expect(page.get_by_text("3.5 credits")).to_be_visible()  # SIGNUP_CREDITS 1 + the invite's 2.5


@pytest.mark.parametrize("width", list(SIZES))
def test_a_pack_bought_on_the_credits_page_arrives_with_the_signed_webhook(tab, site, width):
    server, stripe = site
    page = tab(SIZES[width])
    sign_up(page, invite_link(server, "0"))
    page.goto("/credits?checkout=cancelled")
    expect(page.locator("#credits-message")).to_have_text(CANCELLED)
    buy = page.locator("#buy-credits")
    expect(buy).to_contain_text("10 credits")
    expect(buy).to_contain_text("20.00 USD")

    checkout_pages: list[str] = []

    def stripe_checkout(route):  # Stripe's hosted page stands in: the browser arrives there
        checkout_pages.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Stripe Checkout</h1>")

    page.route("https://checkout.stripe.test/**", stripe_checkout)
    buy.get_by_role("button", name="Buy 10 credits").click()
    expect(page.get_by_role("heading", name="Stripe Checkout")).to_be_visible()
    [session_id] = re.findall(r"/c/pay/(cs_test_\w+)", checkout_pages[0])
    assert stripe.sessions[session_id]["amount_total"] == 500

    page.goto(f"/credits?checkout=success&session_id={session_id}")  # the return alone grants nothing
    expect(page.locator("#credits-message")).to_have_text(PAID)
    expect(page.locator("#balance")).to_have_text("1 credit")
    expect(page.locator("#payments").get_by_role("row").filter(has_text="5.00 USD")).to_contain_text("pending")

    answered = deliver(server, stripe.completed(session_id))
    assert (answered.status_code, answered.json()) == (200, {"received": True, "result": "credited"})
    page.reload()
    expect(page.locator("#balance")).to_have_text("11 credits")
    expect(page.locator("#payments").get_by_role("row").filter(has_text="5.00 USD")).to_contain_text("paid")
    expect(page.get_by_role("row").filter(has_text=f"checkout {session_id}")).to_contain_text("+10")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
