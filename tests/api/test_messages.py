"""POST /api/v1/messages (Anthropic's format) against a scripted upstream over real
sockets: translated to chat completions, the key as `x-api-key`, the exact charge, one
log row, and every rejection in the seed's error shape."""

from __future__ import annotations

import orjson
import pytest

from ..factories import flat_seed_prices, make_key, make_user
from ..fakes.scripted import sse
from . import test_responses
from .test_errors import assert_error
from .test_responses import (
    BOTH,
    MESSAGE_EVENTS,
    assert_charged_once,
    assert_stream_charged_once,
    assert_stream_refunded_once,
    balance,
    chunk,
    completion,
    events,
    ledger_kinds,
    log_rows,
    post_twice_with_limit_one,
    set_model,
    stream_chunks,
    with_limiter,
)


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


MESSAGES = "/api/v1/messages"

# the scripted upstream and the caller, as test_responses sets them
upstream = test_responses.upstream
user_key = test_responses.user_key


@pytest.fixture(params=["in-process", "redis"])
def limited_settings(request, settings):
    return with_limiter(settings, request.param)


def anthropic_auth(secret: str) -> dict[str, str]:
    """As the anthropic SDK sends it."""
    return {"x-api-key": secret, "anthropic-version": "2023-06-01"}


def ask(**extra) -> dict:
    return {"model": "openai/gpt-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **extra}


@BOTH
async def test_plain_message_translated_both_ways_and_charged_once(client, app, engine, user_key, upstream):
    upstream.add(json=completion())
    user, secret = user_key
    r = await client.post(
        MESSAGES,
        headers=anthropic_auth(secret),
        json=ask(system="be brief", temperature=0.5, stop_sequences=["END"], top_k=3),
    )
    assert r.status_code == 200, r.text
    assert upstream.requests[0].json() == {
        "model": "openai/gpt-5-upstream",
        "max_tokens": 64,
        "temperature": 0.5,
        "stop": ["END"],
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }
    request_id = r.headers["x-request-id"]
    assert r.json() == {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": "openai/gpt-5",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2, "cost": 3},
    }
    row = assert_charged_once(engine, app, request_id, user, MESSAGES)
    assert (row.prompt_tokens, row.completion_tokens, row.upstream_id) == (5, 2, "gen-123")


async def test_max_tokens_is_capped_and_optional(client, engine, user_key, upstream):
    set_model(engine, max_output_tokens=100)
    upstream.add(json=completion(finish="length"), reusable=True)
    for body, sent in ((ask(max_tokens=5000), 100), ({k: v for k, v in ask().items() if k != "max_tokens"}, 100)):
        r = await client.post(MESSAGES, json=body, headers=anthropic_auth(user_key[1]))
        assert (r.status_code, r.json()["stop_reason"]) == (200, "max_tokens")
        assert upstream.requests[-1].json()["max_tokens"] == sent


async def test_bearer_key_works_too(client, user_key, upstream):
    upstream.add(json=completion())
    r = await client.post(MESSAGES, json=ask(), headers={"Authorization": f"Bearer {user_key[1]}"})
    assert r.status_code == 200


@BOTH
async def test_stream_is_anthropic_events_with_usage_and_charged_once(client, app, engine, user_key, upstream):
    upstream.add(chunks=stream_chunks("Hel", "lo"))
    user, secret = user_key
    r = await client.post(MESSAGES, json=ask(stream=True), headers=anthropic_auth(secret))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    sent = upstream.requests[0].json()
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})
    seen = events(r.text)
    assert [name for name, _ in seen] == MESSAGE_EVENTS
    assert "".join(d["delta"]["text"] for n, d in seen if n == "content_block_delta") == "Hello"
    assert seen[6][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 5, "output_tokens": 2, "cost": 3},
    }
    assert_stream_charged_once(engine, app, r, user, MESSAGES)


@BOTH
async def test_stream_cut_mid_way_ends_in_an_error_event_and_is_refunded_once(client, app, engine, user_key, upstream):
    upstream.add(chunks=sse(chunk("partial")), cut=True)
    user, secret = user_key
    r = await client.post(MESSAGES, json=ask(stream=True), headers=anthropic_auth(secret))
    assert r.status_code == 200
    assert events(r.text)[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "message": orjson.loads(r.text.strip().split("data: ")[-1])["error"]["message"],
                "type": "provider_error",
                "code": "provider_error",
            },
        },
    )
    assert_stream_refunded_once(engine, app, r, user)


async def test_upstream_failure_is_502_in_the_seed_shape_and_refunded(client, engine, user_key, upstream):
    upstream.add(status=503, json={"error": "down"})
    r = await client.post(MESSAGES, json=ask(), headers=anthropic_auth(user_key[1]))
    assert_error(r, 502, "provider_error")
    assert balance(engine, user_key[0]) == 10
    assert ledger_kinds(engine, r.headers["x-request-id"]) == ["charge", "refund"]


@pytest.mark.parametrize(
    "body, headers, status, code",
    [
        (ask(), {}, 401, "invalid_api_key"),
        (ask(model=None), None, 400, "model_required"),
        ({"model": "openai/gpt-5", "max_tokens": 5}, None, 400, "messages_required"),
        (ask(messages=[]), None, 400, "messages_required"),
        (ask(max_tokens=0), None, 400, "invalid_request"),
        (ask(temperature=1.5), None, 400, "invalid_request"),
        (ask(tools=[{"name": "f"}]), None, 400, "invalid_request"),
        (
            ask(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
            None,
            400,
            "invalid_request",
        ),
        (ask(model="nope/nope"), None, 404, "model_not_available"),
        (ask(model="google/nano-banana-pro"), None, 404, "model_not_available"),
    ],
)
async def test_rejections_in_the_seed_shape_and_upstream_never_called(
    client, app, engine, user_key, upstream, body, headers, status, code
):
    user, secret = user_key
    r = await client.post(MESSAGES, json=body, headers=anthropic_auth(secret) if headers is None else headers)
    assert_error(r, status, code)
    assert upstream.requests == []
    assert balance(engine, user) == 10
    [row] = log_rows(engine, app, r.headers["x-request-id"])
    assert (row.endpoint, row.status, row.error_code, row.credit_cost) == (MESSAGES, status, code, 0)


@BOTH
async def test_short_balance_is_402_and_the_upstream_is_never_called(client, app, engine, upstream):
    user = make_user(engine, credits=2)
    r = await client.post(MESSAGES, json=ask(), headers=anthropic_auth(make_key(engine, user)))
    assert_error(r, 402, "insufficient_credits")
    assert upstream.requests == []
    assert balance(engine, user) == 2


async def test_second_call_of_the_minute_is_429(limited_settings, engine, upstream):
    first, second = await post_twice_with_limit_one(limited_settings, engine, upstream, MESSAGES, ask(), anthropic_auth)
    assert first.status_code == 200
    assert_error(second, 429, "rate_limit_exceeded")
    assert len(upstream.requests) == 1
