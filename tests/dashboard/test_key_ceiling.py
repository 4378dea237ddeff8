"""A user gives their own keys a rate limit up to their ceiling (issue 15, "Fair share"):
MAX_KEY_RPM unless an admin set theirs; unlimited (0) only without a ceiling; the
operator's CLI is not bound by it."""

from __future__ import annotations

import pytest
from limits import RateLimitItemPerMinute
from sqlmodel import select

from store import accounts, keys, users
from store.db import session_for
from store.errors import InvalidInput
from store.models import CLEAR, ApiKey

from ..conftest import TEST_SECRET
from ..factories import make_user
from .conftest import cookie_for
from .test_auth_routes import serving


@pytest.fixture
async def web(dash_settings):
    async with serving(accounts.LoginLimiter(per_client=RateLimitItemPerMinute(50)), []) as client:
        yield client


async def create(web, engine, user, rpm: str):
    return await web.post(
        "/auth/keys",
        data={"name": "mine", "rate_limit": rpm},
        headers={"cookie": cookie_for(engine, user), "origin": "http://platform.test"},
    )


def key_limits(engine, user) -> list[int]:
    with session_for(engine) as s:
        return [k.rate_limit_per_minute for k in s.exec(select(ApiKey).where(ApiKey.user_id == user.id))]


async def test_the_platform_ceiling_bounds_a_users_own_keys(web, engine, dash_settings):
    assert dash_settings.max_key_rpm == 600
    user = make_user(engine, credits=1)
    for rpm in ("601", "0"):
        response = await create(web, engine, user, rpm)
        assert response.status_code == 400
        assert response.json() == {"error": "Rate limit must be from 1 to 600 per minute for this account."}
    assert (await create(web, engine, user, "600")).status_code == 201
    assert key_limits(engine, user) == [600]


async def test_an_admin_sets_a_users_ceiling_and_zero_allows_unlimited(web, engine):
    user = make_user(engine, credits=1)
    with session_for(engine) as s:
        users.set_user_flags(s, user_id=user.id, max_key_rpm=20)
    assert (await create(web, engine, user, "21")).status_code == 400
    assert (await create(web, engine, user, "20")).status_code == 201
    with session_for(engine) as s:
        users.set_user_flags(s, user_id=user.id, max_key_rpm=0)
    assert (await create(web, engine, user, "0")).status_code == 201
    with session_for(engine) as s:
        users.set_user_flags(s, user_id=user.id, max_key_rpm=CLEAR)
    assert (await create(web, engine, user, "0")).status_code == 400  # the platform's 600 again
    assert key_limits(engine, user) == [20, 0]


def test_the_operators_own_keys_are_not_bound_and_a_bad_ceiling_is_refused(engine):
    user = make_user(engine, credits=1)
    with session_for(engine) as s:
        users.set_user_flags(s, user_id=user.id, max_key_rpm=5)
        keys.issue_key(s, secret_key=TEST_SECRET, user_id=user.id, name="cli", rate_limit_per_minute=0)
        with pytest.raises(InvalidInput, match="max key rpm must be a whole number from 0 to 1,000,000"):
            users.set_user_flags(s, user_id=user.id, max_key_rpm=-1)
    assert key_limits(engine, user) == [0]
