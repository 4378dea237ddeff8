"""Chat completions against a scripted upstream over real sockets (tests/fakes/scripted.py):
the chat hop's aiohttp client is exercised as it ships."""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson
import pytest
from sqlmodel import select

from store import credits
from store.db import session_for
from store.models import LedgerEntry, RequestLog
from store.money import MICRO

from ..conftest import TEST_SECRET, flush_logs, make_settings
from ..factories import auth, credits_of, flat_seed_prices, make_key, make_user
from ..fakes.scripted import ScriptedUpstream
from ..fakes.upstream import free_port
from .test_errors import CHAT, assert_error, chat_body


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


@pytest.fixture
def upstream():
    with ScriptedUpstream() as scripted:
        yield scripted


@pytest.fixture
def settings(database_url, tmp_path, upstream):
    return make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url, upstream_timeout_s=0.5)


def upstream_completion(model: str = "openai/gpt-5-upstream") -> dict:
    return {
        "id": "gen-123",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


@pytest.fixture
def user_key(engine):
    user = make_user(engine, credits=10)
    return user, make_key(engine, user)


def balance(engine, user) -> Decimal:
    """The balance in credits (exact), checked against the ledger sum."""
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id)
    return credits_of(engine, user)


def log_row(engine, app, request_id: str) -> RequestLog:
    flush_logs(app)
    with session_for(engine) as s:
        return s.exec(select(RequestLog).where(RequestLog.request_id == request_id)).one()


async def test_completion_rewrites_model_both_ways_and_charges_once(client, app, engine, user_key, upstream, session):
    from store import registry

    registry.set_model(session, actor="test", model_id="openai/gpt-5", upstream_id="openai/gpt-5-upstream")
    session.rollback()  # end its read: on SQLite a transaction holds the write lock the debit needs (store.db)
    upstream.add(json=upstream_completion())
    user, secret = user_key
    r = await client.post(CHAT, json=chat_body(temperature=0.5), headers=auth(secret))
    assert r.status_code == 200
    assert r.json()["model"] == "openai/gpt-5"
    assert r.json()["choices"][0]["message"]["content"] == "Hello!"
    sent = upstream.requests[0]
    # the caller sent no max_tokens: the model's cap (max_output_tokens, default 16384) goes up
    assert sent.json() == {**chat_body(temperature=0.5), "model": "openai/gpt-5-upstream", "max_tokens": 16384}
    assert sent.headers["authorization"] == "Bearer test-openrouter-key"
    assert balance(engine, user) == 7
    row = log_row(engine, app, r.headers["x-request-id"])
    assert (row.status, row.error_code, row.model, row.credit_cost, row.stream) == (
        200,
        None,
        "openai/gpt-5",
        3 * MICRO,
        False,
    )
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens, row.upstream_id) == (5, 2, 7, "gen-123")
    assert (row.user_id, row.key_prefix, row.endpoint, row.method) == (user.id, secret[:12], CHAT, "POST")


async def test_upstream_500_is_502_and_refunded(client, app, engine, user_key, upstream):
    upstream.add(status=500, json={"error": "boom"})
    user, secret = user_key
    r = await client.post(CHAT, json=chat_body(), headers=auth(secret))
    assert_error(r, 502, "provider_error")
    assert balance(engine, user) == 10
    with session_for(engine) as s:
        kinds = [e.kind for e in s.exec(select(LedgerEntry).where(LedgerEntry.ref == r.headers["x-request-id"]))]
    assert sorted(kinds) == ["charge", "refund"]
    row = log_row(engine, app, r.headers["x-request-id"])
    assert (row.status, row.error_code, row.credit_cost) == (502, "provider_error", 0)


async def test_upstream_timeout_is_504_and_refunded(client, engine, user_key, upstream):
    upstream.add(stall=3)  # past UPSTREAM_TIMEOUT_S (0.5 s here)
    user, secret = user_key
    assert_error(await client.post(CHAT, json=chat_body(), headers=auth(secret)), 504, "provider_error")
    assert balance(engine, user) == 10


async def test_upstream_unreachable_is_502_and_refunded(settings, engine, user_key):
    from api.app import create_app

    app = create_app(settings.model_copy(update={"openrouter_base_url": f"http://127.0.0.1:{free_port()}/v1"}))
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post(CHAT, json=chat_body(), headers=auth(user_key[1]))
    assert_error(r, 502, "provider_error")
    assert balance(engine, user_key[0]) == 10


async def test_upstream_malformed_json_is_502_and_refunded(client, engine, user_key, upstream):
    upstream.add(body=b"{not json")
    user, secret = user_key
    assert_error(await client.post(CHAT, json=chat_body(), headers=auth(secret)), 502, "provider_error")
    assert balance(engine, user) == 10


async def test_upstream_500_is_retried_once_when_configured(settings, engine, user_key, upstream):
    from api.app import create_app

    upstream.add(status=503)
    upstream.add(json=upstream_completion())
    app = create_app(settings.model_copy(update={"upstream_retries": 1}))
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post(CHAT, json=chat_body(), headers=auth(user_key[1]))
    assert r.status_code == 200
    assert len(upstream.requests) == 2
    assert balance(engine, user_key[0]) == 7


def sse(*events: dict | str) -> list[bytes]:
    out = []
    for event in events:
        payload = event if isinstance(event, str) else orjson.dumps(event).decode()
        out.append(f"data: {payload}\n\n".encode())
    return out


def chunk(content: str, model: str = "openai/gpt-5", **extra) -> dict:
    return {
        "id": "gen-s1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}}],
        **extra,
    }


async def test_stream_relays_chunks_in_order_and_ends_with_done(client, app, engine, user_key, upstream):
    usage = {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    events = sse(chunk("Hel"), chunk("lo"), chunk("!"), chunk("", usage=usage), "[DONE]")
    # split one event across two network chunks to prove events are reassembled
    pieces = [events[0][:10], events[0][10:], *events[1:]]
    upstream.add(chunks=pieces)
    user, secret = user_key
    r = await client.post(CHAT, json=chat_body(stream=True), headers=auth(secret))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    data_lines = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert data_lines[-1] == "[DONE]"
    parsed = [orjson.loads(d) for d in data_lines[:-1]]
    assert [p["choices"][0]["delta"]["content"] for p in parsed] == ["Hel", "lo", "!", ""]
    assert {p["model"] for p in parsed} == {"openai/gpt-5"}
    sent = upstream.requests[0].json()
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})  # always asked for usage
    assert balance(engine, user) == 7
    row = log_row(engine, app, r.headers["x-request-id"])
    assert (row.stream, row.status, row.credit_cost, row.total_tokens) == (True, 200, 3 * MICRO, 6)


async def test_finished_stream_without_done_from_upstream_still_ends_with_done(client, engine, user_key, upstream):
    finished = {"index": 0, "delta": {}, "finish_reason": "stop"}
    upstream.add(chunks=sse(chunk("a"), chunk("", choices=[finished])))
    r = await client.post(CHAT, json=chat_body(stream=True), headers=auth(user_key[1]))
    assert r.text.rstrip().endswith("data: [DONE]")
    assert balance(engine, user_key[0]) == 7  # delivered: the charge stands


async def test_stream_that_ends_unfinished_is_an_error_event_and_refunded(client, engine, user_key, upstream):
    upstream.add(chunks=sse(chunk("a")))
    r = await client.post(CHAT, json=chat_body(stream=True), headers=auth(user_key[1]))
    last = r.text.rstrip().splitlines()[-1]
    assert orjson.loads(last[6:])["error"]["code"] == "provider_error"
    assert balance(engine, user_key[0]) == 10


async def test_stream_upstream_error_status_is_502_and_refunded(client, engine, user_key, upstream):
    upstream.add(status=500, body=b"oops")
    user, secret = user_key
    assert_error(await client.post(CHAT, json=chat_body(stream=True), headers=auth(secret)), 502, "provider_error")
    assert balance(engine, user) == 10


async def test_stream_cut_by_upstream_ends_with_error_event_and_refund(client, app, engine, user_key, upstream):
    upstream.add(chunks=sse(chunk("partial")), cut=True)  # the connection drops mid-stream
    user, secret = user_key
    r = await client.post(CHAT, json=chat_body(stream=True), headers=auth(secret))
    assert r.status_code == 200
    last = [line for line in r.text.split("\n") if line.startswith("data: ")][-1]
    assert orjson.loads(last[6:])["error"]["code"] == "provider_error"
    assert balance(engine, user) == 10
    row = log_row(engine, app, r.headers["x-request-id"])
    assert (row.status, row.error_code, row.credit_cost) == (200, "provider_error", 0)


async def test_models_lists_enabled_models_with_seed_fields(client, user_key, session):
    from store import registry

    registry.set_model(session, actor="test", model_id="openai/gpt-5-mini", enabled=False)
    r = await client.get("/api/v1/models", headers=auth(user_key[1]))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert "openai/gpt-5-mini" not in ids
    assert sorted(ids) == [
        "anthropic/claude-sonnet-4.5",
        "google/nano-banana-pro",
        "openai/gpt-5",
        "openai/text-embedding-3-small",
    ]
    gpt5 = next(m for m in body["data"] if m["id"] == "openai/gpt-5")
    assert isinstance(gpt5.pop("created"), int)
    assert gpt5 == {
        "id": "openai/gpt-5",
        "object": "model",
        "owned_by": "openrouter",
        "display_name": "GPT-5",
        "category": "chat",
        "capabilities": ["chat", "reasoning"],
        "credit_cost": 3,
        "context_length": 400_000,
        "pricing": {
            "mode": "per_request",
            "request": 3,
            "prompt": 0,
            "completion": 0,
            "cache_read": 0,
            "cache_write": 0,
        },
    }
    assert type(gpt5["credit_cost"]) is int  # the JSON number 3, as in the seed, not 3.0


async def test_registry_edit_shows_at_once(client, user_key, session):
    from store import registry

    assert (await client.get("/api/v1/models", headers=auth(user_key[1]))).status_code == 200  # cache filled
    registry.set_model(session, actor="test", model_id="openai/gpt-5", credit_cost=9 * MICRO)
    body = (await client.get("/api/v1/models", headers=auth(user_key[1]))).json()
    assert next(m for m in body["data"] if m["id"] == "openai/gpt-5")["credit_cost"] == 9


async def test_key_endpoint_describes_key_and_balance(client, engine):
    user = make_user(engine, credits=42)
    secret = make_key(engine, user, rpm=7, name="laptop")
    r = await client.get("/api/v1/key", headers=auth(secret))
    assert r.status_code == 200
    assert r.json() == {
        "object": "api_key",
        "name": "laptop",
        "prefix": secret[:12],
        "rate_limit_per_minute": 7,
        "credit_balance": 42,
        "data": {
            "label": "laptop",
            "usage": 0,
            "limit": 42,
            "limit_remaining": 42,
            "is_free_tier": False,
            "rate_limit": {"requests": 7, "interval": "1m"},
        },
    }


async def test_every_request_gets_one_log_row_rejected_ones_too(client, app, engine, user_key):
    ids = []
    for path, headers in (("/api/v1/models", auth(user_key[1])), ("/api/v1/models", {}), ("/api/v1/nope", {})):
        ids.append((await client.get(path, headers=headers)).headers["x-request-id"])
    flush_logs(app)
    with session_for(engine) as s:
        rows = {r.request_id: r for r in s.exec(select(RequestLog))}
    assert [rows[i].status for i in ids] == [200, 401, 404]
    assert [rows[i].error_code for i in ids] == [None, "invalid_api_key", "not_found"]
    assert len(set(ids)) == 3


async def test_keys_are_stored_only_as_hmac_hashes(engine, user_key):
    import hashlib
    import hmac

    from store.models import ApiKey

    _, secret = user_key
    with session_for(engine) as s:
        key = s.exec(select(ApiKey)).one()
    assert key.key_hash == hmac.new(TEST_SECRET.encode(), secret.encode(), hashlib.sha256).hexdigest()
    assert (key.prefix, key.last4) == (secret[:12], secret[-4:])
    with engine.connect() as conn:
        dump = repr([tuple(r) for r in conn.exec_driver_sql("SELECT * FROM api_keys")])
    assert secret not in dump and secret[12:-4] not in dump


async def test_no_log_row_is_lost_at_shutdown(settings, engine, user_key):
    from api.app import create_app

    app = create_app(settings.model_copy(update={"log_flush_interval_s": 3600, "log_batch_size": 10_000}))
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            ids = [
                (await c.get("/api/v1/models", headers=auth(user_key[1]))).headers["x-request-id"] for _ in range(25)
            ]
        with session_for(engine) as s:
            assert s.exec(select(RequestLog)).all() == []  # nothing written yet: all queued
    with session_for(engine) as s:
        assert sorted(r.request_id for r in s.exec(select(RequestLog))) == sorted(ids)
