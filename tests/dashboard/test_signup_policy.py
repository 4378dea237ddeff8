"""Who may sign up (SIGNUP_POLICY open | invite | closed), single-use invites made by the
CLI or the store, and a sign-up answer that never tells whether an email has an account."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from limits import RateLimitItemPerMinute
from sqlmodel import select

from dashboard.auth_routes import error_message, notice_message
from store import accounts, credits, invites
from store.db import session_for
from store.errors import Conflict, SignupRefused
from store.models import Invite, LedgerEntry, User, utcnow
from store.money import MICRO
from store.settings import get_settings

from ..conftest import TEST_SECRET
from ..factories import make_user
from .conftest import SIGNUP_CREDITS
from .test_auth_routes import serving

PASSWORD = "a fine password"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def policy(dash_settings, monkeypatch):
    """Set SIGNUP_POLICY for the routes (they read the settings as in production)."""

    def set_policy(value: str) -> None:
        monkeypatch.setenv("SIGNUP_POLICY", value)
        get_settings.cache_clear()

    return set_policy


@pytest.fixture
async def web(dash_settings):
    limiter = accounts.LoginLimiter(per_client=RateLimitItemPerMinute(100))
    async with serving(limiter, []) as client:
        yield client


def invite(engine, credits_: int = 0) -> str:
    with session_for(engine) as s:
        return invites.create_invite(s, secret_key=TEST_SECRET, credits_=credits_).token


def where(response) -> tuple[str, dict[str, str]]:
    assert response.status_code == 303, response.text
    url = urlsplit(response.headers["location"])
    return url.path, {k: v[0] for k, v in parse_qs(url.query).items()}


def users_in(engine) -> list[User]:
    with session_for(engine) as s:
        return list(s.exec(select(User).order_by(User.id)))


def invite_row(engine) -> Invite:
    with session_for(engine) as s:
        return s.exec(select(Invite)).one()


async def sign_up(web, email: str, **extra):
    return await web.post("/auth/register", data={"email": email, "password": PASSWORD, **extra})


async def test_closed_refuses_everyone_and_creates_nothing(web, engine, policy):
    policy("closed")
    token = invite(engine)
    for extra in ({}, {"invite": token}):
        assert where(await sign_up(web, "new@example.com", **extra)) == ("/register", {"error": "closed"})
    assert users_in(engine) == [] and invite_row(engine).used_at is None
    assert error_message("closed") == "Sign-up is closed on this platform."


async def test_invite_policy_needs_a_valid_unused_invite_and_uses_it_once(web, engine, policy):
    policy("invite")
    assert where(await sign_up(web, "a@example.com")) == ("/register", {"error": "invite"})
    assert where(await sign_up(web, "a@example.com", invite="not-a-real-token")) == ("/register", {"error": "invite"})
    token = invite(engine, credits_=5 * MICRO)
    assert where(await sign_up(web, "a@example.com", invite=token)) == ("/login", {"registered": "1"})
    [user] = users_in(engine)
    assert user.balance == (SIGNUP_CREDITS + 5) * MICRO
    row = invite_row(engine)
    assert row.used_at is not None and row.used_by_user_id == user.id
    with session_for(engine) as s:
        notes = [e.note for e in s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id))]
        assert notes == ["starting credits", "invite credits (5)"]
        assert credits.ledger_sum(s, user_id=user.id) == user.balance
    # used up: a second person with the same link is refused
    assert where(await sign_up(web, "b@example.com", invite=token)) == ("/register", {"error": "invite"})
    assert [u.email for u in users_in(engine)] == ["a@example.com"]
    assert (await web.post("/auth/login", data={"email": "a@example.com", "password": PASSWORD})).headers[
        "location"
    ] == "/"


async def test_a_taken_email_with_an_invite_gets_the_same_answer_and_keeps_the_invite(web, engine, policy):
    policy("invite")
    make_user(engine, email="taken@example.com")
    token = invite(engine)
    assert where(await sign_up(web, "taken@example.com", invite=token)) == ("/login", {"registered": "1"})
    assert invite_row(engine).used_at is None  # still good for its holder's own address
    assert where(await sign_up(web, "mine@example.com", invite=token)) == ("/login", {"registered": "1"})
    assert [u.email for u in users_in(engine)] == ["taken@example.com", "mine@example.com"]


async def test_an_expired_invite_is_refused(web, engine, policy):
    policy("invite")
    token = invite(engine)
    with session_for(engine) as s:
        s.execute(sa.update(Invite).values(expires_at=utcnow()))
        s.commit()
        assert invites.check_invite(s, secret_key=TEST_SECRET, token=token) is None
    assert where(await sign_up(web, "late@example.com", invite=token)) == ("/register", {"error": "invite"})
    assert users_in(engine) == []


async def test_a_bad_form_keeps_its_invite_for_the_next_try(web, engine, policy):
    policy("invite")
    token = invite(engine)
    assert where(await sign_up(web, "not-an-email", invite=token)) == ("/register", {"error": "email", "invite": token})
    response = await web.post("/auth/register", data={"email": "a@example.com", "password": "short", "invite": token})
    assert where(response) == ("/register", {"error": "password_short", "invite": token})
    assert invite_row(engine).used_at is None


async def test_open_sign_up_answers_new_and_taken_emails_alike(web, engine, policy):
    policy("open")
    make_user(engine, email="taken@example.com")
    answers = [await sign_up(web, email) for email in ("taken@example.com", "new@example.com")]
    assert [(a.status_code, a.headers["location"], a.content) for a in answers] == [
        (303, "/login?registered=1", b"")
    ] * 2
    assert notice_message({"registered": "1"}).startswith("Thanks. If you are new here, your account is ready")


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_two_sign_ups_with_one_invite_at_once_make_one_account(engine):
    with session_for(engine) as s:
        token = invites.create_invite(s, secret_key=TEST_SECRET).token

    def attempt(email: str) -> str:
        with session_for(engine) as s:
            try:
                accounts.register(
                    s, email=email, password=PASSWORD, policy="invite", invite_token=token, secret_key=TEST_SECRET
                )
                return "created"
            except SignupRefused as exc:
                return exc.reason

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(attempt, ["racer1@example.com", "racer2@example.com"]))
    assert sorted(outcomes) == ["created", "invite"]
    assert len(users_in(engine)) == 1


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_register_in_the_store_keeps_every_rule(session, engine):
    with pytest.raises(SignupRefused) as closed:
        accounts.register(session, email="x@example.com", password=PASSWORD, policy="closed")
    assert closed.value.reason == "closed"
    with pytest.raises(SignupRefused) as needs:
        accounts.register(session, email="x@example.com", password=PASSWORD, policy="invite")
    assert needs.value.reason == "invite"
    token = invites.create_invite(session, secret_key=TEST_SECRET, credits_=2 * MICRO).token
    make_user(engine, email="taken@example.com")
    with pytest.raises(Conflict):
        accounts.register(
            session,
            email="taken@example.com",
            password=PASSWORD,
            policy="invite",
            invite_token=token,
            secret_key=TEST_SECRET,
        )
    user = accounts.register(
        session, email="x@example.com", password=PASSWORD, policy="invite", invite_token=token, secret_key=TEST_SECRET
    )
    assert user.balance == 2 * MICRO


def test_the_cli_prints_an_invite_link_that_signs_up(tmp_path, database_url, engine):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "PYTHONPATH": str(ROOT),
        "PUBLIC_BASE_URL": "https://llm.example.com/",
        "PORT": "3000",
    }
    result = subprocess.run(
        [sys.executable, "-m", "store", "invite", "--credits", "7.5", "--days", "3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    summary, link = result.stdout.strip().splitlines()
    assert summary.startswith("invite 1: 7.5 credits, until ")
    url = urlsplit(link)
    assert (url.scheme, url.netloc, url.path) == ("https", "llm.example.com", "/register")
    token = parse_qs(url.query)["invite"][0]
    with session_for(engine) as s:
        row = s.exec(select(Invite)).one()
        assert row.credits == 7_500_000 and token not in repr(row)  # only its HMAC is kept
        assert invites.check_invite(s, secret_key=TEST_SECRET, token=token) is not None
        user = accounts.register(
            s, email="guest@example.com", password=PASSWORD, policy="invite", invite_token=token, secret_key=TEST_SECRET
        )
        assert user.balance == 7_500_000
    without_base = {k: v for k, v in env.items() if k != "PUBLIC_BASE_URL"}
    again = subprocess.run(
        [sys.executable, "-m", "store", "invite"],
        env=without_base,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.stdout.strip().splitlines()[-1].startswith("http://localhost:3000/register?invite=")
