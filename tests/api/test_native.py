"""Messages and Responses sent natively to a provider that speaks them (api/native.py),
driven by the official SDKs against the scripted agent upstream (tests/fakes/agent_upstream.py)
over real sockets: tools, thinking and its signatures, cache breakpoints pass; hosted
tools, routing fields and over-cap budgets do not; usage is normalised once and charged at
the entry's cached-prompt prices to the micro-credit; failures are refunded once."""

from __future__ import annotations

import time
from decimal import Decimal

import anthropic
import httpx
import openai
import orjson
import pytest
from sqlmodel import select

from api.app import create_app
from api.native_policy import messages_body
from store import registry
from store.db import session_for
from store.models import LedgerEntry, RequestLog
from store.money import parse_credits

from ..conftest import make_settings
from ..factories import auth, credits_of, make_key, make_user
from ..fakes.agent_upstream import AgentUpstream, Call, ToolJob, Usage
from ..fakes.scripted import ScriptedUpstream
from ..serving import serve

MODEL, UPSTREAM_ID = "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5-upstream"
CAP = 3_000
FILE = "Hello from the native test!\n"
READ_FILE = {
    "name": "read_file",
    "description": "Read a file in the working directory.",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def price(engine) -> None:
    """Claude Sonnet's reference prices: 300 / 1,500 credits per 1M, cache reads 30, writes 375."""
    with session_for(engine) as s:
        registry.set_model(
            s,
            model_id=MODEL,
            actor="test",
            upstream_id=UPSTREAM_ID,
            pricing="per_token",
            credit_cost=0,
            prompt_price=parse_credits("300"),
            completion_price=parse_credits("1500"),
            cache_read_price=parse_credits("30"),
            cache_write_price=parse_credits("375"),
            max_output_tokens=CAP,
        )


def priced(usage: Usage) -> int:
    """Micro-credits: per 1M-token prices in credits are micro-credits a token."""
    fresh = usage.prompt - usage.cache_read - usage.cache_write
    return fresh * 300 + usage.cache_read * 30 + usage.cache_write * 375 + usage.output * 1500


@pytest.fixture
def agent():
    job = ToolJob([Call("read_file", {"path": "hello.txt"}, say="Let me read it.")], final="The file says: {output}")
    with AgentUpstream(job) as upstream:
        yield upstream


@pytest.fixture
def base(database_url, tmp_path, engine, agent):
    price(engine)
    settings = make_settings(
        database_url,
        tmp_path,
        openrouter_base_url=agent.base_url,
        openrouter_formats="messages,responses",
        run_pipeline_in_process=False,
    )
    with serve(create_app(settings)) as (url, _):
        yield url


@pytest.fixture
def caller(engine):
    user = make_user(engine, credits=50)
    return user, make_key(engine, user)


def charges(engine, user_id: int) -> list[tuple[str, str, int]]:
    with session_for(engine) as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user_id, LedgerEntry.ref != None))  # noqa: E711
        return [(r.ref, r.kind, r.amount) for r in rows]


def net(engine, user_id: int, ref: str) -> int:
    """What stands charged for `ref`, once its settlement or refund (written after the answer) is in."""
    for _ in range(200):
        rows = [(kind, amount) for r, kind, amount in charges(engine, user_id) if r == ref]
        if any(kind in ("settle", "refund") for kind, _ in rows):
            break
        time.sleep(0.05)
    return -sum(amount for _, amount in rows)


def logged(engine, ref: str) -> list[RequestLog]:
    """The request's log rows, once the batched writer has written them."""
    for _ in range(200):
        with session_for(engine) as s:
            rows = list(s.exec(select(RequestLog).where(RequestLog.request_id == ref)))
        if rows:
            return rows
        time.sleep(0.05)
    return []


def test_a_top_level_cache_control_goes_native_as_translation_honours_it():
    """Anthropic's automatic caching (`cache_control` beside `messages`) reaches the provider:
    dropping it would bill the caller's whole prompt fresh on every turn."""
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "cache_control": {"type": "ephemeral"},
        "service_tier": "auto",
    }
    native = messages_body(body, upstream_id=UPSTREAM_ID, max_output_tokens=CAP)
    assert native.body == {
        "model": UPSTREAM_ID,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "cache_control": {"type": "ephemeral"},
    }
    assert native.dropped == ("service_tier",)


@BOTH
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_sdk_tool_job_with_thinking_and_caching_goes_native(base, engine, caller, agent, stream):
    user, key = caller
    client = anthropic.AsyncAnthropic(base_url=f"{base}/api", api_key=key, max_retries=0)
    ask = dict(
        model=MODEL,
        max_tokens=32_000,
        system=[{"type": "text", "text": "You read files.", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "enabled", "budget_tokens": 31_999},
        tools=[READ_FILE, {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
        extra_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"},
        timeout=60,  # the SDK asks for one when max_tokens is this large
    )
    messages: list = [{"role": "user", "content": "What does hello.txt say?"}]
    refs: list[str] = []
    costs: list[Decimal] = []  # usage.cost as each answer said it (a stream: its message_delta)

    async def turn():
        if not stream:
            raw = await client.messages.with_raw_response.create(messages=messages, **ask)
            refs.append(raw.headers["x-request-id"])
            message = await raw.parse()
            costs.append(Decimal(str(message.usage.model_dump()["cost"])))
            return message
        async with client.messages.stream(messages=messages, **ask) as events:
            refs.append(events.response.headers["x-request-id"])
            async for event in events:
                if event.type == "message_delta":
                    costs.append(Decimal(str(event.usage.model_dump()["cost"])))
            return await events.get_final_message()

    first = await turn()
    assert first.stop_reason == "tool_use"
    thinking, text, call = first.content
    assert (thinking.type, thinking.thinking) == ("thinking", "The job's step 0 is due.")
    assert (text.text, call.name, call.input) == ("Let me read it.", "read_file", {"path": "hello.txt"})
    assert first.model == MODEL
    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": FILE}]},
    ]
    final = await turn()  # the fake answers 400 to a thinking block whose signature changed
    assert final.content[-1].text == "The file says: " + FILE
    sent = [seen for seen in agent.requests]
    assert [seen.path for seen in sent] == ["/v1/messages", "/v1/messages"]
    body = sent[0].json()
    assert body["model"] == UPSTREAM_ID
    assert (body["max_tokens"], body["thinking"]) == (CAP, {"type": "enabled", "budget_tokens": CAP - 1})
    assert [tool["name"] for tool in body["tools"]] == ["read_file"]  # the hosted web search dropped
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent[0].headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert sent[0].headers["anthropic-version"] == "2023-06-01"
    for ref, answer, reply, cost in zip(refs, agent.answers, (first, final), costs, strict=True):
        assert net(engine, user.id, ref) == priced(answer.usage)
        assert reply.usage.input_tokens == answer.usage.prompt - answer.usage.cache_read - answer.usage.cache_write
        assert cost == Decimal(priced(answer.usage)) / 10**6
        [row] = logged(engine, ref)
        assert (row.status, row.credit_cost, row.prompt_tokens) == (200, priced(answer.usage), answer.usage.prompt)
    assert agent.answers[0].usage.cache_write > 0 and agent.answers[1].usage.cache_read > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_sdk_responses_tool_job_goes_native(base, engine, caller, agent, stream):
    user, key = caller
    client = openai.AsyncOpenAI(base_url=f"{base}/api/v1", api_key=key, max_retries=0)
    tools = [
        {"type": "function", "name": "read_file", "parameters": READ_FILE["input_schema"], "strict": False},
        {"type": "web_search"},
    ]
    ask = dict(
        model=MODEL,
        tools=tools,
        reasoning={"effort": "low"},
        store=False,
        include=["reasoning.encrypted_content"],
        prompt_cache_key="session-1",
        max_output_tokens=100_000,
    )
    items: list = [{"role": "user", "content": "What does hello.txt say?"}]

    async def turn():
        if not stream:
            return await client.responses.create(input=items, **ask)
        async with client.responses.stream(input=items, **ask) as events:
            return await events.get_final_response()

    first = await turn()
    kinds = [item.type for item in first.output]
    assert kinds[-1] == "function_call" and "reasoning" in kinds
    call = first.output[-1]
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": FILE})
    final = await turn()  # an encrypted reasoning item that changed would be refused by the fake
    assert final.output_text == "The file says: " + FILE
    assert final.model == MODEL
    body = agent.requests[0].json()
    assert agent.requests[0].path == "/v1/responses"
    assert (body["model"], body["max_output_tokens"], body["store"]) == (UPSTREAM_ID, CAP, False)
    assert [tool["type"] for tool in body["tools"]] == ["function"]
    assert body["include"] == ["reasoning.encrypted_content"]
    for _ in range(200):
        with session_for(engine) as s:
            rows = list(s.exec(select(RequestLog).where(RequestLog.user_id == user.id).order_by(RequestLog.id)))
        if len(rows) == 2:
            break
        time.sleep(0.05)
    assert [row.credit_cost for row in rows] == [priced(answer.usage) for answer in agent.answers]
    assert Decimal(str(final.usage.model_dump()["cost"])) == Decimal(priced(agent.answers[1].usage)) / 10**6
    expected = 50 - Decimal(sum(priced(a.usage) for a in agent.answers)) / 10**6
    for _ in range(200):  # the settlements are written after the answers
        if credits_of(engine, user) == expected:
            break
        time.sleep(0.05)
    assert credits_of(engine, user) == expected


async def test_stored_state_is_refused_before_anything_is_held(base, engine, caller, agent):
    user, key = caller
    r = httpx.post(
        f"{base}/api/v1/responses",
        json={"model": MODEL, "input": "hi", "previous_response_id": "resp_1"},
        headers=auth(key),
        timeout=10,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request")
    assert "previous_response_id" in r.json()["error"]["message"]
    assert agent.requests == [] and charges(engine, user.id) == []


async def test_count_tokens_is_forwarded_free_and_uses_no_rate_limit(base, engine, agent):
    user = make_user(engine, credits=0)
    key = make_key(engine, user, rpm=1)
    client = anthropic.AsyncAnthropic(base_url=f"{base}/api", api_key=key, max_retries=0)
    for _ in range(3):
        counted = await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert counted.input_tokens == max(1, len(agent.requests[-1].body) // 4)  # the fake's own count
    assert [seen.path for seen in agent.requests] == ["/v1/messages/count_tokens"] * 3
    assert agent.requests[0].json()["model"] == UPSTREAM_ID
    assert charges(engine, user.id) == []


# ------------------------------------------------------------------ failures, refunded


@pytest.fixture
def scripted_base(database_url, tmp_path, engine):
    price(engine)
    with ScriptedUpstream() as upstream:
        settings = make_settings(
            database_url,
            tmp_path,
            openrouter_base_url=upstream.base_url,
            openrouter_formats="messages,responses",
            run_pipeline_in_process=False,
        )
        with serve(create_app(settings)) as (url, _):
            yield url, upstream


def sse(kind: str, data: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


MESSAGE_START = sse(
    "message_start",
    {
        "type": "message_start",
        "message": {"id": "msg_up", "type": "message", "role": "assistant", "model": UPSTREAM_ID, "content": [],
                    "usage": {"input_tokens": 10, "output_tokens": 1}},
    },
)  # fmt: skip
TEXT = sse(
    "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
)
DELTA = sse(
    "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
)


@pytest.mark.parametrize(
    "chunks",
    [
        [
            MESSAGE_START,
            TEXT,
            DELTA,
            sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
        ],
        [MESSAGE_START, TEXT, DELTA],
    ],
    ids=["error event", "cut before message_stop"],
)
def test_a_failed_native_message_stream_is_refunded_once(scripted_base, engine, caller, chunks):
    url, upstream = scripted_base
    user, key = caller
    upstream.add(chunks=chunks, headers={"Content-Type": "text/event-stream"})
    body = {"model": MODEL, "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{url}/api/v1/messages", json=body, headers=auth(key), timeout=10) as r:
        text = r.read().decode()
        ref = r.headers["x-request-id"]
    assert text.count("event: content_block_delta") == 1
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    assert orjson.loads(last.split("data: ", 1)[1])["error"]["code"] == "provider_error"
    kinds = sorted(kind for r_, kind, _ in charges(engine, user.id) if r_ == ref)
    assert kinds == ["charge", "refund"]
    assert net(engine, user.id, ref) == 0 and credits_of(engine, user) == 50


def test_a_failed_native_response_stream_is_refunded_once(scripted_base, engine, caller):
    url, upstream = scripted_base
    user, key = caller
    started = {"id": "resp_up", "object": "response", "model": UPSTREAM_ID, "status": "in_progress", "output": []}
    created = {"type": "response.created", "sequence_number": 0, "response": started}
    error = {"code": "server_error", "message": "boom"}
    failed = {
        "type": "response.failed",
        "sequence_number": 1,
        "response": {**started, "status": "failed", "error": error},
    }
    upstream.add(chunks=[sse("response.created", created), sse("response.failed", failed)])
    body = {"model": MODEL, "input": "hi", "stream": True}
    with httpx.stream("POST", f"{url}/api/v1/responses", json=body, headers=auth(key), timeout=10) as r:
        text = r.read().decode()
        ref = r.headers["x-request-id"]
    events = [block.split("\n")[0] for block in text.strip().split("\n\n")]
    assert events == ["event: response.created", "event: error"]
    assert f'"model":"{MODEL}"' in text.split("\n\n")[0]
    assert net(engine, user.id, ref) == 0 and credits_of(engine, user) == 50
