"""The backend routes: sign up, sign in, sign out (HttpOnly session cookie), limits and waits,
password change, CSV export."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from limits import RateLimitItemPerMinute
from sqlmodel import select

from dashboard.auth import COOKIE_NAME
from dashboard.auth_routes import build_router, error_message
from dashboard.pages.api_keys import KeysState
from store import accounts, credits, logs, sessions
from store.db import session_for
from store.models import User, UserSession

from ..factories import make_user
from .conftest import SIGNUP_CREDITS, cookie_for, expire_sessions, redirect_target, state_for
from .test_store_usage import log

PASSWORD = "a fine password"
NEW_PASSWORD = "another fine password"


@pytest.fixture
def limiter():
    return accounts.LoginLimiter(per_client=RateLimitItemPerMinute(8), per_email_failures=RateLimitItemPerMinute(3))


@pytest.fixture
def delays() -> list[float]:
    """The waits the routes asked for, in order (recorded instead of slept)."""
    return []


@asynccontextmanager
async def serving(limiter: accounts.LoginLimiter, delays: list[float]):
    """The routes on an app of their own, called from one client address."""

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    app = FastAPI()
    app.include_router(build_router(limiter, sleep=sleep))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
        yield client


@pytest.fixture
async def web(dash_settings, limiter, delays):
    async with serving(limiter, delays) as client:
        yield client


def error_of(response: httpx.Response) -> tuple[str, str | None]:
    """(path, ?error=) of a redirect."""
    assert response.status_code == 303, response.text
    url = urlsplit(response.headers["location"])
    return url.path, parse_qs(url.query).get("error", [None])[0]


def users_in(engine) -> list[User]:
    with session_for(engine) as s:
        return list(s.exec(select(User)))


async def test_sign_up_creates_a_plain_user_with_signup_credits_then_signs_in(web, engine):
    response = await web.post("/auth/register", data={"email": "New@Example.com", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/login?registered=1"
    assert "set-cookie" not in response.headers  # no session: a taken email gets this same answer
    [user] = users_in(engine)
    # SIGNUP_CREDITS is in credits; the store keeps micro-credits
    assert (user.email, user.is_admin, user.balance) == ("new@example.com", False, SIGNUP_CREDITS * 1_000_000)
    with session_for(engine) as s:
        assert credits.ledger_sum(s, user_id=user.id) == SIGNUP_CREDITS * 1_000_000
        assert s.exec(select(UserSession)).all() == []
    signed_in = await web.post("/auth/login", data={"email": "new@example.com", "password": PASSWORD})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=604800"):
        assert attribute.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here; https sets Secure


async def test_sign_up_cannot_ask_to_be_admin(web, engine):
    await web.post(
        "/auth/register", data={"email": "sneaky@example.com", "password": PASSWORD, "is_admin": "true", "admin": "1"}
    )
    assert [u.is_admin for u in users_in(engine)] == [False]


@pytest.mark.parametrize(
    "form, code",
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password_short"),
        ({"email": "a@example.com", "password": "x" * 73}, "password_long"),
        ({"email": "a@example.com", "password": "é" * 37}, "password_long"),  # 74 bytes
        ({"email": "a@example.com"}, "password_short"),
    ],
)
async def test_bad_sign_up_says_why_and_creates_nothing(web, engine, form, code):
    response = await web.post("/auth/register", data=form)
    assert error_of(response) == ("/register", code)
    assert "set-cookie" not in response.headers and users_in(engine) == []


async def test_a_taken_email_gets_the_answer_a_new_one_gets_and_changes_nothing(web, engine):
    owner = make_user(engine, email="taken@example.com")
    taken = await web.post("/auth/register", data={"email": "TAKEN@example.com", "password": PASSWORD})
    fresh = await web.post("/auth/register", data={"email": "fresh@example.com", "password": PASSWORD})
    for response in (taken, fresh):
        assert response.status_code == 303 and "set-cookie" not in response.headers
    assert (taken.headers["location"], taken.content) == (fresh.headers["location"], fresh.content)
    assert sorted(h for h in taken.headers if h != "content-length") == sorted(
        h for h in fresh.headers if h != "content-length"
    )
    [stored] = [u for u in users_in(engine) if u.email == "taken@example.com"]
    assert (stored.id, stored.password_hash, stored.balance) == (owner.id, owner.password_hash, owner.balance)
    # the owner's own password still signs in; the stranger's does not
    assert (await web.post("/auth/login", data={"email": "taken@example.com", "password": PASSWORD})).headers[
        "location"
    ] == "/login?error=credentials"


async def test_sign_in_and_go_back_where_you_were(web, engine):
    make_user(engine, email="me@example.com", password=PASSWORD)
    response = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD, "next": "/logs"})
    assert response.status_code == 303 and response.headers["location"] == "/logs"
    assert COOKIE_NAME in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "logs",
        "/auth/logout",
        "/\t/evil.example",
        "/\n/evil.example",
    ],
)
async def test_sign_in_never_redirects_off_site(web, engine, target):
    make_user(engine, email="me@example.com", password=PASSWORD)
    response = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD, "next": target})
    assert response.headers["location"] == "/"


@pytest.mark.parametrize(
    "email, password", [("me@example.com", "wrong password"), ("nobody@example.com", PASSWORD), ("", "")]
)
async def test_wrong_credentials(web, engine, email, password):
    make_user(engine, email="me@example.com", password=PASSWORD)
    response = await web.post("/auth/login", data={"email": email, "password": password})
    assert error_of(response) == ("/login", "credentials")
    assert "set-cookie" not in response.headers


async def test_failed_sign_ins_are_limited_per_email(web, engine):
    make_user(engine, email="me@example.com", password=PASSWORD)
    for _ in range(3):
        await web.post("/auth/login", data={"email": "me@example.com", "password": "wrong password"})
    # Now even the right password is refused for a while.
    response = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})
    assert error_of(response) == ("/login", "limited")


async def test_attempts_are_limited_per_client(web, engine):
    for i in range(8):
        response = await web.post("/auth/login", data={"email": f"u{i}@example.com", "password": "whatever1"})
        assert error_of(response)[1] == "credentials"
    response = await web.post("/auth/register", data={"email": "fresh@example.com", "password": PASSWORD})
    assert error_of(response) == ("/register", "limited") and users_in(engine) == []


async def test_a_success_clears_the_failures_of_that_email(web, engine, limiter):
    make_user(engine, email="me@example.com", password=PASSWORD)
    for _ in range(2):
        await web.post("/auth/login", data={"email": "me@example.com", "password": "wrong password"})
    assert (await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})).headers[
        "location"
    ] == "/"
    for _ in range(2):
        await web.post("/auth/login", data={"email": "me@example.com", "password": "wrong password"})
    assert (await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})).headers[
        "location"
    ] == "/"


@pytest.mark.real_bcrypt
async def test_bcrypt_runs_off_the_event_loop(web, engine):
    make_user(engine, email="me@example.com", password=PASSWORD)  # a real, slow hash
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick():
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    response = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})
    took = time.perf_counter() - started
    done.set()
    await ticker
    assert response.headers["location"] == "/"
    assert took > 0.05 and max(gaps) < took / 2  # the loop kept ticking while bcrypt ran


async def test_sign_out_deletes_the_session_and_the_cookie(web, engine):
    user = make_user(engine)
    cookie = cookie_for(engine, user)
    response = await web.post("/auth/logout", headers={"cookie": cookie})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert (
        f'{COOKIE_NAME}=""' in response.headers["set-cookie"] and "max-age=0" in response.headers["set-cookie"].lower()
    )
    with session_for(engine) as s:
        assert s.exec(select(UserSession)).all() == []


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register", "/auth/logout", "/auth/password"])
async def test_forms_posted_from_another_site_are_refused(web, engine, path):
    user = make_user(engine, email="me@example.com", password=PASSWORD)
    response = await web.post(
        path,
        data={"email": "x@example.com", "password": PASSWORD},
        headers={"origin": "https://evil.example", "cookie": cookie_for(engine, user)},
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers
    assert len(users_in(engine)) == 1
    same_site = await web.post(
        "/auth/login",
        data={"email": "me@example.com", "password": PASSWORD},
        headers={"origin": "http://platform.test"},
    )
    assert same_site.status_code == 303 and same_site.headers["location"] == "/"


async def test_csv_export_needs_a_session_and_has_only_your_filtered_rows(web, engine):
    user, other = make_user(engine), make_user(engine)
    with session_for(engine) as s:
        logs.write_request_logs(
            s, [log(user.id, 1, status=200), log(user.id, 2, status=502), log(other.id, 1, status=502)]
        )
    assert (await web.get("/export/logs.csv")).status_code == 401
    assert (await web.get("/export/logs.csv", headers={"cookie": f"{COOKIE_NAME}=forged"})).status_code == 401
    response = await web.get("/export/logs.csv?status=5xx", headers={"cookie": cookie_for(engine, user)})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    lines = response.text.strip().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[1] == f"req-{user.id}-2"
    bad = await web.get("/export/logs.csv?since=soon", headers={"cookie": cookie_for(engine, user)})
    assert bad.status_code == 400 and "date" in bad.text


# ---------------------------------------------------------------- slowed, then refused


def wait_of(response: httpx.Response) -> str | None:
    return parse_qs(urlsplit(response.headers["location"]).query).get("wait", [None])[0]


async def test_failures_for_one_email_are_slowed_then_refused(dash_settings, engine, delays):
    make_user(engine, email="me@example.com", password=PASSWORD)
    limiter = accounts.LoginLimiter(per_email_failures=RateLimitItemPerMinute(6, 15))
    async with serving(limiter, delays) as web:
        for _ in range(6):
            response = await web.post("/auth/login", data={"email": "me@example.com", "password": "wrong password"})
            assert error_of(response) == ("/login", "credentials")
        assert delays == [0.25, 0.5]  # before the 5th and 6th check: 4 and 5 failures so far
        # Past the limit even the right password is refused, at once, saying how long to wait.
        response = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})
    assert error_of(response) == ("/login", "limited") and "set-cookie" not in response.headers
    assert wait_of(response) == "15" and delays == [0.25, 0.5]
    assert error_message("limited", wait_of(response)) == "Too many attempts. Try again in 15 minutes."


async def test_failures_from_one_client_are_slowed_up_to_the_cap_then_refused(dash_settings, engine, delays):
    for i in range(14):
        make_user(engine, email=f"u{i}@example.com", password=PASSWORD)
    limiter = accounts.LoginLimiter(per_client=RateLimitItemPerMinute(14, 15))
    async with serving(limiter, delays) as web:
        for i in range(14):  # one failure for each of 14 emails
            response = await web.post("/auth/login", data={"email": f"u{i}@example.com", "password": "wrong one"})
            assert error_of(response)[1] == "credentials"
        assert delays == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.0, 2.0]
        assert delays == [accounts.failure_delay(n) for n in range(4, 14)]
        response = await web.post("/auth/login", data={"email": "u0@example.com", "password": PASSWORD})
    assert error_of(response) == ("/login", "limited") and len(delays) == 10


async def test_the_wait_comes_before_the_check_so_a_right_password_waits_too(web, engine, delays, limiter):
    for i in range(5):
        make_user(engine, email=f"u{i}@example.com", password=PASSWORD)
    for i in range(4):
        await web.post("/auth/login", data={"email": f"u{i}@example.com", "password": "wrong one"})
    assert delays == []
    response = await web.post("/auth/login", data={"email": "u4@example.com", "password": PASSWORD})
    assert response.headers["location"] == "/" and delays == [0.25]


async def test_an_unknown_email_and_a_wrong_password_get_the_same_answers(dash_settings, engine):
    """Same redirects, messages, waits and refusals: nothing tells whether the email has an account."""
    make_user(engine, email="me@example.com", password=PASSWORD)

    async def answers(email: str) -> tuple[list, list[float]]:
        delays: list[float] = []
        limiter = accounts.LoginLimiter(per_email_failures=RateLimitItemPerMinute(6, 15))
        seen = []
        async with serving(limiter, delays) as web:
            for _ in range(8):
                r = await web.post("/auth/login", data={"email": email, "password": "wrong password"})
                seen.append(
                    (
                        r.status_code,
                        r.headers["location"],
                        r.text,
                        "set-cookie" in r.headers,
                        error_message(*error_of(r)[1:], wait_of(r)),
                    )
                )
        return seen, delays

    known, unknown = await answers("me@example.com"), await answers("nobody@example.com")
    assert known == unknown
    assert [a[4] for a in known[0]] == ["Wrong email or password."] * 6 + [
        "Too many attempts. Try again in 15 minutes."
    ] * 2
    assert known[1] == [0.25, 0.5]


# ---------------------------------------------------------------- sessions ended on the server


def cookie_from(response: httpx.Response) -> str:
    return f"{COOKIE_NAME}={response.cookies[COOKIE_NAME]}"


async def session_works(web: httpx.AsyncClient, cookie: str) -> bool:
    """Whether `cookie` still signs someone in: asked of a page's event handler and of a route."""
    by_handler = redirect_target(await state_for(KeysState, cookie=cookie, path="/settings/api-keys").load()) is None
    by_route = (await web.get("/export/logs.csv", headers={"cookie": cookie})).status_code == 200
    assert by_handler == by_route
    return by_handler


async def test_after_sign_out_the_old_cookie_is_refused(web, engine):
    user = make_user(engine)
    cookie, other_browser = cookie_for(engine, user), cookie_for(engine, user)
    assert await session_works(web, cookie)
    await web.post("/auth/logout", headers={"cookie": cookie})
    assert not await session_works(web, cookie)  # a copy of the cookie kept somewhere is worth nothing
    assert await session_works(web, other_browser)  # plain sign-out ends only this browser's session


async def test_sign_out_everywhere_ends_every_session_of_that_user(web, engine):
    user, other = make_user(engine), make_user(engine)
    here, elsewhere, theirs = cookie_for(engine, user), cookie_for(engine, user), cookie_for(engine, other)
    response = await web.post("/auth/logout", data={"everywhere": "1"}, headers={"cookie": here})
    assert response.status_code == 303 and "max-age=0" in response.headers["set-cookie"].lower()
    assert not await session_works(web, here) and not await session_works(web, elsewhere)
    assert await session_works(web, theirs)


async def test_a_password_change_ends_every_session_and_signs_this_browser_in_again(web, engine):
    user = make_user(engine, email="me@example.com", password=PASSWORD)
    here, elsewhere = cookie_for(engine, user), cookie_for(engine, user)
    response = await web.post(
        "/auth/password", headers={"cookie": here}, data={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 303 and response.headers["location"] == "/settings/account?changed=1"
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=604800"):
        assert attribute.lower() in response.headers["set-cookie"].lower()
    fresh = cookie_from(response)
    assert not await session_works(web, elsewhere)  # refused at once
    assert not await session_works(web, here)
    assert await session_works(web, fresh)
    with session_for(engine) as s:
        assert len(sessions.active_sessions(s, user_id=user.id)) == 1
    web.cookies.clear()
    old = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})
    assert error_of(old) == ("/login", "credentials")
    new = await web.post("/auth/login", data={"email": "me@example.com", "password": NEW_PASSWORD})
    assert new.headers["location"] == "/" and COOKIE_NAME in new.headers["set-cookie"]


def password_hash(engine, user) -> str:
    with session_for(engine) as s:
        return s.get(User, user.id).password_hash


@pytest.mark.parametrize(
    "current, new, code",
    [
        ("wrong password", NEW_PASSWORD, "current"),
        (PASSWORD, "short", "password_short"),
        (PASSWORD, "x" * 73, "password_long"),
        (PASSWORD, PASSWORD, "same"),
        ("wrong password", PASSWORD, "current"),  # "same" must not confirm a guess
    ],
)
async def test_a_refused_password_change_says_why_and_changes_nothing(web, engine, current, new, code):
    user = make_user(engine, password=PASSWORD)
    here, elsewhere = cookie_for(engine, user), cookie_for(engine, user)
    before = password_hash(engine, user)
    response = await web.post(
        "/auth/password", headers={"cookie": here}, data={"current_password": current, "new_password": new}
    )
    assert error_of(response) == ("/settings/account", code) and "set-cookie" not in response.headers
    assert password_hash(engine, user) == before
    assert await session_works(web, here) and await session_works(web, elsewhere)


async def test_wrong_current_passwords_count_as_failed_sign_ins(web, engine, limiter):
    user = make_user(engine, email="me@example.com", password=PASSWORD)
    cookie = cookie_for(engine, user)
    for _ in range(3):
        await web.post(
            "/auth/password",
            headers={"cookie": cookie},
            data={"current_password": "a guess", "new_password": NEW_PASSWORD},
        )
    response = await web.post(
        "/auth/password", headers={"cookie": cookie}, data={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert error_of(response) == ("/settings/account", "limited")
    assert error_of(await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})) == (
        "/login",
        "limited",
    )


@pytest.mark.parametrize("expired", [False, True])
async def test_backend_routes_refuse_a_missing_or_expired_session(web, engine, expired):
    user = make_user(engine, password=PASSWORD)
    cookie = ""
    if expired:
        cookie = cookie_for(engine, user)
        expire_sessions(engine, user)
    elsewhere = cookie_for(engine, user)  # a live session in another browser
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(user.id, 1)])
    before = password_hash(engine, user)
    response = await web.post(
        "/auth/password", headers={"cookie": cookie}, data={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fsettings%2Faccount"
    assert password_hash(engine, user) == before and "set-cookie" not in response.headers
    assert (await web.get("/export/logs.csv", headers={"cookie": cookie})).status_code == 401
    await web.post("/auth/logout", data={"everywhere": "1"}, headers={"cookie": cookie})
    assert await session_works(web, elsewhere)


@pytest.mark.parametrize(
    "query, message",
    [
        ("key=9223372036854775808", "choose a key from the list"),  # 2**63: past a BIGINT
        ("key=99999999999999999999999", "choose a key from the list"),
        ("status=%C2%B2%C2%B2%C2%B2", "status must be 2xx, 4xx, 5xx, errors or a code from 100 to 599"),  # "²²²"
    ],
)
async def test_an_export_filter_out_of_range_is_a_400_with_a_message(web, engine, query, message):
    user = make_user(engine)
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(user.id, 1)])
    response = await web.get(f"/export/logs.csv?{query}", headers={"cookie": cookie_for(engine, user)})
    assert (response.status_code, response.text) == (400, message)


async def test_an_unreachable_limiter_store_refuses_sign_in_with_503_never_skips_it(dash_settings, engine, delays):
    """Redis down: sign-in, sign-up and password change answer 503 Retry-After at once (the
    limit is never skipped) and nothing is created."""
    from ..fakes.upstream import free_port

    make_user(engine, email="owner@example.com", password=PASSWORD)
    down = accounts.LoginLimiter(f"redis://127.0.0.1:{free_port()}/0")
    async with serving(down, delays) as client:
        for path, form in (
            ("/auth/login", {"email": "owner@example.com", "password": PASSWORD}),
            ("/auth/register", {"email": "new@example.com", "password": PASSWORD}),
        ):
            r = await client.post(path, data=form)
            assert (r.status_code, r.headers["retry-after"]) == (503, "1")
            assert r.text == "Sign-in is briefly unavailable; try again in a moment."
    with session_for(engine) as s:
        assert s.exec(select(UserSession)).all() == []
        assert s.exec(select(User).where(User.email == "new@example.com")).first() is None
