"""The margin report (store.margin) and the admin's Margin page that shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dashboard.pages.admin_margin import MarginAdminState
from dashboard.state import NOT_ADMIN
from store import logs
from store.db import session_for
from store.margin import MarginRow, margin_by_model_day, usd_text
from store.models import utcnow

from ..factories import make_user
from .conftest import cookie_for, redirect_target, state_for, toast_says
from .test_store_usage import log

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
NOW = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)


def day_of_calls(user_id: int, other_id: int, now: datetime) -> list[dict]:
    """Two days of calls; upstream costs in micro-USD (80 = $0.00008, 8,000 micro-credits at 100/USD)."""
    today, yesterday = now.replace(hour=0, minute=30), now.replace(hour=0, minute=30) - timedelta(minutes=60)
    return [
        log(user_id, 1, at=today, cost="0.010044", prompt_tokens=1000, completion_tokens=500, upstream_cost=80),
        log(other_id, 2, at=now, cost="0.02", prompt_tokens=2000, completion_tokens=1000),  # no reported cost
        log(user_id, 3, at=now, cost=0, status=502, upstream_cost=500),  # failed: refunded, not counted
        log(user_id, 4, at=yesterday, cost=10, model="google/nano-banana-pro", upstream_cost=40_000),
        log(user_id, 5, at=yesterday, cost=-10, model="google/nano-banana-pro", status=502, method="TASK"),  # refund
        log(user_id, 6, at=yesterday, cost=1, model="openai/gpt-5-mini", upstream_cost=1_000_000),
        log(user_id, 7, at=now - timedelta(days=8), cost=5, upstream_cost=1),  # before the 7 days asked for
        log(user_id, 8, at=now, cost=2, model=None, status=401),  # refused before any model was known
    ]


@both_databases
def test_margin_per_model_and_utc_day_counts_successful_calls_and_image_refunds(session, engine):
    user, other = make_user(engine), make_user(engine)
    logs.write_request_logs(session, day_of_calls(user.id, other.id, NOW))
    rows = margin_by_model_day(session, credits_per_usd=Decimal(100), days=7, now=NOW)
    assert rows == [
        MarginRow(
            day=NOW.date(),
            model="openai/gpt-5",
            requests=2,
            prompt_tokens=3000,
            completion_tokens=1500,
            charged=30_044,
            upstream_usd=80,
            unpriced=1,
            margin=22_044,
        ),
        MarginRow(
            day=NOW.date() - timedelta(days=1),
            model="google/nano-banana-pro",
            requests=1,
            prompt_tokens=0,
            completion_tokens=0,
            charged=0,
            upstream_usd=40_000,
            unpriced=0,
            margin=-4_000_000,
        ),
        MarginRow(
            day=NOW.date() - timedelta(days=1),
            model="openai/gpt-5-mini",
            requests=1,
            prompt_tokens=0,
            completion_tokens=0,
            charged=1_000_000,
            upstream_usd=1_000_000,
            unpriced=0,
            margin=-99_000_000,
        ),
    ]
    # The conversion rate is a setting; one day is today only.
    [today] = margin_by_model_day(session, credits_per_usd=Decimal("1.5"), days=1, now=NOW)
    assert (today.model, today.margin) == ("openai/gpt-5", 30_044 - 120)


def test_usd_text_has_six_places():
    assert (usd_text(80), usd_text(1_234_567), usd_text(0), usd_text(-5)) == (
        "0.000080",
        "1.234567",
        "0.000000",
        "-0.000005",
    )


async def test_margin_page_shows_the_report_to_an_admin(admin, engine):
    user = make_user(engine)
    with session_for(engine) as s:
        logs.write_request_logs(s, day_of_calls(user.id, admin.id, utcnow()))
    state = state_for(MarginAdminState, cookie=cookie_for(engine, admin), path="/admin/margin")
    assert await state.load() is None
    assert [
        (
            r.model,
            r.requests,
            r.prompt_tokens,
            r.completion_tokens,
            r.charged,
            r.upstream_usd,
            r.margin,
            r.negative,
            r.unpriced,
        )
        for r in state.rows
    ] == [
        ("openai/gpt-5", "2", "3,000", "1,500", "0.030044", "0.000080", "+0.022044", False, 1),
        ("google/nano-banana-pro", "1", "0", "0", "0", "0.040000", "-4", True, 0),
        ("openai/gpt-5-mini", "1", "0", "0", "1", "1.000000", "-99", True, 0),
        ("openai/gpt-5", "1", "0", "0", "5", "0.000001", "+4.9999", False, 0),  # 8 days back
    ]
    assert state.rows[0].day == utcnow().date().isoformat() and state.days == "30"
    assert state.totals == {
        "requests": "5",
        "charged": "6.030044",
        "upstream_usd": "1.040081",
        "margin": "-97.978056",
        "unpriced": "1",
        "rate": "100",
    }
    await state.set_days("7")
    assert state.days == "7" and state.totals["requests"] == "4" and len(state.rows) == 3


async def test_margin_page_refuses_a_bad_period_and_keeps_the_report(admin, engine):
    state = state_for(MarginAdminState, cookie=cookie_for(engine, admin))
    await state.load()
    assert toast_says(await state.set_days("3660"), "Choose 7, 30 or 90 days.")
    assert state.days == "30"


async def test_margin_page_gives_a_plain_user_nothing(user, engine):
    with session_for(engine) as s:
        logs.write_request_logs(s, day_of_calls(user.id, user.id, utcnow()))
    state = state_for(MarginAdminState, cookie=cookie_for(engine, user), path="/admin/margin")
    assert await state.load() is None and state.rows == [] and state.totals == {}
    assert toast_says(await state.set_days("7"), NOT_ADMIN) and state.rows == [] and state.days == "30"
    signed_out = state_for(MarginAdminState, cookie="", path="/admin/margin")
    assert redirect_target(await signed_out.set_days("7")) == "/login?next=%2Fadmin%2Fmargin"
