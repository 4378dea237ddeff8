"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the
server as `make run` starts it. Fields, buttons and links are found by their accessible names.

Playwright's sync API is used (it must not share pytest-asyncio's loop, hence this
module of its own and no async fixtures).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from store import pricing, registry
from store.db import session_for

from .conftest import LiveServer

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN = ("admin@example.com", "admin password 1")
PASSWORD = "browser password 1"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


# The chat models these pages' numbers are written for ("gpt-5 costs 3"): priced at their
# flat seed fee (3, 1 and 4 credits) while a test's calls are made, as tests/factories.
# flat_seed_prices does for the suites of a call's mechanics; the shipped per-token prices
# have tests of their own. What the calls were charged stays in the ledger and the logs.
FLAT = ("openai/gpt-5", "openai/gpt-5-mini", "anthropic/claude-sonnet-4.5")


def _set_pricing(live_server: LiveServer, modes: dict[str, str]) -> None:
    with session_for(live_server.engine) as s:
        for model_id, mode in modes.items():
            registry.set_model(s, model_id=model_id, actor="e2e", pricing=mode)


def _serving(live_server: LiveServer, key: str, modes: dict[str, str]) -> None:
    """Wait until the server's registry cache (KEY_CACHE_TTL_S) has the prices just set."""
    deadline = time.monotonic() + 20
    while True:
        listed = httpx.get(f"{live_server.api}/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        served = {m["id"]: m["pricing"]["mode"] for m in listed.json()["data"]}
        if all(served.get(model_id) == mode for model_id, mode in modes.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the server still prices {served}")
        time.sleep(0.2)


@contextmanager
def flat_seed_prices(live_server: LiveServer) -> Iterator[None]:
    """The FLAT models at their flat fee for the calls made inside. (The server is asked
    with a key of its own: the callers' logs hold only their own calls.)"""
    key = live_server.user_with_key(f"prices-{uuid.uuid4().hex[:8]}@example.com", credits=0)
    with session_for(live_server.engine) as s:
        shipped = {model_id: registry.get_model(s, model_id=model_id).pricing for model_id in FLAT}
    flat = dict.fromkeys(FLAT, pricing.PER_REQUEST)
    _set_pricing(live_server, flat)
    try:
        _serving(live_server, key, flat)
        yield
    finally:
        _set_pricing(live_server, shipped)
        _serving(live_server, key, shipped)


@pytest.fixture
def page(browser, live_server) -> Page:
    context = browser.new_context(base_url=live_server.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def sign_up(page: Page, email: str) -> None:
    page.goto("/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    # Sign-up answers a new email as it does a taken one (no session); the page's script
    # then signs in with the same email and password, so a new person lands signed in.
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def sign_in(page: Page, email: str, password: str, then: str = "/") -> None:
    page.goto(f"/login?next={then}" if then != "/" else "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if then == "/":
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    else:
        page.wait_for_url(f"**{then}**")


def open_page(page: Page, link: str, heading: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=link, exact=True).click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def reload_until(page: Page, locator, timeout_s: float = 15) -> None:
    """Data written in the background (request logs) shows after a reload."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            expect(locator).to_be_visible(timeout=1500)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def test_sign_up_create_a_key_use_it_and_see_it_in_logs_and_credits(page, live_server):
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(page, email)
    expect(page.get_by_text("0 credits")).to_be_visible()
    assert live_server.cli("grant", email, "50.5", "--note", "browser test").returncode == 0

    open_page(page, "API Keys", "API Keys")
    expect(page.get_by_text("No keys yet")).to_be_visible()  # loaded: the form is live now
    page.get_by_label("Name").fill("browser key")
    page.get_by_label("Rate limit").fill("30")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_be_visible()
    key = shown.inner_text().strip()
    assert key.startswith("sk_live_") and len(key) >= 40
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    expect(page.get_by_text("It is shown only this once")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="browser key")
    expect(row).to_contain_text(f"{key[:12]}…{key[-4:]}")
    expect(row).to_contain_text("30/min")
    expect(row).to_contain_text("active")

    page.reload()
    expect(page.get_by_role("row").filter(has_text="browser key")).to_be_visible()
    expect(page.locator("#new-key")).not_to_be_visible()
    assert key not in page.content()

    sdk = openai.OpenAI(base_url=live_server.api, api_key=key, max_retries=0, timeout=20)
    with flat_seed_prices(live_server):
        answer = sdk.chat.completions.create(model="openai/gpt-5", messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content == "echo: hello"
    tokens = f"{answer.usage.prompt_tokens} / {answer.usage.completion_tokens}"

    open_page(page, "Logs", "Logs")
    logged = page.get_by_role("row").filter(has_text="openai/gpt-5").filter(has_text="browser key")
    reload_until(page, logged)
    expect(logged).to_contain_text("200")
    expect(logged).to_contain_text("/chat/completions")
    expect(logged.get_by_role("cell").nth(6)).to_have_text(tokens)  # prompt / completion tokens
    expect(logged.get_by_role("cell").nth(7)).to_have_text("3")  # the exact charge, in credits
    logged.get_by_role("button", name="Details").click()
    expect(page.get_by_role("dialog")).to_contain_text("Request details")

    page.goto("/credits")
    expect(page.locator("#balance")).to_have_text("47.5 credits")  # 50.5 granted, gpt-5 costs 3
    expect(page.get_by_role("row").filter(has_text="browser test")).to_contain_text("+50.5")
    expect(page.get_by_role("row").filter(has_text="Chat openai/gpt-5 · charged 3")).to_contain_text("-3")
    page.goto("/")
    expect(page.get_by_text("47.5 credits")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto("/settings/api-keys")
    page.wait_for_url("**/login?next=%2Fsettings%2Fapi-keys")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_admin_edits_a_model_cost_and_the_api_shows_it(page, live_server):
    model_id = f"acme/browser-{uuid.uuid4().hex[:6]}"
    created = live_server.cli("set-model", model_id, "--category", "chat", "--provider", "openrouter", "--cost", "2")
    assert created.returncode == 0, created.stderr
    key = live_server.user_with_key(f"lister-{uuid.uuid4().hex[:6]}@example.com", credits=0)

    sign_in(page, *ADMIN)
    open_page(page, "Models", "Models")
    row = page.get_by_role("row").filter(has_text=model_id).filter(has=page.get_by_role("button", name="Edit"))
    expect(row.get_by_role("cell").nth(2)).to_have_text("2")
    row.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    preview = dialog.get_by_role("status")
    expect(preview).to_have_text("Every call costs 2 credits (× n when a call asks for n images or choices).")
    dialog.get_by_label("Credit cost").fill("0.0000001")
    expect(preview).to_have_text("No preview: credit cost has more than 6 decimal places.")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_have_text("Credit cost has more than 6 decimal places.")
    dialog.get_by_label("Credit cost").fill("0.5")
    dialog.get_by_label("Pricing").click()
    page.get_by_role("option", name="per_token").click()
    dialog.get_by_label("Prompt price").fill("1.25")
    dialog.get_by_label("Completion price").fill("10")
    # 0.5 + 1,000 × 1.25 / 1M + 500 × 10 / 1M
    expect(preview).to_have_text("A typical call (1,000 prompt + 500 completion tokens) costs 0.50625 credits.")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(row.get_by_role("cell").nth(2)).to_have_text("0.5")
    expect(row.get_by_role("cell").nth(3)).to_contain_text("0.5 + 1.25 in / 10 out per 1M")
    expect(row.get_by_role("cell").nth(4)).to_have_text("0.50625")
    audited = page.get_by_role("row").filter(has_text=model_id).filter(has_text=ADMIN[0])
    expect(audited).to_contain_text("credit cost: 2 → 0.5")
    expect(audited).to_contain_text("pricing: per_request → per_token")

    deadline = time.monotonic() + 10
    while True:  # the API caches the registry for a second
        listed = httpx.get(f"{live_server.api}/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        prices = {m["id"]: (m["credit_cost"], m["pricing"]) for m in listed.json()["data"]}
        if prices.get(model_id, (None,))[0] == 0.5 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # no cache prices set: a cached prompt token costs the prompt price
    cached = {"cache_read": 1.25, "cache_write": 1.25}
    assert prices[model_id] == (0.5, {"mode": "per_token", "request": 0.5, "prompt": 1.25, "completion": 10, **cached})


def test_an_admin_sees_the_margin_of_each_model_and_day(page, live_server):
    key = live_server.user_with_key(f"margin-{uuid.uuid4().hex[:6]}@example.com", credits=10)
    sdk = openai.OpenAI(base_url=live_server.api, api_key=key, max_retries=0, timeout=20)
    sdk.chat.completions.create(model="openai/gpt-5-mini", messages=[{"role": "user", "content": "margin"}])

    sign_in(page, *ADMIN)
    open_page(page, "Margin", "Margin")
    row = page.get_by_role("row").filter(has_text="openai/gpt-5-mini")
    reload_until(page, row)  # request logs are written in batches
    today = time.strftime("%Y-%m-%d", time.gmtime())
    expect(row.get_by_role("cell").nth(0)).to_have_text(today)
    expect(page.get_by_role("columnheader", name="Upstream USD")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Margin (credits)")).to_be_visible()


def test_a_plain_user_sees_no_admin_controls(page, live_server):
    email = f"plain-{uuid.uuid4().hex[:8]}@example.com"
    assert live_server.cli("create-user", email, "--password", PASSWORD).returncode == 0
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password.")

    sign_in(page, email, PASSWORD, then="/admin/models")
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    expect(page.get_by_text("This page is for admins.")).to_be_visible()
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Overview")).to_be_visible()
    expect(nav.get_by_role("link", name="Models")).to_have_count(0)
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    expect(nav.get_by_role("link", name="Margin")).to_have_count(0)
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
    expect(page.get_by_role("button", name="Add model")).to_have_count(0)
    expect(page.get_by_role("table")).to_have_count(0)


def test_a_password_change_signs_out_the_other_browser_and_keeps_this_one(browser, page, live_server):
    email = f"pw-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(page, email)
    other_context = browser.new_context(base_url=live_server.base_url)
    other_context.set_default_timeout(WAIT_MS)
    other = other_context.new_page()
    try:
        sign_in(other, email, PASSWORD)

        open_page(page, "Account", "Account")
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password").fill("browser password 2")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_text("Password changed.")).to_be_visible()
        open_page(page, "API Keys", "API Keys")  # this browser got a fresh session

        other.goto("/settings/api-keys")  # the other one is signed out
        other.wait_for_url("**/login?next=**")
        other.get_by_label("Email").fill(email)
        other.get_by_label("Password").fill(PASSWORD)
        other.get_by_role("button", name="Sign in").click()
        expect(other.get_by_role("alert")).to_contain_text("Wrong email or password.")
        sign_in(other, email, "browser password 2")
    finally:
        other_context.close()


STATES = Path(__file__).resolve().parents[2] / ".states"  # where `make run` keeps tab states (disk manager)


def test_a_new_key_is_shown_once_and_never_lands_in_the_stored_tab_state(page, live_server):
    started = time.time()
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(str(frame))))
    sign_up(page, f"keys-{uuid.uuid4().hex[:8]}@example.com")
    open_page(page, "API Keys", "API Keys")
    expect(page.get_by_text("No keys yet")).to_be_visible()
    page.get_by_label("Name").fill("stored key")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_be_visible()
    key = shown.inner_text().strip()
    assert key.startswith("sk_live_") and len(key) >= 40
    expect(page.get_by_role("row").filter(has_text="stored key")).to_contain_text(f"{key[:12]}…{key[-4:]}")
    page.get_by_role("button", name="I have saved it").click()
    expect(shown).not_to_be_visible()
    time.sleep(1.5)  # let the state manager write the tab's state
    hidden = key[12:-4]
    assert frames and not any(hidden in frame for frame in frames)  # not over the websocket either
    written = [p for p in STATES.glob("*") if p.is_file() and p.stat().st_mtime >= started - 1]
    assert written, "the disk state manager wrote nothing"
    for path in written:
        assert hidden.encode() not in path.read_bytes(), path


def test_a_tab_token_without_its_owners_cookie_gets_none_of_the_tab_state(browser, page, live_server):
    email = f"tab-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(page, email)
    open_page(page, "API Keys", "API Keys")
    page.get_by_label("Name").fill("owner-only-key-name")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("row").filter(has_text="owner-only-key-name")).to_be_visible()
    token = page.evaluate("window.sessionStorage.getItem('token')")
    assert token
    page.close()  # the owner's tab goes away; its state stays on the server under the token

    other = browser.new_context(base_url=live_server.base_url)  # no cookie
    try:
        tab = other.new_page()
        tab.add_init_script(f"window.sessionStorage.setItem('token', {token!r})")
        frames: list[str] = []
        tab.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(str(frame))))
        tab.goto("/settings/api-keys")
        tab.wait_for_url("**/login?next=%2Fsettings%2Fapi-keys", timeout=WAIT_MS)
        expect(tab.get_by_role("button", name="Sign in")).to_be_visible()
        time.sleep(0.5)
        assert tab.evaluate("window.sessionStorage.getItem('token')") == token  # the same tab token was used
        assert frames, "no websocket traffic seen"
        assert not any("owner-only-key-name" in f or email in f for f in frames)
    finally:
        other.close()


def websocket_handshake(base_url: str, origin: str) -> int:
    """The status of a websocket handshake on Reflex's event endpoint sent with `origin`."""
    url = httpx.URL(base_url)
    with socket.create_connection((url.host, url.port), timeout=10) as conn:
        conn.sendall(
            (
                f"GET /_event/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\r\n"
            ).encode()
        )
        return int(conn.recv(64).split(b" ")[1])


def test_the_websocket_opens_only_from_this_sites_origin(live_server):
    port = httpx.URL(live_server.base_url).port
    assert websocket_handshake(live_server.base_url, f"http://127.0.0.1:{port}") == 101
    assert websocket_handshake(live_server.base_url, f"http://localhost:{port}") == 101
    assert websocket_handshake(live_server.base_url, "https://evil.example") == 403
