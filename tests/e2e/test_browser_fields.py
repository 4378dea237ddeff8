"""The registry's bounds and cache prices and the users' key limits, through the UI, in
Chromium against the server as `make run` starts it: what the admin types lands in the
store, bad input is refused with its message and changes nothing, and a user's API Keys
page keeps to the ceiling an admin gave them.

Playwright's sync API, as in test_browser.py (a module of its own: no asyncio loop here).
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from store import registry, users
from store.db import session_for

from .conftest import LiveServer
from .test_browser import ADMIN, ARGS, CHROMIUM, WAIT_MS, open_page, sign_in

pytestmark = pytest.mark.e2e

PASSWORD = "fields password 1"
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser: Browser, live_server: LiveServer):
    """`tab(size)`: a new browser (its own cookies) on the live server."""
    contexts = []

    def opener(size: dict = WIDE) -> Page:
        context = browser.new_context(base_url=live_server.base_url, viewport=size)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield opener
    for context in contexts:
        context.close()


def model(live_server: LiveServer, model_id: str):
    with session_for(live_server.engine) as s:
        return registry.get_model(s, model_id=model_id)


def key_ceiling(live_server: LiveServer, email: str) -> int | None:
    with session_for(live_server.engine) as s:
        return users.get_user_by_email(s, email=email).max_key_rpm


def edit_row(page: Page, model_id: str):
    return page.get_by_role("row").filter(has_text=model_id).filter(has=page.get_by_role("button", name="Edit"))


def test_an_admin_sets_a_models_context_length_cache_prices_and_prompt_bound(tab, live_server):
    model_id = f"acme/fields-{uuid.uuid4().hex[:6]}"
    created = live_server.cli(
        "set-model",
        *(model_id, "--category", "chat", "--provider", "openrouter", "--pricing", "per_token"),
        *("--cost", "0", "--prompt-price", "1.25", "--completion-price", "10"),
    )
    assert created.returncode == 0, created.stderr
    page = tab()
    sign_in(page, *ADMIN)
    open_page(page, "Models", "Models")
    row = edit_row(page, model_id)
    expect(row.get_by_role("cell").nth(5)).to_have_text("128,000")  # Context: the registry's default
    row.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    preview = dialog.get_by_role("status")
    expect(dialog.get_by_label("Context length")).to_have_value("128000")
    expect(dialog.get_by_label("Cache read price")).to_have_value("")
    expect(dialog.get_by_label("Max prompt tokens")).to_be_hidden()  # a flat price's bound

    dialog.get_by_label("Context length").fill("200,000")
    dialog.get_by_label("Cache read price").fill("-1")
    expect(preview).to_have_text("No preview: cache read price must be from 0 to 1000000 credits.")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_have_text("Cache read price must be from 0 to 1000000 credits.")
    unchanged = model(live_server, model_id)
    assert (unchanged.context_length, unchanged.cache_read_price) == (128_000, None)

    dialog.get_by_label("Cache read price").fill("0.125")
    dialog.get_by_label("Cache write price").fill("1.5")
    # a typical call reads nothing from a cache: 1,000 × 1.25 / 1M + 500 × 10 / 1M
    expect(preview).to_have_text("A typical call (1,000 prompt + 500 completion tokens) costs 0.00625 credits.")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(row.get_by_role("cell").nth(5)).to_have_text("200,000")
    expect(row.get_by_role("cell").nth(3)).to_contain_text("1.25 in / 10 out, cached 0.125 read / 1.5 write per 1M")
    saved = model(live_server, model_id)
    assert (saved.context_length, saved.cache_read_price, saved.cache_write_price) == (200_000, 125_000, 1_500_000)
    audited = page.get_by_role("row").filter(has_text=model_id).filter(has_text=ADMIN[0])
    expect(audited).to_contain_text("cache write price: prompt price → 1.5")

    row.get_by_role("button", name="Edit").click()  # to a flat price that covers prompts up to 8,000 tokens
    dialog.get_by_label("Pricing").click()
    page.get_by_role("option", name="per_request").click()
    expect(dialog.get_by_label("Cache read price")).to_be_hidden()
    dialog.get_by_label("Credit cost").fill("2")
    dialog.get_by_label("Max prompt tokens").fill("0")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_have_text("Max prompt tokens must be a whole number from 1 to 100,000,000.")
    dialog.get_by_label("Max prompt tokens").fill("8,000")
    expect(preview).to_have_text(
        "Every call costs 2 credits (× n when a call asks for n images or choices); "
        "it covers prompts of up to 8,000 tokens, and a longer one is refused."
    )
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(row.get_by_role("cell").nth(3)).to_contain_text("2 per request, prompts up to 8,000 tokens")
    flat = model(live_server, model_id)
    assert (flat.pricing, flat.credit_cost, flat.max_prompt_tokens) == ("per_request", 2_000_000, 8_000)
    assert (flat.cache_read_price, flat.context_length) == (125_000, 200_000)  # hidden, kept as they were


def test_the_model_form_fits_a_phone(tab, live_server):
    # Priced by tokens, so the form shows its cache prices (the end-to-end server prices the
    # seeded chat models per request: tests/e2e/conftest.py flat_seed_prices).
    model_id = f"acme/phone-{uuid.uuid4().hex[:6]}"
    created = live_server.cli(
        "set-model", model_id, "--category", "chat", "--provider", "openrouter", "--pricing", "per_token",
        "--cost", "0", "--prompt-price", "1.25", "--completion-price", "10",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    page = tab(PHONE)
    sign_in(page, *ADMIN)
    page.goto("/admin/models")
    edit_row(page, model_id).get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    for label in ("Cache write price", "Context length"):
        field = dialog.get_by_label(label)
        field.scroll_into_view_if_needed()
        expect(field).to_be_in_viewport()
        box = field.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_an_admin_sets_a_users_key_limit_and_their_api_keys_page_keeps_within_it(tab, live_server):
    email = f"ceiling-{uuid.uuid4().hex[:8]}@example.com"
    assert live_server.cli("create-user", email, "--password", PASSWORD).returncode == 0
    admin = tab()
    sign_in(admin, *ADMIN)
    open_page(admin, "Users", "Users")
    admin.get_by_label("Search by email").fill(email)
    admin.get_by_role("button", name="Search").click()
    row = admin.get_by_role("row").filter(has_text=email)
    limit = row.get_by_role("button", name="Key limit")
    expect(limit).to_have_text("600/min (default)")
    limit.click()
    dialog = admin.get_by_role("dialog")
    expect(dialog).to_contain_text("Now: 600/min (default).")
    dialog.get_by_label("Requests per minute").fill("fast")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_have_text(
        "The key limit must be a whole number of requests per minute from 0 to 1,000,000 (0: any), "
        "or empty for the platform's default."
    )
    assert key_ceiling(live_server, email) is None
    dialog.get_by_label("Requests per minute").fill("20")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(limit).to_have_text("20/min")
    assert key_ceiling(live_server, email) == 20

    user = tab()
    sign_in(user, email, PASSWORD)
    open_page(user, "API Keys", "API Keys")
    expect(user.get_by_text("No keys yet")).to_be_visible()  # loaded: the form is live now
    rate = user.get_by_label("Rate limit")
    expect(rate).to_have_value("20")  # the default 60, within their ceiling
    expect(user.get_by_text("At most 20 requests per minute for this account.")).to_be_visible()
    user.get_by_label("Name").fill("too fast")
    rate.fill("50")
    user.get_by_role("button", name="Create key").click()
    expect(user.get_by_role("alert")).to_have_text("Rate limit must be from 1 to 20 per minute for this account.")
    expect(user.get_by_text("No keys yet")).to_be_visible()
    rate.fill("0")  # unlimited is over any ceiling
    user.get_by_role("button", name="Create key").click()
    expect(user.get_by_role("alert")).to_have_text("Rate limit must be from 1 to 20 per minute for this account.")
    rate.fill("20")
    user.get_by_role("button", name="Create key").click()
    expect(user.locator("#new-key")).to_be_visible()
    expect(user.get_by_role("row").filter(has_text="too fast")).to_contain_text("20/min")

    admin.get_by_role("link", name=email).click()  # their own page: the same limit, set back to the default
    admin.wait_for_url("**/admin/users/*")
    on_page = admin.locator("#user-key-limit").get_by_role("button", name="Key limit")
    expect(on_page).to_have_text("20/min")
    on_page.click()
    expect(dialog.get_by_label("Requests per minute")).to_have_value("20")
    dialog.get_by_label("Requests per minute").fill("")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(on_page).to_have_text("600/min (default)")
    assert key_ceiling(live_server, email) is None
