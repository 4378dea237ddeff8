"""A NUL (or another control character) in an email or a key name is the caller's error,
answered as such, never a 500; nothing is written (issue 15, the lows)."""

from __future__ import annotations

import pytest
from limits import RateLimitItemPerMinute
from sqlmodel import select

from store import accounts
from store.db import session_for
from store.models import ApiKey

from ..factories import make_user
from .conftest import cookie_for
from .test_auth_routes import error_of, serving, users_in


@pytest.fixture
async def web(dash_settings):
    async with serving(accounts.LoginLimiter(per_client=RateLimitItemPerMinute(50)), []) as client:
        yield client


@pytest.mark.parametrize("email", ["ann\x00@example.com", "ann@exam\x00ple.com", "ann@example.com\x07"])
async def test_a_control_character_in_a_sign_up_email_is_refused(web, engine, email):
    response = await web.post("/auth/register", data={"email": email, "password": "a fine password"})
    assert error_of(response) == ("/register", "email")
    assert users_in(engine) == []


@pytest.mark.parametrize("name", ["lap\x00top", "tab\x1bname"])
async def test_a_control_character_in_a_key_name_is_a_400(web, engine, name):
    user = make_user(engine, credits=1)
    response = await web.post(
        "/auth/keys",
        data={"name": name, "rate_limit": "10"},
        headers={"cookie": cookie_for(engine, user), "origin": "http://platform.test"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Key name must not contain control characters."}
    with session_for(engine) as s:
        assert list(s.exec(select(ApiKey))) == []
