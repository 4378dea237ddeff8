"""POST /auth/keys with a key's controls: budget, period, models and expiry from the API Keys
form; empty fields set none, a bad one is a 400 with its reason and creates nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from limits import RateLimitItemPerMinute
from sqlmodel import select

from store import accounts, budgets, keys
from store.db import session_for
from store.models import ApiKey

from .conftest import cookie_for
from .test_auth_routes import serving


@pytest.fixture
async def web(dash_settings):
    async with serving(accounts.LoginLimiter(per_client=RateLimitItemPerMinute(50)), []) as client:
        yield client


async def create(web, cookie, **form):
    return await web.post("/auth/keys", data=form, headers={"cookie": cookie, "origin": "http://platform.test"})


def stored(engine) -> list[ApiKey]:
    with session_for(engine) as s:
        return list(s.exec(select(ApiKey)))


async def test_a_key_with_every_control(web, user, engine):
    r = await create(
        web,
        cookie_for(engine, user),
        name="agent",
        rate_limit="30",
        budget="12.5",
        budget_period="month",
        models="openai/gpt-5-mini, openai/gpt-5",
        expires="2099-01-31",
    )
    assert r.status_code == 201, r.text
    [key] = stored(engine)
    assert (key.name, key.rate_limit_per_minute, key.budget, key.budget_period) == ("agent", 30, 12_500_000, "month")
    assert keys.models_of(key) == ("openai/gpt-5-mini", "openai/gpt-5")
    assert budgets.aware(key.expires_at) == datetime(2099, 1, 31, tzinfo=UTC)


async def test_empty_control_fields_set_none(web, user, engine):
    r = await create(
        web, cookie_for(engine, user), name="plain", rate_limit="10", budget="", budget_period="", models="", expires=""
    )
    assert r.status_code == 201
    [key] = stored(engine)
    assert (key.budget, key.budget_period, key.allowed_models, key.expires_at) == (None, None, None, None)


@pytest.mark.parametrize(
    "form, message",
    [
        ({"budget": "0"}, "Budget must be more than 0 and at most 1,000,000,000 credits."),
        ({"budget": "ten"}, "Budget must be a number such as 2.5."),
        ({"budget_period": "week"}, "A budget period needs a budget."),
        ({"budget": "5", "budget_period": "fortnight"}, "Budget period must be day, week, month or none."),
        ({"models": "openai/gpt-5,made/up"}, "Unknown model 'made/up'; `python -m store models` lists them."),
        ({"expires": "2001-01-01"}, "Expiry must be in the future."),
        ({"expires": "soon"}, "Expiry 'soon' is not an ISO date or time such as 2027-01-31."),
    ],
)
async def test_a_bad_control_is_a_400_and_creates_nothing(web, user, engine, form, message):
    r = await create(web, cookie_for(engine, user), name="k", rate_limit="10", **form)
    assert (r.status_code, r.json()) == (400, {"error": message})
    assert stored(engine) == []
