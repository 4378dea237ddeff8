"""POST /api/v1/responses against a scripted upstream over real sockets: what is sent
upstream (translated to chat completions), what the caller gets, the exact charge, one
log row, and every rejection in the seed's error shape."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import orjson
import pytest
from sqlmodel import select

from api.app import create_app
from store import credits, registry
from store.db import session_for
from store.models import LedgerEntry, RequestLog
from store.money import MICRO

from ..conftest import REDIS_URL, flush_logs, require
from ..factories import auth, credits_of, flat_seed_prices, make_key, make_user
from ..fakes.scripted import sse
from .test_errors import assert_error


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


RESPONSES = "/api/v1/responses"
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def completion(text: str = "Hello!", finish: str = "stop") -> dict:
    return {
        "id": "gen-123",
        "object": "chat.completion",
        "created": 1,
        "model": "openai/gpt-5-upstream",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": dict(USAGE, cost=0.00004, cost_details={"upstream_inference_cost": 0.00004}),
    }


def chunk(text: str | None, finish: str | None = None, **extra) -> dict:
    choices = [] if text is None else [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]
    return {
        "id": "gen-s1",
        "object": "chat.completion.chunk",
        "model": "openai/gpt-5-upstream",
        "choices": choices,
        **extra,
    }


def stream_chunks(*texts: str) -> list[bytes]:
    """A whole upstream stream: the texts, a finish, the usage chunk, [DONE]."""
    return sse(*(chunk(t) for t in texts), chunk("", "stop"), chunk(None, usage=dict(USAGE, cost=0.00004)), "[DONE]")


def events(text: str) -> list[tuple[str, dict]]:
    """(event name, data) of each named server-sent event."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def set_model(engine, **fields) -> None:
    with session_for(engine) as s:
        registry.set_model(s, actor="test", model_id="openai/gpt-5", **fields)


@pytest.fixture
def upstream(chat_upstream, engine):
    set_model(engine, upstream_id="openai/gpt-5-upstream")
    return chat_upstream


@pytest.fixture
def user_key(engine):
    user = make_user(engine, credits=10)
    return user, make_key(engine, user)


def balance(engine, user) -> Decimal:
    """The balance in credits (exact), checked against the ledger sum."""
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id)
    return credits_of(engine, user)


def ledger_kinds(engine, request_id: str) -> list[str]:
    with session_for(engine) as s:
        return sorted(e.kind for e in s.exec(select(LedgerEntry).where(LedgerEntry.ref == request_id)))


def log_rows(engine, app, request_id: str) -> list[RequestLog]:
    flush_logs(app)
    with session_for(engine) as s:
        return list(s.exec(select(RequestLog).where(RequestLog.request_id == request_id)))


# the events of a two-chunk stream, in order, in each format
RESPONSE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
MESSAGE_EVENTS = [
    "message_start",
    "ping",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]


def assert_charged_once(engine, app, request_id: str, user, endpoint: str) -> RequestLog:
    """A non-streamed answer: 3 credits charged once and one log row, which is returned."""
    assert balance(engine, user) == 7
    assert ledger_kinds(engine, request_id) == ["charge"]
    [row] = log_rows(engine, app, request_id)
    assert (row.endpoint, row.status, row.error_code, row.model, row.credit_cost, row.stream) == (
        endpoint,
        200,
        None,
        "openai/gpt-5",
        3 * MICRO,
        False,
    )
    return row


def assert_stream_charged_once(engine, app, r, user, endpoint: str) -> None:
    """A streamed answer: 3 credits charged and one log row."""
    assert balance(engine, user) == 7
    [row] = log_rows(engine, app, r.headers["x-request-id"])
    assert (row.endpoint, row.stream, row.status, row.credit_cost, row.total_tokens) == (
        endpoint,
        True,
        200,
        3 * MICRO,
        7,
    )


def assert_stream_refunded_once(engine, app, r, user) -> None:
    """A stream cut after its debit: everything given back, once, and the row says why."""
    assert balance(engine, user) == 10
    request_id = r.headers["x-request-id"]
    assert ledger_kinds(engine, request_id) == ["charge", "refund"]
    [row] = log_rows(engine, app, request_id)
    assert (row.status, row.error_code, row.credit_cost) == (200, "provider_error", 0)


@BOTH
async def test_plain_response_translated_both_ways_and_charged_once(client, app, engine, user_key, upstream):
    upstream.add(json=completion())
    user, secret = user_key
    r = await client.post(
        RESPONSES,
        headers=auth(secret),
        json={
            "model": "openai/gpt-5",
            "input": "hi",
            "instructions": "be brief",
            "temperature": 0.5,
            "max_output_tokens": 20,
            "store": False,
            "provider": {"order": ["x"]},
        },
    )
    assert r.status_code == 200, r.text
    assert upstream.requests[0].path == "/v1/chat/completions"
    assert upstream.requests[0].json() == {
        "model": "openai/gpt-5-upstream",
        "temperature": 0.5,
        "max_tokens": 20,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }
    body = r.json()
    request_id = r.headers["x-request-id"]
    assert (body["id"], body["object"], body["status"], body["model"]) == (
        f"resp_{request_id}",
        "response",
        "completed",
        "openai/gpt-5",
    )
    assert body["output"] == [
        {
            "type": "message",
            "id": f"msg_{request_id}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
        }
    ]
    assert body["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
        "cost": 3,
    }
    row = assert_charged_once(engine, app, request_id, user, RESPONSES)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens, row.upstream_id) == (5, 2, 7, "gen-123")


async def test_max_output_tokens_is_capped_and_sent_as_the_cap_when_absent(client, engine, user_key, upstream):
    set_model(engine, max_output_tokens=100)
    upstream.add(json=completion(), reusable=True)
    secret = user_key[1]
    for asked, sent in ((5000, 100), (None, 100), (40, 40)):
        body = {"model": "openai/gpt-5", "input": "hi"} | ({"max_output_tokens": asked} if asked else {})
        r = await client.post(RESPONSES, json=body, headers=auth(secret))
        assert r.status_code == 200
        assert upstream.requests[-1].json()["max_tokens"] == sent
        assert r.json()["max_output_tokens"] == sent


async def test_a_completion_cut_by_the_cap_is_incomplete(client, user_key, upstream):
    upstream.add(json=completion(finish="length"))
    r = await client.post(RESPONSES, json={"model": "openai/gpt-5", "input": "hi"}, headers=auth(user_key[1]))
    assert (r.json()["status"], r.json()["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})


@BOTH
async def test_stream_is_typed_events_with_usage_and_charged_once(client, app, engine, user_key, upstream):
    upstream.add(chunks=stream_chunks("Hel", "lo"))
    user, secret = user_key
    r = await client.post(
        RESPONSES, json={"model": "openai/gpt-5", "input": "hi", "stream": True}, headers=auth(secret)
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    sent = upstream.requests[0].json()
    assert (sent["stream"], sent["stream_options"], sent["max_tokens"]) == (True, {"include_usage": True}, 16384)
    seen = events(r.text)
    assert [name for name, _ in seen] == RESPONSE_EVENTS
    assert [data["sequence_number"] for _, data in seen] == list(range(10))
    final = seen[-1][1]["response"]
    assert (final["status"], final["output"][0]["content"][0]["text"], final["model"]) == (
        "completed",
        "Hello",
        "openai/gpt-5",
    )
    assert final["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
        "cost": 3,
    }
    assert "[DONE]" not in r.text
    assert_stream_charged_once(engine, app, r, user, RESPONSES)


@BOTH
async def test_stream_cut_mid_way_ends_in_an_error_event_and_is_refunded_once(client, app, engine, user_key, upstream):
    upstream.add(chunks=sse(chunk("partial")), cut=True)
    user, secret = user_key
    r = await client.post(
        RESPONSES, json={"model": "openai/gpt-5", "input": "hi", "stream": True}, headers=auth(secret)
    )
    assert r.status_code == 200
    name, last = events(r.text)[-1]
    assert (name, last["type"], last["code"], last["error"]["code"]) == (
        "error",
        "error",
        "provider_error",
        "provider_error",
    )
    assert_stream_refunded_once(engine, app, r, user)


async def test_upstream_failure_is_502_and_refunded(client, app, engine, user_key, upstream):
    upstream.add(status=500, json={"error": "boom"})
    user, secret = user_key
    r = await client.post(RESPONSES, json={"model": "openai/gpt-5", "input": "hi"}, headers=auth(secret))
    assert_error(r, 502, "provider_error")
    assert balance(engine, user) == 10
    assert ledger_kinds(engine, r.headers["x-request-id"]) == ["charge", "refund"]


async def test_upstream_400_is_the_callers_invalid_request_and_refunded(client, engine, user_key, upstream):
    upstream.add(status=400, json={"error": {"message": "context too long"}})
    r = await client.post(RESPONSES, json={"model": "openai/gpt-5", "input": "hi"}, headers=auth(user_key[1]))
    assert_error(r, 400, "invalid_request")
    assert r.json()["error"]["message"] == "context too long"
    assert balance(engine, user_key[0]) == 10


@pytest.mark.parametrize(
    "body, headers, status, code",
    [
        ({"model": "openai/gpt-5", "input": "hi"}, {}, 401, "invalid_api_key"),
        ({"input": "hi"}, None, 400, "model_required"),
        ({"model": "openai/gpt-5"}, None, 400, "messages_required"),
        ({"model": "openai/gpt-5", "input": ""}, None, 400, "messages_required"),
        ({"model": "openai/gpt-5", "input": []}, None, 400, "messages_required"),
        ({"model": "openai/gpt-5", "input": 5}, None, 400, "invalid_request"),
        ({"model": "openai/gpt-5", "input": "hi", "temperature": 3}, None, 400, "invalid_request"),
        (
            {"model": "openai/gpt-5", "input": "hi", "tools": [{"type": "function"}]},
            None,
            400,
            "invalid_request",
        ),
        ({"model": "openai/gpt-5", "input": "hi", "previous_response_id": "resp_1"}, None, 400, "invalid_request"),
        ({"model": "openai/gpt-5", "input": [{"role": ["user"], "content": "hi"}]}, None, 400, "invalid_request"),
        ({"model": "nope/nope", "input": "hi"}, None, 404, "model_not_available"),
        ({"model": "google/nano-banana-pro", "input": "hi"}, None, 404, "model_not_available"),
    ],
)
async def test_rejections_in_the_seed_shape_and_upstream_never_called(
    client, app, engine, user_key, upstream, body, headers, status, code
):
    user, secret = user_key
    r = await client.post(RESPONSES, json=body, headers=auth(secret) if headers is None else headers)
    assert_error(r, status, code)
    assert upstream.requests == []
    assert balance(engine, user) == 10
    [row] = log_rows(engine, app, r.headers["x-request-id"])
    assert (row.endpoint, row.status, row.error_code, row.credit_cost) == (RESPONSES, status, code, 0)


async def test_input_required_says_input(client, user_key, upstream):
    r = await client.post(RESPONSES, json={"model": "openai/gpt-5"}, headers=auth(user_key[1]))
    assert r.json()["error"]["message"] == "Input is required"


@BOTH
async def test_short_balance_is_402_and_the_upstream_is_never_called(client, app, engine, upstream):
    user = make_user(engine, credits=2)
    secret = make_key(engine, user)
    r = await client.post(RESPONSES, json={"model": "openai/gpt-5", "input": "hi"}, headers=auth(secret))
    assert_error(r, 402, "insufficient_credits")
    assert upstream.requests == []
    assert balance(engine, user) == 2
    [row] = log_rows(engine, app, r.headers["x-request-id"])
    assert (row.status, row.error_code) == (402, "insufficient_credits")


def with_limiter(settings, limiter: str):
    """The settings with the in-process limiter, or Redis's (skipped without TEST_REDIS_URL)."""
    if limiter == "in-process":
        return settings
    url = require(REDIS_URL, "TEST_REDIS_URL")
    return settings.model_copy(update={"redis_url": url, "rate_limit_namespace": f"test-{uuid.uuid4().hex}"})


@pytest.fixture(params=["in-process", "redis"])
def limited_settings(request, settings):
    return with_limiter(settings, request.param)


async def post_twice_with_limit_one(limited_settings, engine, upstream, path: str, body: dict, headers) -> list:
    """Two model calls on a key limited to one a minute, through a fresh app."""
    upstream.add(json=completion(), reusable=True)
    user = make_user(engine, credits=10)
    secret = make_key(engine, user, rpm=1)
    app = create_app(limited_settings)
    async with (
        app.state.runtime.running(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        return [await c.post(path, json=body, headers=headers(secret)) for _ in range(2)]


async def test_second_call_of_the_minute_is_429(limited_settings, engine, upstream):
    first, second = await post_twice_with_limit_one(
        limited_settings, engine, upstream, RESPONSES, {"model": "openai/gpt-5", "input": "hi"}, auth
    )
    assert first.status_code == 200
    assert_error(second, 429, "rate_limit_exceeded")
    assert int(second.headers["retry-after"]) >= 1
    assert len(upstream.requests) == 1
