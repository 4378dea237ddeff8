"""GET /api/v1/models/{id} (OpenAI's `models.retrieve`) and OpenRouter's fields of GET /api/v1/key."""

from __future__ import annotations

import pytest
from sqlmodel import select

from store import credits as ledger
from store import registry
from store.db import session_for
from store.models import RequestLog
from store.money import MICRO

from ..conftest import flush_logs
from ..factories import auth, make_key, make_user

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"message": response.json()["error"]["message"], "type": code, "code": code}}


async def test_each_listed_model_is_retrieved_as_the_list_shows_it(client, engine):
    key = make_key(engine, make_user(engine))
    listed = (await client.get("/api/v1/models", headers=auth(key))).json()["data"]
    assert {m["category"] for m in listed} == {"chat", "image", "embedding"}
    for model in listed:
        r = await client.get(f"/api/v1/models/{model['id']}", headers=auth(key))  # ids carry a "/"
        assert r.status_code == 200, r.text
        assert r.json() == model
        assert isinstance(model["created"], int) and model["created"] > 1_700_000_000


async def test_retrieve_shows_the_seeded_embedding_model(client, engine):
    key = make_key(engine, make_user(engine))
    r = await client.get("/api/v1/models/openai/text-embedding-3-small", headers=auth(key))
    body = r.json()
    assert body.pop("created") > 0
    assert body == {
        "id": "openai/text-embedding-3-small",
        "object": "model",
        "owned_by": "openrouter",
        "display_name": "Text Embedding 3 Small",
        "category": "embedding",
        "capabilities": ["embedding"],
        "credit_cost": 0,
        "context_length": 8192,
        "pricing": {"mode": "per_token", "request": 0, "prompt": 2, "completion": 0, "cache_read": 2, "cache_write": 2},
    }


@pytest.mark.parametrize("model_id", ["acme/nope", "openai", "openai/gpt-5/extra", "OPENAI/GPT-5"])
async def test_unknown_model_is_404_model_not_available(client, engine, model_id):
    key = make_key(engine, make_user(engine))
    assert_error(await client.get(f"/api/v1/models/{model_id}", headers=auth(key)), 404, "model_not_available")


async def test_disabled_model_is_404_and_shows_again_once_enabled(client, engine, session):
    key = make_key(engine, make_user(engine))
    registry.set_model(session, actor="test", model_id="openai/gpt-5-mini", enabled=False)
    assert_error(await client.get("/api/v1/models/openai/gpt-5-mini", headers=auth(key)), 404, "model_not_available")
    registry.set_model(session, actor="test", model_id="openai/gpt-5-mini", enabled=True)
    assert (await client.get("/api/v1/models/openai/gpt-5-mini", headers=auth(key))).status_code == 200


async def test_retrieve_needs_a_key_but_not_the_rate_limit(app, client, engine):
    assert_error(await client.get("/api/v1/models/openai/gpt-5"), 401, "invalid_api_key")
    key = make_key(engine, make_user(engine), rpm=1)
    for _ in range(3):  # a read: never uses up the limit
        r = await client.get("/api/v1/models/openai/gpt-5", headers=auth(key))
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining-requests"] == "1"
    flush_logs(app)
    with session_for(engine) as s:
        rows = s.exec(select(RequestLog).where(RequestLog.endpoint == "/api/v1/models/openai/gpt-5")).all()
    seen = [(row.status, row.model, row.credit_cost) for row in rows]
    assert seen == [(401, None, 0)] + [(200, "openai/gpt-5", 0)] * 3


async def test_wrong_method_on_a_model_is_405(client, engine):
    key = make_key(engine, make_user(engine))
    assert_error(await client.delete("/api/v1/models/openai/gpt-5", headers=auth(key)), 405, "method_not_allowed")


@BOTH
async def test_key_carries_openrouters_fields_from_the_ledger(client, engine):
    """`usage` is the net of the user's requests (every key), `limit_remaining` the balance,
    `limit` their sum: what was granted."""
    user = make_user(engine, credits=10)
    secret = make_key(engine, user, rpm=0, name="agent")
    make_key(engine, user, name="other")
    with session_for(engine) as s:
        ledger.debit_for_request(s, user_id=user.id, cost=3 * MICRO, ref="r1", model="openai/gpt-5")
        ledger.debit_for_request(s, user_id=user.id, cost=2 * MICRO, ref="r2", model="openai/gpt-5")
        ledger.settle(s, ref="r2", cost=MICRO // 2)  # 1.5 back
        ledger.debit_for_request(s, user_id=user.id, cost=1 * MICRO, ref="r3", model="openai/gpt-5")
        ledger.refund(s, ref="r3")
        ledger.grant(s, user_id=user.id, amount=MICRO // 4, note="bonus")
    r = await client.get("/api/v1/key", headers=auth(secret))
    assert r.status_code == 200
    body = r.json()
    # used: 3 + 0.5 + 0 = 3.5; balance 10 + 0.25 - 3.5 = 6.75; granted 10.25
    assert body["credit_balance"] == 6.75
    assert body["data"] == {
        "label": "agent",
        "usage": 3.5,
        "limit": 10.25,
        "limit_remaining": 6.75,
        "is_free_tier": False,
        "rate_limit": {"requests": -1, "interval": "1m"},
    }
