"""Every page at 1280×800 and on a phone (390×844), in Chromium against the server as
`make run` starts it: no sideways page scroll, every table column on screen at 1280 and
reachable inside its own table on a phone, the Menu; and the controls issue 18 found
broken, through the UI (Export CSV, Models, Users, a user's page, Credits, Logs, the API
docs offline).

`SCREENSHOTS=1` also saves each page at both widths into docs/screenshots/.
Playwright's sync API, as in test_browser.py (a module of its own: no asyncio loop here).
"""

from __future__ import annotations

import csv
import io
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from store import alerts, keys, logs, users
from store.db import session_for
from store.models import utcnow
from store.money import parse_credits
from store.usage import CSV_COLUMNS

from .conftest import SECRET, LiveServer
from .test_browser import ADMIN, ARGS, CHROMIUM, WAIT_MS, flat_seed_prices, reload_until

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"1280": WIDE, "390": PHONE}
USER_PASSWORD = "e2e password 1"  # LiveServer.user_with_key's
LONG_WORD = "x" * 300  # a note's "word" with no break in it: a pasted URL, a hash
UNUSED_PREFIX = "layout-"


@dataclass
class World:
    """Who and what the pages show."""

    user_email: str
    user_id: int
    key: str
    ok_id: str  # x-request-id of the call that succeeded
    failed_id: str  # … of the call the upstream failed (refunded)
    tokens: tuple[int, int, int]  # the successful call's prompt / completion / total
    admin_id: int


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _history(live_server: LiveServer) -> None:
    """A month of other users' traffic, written through the store, so the admin's Usage
    page has days, users, keys and models to chart (models other than gpt-5-mini, which
    test_browser's Margin test looks for on today's row alone)."""
    rng = random.Random(18)
    with session_for(live_server.engine) as s:
        rows = []
        for n in range(4):
            person = users.create_user(
                s,
                email=f"{UNUSED_PREFIX}{n}-{uuid.uuid4().hex[:6]}@example.com",
                password="",
                password_hash=users.hash_password("history password 1"),
                credits_=parse_credits("100"),
            )
            key = keys.issue_key(s, secret_key=SECRET, user_id=person.id, name=f"server {n}", rate_limit_per_minute=60)
            for i in range(40):
                status = rng.choice([200] * 9 + [502])
                rows.append(
                    {name: None for name in logs.LOG_FIELDS}
                    | {
                        "request_id": f"hist-{person.id}-{i}",
                        "user_id": person.id,
                        "api_key_id": key.key.id,
                        "key_prefix": key.key.prefix,
                        "method": "POST",
                        "endpoint": "/api/v1/chat/completions",
                        "model": rng.choice(["openai/gpt-5", "anthropic/claude-sonnet-4.5"]),
                        "status": status,
                        "error_code": None if status == 200 else "provider_error",
                        "latency_ms": rng.randint(200, 2500),
                        "credit_cost": parse_credits(rng.choice(["0.012", "0.05", "0.2"])) if status == 200 else 0,
                        "stream": False,
                        "created_at": utcnow() - timedelta(days=rng.randint(1, 29), minutes=rng.randint(0, 600)),
                    }
                )
        logs.write_request_logs(s, rows)


def _alerts(live_server: LiveServer, email: str) -> None:
    """Alerts as the pipeline queues them (the live server has no ALERT_WEBHOOK_URL)."""
    with session_for(live_server.engine) as s:
        conn = s.connection()
        alerts.enqueue(
            conn, kind=alerts.LOW_BALANCE, payload={"user_id": 0, "email": email, "balance": "1.2", "threshold": "5"}
        )
        alerts.enqueue(
            conn,
            kind=alerts.KEY_BUDGET,
            payload={
                "user_id": 0,
                "email": email,
                "key_prefix": "sk_live_abcd",
                "key_name": "agent with a budget and a long name",
                "percent": 80,
                "spent": "8",
                "budget": "10",
                "period": "month",
            },
        )
        s.commit()


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> World:
    email = f"{UNUSED_PREFIX}user-{uuid.uuid4().hex[:8]}@example.com"
    key = live_server.user_with_key(email, credits=50)
    # A key with every control, so the API Keys page shows each of its columns filled.
    controlled = live_server.cli(
        "create-key", email, "--name", "agent with a budget and a long name", "--budget", "10",
        "--budget-period", "month", "--models", "openai/gpt-5,openai/gpt-5-mini,anthropic/claude-sonnet-4.5",
        "--expires", "2099-01-31T18:30:00",
    )  # fmt: skip
    assert controlled.returncode == 0, controlled.stderr
    # An invite, codes and alerts for the admin's Users and Usage pages.
    assert live_server.cli("invite", "--credits", "5").returncode == 0
    assert live_server.cli("codes", "create", "2", "--credits", "3").returncode == 0
    long_note = "Credits for the migration, see " + LONG_WORD
    assert live_server.cli("grant", email, "2.5", "--note", long_note).returncode == 0
    sdk = openai.OpenAI(base_url=live_server.api, api_key=key, max_retries=0, timeout=20)
    with flat_seed_prices(live_server):  # gpt-5 costs 3, held and charged
        ok = sdk.chat.completions.with_raw_response.create(
            model="openai/gpt-5", messages=[{"role": "user", "content": "hello there"}]
        )
        with pytest.raises(openai.APIStatusError) as failed:
            sdk.chat.completions.create(model="openai/gpt-5", messages=[{"role": "user", "content": "fail:500"}])
    usage = ok.parse().usage
    assert failed.value.status_code == 502
    _history(live_server)
    _alerts(live_server, email)
    with session_for(live_server.engine) as s:
        user_id = users.get_user_by_email(s, email=email).id
        admin_id = users.get_user_by_email(s, email=ADMIN[0]).id
    world = World(
        user_email=email,
        user_id=user_id,
        key=key,
        ok_id=ok.headers["x-request-id"],
        failed_id=failed.value.response.headers["x-request-id"],
        tokens=(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        admin_id=admin_id,
    )
    _wait_for_logs(live_server, user_id, 2)
    return world


def _wait_for_logs(live_server: LiveServer, user_id: int, count: int) -> None:
    """Request logs are written in batches, off the request path."""
    from store import usage

    deadline = time.monotonic() + 20
    while True:
        with session_for(live_server.engine) as s:
            if len(usage.logs_page(s, user_id=user_id)) >= count:
                return
        if time.monotonic() > deadline:
            raise AssertionError("the request logs were not written")
        time.sleep(0.3)


def _signed_in_state(browser: Browser, base_url: str, email: str, password: str) -> dict:
    """One sign-in per person for the whole module (sign-ins from one address are limited)."""
    context = browser.new_context(base_url=base_url, viewport=WIDE)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture(scope="module")
def user_state(browser, live_server, world) -> dict:
    return _signed_in_state(browser, live_server.base_url, world.user_email, USER_PASSWORD)


@pytest.fixture(scope="module")
def admin_state(browser, live_server, world) -> dict:
    return _signed_in_state(browser, live_server.base_url, *ADMIN)


@pytest.fixture
def open_tab(browser, live_server, user_state, admin_state):
    """`open_tab(who, size)`: a new page signed in as "user", "admin" or nobody."""
    contexts = []

    def opener(who: str | None, size: dict = WIDE, **options) -> Page:
        state = {"user": user_state, "admin": admin_state}.get(who or "")
        context = browser.new_context(
            base_url=live_server.base_url, viewport=size, storage_state=state, accept_downloads=True, **options
        )
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield opener
    for context in contexts:
        context.close()


# ---------------------------------------------------------------- every page at both widths

# name, who, path (`{user}`: the user's id), something that shows once the page has loaded
PAGES = [
    ("landing", None, "/", "link:Sign up"),
    ("sign-in", None, "/login", "button:Sign in"),
    ("sign-up", None, "/register", "button:Sign up"),
    ("overview", "user", "/", "text:Recent requests"),
    ("api-keys", "user", "/settings/api-keys", "table"),
    ("credits", "user", "/credits", "table"),
    ("logs", "user", "/logs", "table"),
    ("images", "user", "/images", "text:No image tasks yet"),
    ("account", "user", "/settings/account", "button:Change password"),
    ("admin-usage", "admin", "/admin/usage", "table"),
    ("admin-models", "admin", "/admin/models", "table"),
    ("admin-users", "admin", "/admin/users", "table"),
    ("admin-user", "admin", "/admin/users/{user}", "table"),
    ("admin-margin", "admin", "/admin/margin", "table"),
]

# Each table: is every header cell on screen inside the table's own scroll box (scrolling
# that box, never the page, where it is narrower than the table)? Returns what is not.
TABLE_CHECK = """(wide) => {
  const problems = [];
  document.querySelectorAll('table').forEach((table, t) => {
    const box = table.closest('.rt-ScrollAreaViewport');
    if (!box) { problems.push(`table ${t}: not inside its own scroll box`); return; }
    if (wide && box.scrollWidth > box.clientWidth) {
      problems.push(`table ${t}: ${box.scrollWidth - box.clientWidth}px of columns hidden at ${window.innerWidth}px`);
    }
    table.querySelectorAll('th').forEach((th, i) => {
      th.scrollIntoView({block: 'nearest', inline: 'nearest'});
      const cell = th.getBoundingClientRect(), view = box.getBoundingClientRect();
      if (window.scrollX !== 0) problems.push(`table ${t} column ${i}: the page scrolled sideways`);
      if (cell.left < view.left - 1 || cell.right > view.right + 1 || cell.right > window.innerWidth + 1) {
        problems.push(`table ${t} column ${i} ("${th.textContent}"): not reachable`);
      }
    });
    box.scrollLeft = 0;
  });
  return problems;
}"""


def loaded(page: Page, ready: str):
    kind, _, text = ready.partition(":")
    if kind == "table":
        return page.locator("table").first
    if kind == "text":
        return page.get_by_text(text).first
    return page.get_by_role(kind, name=text).first


def page_overflow(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("width", list(SIZES))
@pytest.mark.parametrize("name, who, path, ready", PAGES, ids=[p[0] for p in PAGES])
def test_every_page_fits_and_every_column_is_reachable(open_tab, world, name, who, path, ready, width):
    page = open_tab(who, SIZES[width])
    page.goto(path.format(user=world.user_id))
    expect(loaded(page, ready)).to_be_visible()
    if who == "admin":
        expect(page.locator("#upstream-banner")).to_have_count(0)  # this server has an upstream
    assert page_overflow(page) <= 0, f"{name} at {width}px scrolls sideways"
    if os.environ.get("SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"))
    assert page.evaluate(TABLE_CHECK, width == "1280") == []
    if who is not None:
        nav = page.get_by_role("navigation")
        if width == "390":  # the sidebar gives way to the Menu
            expect(nav).to_have_count(0)
            page.get_by_role("button", name="Menu").click()
            expect(nav.get_by_role("link", name="Overview")).to_be_visible()
            expect(nav.get_by_role("link", name="Usage")).to_have_count(1 if who == "admin" else 0)
            assert page_overflow(page) <= 0
            page.keyboard.press("Escape")
            expect(nav).to_have_count(0)
        else:
            expect(nav.get_by_role("link", name="Logs")).to_be_visible()
            expect(page.get_by_role("button", name="Menu")).to_have_count(0)


def test_on_a_phone_the_menu_opens_from_the_keyboard_and_its_links_navigate(open_tab):
    page = open_tab("user", PHONE)
    page.goto("/")
    expect(page.get_by_text("Recent requests")).to_be_visible()
    menu = page.get_by_role("button", name="Menu")
    menu.focus()
    page.keyboard.press("Enter")
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Logs")).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav.get_by_role("link", name="Logs").click()
    page.wait_for_url("**/logs")
    expect(page.get_by_role("heading", name="Logs", exact=True)).to_be_visible()
    expect(page.get_by_role("navigation")).to_have_count(0)  # the menu closed with the old page
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("navigation").get_by_role("link", name="Credits").click()
    expect(page.get_by_role("heading", name="Credits", exact=True)).to_be_visible()


# ---------------------------------------------------------------- the controls of issue 18


def _csv_of(page: Page, link) -> list[dict]:
    with page.expect_download() as download:
        link.click()
    saved = download.value
    assert saved.suggested_filename == "request-logs.csv"
    text = Path(saved.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    return list(csv.DictReader(io.StringIO(text)))


def test_export_csv_saves_a_file_of_the_rows_the_filter_shows(open_tab, world):
    page = open_tab("user")
    page.goto("/logs")
    expect(page.get_by_role("row").filter(has_text="provider_error")).to_be_visible()
    export = page.get_by_role("link", name="Export CSV")
    rows = _csv_of(page, export)
    assert urlsplit(page.url).path.rstrip("/") == "/logs"  # still on the page: a download, not a page of its own
    assert [(r["request_id"], r["status"], r["error_code"], r["credits"], r["model"]) for r in rows] == [
        (world.failed_id, "502", "provider_error", "0", "openai/gpt-5"),
        (world.ok_id, "200", "", "3", "openai/gpt-5"),
    ]
    assert (rows[1]["prompt_tokens"], rows[1]["completion_tokens"], rows[1]["total_tokens"]) == tuple(
        map(str, world.tokens)
    )

    page.get_by_label("Status", exact=True).click()
    page.get_by_role("option", name="Server errors (5xx)").click()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#logs-showing")).to_have_text("Showing requests with status 5xx.")
    expect(export).to_have_attribute("href", "/export/logs.csv?status=5xx")
    assert [r["request_id"] for r in _csv_of(page, export)] == [world.failed_id]


def test_log_details_and_a_bad_date_range(open_tab, world):
    page = open_tab("user")
    page.goto("/logs")
    failed = page.get_by_role("row").filter(has_text="provider_error")
    failed.get_by_role("button", name="Details").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(world.failed_id)
    expect(dialog).to_contain_text("provider_error")
    expect(dialog).to_contain_text("The upstream provider failed or timed out; the credits were refunded.")
    expect(dialog).not_to_contain_text("/ /")
    dialog.get_by_role("button", name="Close").click()
    rows = page.get_by_role("row").filter(has=page.get_by_role("button", name="Details"))
    ok = rows.filter(has_not_text="provider_error")
    ok.get_by_role("button", name="Details").click()
    prompt, completion, total = world.tokens
    expect(page.get_by_role("dialog")).to_contain_text(f"{prompt} prompt / {completion} completion / {total} total")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()

    page.get_by_label("From", exact=True).fill("2025-02-02")
    page.get_by_label("To", exact=True).fill("2025-02-01")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The 'from' date is after the 'to' date. The list still shows the last filter that worked."
    )
    expect(page.locator("#logs-showing")).to_have_text("Showing all requests.")  # the rows are the last good filter's
    expect(page.get_by_role("row").filter(has_text="provider_error")).to_be_visible()


@pytest.mark.parametrize("width", list(SIZES))
def test_credits_show_a_failed_call_as_one_refunded_line_and_a_long_note_wraps(open_tab, world, width):
    page = open_tab("user", SIZES[width])
    page.goto("/credits")
    expect(page.locator("#balance")).to_have_text("49.5 credits")  # 50 + 2.5 − 3; the failed call cost nothing
    refunded = page.get_by_role("row").filter(has_text="refunded")
    expect(refunded).to_have_count(1)
    expect(refunded).to_contain_text("Chat openai/gpt-5 · held 3, refunded")
    expect(refunded.get_by_role("cell").last).to_have_text("0")
    expect(page.get_by_role("row").filter(has_text="+3")).to_have_count(0)  # no "+3 refund" line of its own
    noted = page.get_by_role("row").filter(has_text="Credits for the migration")
    expect(noted.get_by_role("cell").last).to_have_text("+2.5")
    if width == "1280":  # the note wraps: Amount stays on screen, the table needs no scroll
        amount = noted.get_by_role("cell").last.bounding_box()
        assert amount is not None and amount["x"] + amount["width"] <= WIDE["width"]
    assert page.evaluate(TABLE_CHECK, width == "1280") == []
    assert page_overflow(page) <= 0


def test_models_add_starts_disabled_and_the_preview_says_what_saving_would(open_tab):
    page = open_tab("admin")
    page.goto("/admin/models")
    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("checkbox", name="Enabled (listed and callable through the API)")).not_to_be_checked()
    preview = dialog.get_by_role("status")
    expect(preview).to_have_text("Every call costs 0 credits (× n when a call asks for n images or choices).")
    dialog.get_by_label("Credit cost").fill("-1")
    expect(preview).to_have_text("No preview: credit cost must be from 0 to 1000000 credits.")
    dialog.get_by_label("Credit cost").fill("1")
    expect(preview).to_have_text("Every call costs 1 credit (× n when a call asks for n images or choices).")
    model_id = f"acme/layout-{uuid.uuid4().hex[:6]}"
    dialog.get_by_label("Model id").fill(model_id)
    dialog.get_by_label("Display name").fill("   ")
    dialog.get_by_label("Upstream id").fill("acme/x")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_have_text("Display name must be 1 to 200 characters.")
    dialog.get_by_label("Display name").fill("Layout test")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    row = page.get_by_role("row").filter(has_text=model_id).filter(has=page.get_by_role("button", name="Edit"))
    expect(row).to_contain_text("disabled")  # saved as it was shown: not public until turned on


def test_users_search_sort_pages_and_no_remove_admin_on_your_own_row(open_tab, live_server, world):
    with session_for(live_server.engine) as s:  # enough users for a second page
        fast = users.hash_password("paging password 1")
        for n in range(26):
            users.create_user(
                s, email=f"pager-{n:02d}-{uuid.uuid4().hex[:4]}@example.com", password="", password_hash=fast
            )
    page = open_tab("admin")
    page.goto("/admin/users")
    pages = page.locator("#users-page")
    expect(pages).to_contain_text("Page 1 of ")
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    expect(pages).to_contain_text("Page 2 of ")

    mine = page.get_by_role("row").filter(has_text=ADMIN[0])
    page.get_by_label("Search by email").fill(ADMIN[0])
    page.get_by_role("button", name="Search").click()
    expect(pages).to_have_text("Page 1 of 1 · 1 user")
    expect(mine).to_contain_text("you")
    expect(mine.get_by_role("button", name="Remove admin")).to_have_count(0)
    expect(mine.get_by_role("button", name="Credits…")).to_be_visible()

    page.get_by_label("Search by email").fill("pager-")
    page.get_by_role("button", name="Search").click()
    expect(pages).to_have_text("Page 1 of 2 · 26 users")
    page.get_by_label("Sort").click()
    page.get_by_role("option", name="Email A–Z").click()
    expect(page.get_by_role("row").nth(1)).to_contain_text("pager-00-")
    page.get_by_label("Sort").click()
    page.get_by_role("option", name="Email Z–A").click()
    expect(page.get_by_role("row").nth(1)).to_contain_text("pager-25-")


def test_a_users_own_page_and_a_grant_from_it(open_tab, world):
    page = open_tab("admin")
    page.goto("/admin/users")
    page.get_by_label("Search by email").fill(world.user_email)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=world.user_email).click()
    page.wait_for_url(f"**/admin/users/{world.user_id}")
    expect(page.locator("#user-balance")).to_have_text("49.5 credits")
    expect(page.locator("#user-requests").get_by_role("row").filter(has_text="provider_error")).to_be_visible()
    expect(page.locator("#user-keys").get_by_role("row").filter(has_text="e2e")).to_contain_text("active")

    page.get_by_role("button", name="Credits…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Amount").fill("1")
    dialog.get_by_label("Note").fill("n" * 2000)
    dialog.get_by_role("button", name="Apply").click()
    expect(dialog.get_by_role("alert")).to_have_text("The note is 2,000 characters; at most 500 fit.")
    expect(page.locator("#user-balance")).to_have_text("49.5 credits")
    dialog.get_by_label("Note").fill("layout test bonus")
    dialog.get_by_role("button", name="Apply").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("#user-balance")).to_have_text("50.5 credits")
    expect(page.locator("#user-ledger").get_by_role("row").filter(has_text="layout test bonus")).to_contain_text("+1")


def test_the_admin_usage_page_charts_and_lists_every_users_usage(open_tab, world):
    page = open_tab("admin")
    page.goto("/admin/usage")
    by_user = page.locator("#usage-by-user")
    reload_until(page, by_user.get_by_role("link", name=world.user_email))
    expect(by_user.locator(".recharts-surface")).to_be_visible()
    row = by_user.get_by_role("row").filter(has_text=world.user_email)
    expect(row.get_by_role("cell").nth(1)).to_have_text("2")  # requests
    expect(row.get_by_role("cell").nth(2)).to_have_text("1 50.0 %")  # errors
    expect(row.get_by_role("cell").nth(3)).to_have_text("3")  # credits
    page.get_by_label("Days").click()
    page.get_by_role("option", name="Last 7 days").click()
    expect(page.locator(".recharts-surface").first).to_be_visible()


def test_api_docs_render_with_every_other_host_unreachable(open_tab, live_server):
    page = open_tab(None)
    own = urlsplit(live_server.base_url).netloc
    blocked: list[str] = []

    def only_this_site(route):
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_site)
    page.goto("/api/v1/docs")
    expect(page.locator(".opblock-summary-path", has_text="/chat/completions").first).to_be_visible()
    expect(page.get_by_text("LLM API platform").first).to_be_visible()
    assert blocked == []
    script = httpx.get(f"{live_server.api}/docs/assets/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_the_new_key_warning_stays_inside_its_box_on_a_phone(open_tab):
    page = open_tab("user", PHONE)
    page.goto("/settings/api-keys")
    expect(page.locator("table")).to_be_visible()
    page.get_by_label("Name").fill("phone key")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_be_visible()
    key = shown.bounding_box()
    warning = page.get_by_role("alert").filter(has_text="Copy your new key").bounding_box()
    assert key is not None and warning is not None
    assert warning["x"] >= 0 and warning["x"] + warning["width"] <= PHONE["width"]
    assert key["x"] >= warning["x"] and key["x"] + key["width"] <= warning["x"] + warning["width"]
    assert page_overflow(page) <= 0
    page.get_by_role("button", name="I have saved it").click()
