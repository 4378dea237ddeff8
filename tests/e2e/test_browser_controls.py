"""The operator controls through the UI, in Chromium at 1280×800 and 390×844 against the
server as `make run` starts it: a key made with a budget and an allow-list, edited, then
refused past its budget through the API (the openai SDK); an invite link that signs a new
person up and in with its credits; a redemption code; the low-balance banner; a sign-up
with a taken email that signs nobody in.

Playwright's sync API, as in test_browser.py (a module of its own: no asyncio loop here).
"""

from __future__ import annotations

import re
import time
import uuid

import openai
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from dashboard.auth import COOKIE_NAME
from store import budgets, credits, sessions, users
from store.db import session_for
from store.models import utcnow
from store.money import format_credits, parse_credits

from .conftest import SECRET, LiveServer
from .test_browser import ADMIN, ARGS, CHROMIUM, WAIT_MS, flat_seed_prices

pytestmark = pytest.mark.e2e

WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"1280": WIDE, "390": PHONE}
PASSWORD = "controls password 1"
CODE = re.compile(r"[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3}")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _person(live_server: LiveServer, prefix: str, amount: str) -> str:
    email = f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"
    made = live_server.cli("create-user", email, "--password", PASSWORD, "--credits", amount)
    assert made.returncode == 0, made.stderr
    return email


def _signed_in_state(live_server: LiveServer, email: str) -> dict:
    """A browser's storage holding a session cookie of `email`'s, as sign-in sets it (a
    session made by the store: sign-ins from one address are limited, and sign-in has
    tests of its own)."""
    with session_for(live_server.engine) as s:
        user_id = users.get_user_by_email(s, email=email).id
        token = sessions.create_session(s, secret_key=SECRET, user_id=user_id)
    cookie = {"name": COOKIE_NAME, "value": token, "url": live_server.base_url, "httpOnly": True, "sameSite": "Strict"}
    return {"cookies": [cookie], "origins": []}


@pytest.fixture(scope="module")
def people(live_server) -> dict[str, tuple[str, dict]]:
    """Who the tests act as: the admin and three users (each test its own)."""
    found = {"admin": (ADMIN[0], _signed_in_state(live_server, ADMIN[0]))}
    for who, amount in (("keys", "100"), ("codes", "10"), ("banner", "2")):
        email = _person(live_server, who, amount)
        found[who] = (email, _signed_in_state(live_server, email))
    return found


@pytest.fixture
def tab(browser, live_server, people):
    """`tab(who, size)`: a new page signed in as one of `people`, or nobody."""
    contexts = []

    def opener(who: str | None, size: dict = WIDE) -> Page:
        state = people[who][1] if who else None
        context = browser.new_context(base_url=live_server.base_url, viewport=size, storage_state=state)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield opener
    for context in contexts:
        context.close()


def balance_of(live_server: LiveServer, email: str) -> int:
    with session_for(live_server.engine) as s:
        return credits.balance(s, user_id=users.get_user_by_email(s, email=email).id)


def page_overflow(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _until(call, timeout_s: float = 10):
    """What `call` answers once the server's key cache (KEY_CACHE_TTL_S) has the key's edit."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except openai.APIStatusError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


# ---------------------------------------------------------------- a key's controls


@pytest.mark.parametrize("width", list(SIZES))
def test_a_key_with_a_budget_and_models_is_edited_and_refused_past_its_budget(tab, live_server, width):
    page = tab("keys", SIZES[width])
    page.goto("/settings/api-keys")
    expect(page.get_by_role("heading", name="Create a key")).to_be_visible()
    expect(page.get_by_label("Rate limit")).to_have_value("60")  # loaded: the form is live now
    name = f"budgeted {width}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Budget").fill("5")
    page.get_by_label("Period").click()
    page.get_by_role("option", name="Each day").click()
    page.get_by_label("Models").fill("openai/gpt-5")
    page.get_by_label("Expires (UTC)").fill("2099-01-31T00:00")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_be_visible()
    key = shown.inner_text().strip()
    assert key.startswith("sk_live_")
    page.get_by_role("button", name="I have saved it").click()
    row = page.get_by_role("row").filter(has_text=name)
    tomorrow = budgets.next_start("day", utcnow()).strftime("%Y-%m-%d")
    expect(row).to_contain_text(f"0 / 5 per day · resets {tomorrow}")
    expect(row).to_contain_text("openai/gpt-5")
    expect(row).to_contain_text("2099-01-31")
    assert page_overflow(page) <= 0

    sdk = openai.OpenAI(base_url=live_server.api, api_key=key, max_retries=0, timeout=20)
    chat = [{"role": "user", "content": "hello"}]
    with flat_seed_prices(live_server):  # gpt-5 costs 3, gpt-5-mini 1
        with pytest.raises(openai.APIStatusError) as outside:
            sdk.chat.completions.create(model="openai/gpt-5-mini", messages=chat)
        assert (outside.value.status_code, outside.value.code) == (404, "model_not_available")
        assert sdk.chat.completions.create(model="openai/gpt-5", messages=chat).usage.cost == 3
        with pytest.raises(openai.APIStatusError) as spent:  # 3 of 5 spent: another 3 does not fit
            sdk.chat.completions.create(model="openai/gpt-5", messages=chat)
        assert (spent.value.status_code, spent.value.code) == (402, "key_budget_exceeded")

        page.reload()
        expect(row).to_contain_text("3 / 5 per day")
        row.get_by_role("button", name="Edit").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Budget")).to_have_value("5")
        expect(dialog.get_by_label("Models")).to_have_value("openai/gpt-5")
        dialog.get_by_label("Budget").fill("ten")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog.get_by_role("alert")).to_have_text("Budget must be a number such as 2.5.")
        dialog.get_by_label("Budget").fill("7.5")
        dialog.get_by_label("Models").fill("openai/gpt-5, openai/gpt-5-mini")
        dialog.get_by_label("Rate limit").fill("30")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_have_count(0)
        expect(row).to_contain_text("3 / 7.5 per day")
        expect(row).to_contain_text("openai/gpt-5, openai/gpt-5-mini")
        expect(row).to_contain_text("30/min")

        # The edit applies from the next call: 3 more fit now (6 of 7.5), then not even 1.
        assert _until(lambda: sdk.chat.completions.create(model="openai/gpt-5", messages=chat)).usage.cost == 3
        assert _until(lambda: sdk.chat.completions.create(model="openai/gpt-5-mini", messages=chat)).usage.cost == 1
        with pytest.raises(openai.APIStatusError) as refused:
            sdk.chat.completions.create(model="openai/gpt-5-mini", messages=chat)
        assert (refused.value.status_code, refused.value.code) == (402, "key_budget_exceeded")
    page.reload()
    expect(row).to_contain_text("7 / 7.5 per day")


# ---------------------------------------------------------------- sign-up


def _make_invite(page: Page, amount: str) -> str:
    """Users → Invite…: the link the page shows once."""
    page.goto("/admin/users")
    expect(page.get_by_role("heading", name="Invites")).to_be_visible()
    page.get_by_role("button", name="Invite…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Credits").fill(amount)
    dialog.get_by_label("Valid for (days)").fill("2")
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog).to_have_count(0)
    link = page.locator("#invite-link")
    expect(link).to_contain_text("/register?invite=")
    expect(page.get_by_role("alert").filter(has_text="Copy this invite link now.")).to_contain_text(
        f"It signs up one account with {amount} credits until "
    )
    return link.inner_text().strip()


@pytest.mark.parametrize("width", list(SIZES))
def test_an_invite_link_signs_a_new_person_up_and_in_with_its_credits(tab, live_server, width):
    admin = tab("admin", SIZES[width])
    link = _make_invite(admin, "7.5")
    assert link.startswith(live_server.base_url + "/register?invite=")  # the address the admin reached
    assert page_overflow(admin) <= 0
    admin.get_by_role("button", name="Done").click()
    expect(admin.locator("#invite-link")).not_to_be_visible()
    expect(admin.locator("#invite-link")).to_have_text("")

    newcomer = tab(None, SIZES[width])
    newcomer.goto(link)
    expect(newcomer.locator("#signup-note")).to_have_text(
        "You are signing up with an invite: it adds 7.5 credits to your account."
    )
    email = f"invited-{uuid.uuid4().hex[:8]}@example.com"
    newcomer.get_by_label("Email").fill(email)
    newcomer.get_by_label("Password").fill(PASSWORD)
    newcomer.get_by_role("button", name="Sign up").click()
    expect(newcomer.get_by_role("heading", name="Overview")).to_be_visible()  # signed in, no second form
    signup = parse_credits(live_server.env.get("SIGNUP_CREDITS") or "0")
    expected = format_credits(signup + parse_credits("7.5"))
    expect(newcomer.get_by_text(f"{expected} credits")).to_be_visible()
    assert balance_of(live_server, email) == signup + 7_500_000

    admin.reload()
    used = admin.locator("#invites").get_by_role("row").filter(has_text=email)
    expect(used).to_contain_text("used")
    expect(used.get_by_role("button", name="Withdraw")).to_have_count(0)

    again = tab(None, SIZES[width])
    again.goto(link)  # used: under SIGNUP_POLICY=open one may still sign up, without it
    expect(again.locator("#signup-note")).to_contain_text("This invite link is not valid")


def test_a_sign_up_with_a_taken_email_signs_nobody_in(tab, people):
    page = tab(None)
    page.goto("/register")
    page.get_by_label("Email").fill(people["codes"][0])
    page.get_by_label("Password").fill("not their password 1")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r".*/login/?\?error=credentials$"))
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")  # as any failed sign-in says
    page.goto("/credits")
    page.wait_for_url("**/login?next=%2Fcredits")


# ---------------------------------------------------------------- codes and the banner


@pytest.mark.parametrize("width", list(SIZES))
def test_a_code_from_the_users_page_is_redeemed_once_on_the_credits_page(tab, live_server, people, width):
    admin = tab("admin", SIZES[width])
    admin.goto("/admin/users")
    expect(admin.get_by_role("heading", name="Redemption codes")).to_be_visible()
    admin.get_by_role("button", name="Codes…").click()
    dialog = admin.get_by_role("dialog")
    dialog.get_by_label("How many").fill("2")
    dialog.get_by_label("Credits each").fill("0")
    dialog.get_by_role("button", name="Create codes").click()
    expect(dialog.get_by_role("alert")).to_have_text("Credits must be more than 0 and at most 1,000,000,000.")
    dialog.get_by_label("Credits each").fill("2.5")
    dialog.get_by_role("button", name="Create codes").click()
    expect(dialog).to_have_count(0)
    shown = admin.locator("#new-codes")
    expect(shown).to_contain_text("-")
    made = CODE.findall(shown.inner_text())
    assert len(set(made)) == 2
    expect(admin.get_by_role("alert").filter(has_text="Copy these codes now.")).to_contain_text(
        "2 codes of 2.5 credits each, valid until used."
    )
    assert page_overflow(admin) <= 0

    email = people["codes"][0]
    theirs = admin.locator("#codes").get_by_role("row").filter(has_text=email)
    redeemed_before = theirs.count()
    before = balance_of(live_server, email)
    page = tab("codes", SIZES[width])
    page.goto("/credits")
    page.get_by_label("Code").fill(made[0].lower().replace("-", " "))  # any case, any separator
    page.get_by_role("button", name="Redeem").click()
    expect(page.locator("#credits-message")).to_have_text("Code redeemed: 2.5 credits added to your balance.")
    expect(page.locator("#balance")).to_have_text(f"{format_credits(before + 2_500_000)} credits")
    expect(page.get_by_role("row").filter(has_text=f"redemption code …{made[0][-4:]}")).to_contain_text("+2.5")
    page.get_by_label("Code").fill(made[0])
    page.get_by_role("button", name="Redeem").click()
    expect(page.locator("#credits-message")).to_have_text("This code is not valid (used, expired or mistyped).")
    assert balance_of(live_server, email) == before + 2_500_000
    assert page_overflow(page) <= 0

    admin.reload()
    expect(theirs).to_have_count(redeemed_before + 1)
    expect(theirs.first.get_by_role("cell").nth(4)).to_have_text("used")


@pytest.mark.parametrize("width", list(SIZES))
def test_the_low_balance_banner_shows_on_every_page_below_the_threshold(tab, live_server, people, width):
    page = tab("banner", SIZES[width])
    page.goto("/credits")
    expect(page.get_by_role("heading", name="Low-balance alert")).to_be_visible()
    banner = page.locator("#low-balance-banner")
    expect(banner).to_have_count(0)
    page.get_by_label("Alert threshold").fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").filter(has_text="threshold")).to_have_text(
        "The low-balance threshold must be more than 0 and at most 1,000,000,000."
    )
    expect(banner).to_have_count(0)
    page.get_by_label("Alert threshold").fill("5")
    page.get_by_role("button", name="Save").click()
    words = "Your balance is 2 credits, below your alert threshold of 5."
    expect(banner).to_contain_text(words)
    for path, heading in (("/settings/api-keys", "API Keys"), ("/logs", "Logs"), ("/", "Overview")):
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        expect(banner).to_contain_text(words)
        assert page_overflow(page) <= 0
    banner.get_by_role("link", name="Add credits").click()
    page.wait_for_url("**/credits")
    expect(page.get_by_label("Alert threshold")).to_have_value("5")

    email = people["banner"][0]
    grant = live_server.cli("grant", email, "4", "--note", "top-up")
    assert grant.returncode == 0, grant.stderr
    page.reload()
    expect(page.locator("#balance")).to_have_text("6 credits")
    expect(banner).to_have_count(0)  # 6 is not below 5
    assert live_server.cli("grant", email, "-4", "--note", "back").returncode == 0
    page.get_by_label("Alert threshold").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Alert threshold saved")).to_be_visible()
    page.reload()
    expect(page.locator("#balance")).to_have_text("2 credits")
    expect(banner).to_have_count(0)  # no threshold, no banner
    with session_for(live_server.engine) as s:
        assert users.get_user_by_email(s, email=email).low_balance_threshold is None
    assert balance_of(live_server, email) == 2_000_000
