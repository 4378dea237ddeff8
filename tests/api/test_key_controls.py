"""Key controls through the API: a key's budget (402 `key_budget_exceeded` while its user
still has credits, exact under a 40-way race), its model allow-list (404, and only its
models listed), its expiry (401), and `GET /key`'s `limit`, `limit_remaining` and
`limit_reset`; set by the CLI, run for real, and applied at the next call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from api.app import create_app
from store import credits, keys
from store.db import session_for
from store.models import ApiKey, LedgerEntry, utcnow
from store.money import MICRO

from ..conftest import TEST_SECRET, make_settings
from ..factories import auth, flat_seed_prices, make_user
from ..fakes.upstream import ServedUpstream
from ..serving import serve
from .test_chat import upstream_completion
from .test_errors import CHAT, assert_error, chat_body

ROOT = Path(__file__).resolve().parents[2]
both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def settings(database_url, tmp_path, chat_upstream):
    # 40 calls of one user at once: more than MAX_IN_FLIGHT_PER_USER lets through by default
    return make_settings(database_url, tmp_path, openrouter_base_url=chat_upstream.base_url, max_in_flight_per_user=64)


def key_with(engine, user, **controls) -> tuple[int, str]:
    with session_for(engine) as s:
        issued = keys.issue_key(
            s,
            secret_key=TEST_SECRET,
            user_id=user.id,
            name="budgeted",
            rate_limit_per_minute=0,
            controls=keys.KeyControls(**controls),
        )
    return issued.key.id, issued.secret


def key_row(engine, key_id: int) -> ApiKey:
    with session_for(engine) as s:
        return s.exec(select(ApiKey).where(ApiKey.id == key_id)).one()


@both_databases
async def test_forty_calls_at_once_against_a_key_budget_admit_exactly_what_it_covers(client, engine, chat_upstream):
    flat_seed_prices(engine)  # gpt-5: 3 credits a call, held and charged alike
    chat_upstream.add(json=upstream_completion(), reusable=True)
    user = make_user(engine, credits=1000)
    key_id, secret = key_with(engine, user, budget=30 * MICRO, budget_period="month")
    responses = await asyncio.gather(*(client.post(CHAT, json=chat_body(), headers=auth(secret)) for _ in range(40)))
    assert Counter(r.status_code for r in responses) == {200: 10, 402: 30}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 402} == {"key_budget_exceeded"}
    assert len(chat_upstream.requests) == 10
    assert key_row(engine, key_id).budget_spent == 30 * MICRO
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 970 * MICRO
        assert credits.ledger_sum(s, user_id=user.id) == 970 * MICRO
        charges = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id, LedgerEntry.kind == "charge"))
        assert len(list(charges)) == 10


async def test_the_budget_refuses_before_the_upstream_while_the_user_has_credits(client, engine, chat_upstream):
    flat_seed_prices(engine)
    chat_upstream.add(json=upstream_completion(), reusable=True)
    user = make_user(engine, credits=100)
    _, secret = key_with(engine, user, budget=5 * MICRO)
    assert (await client.post(CHAT, json=chat_body(), headers=auth(secret))).status_code == 200
    refused = await client.post(CHAT, json=chat_body(), headers=auth(secret))
    assert_error(refused, 402, "key_budget_exceeded")
    assert len(chat_upstream.requests) == 1
    # the cheaper model still fits what is left of the budget (1 credit of 2)
    assert (await client.post(CHAT, json=chat_body("openai/gpt-5-mini"), headers=auth(secret))).status_code == 200


async def test_a_settled_call_leaves_only_its_charge_on_the_key(app, client, engine, chat_upstream):
    # The shipped per-token price: the hold is the call's bound, the charge its usage.
    chat_upstream.add(json=upstream_completion(), reusable=True)
    user = make_user(engine, credits=100)
    key_id, secret = key_with(engine, user, budget=50 * MICRO, budget_period="day")
    for _ in range(2):
        assert (await client.post(CHAT, json=chat_body(), headers=auth(secret))).status_code == 200
    await app.state.runtime.quiesce()  # the settlements are written after the answers
    with session_for(engine) as s:
        rows = list(s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id)))
        charged = -sum(r.amount for r in rows if r.kind in ("charge", "settle"))
        assert [r.kind for r in rows].count("settle") == 2
        assert credits.balance(s, user_id=user.id) == 100 * MICRO - charged
    assert 0 < charged < 50 * MICRO
    assert key_row(engine, key_id).budget_spent == charged
    body = (await client.get("/api/v1/key", headers=auth(secret))).json()["data"]
    assert (body["limit"], body["limit_reset"]) == (50, "daily")
    assert round(body["limit_remaining"] * MICRO) == 50 * MICRO - charged


async def test_get_key_reports_the_budget_as_openrouter_does(client, engine):
    user = make_user(engine, credits=42)
    key_id, secret = key_with(engine, user, budget=10 * MICRO, budget_period="week")
    with session_for(engine) as s:
        credits.debit_for_request(s, user_id=user.id, cost=2_500_000, ref="r1", model="openai/gpt-5", key_id=key_id)
    r = await client.get("/api/v1/key", headers=auth(secret))
    assert r.status_code == 200
    assert r.json()["credit_balance"] == 39.5
    assert r.json()["data"] == {
        "label": "budgeted",
        "usage": 2.5,
        "limit": 10,
        "limit_remaining": 7.5,
        "limit_reset": "weekly",
        "is_free_tier": False,
        "rate_limit": {"requests": -1, "interval": "1m"},
    }
    _, lifelong = key_with(engine, user, budget=3 * MICRO)
    data = (await client.get("/api/v1/key", headers=auth(lifelong))).json()["data"]
    assert (data["limit"], data["limit_remaining"], data["limit_reset"]) == (3, 3, None)


async def test_the_allow_list_hides_and_refuses_other_models(client, engine, chat_upstream):
    flat_seed_prices(engine)
    chat_upstream.add(json=upstream_completion(), reusable=True)
    user = make_user(engine, credits=100)
    _, secret = key_with(engine, user, models=("openai/gpt-5-mini",))
    listed = (await client.get("/api/v1/models", headers=auth(secret))).json()["data"]
    assert [m["id"] for m in listed] == ["openai/gpt-5-mini"]
    assert_error(await client.get("/api/v1/models/openai/gpt-5", headers=auth(secret)), 404, "model_not_available")
    assert_error(await client.post(CHAT, json=chat_body(), headers=auth(secret)), 404, "model_not_available")
    assert (await client.post(CHAT, json=chat_body("openai/gpt-5-mini"), headers=auth(secret))).status_code == 200
    assert len(chat_upstream.requests) == 1
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 99 * MICRO


async def test_an_expired_key_is_invalid_even_while_cached(database_url, tmp_path, engine, chat_upstream):
    flat_seed_prices(engine)
    chat_upstream.add(json=upstream_completion(), reusable=True)
    settings = make_settings(database_url, tmp_path, openrouter_base_url=chat_upstream.base_url, key_cache_ttl_s=600)
    user = make_user(engine, credits=100)
    key_id, secret = key_with(engine, user)
    app = create_app(settings)
    async with app.state.runtime.running():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            assert (await client.post(CHAT, json=chat_body(), headers=auth(secret))).status_code == 200
            with session_for(engine) as s:  # as another process would: no event reaches this one
                s.execute(
                    sa.update(ApiKey).where(ApiKey.id == key_id).values(expires_at=utcnow() - timedelta(seconds=1))
                )
                s.commit()
            assert_error(await client.post(CHAT, json=chat_body(), headers=auth(secret)), 401, "invalid_api_key")
            assert_error(await client.get("/api/v1/key", headers=auth(secret)), 401, "invalid_api_key")
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 97 * MICRO


# ---------------------------------------------------------------- the CLI, run for real


def cli(database_url, tmp_path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "store", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def chat(base, key, model="openai/gpt-5"):
    return httpx.post(
        f"{base}/api/v1/chat/completions",
        timeout=10,
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


@both_databases
def test_controls_set_by_the_cli_apply_to_the_next_call_of_a_running_server(database_url, tmp_path, engine):
    flat_seed_prices(engine)
    make_user(engine, credits=100, email="owner@example.com")
    created = cli(
        database_url,
        tmp_path,
        "create-key",
        "owner@example.com",
        "--name",
        "agent",
        "--budget",
        "7.5",
        "--budget-period",
        "month",
        "--models",
        "openai/gpt-5,openai/gpt-5-mini",
        "--expires",
        "2099-01-31",
    )
    assert created.returncode == 0, created.stderr
    *_, summary, secret = created.stdout.strip().splitlines()
    assert summary.startswith(f"key {secret[:12]}…{secret[-4:]}\tagent\t60/min\tbudget 7.5 per month (spent 0)\t")
    assert "\tmodels openai/gpt-5,openai/gpt-5-mini\texpires 2099-01-31T00:00:00+00:00 for owner@example.com" in summary
    with ServedUpstream() as upstream:
        settings = make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url, key_cache_ttl_s=600)
        with serve(create_app(settings)) as (base, _):
            assert [chat(base, secret).status_code for _ in range(3)] == [200, 200, 402]  # 3 + 3, then 1.5 left
            assert chat(base, secret).json()["error"]["code"] == "key_budget_exceeded"
            assert chat(base, secret, "anthropic/claude-sonnet-4.5").status_code == 404
            # The key is cached for 10 minutes; the edits apply at the next call all the same.
            edited = cli(database_url, tmp_path, "edit-key", secret[:12], "--budget", "20", "--models", "none")
            assert edited.returncode == 0, edited.stderr
            assert edited.stdout.startswith(f"updated {secret[:12]}…{secret[-4:]}\tagent\t60/min\tbudget 20 per month")
            assert chat(base, secret, "anthropic/claude-sonnet-4.5").status_code == 200  # 4 more: 10 of 20
            assert cli(database_url, tmp_path, "edit-key", secret[:12], "--models", "openai/gpt-5-mini").returncode == 0
            r = chat(base, secret)
            assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_available")
            with session_for(engine) as s:  # the CLI refuses a past expiry; set one as time would
                s.execute(sa.update(ApiKey).values(expires_at=utcnow() - timedelta(days=1)))
                s.commit()
            r = chat(base, secret, "openai/gpt-5-mini")
            assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_api_key")
    with session_for(engine) as s:
        key = s.exec(select(ApiKey)).one()
        assert key.budget_spent == 10 * MICRO
        user_id = key.user_id
        assert credits.balance(s, user_id=user_id) == 90 * MICRO == credits.ledger_sum(s, user_id=user_id)


@both_databases
async def test_a_budget_set_elsewhere_holds_from_the_next_call_of_a_cached_key(
    database_url, tmp_path, engine, chat_upstream
):
    flat_seed_prices(engine)
    chat_upstream.add(json=upstream_completion(), reusable=True)
    settings = make_settings(database_url, tmp_path, openrouter_base_url=chat_upstream.base_url, key_cache_ttl_s=600)
    user = make_user(engine, credits=100)
    key_id, secret = key_with(engine, user)  # no budget: its record (cached) says so
    app = create_app(settings)
    async with app.state.runtime.running():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            assert (await client.post(CHAT, json=chat_body(), headers=auth(secret))).status_code == 200
            with session_for(engine) as s:  # as another process would: no event reaches this one
                s.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(budget=4 * MICRO))
                s.commit()
            statuses = [(await client.post(CHAT, json=chat_body(), headers=auth(secret))).status_code for _ in range(2)]
    assert statuses == [200, 402]  # 3 of the new 4, then 3 more would pass it
    assert key_row(engine, key_id).budget_spent == 3 * MICRO  # counted from when it was set
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 94 * MICRO
