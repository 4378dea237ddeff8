"""The backend routes: sign up, sign in, sign out (HttpOnly session cookie), limits, CSV export."""

from __future__ import annotations

import asyncio
import functools
import time
from urllib.parse import parse_qs, urlsplit

import bcrypt
import httpx
import pytest
from fastapi import FastAPI
from limits import RateLimitItemPerMinute
from sqlmodel import select

from dashboard.auth import COOKIE_NAME
from dashboard.auth_routes import build_router
from store import accounts, credits, logs
from store.db import session_for
from store.models import User, UserSession

from ..factories import make_user
from .conftest import SIGNUP_CREDITS, cookie_for
from .test_store_usage import log

PASSWORD = "a fine password"


@pytest.fixture(autouse=True)
def fast_bcrypt(request, monkeypatch):
    """bcrypt at its lowest cost: these tests are about the routes, not the hash's strength
    (the one about the event loop keeps the real cost)."""
    if request.node.get_closest_marker("real_bcrypt") is None:
        monkeypatch.setattr(bcrypt, "gensalt", functools.partial(bcrypt.gensalt, rounds=4))


@pytest.fixture
def limiter():
    return accounts.LoginLimiter(per_client=RateLimitItemPerMinute(8), per_email_failures=RateLimitItemPerMinute(3))


@pytest.fixture
async def web(dash_settings, limiter):
    app = FastAPI()
    app.include_router(build_router(limiter))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
        yield client


def error_of(response: httpx.Response) -> tuple[str, str | None]:
    """(path, ?error=) of a redirect."""
    assert response.status_code == 303, response.text
    url = urlsplit(response.headers["location"])
    return url.path, parse_qs(url.query).get("error", [None])[0]


def users_in(engine) -> list[User]:
    with session_for(engine) as s:
        return list(s.exec(select(User)))


async def test_sign_up_creates_a_plain_user_with_signup_credits_and_signs_in(web, engine):
    response = await web.post("/auth/register", data={"email": "New@Example.com", "password": PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=604800"):
        assert attribute.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here; https sets Secure
    [user] = users_in(engine)
    assert (user.email, user.is_admin, user.balance) == ("new@example.com", False, SIGNUP_CREDITS)
    with session_for(engine) as s:
        assert credits.ledger_sum(s, user_id=user.id) == SIGNUP_CREDITS
        assert len(s.exec(select(UserSession)).all()) == 1


async def test_sign_up_cannot_ask_to_be_admin(web, engine):
    await web.post("/auth/register", data={"email": "sneaky@example.com", "password": PASSWORD,
                                           "is_admin": "true", "admin": "1"})
    assert [u.is_admin for u in users_in(engine)] == [False]


@pytest.mark.parametrize("form, code", [
    ({"email": "not-an-email", "password": PASSWORD}, "email"),
    ({"email": "a@example.com", "password": "short"}, "password_short"),
    ({"email": "a@example.com", "password": "x" * 73}, "password_long"),
    ({"email": "a@example.com", "password": "é" * 37}, "password_long"),  # 74 bytes
    ({"email": "a@example.com"}, "password_short"),
])
async def test_bad_sign_up_says_why_and_creates_nothing(web, engine, form, code):
    response = await web.post("/auth/register", data=form)
    assert error_of(response) == ("/register", code)
    assert "set-cookie" not in response.headers and users_in(engine) == []


async def test_taken_email(web, engine):
    make_user(engine, email="taken@example.com")
    response = await web.post("/auth/register", data={"email": "TAKEN@example.com", "password": PASSWORD})
    assert error_of(response) == ("/register", "taken")


async def test_sign_in_and_go_back_where_you_were(web, engine):
    make_user(engine, email="me@example.com", password=PASSWORD)
    response = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD,
                                                   "next": "/logs"})
    assert response.status_code == 303 and response.headers["location"] == "/logs"
    assert COOKIE_NAME in response.headers["set-cookie"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "logs",
                                    "/auth/logout", "/\t/evil.example", "/\n/evil.example"])
async def test_sign_in_never_redirects_off_site(web, engine, target):
    make_user(engine, email="me@example.com", password=PASSWORD)
    response = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD, "next": target})
    assert response.headers["location"] == "/"


@pytest.mark.parametrize("email, password", [("me@example.com", "wrong password"),
                                             ("nobody@example.com", PASSWORD), ("", "")])
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
        "location"] == "/"
    for _ in range(2):
        await web.post("/auth/login", data={"email": "me@example.com", "password": "wrong password"})
    assert (await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD})).headers[
        "location"] == "/"


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
    assert f'{COOKIE_NAME}=""' in response.headers["set-cookie"] and "max-age=0" in response.headers[
        "set-cookie"].lower()
    with session_for(engine) as s:
        assert s.exec(select(UserSession)).all() == []


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register", "/auth/logout"])
async def test_forms_posted_from_another_site_are_refused(web, engine, path):
    user = make_user(engine, email="me@example.com", password=PASSWORD)
    response = await web.post(path, data={"email": "x@example.com", "password": PASSWORD},
                              headers={"origin": "https://evil.example", "cookie": cookie_for(engine, user)})
    assert response.status_code == 403 and "set-cookie" not in response.headers
    assert len(users_in(engine)) == 1
    same_site = await web.post("/auth/login", data={"email": "me@example.com", "password": PASSWORD},
                               headers={"origin": "http://platform.test"})
    assert same_site.status_code == 303 and same_site.headers["location"] == "/"


async def test_csv_export_needs_a_session_and_has_only_your_filtered_rows(web, engine):
    user, other = make_user(engine), make_user(engine)
    with session_for(engine) as s:
        logs.write_request_logs(s, [log(user.id, 1, status=200), log(user.id, 2, status=502),
                                    log(other.id, 1, status=502)])
    assert (await web.get("/export/logs.csv")).status_code == 401
    assert (await web.get("/export/logs.csv", headers={"cookie": f"{COOKIE_NAME}=forged"})).status_code == 401
    response = await web.get("/export/logs.csv?status=5xx", headers={"cookie": cookie_for(engine, user)})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    lines = response.text.strip().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[1] == f"req-{user.id}-2"
    bad = await web.get("/export/logs.csv?since=soon", headers={"cookie": cookie_for(engine, user)})
    assert bad.status_code == 400 and "date" in bad.text
