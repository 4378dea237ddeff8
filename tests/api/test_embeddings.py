"""POST /api/v1/embeddings against the fake OpenAI-compatible upstream over real sockets
(tests/fakes/upstream.py): a prompt token per input character, the vector
[length, 0.5, -0.25, index] per input. Charges are worked out by hand from those counts."""

from __future__ import annotations

import base64
from array import array
from decimal import Decimal

import orjson
import pytest
from sqlmodel import select

from store import credits, registry
from store.db import session_for
from store.models import LedgerEntry, PendingSettlement, RequestLog
from store.money import MICRO, parse_credits

from ..conftest import flush_logs, make_settings
from ..factories import auth, credits_of, make_key, make_user
from ..fakes.upstream import ServedUpstream

MODEL = "openai/text-embedding-3-small"  # seeded: per_token, 2 credits per 1M prompt tokens
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def upstream():
    with ServedUpstream() as served:
        yield served


@pytest.fixture
def settings(database_url, tmp_path, upstream):
    return make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url)


def set_model(engine, model_id=MODEL, **fields):
    with session_for(engine) as s:
        registry.set_model(s, model_id=model_id, actor="test", **fields)


async def embed(client, key, body=None, **fields):
    return await client.post(
        "/api/v1/embeddings",
        headers=auth(key),
        json=body if body is not None else {"model": MODEL, "input": "hello world", **fields},
    )


def ledger(engine, ref):
    with session_for(engine) as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.ref == ref).order_by(LedgerEntry.id))
        return [(r.kind, r.amount) for r in rows]


def log_rows(app, engine, ref=None):
    flush_logs(app)
    with session_for(engine) as s:
        query = select(RequestLog).where(RequestLog.endpoint == "/api/v1/embeddings")
        return list(s.exec(query if ref is None else query.where(RequestLog.request_id == ref)))


def hold_for(body: dict, prompt_price_micro: int) -> int:
    """The hold: the upstream body's bytes as the prompt bound, rounded up to the micro-credit."""
    return -(-len(orjson.dumps(body)) * prompt_price_micro // 1_000_000)


def floats(text: str) -> list[float]:
    packed = array("f")
    packed.frombytes(base64.b64decode(text))
    return packed.tolist()


@BOTH
async def test_float_embedding_is_charged_its_prompt_tokens_exactly(app, client, engine, upstream):
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    r = await embed(client, key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == MODEL
    assert body["data"] == [{"object": "embedding", "index": 0, "embedding": [11.0, 0.5, -0.25, 0.0]}]
    # 11 prompt tokens x 2 credits / 1M = 0.000022
    assert body["usage"] == {"prompt_tokens": 11, "total_tokens": 11, "completion_tokens": 0, "cost": 0.000022}
    sent = upstream.app.stats.bodies[-1]
    assert sent == {"model": "openai/text-embedding-3-small", "input": "hello world"}  # floats: no encoding_format
    await app.state.runtime.quiesce()
    rid = r.headers["x-request-id"]
    held = hold_for(sent, 2 * MICRO)
    assert ledger(engine, rid) == [("charge", -held), ("settle", held - 22)]
    assert credits_of(engine, user) == 5 - Decimal("0.000022")
    [row] = log_rows(app, engine, rid)
    assert (row.status, row.error_code, row.model, row.credit_cost) == (200, None, MODEL, 22)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (11, 0, 11)
    assert row.upstream_cost == 11  # micro-USD, the upstream's own; never shown to the caller
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id)


async def test_base64_is_float32_little_endian_of_the_same_vectors(app, client, engine, upstream):
    set_model(engine, prompt_price=parse_credits("1000"))  # 0.001 a token
    user = make_user(engine, credits=1)
    key = make_key(engine, user)
    r = await embed(client, key, {"model": MODEL, "input": ["ab", "cde"], "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [(d["index"], floats(d["embedding"])) for d in data] == [
        (0, [2.0, 0.5, -0.25, 0.0]),
        (1, [3.0, 0.5, -0.25, 1.0]),
    ]
    assert r.json()["usage"] == {"prompt_tokens": 5, "total_tokens": 5, "completion_tokens": 0, "cost": 0.005}
    assert "encoding_format" not in upstream.app.stats.bodies[-1]
    await app.state.runtime.quiesce()
    assert credits_of(engine, user) == Decimal("0.995")


async def test_token_id_inputs_and_dimensions_pass_through(app, client, engine, upstream):
    set_model(engine, prompt_price=parse_credits("1000"))
    user = make_user(engine, credits=1)
    key = make_key(engine, user)
    r = await embed(client, key, {"model": MODEL, "input": [[1, 2, 3], [4]], "dimensions": 6, "user": "u-1"})
    assert r.status_code == 200, r.text
    assert [d["embedding"] for d in r.json()["data"]] == [
        [3.0, 0.5, -0.25, 0.0, 0.125, 0.125],
        [1.0, 0.5, -0.25, 1.0, 0.125, 0.125],
    ]
    assert upstream.app.stats.bodies[-1] == {"model": MODEL, "input": [[1, 2, 3], [4]], "dimensions": 6, "user": "u-1"}
    await app.state.runtime.quiesce()
    assert credits_of(engine, user) == Decimal("0.996")  # 4 token ids x 0.001


async def test_per_request_embedding_model_charges_its_fee_once(app, client, engine, upstream):
    set_model(engine, "acme/embed", category="embedding", provider="openrouter", credit_cost=MICRO // 2)
    user = make_user(engine, credits=2)
    key = make_key(engine, user)
    r = await embed(client, key, {"model": "acme/embed", "input": "hi"})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["cost"] == 0.5
    await app.state.runtime.quiesce()
    assert ledger(engine, r.headers["x-request-id"]) == [("charge", -MICRO // 2)]  # nothing to settle
    assert credits_of(engine, user) == Decimal("1.5")


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"message": response.json()["error"]["message"], "type": code, "code": code}}


async def test_no_key_is_401(client):
    assert_error(await client.post("/api/v1/embeddings", json={"model": MODEL, "input": "x"}), 401, "invalid_api_key")


@pytest.mark.parametrize("model", ["acme/nope", "openai/gpt-5", "google/nano-banana-pro"])
async def test_unknown_or_other_category_model_is_404(client, engine, upstream, model):
    user = make_user(engine, credits=5)
    r = await embed(client, make_key(engine, user), {"model": model, "input": "x"})
    assert_error(r, 404, "model_not_available")
    assert upstream.app.stats.bodies == [] and credits_of(engine, user) == 5


async def test_disabled_embedding_model_is_404_and_chat_refuses_it(client, engine, upstream):
    key = make_key(engine, make_user(engine, credits=5))
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert_error(
        await client.post("/api/v1/chat/completions", headers=auth(key), json=chat), 404, "model_not_available"
    )
    set_model(engine, enabled=False)
    assert_error(await embed(client, key), 404, "model_not_available")
    assert upstream.app.stats.bodies == []


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"input": "x"}, "model_required", "Model is required"),
        ({"model": MODEL}, "invalid_request", "`input` is required"),
        ({"model": MODEL, "input": ""}, "invalid_request", "`input` must not be empty"),
        ({"model": MODEL, "input": []}, "invalid_request", "`input` must not be empty"),
        (
            {"model": MODEL, "input": "x", "encoding_format": "hex"},
            "invalid_request",
            "`encoding_format`: Input should be 'float' or 'base64'",
        ),
        (
            {"model": MODEL, "input": "x", "dimensions": 0},
            "invalid_request",
            "`dimensions`: Input should be greater than or equal to 1",
        ),
    ],
)
async def test_bad_bodies_are_400_with_their_code(client, engine, upstream, body, code, message):
    user = make_user(engine, credits=5)
    r = await embed(client, make_key(engine, user), body)
    assert_error(r, 400, code)
    assert r.json()["error"]["message"] == message
    assert upstream.app.stats.bodies == [] and credits_of(engine, user) == 5


async def test_short_balance_is_402_and_never_calls_upstream(app, client, engine, upstream):
    set_model(engine, prompt_price=parse_credits("1000"))  # the hold: 63 bytes x 0.001 = 0.063
    user = make_user(engine, credits="0.05")
    r = await embed(client, make_key(engine, user))
    assert_error(r, 402, "insufficient_credits")
    assert upstream.app.stats.bodies == []
    assert credits_of(engine, user) == Decimal("0.05")
    [row] = log_rows(app, engine, r.headers["x-request-id"])
    assert (row.status, row.error_code, row.credit_cost) == (402, "insufficient_credits", 0)


async def test_rate_limit_is_429_with_retry_after(client, engine, upstream):
    key = make_key(engine, make_user(engine, credits=5), rpm=1)
    assert (await embed(client, key)).status_code == 200
    r = await embed(client, key)
    assert_error(r, 429, "rate_limit_exceeded")
    assert int(r.headers["retry-after"]) >= 1
    assert len(upstream.app.stats.bodies) == 1


async def test_provider_not_configured_is_503(database_url, tmp_path, engine, upstream):
    import httpx

    from api.app import create_app

    app = create_app(
        make_settings(database_url, tmp_path, openrouter_api_key=None, openrouter_base_url=upstream.base_url)
    )
    key = make_key(engine, make_user(engine, credits=5))
    transport = httpx.ASGITransport(app=app)
    async with app.state.runtime.running(), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert_error(await embed(c, key), 503, "provider_not_configured")


@pytest.mark.parametrize(
    ("text", "status", "code"),
    [
        ("fail:500", 502, "provider_error"),
        ("fail:401", 502, "provider_error"),
        ("fail:400", 400, "invalid_request"),
        ("fail:429", 429, "provider_error"),
        ("error200", 502, "provider_error"),
        ("malformed", 502, "provider_error"),
    ],
)
async def test_upstream_failures_are_refunded_once_and_logged(app, client, engine, upstream, text, status, code):
    user = make_user(engine, credits=5)
    r = await embed(client, make_key(engine, user), {"model": MODEL, "input": text})
    assert_error(r, status, code)
    await app.state.runtime.quiesce()
    rid = r.headers["x-request-id"]
    assert [kind for kind, _ in ledger(engine, rid)] == ["charge", "refund"]
    assert credits_of(engine, user) == 5
    [row] = log_rows(app, engine, rid)
    assert (row.status, row.error_code, row.credit_cost) == (status, code, 0)


async def test_answer_without_usage_keeps_the_hold_for_the_reconciler(app, client, engine, upstream):
    user = make_user(engine, credits=5)
    r = await embed(client, make_key(engine, user), {"model": MODEL, "input": "nousage"})
    assert r.status_code == 200 and "usage" not in r.json()
    await app.state.runtime.quiesce()
    rid = r.headers["x-request-id"]
    sent = orjson.dumps(upstream.app.stats.bodies[-1])
    held = hold_for(upstream.app.stats.bodies[-1], 2 * MICRO)
    assert (len(sent), held) == (59, 118)
    assert ledger(engine, rid) == [("charge", -118)]
    with session_for(engine) as s:
        pending = s.get(PendingSettlement, rid)
        assert pending is not None and pending.upstream_id.startswith("gen-fake-")
        assert pending.estimate == 30  # 59 bytes at 4 a token: 15 tokens x 2 micro-credits
