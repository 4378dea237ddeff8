"""The fake stream upstream's three formats, read by the official SDKs, and the load
generator's count of each: counts and shapes, not speed."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import openai
import pytest
from anthropic.types import RawMessageStreamEvent
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from bench.stream_upstream import StreamUpstream, pace_prompt, parse_pace
from bench.streams import run_load

from .test_stream_load import _Served

TEXT = "tok0 tok1 tok2 tok3 tok4 "


def _events(url: str, body: dict) -> list[dict]:
    """Every SSE event of one streamed answer, as JSON."""
    events = []
    with httpx.stream("POST", url, json=body, timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream"
        for line in answer.iter_lines():
            if line.startswith("data: "):
                events.append(httpx.Response(200, content=line.removeprefix("data: ")).json())
    return events


def test_the_messages_stream_is_what_the_anthropic_sdk_accumulates():
    upstream = StreamUpstream()
    with _Served(upstream) as served:
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{served.port}", api_key="k", max_retries=0)
        with client.messages.stream(
            model="anthropic/claude-sonnet-4.5",
            max_tokens=64,
            messages=[{"role": "user", "content": pace_prompt(5, 1)}],
        ) as stream:
            texts = list(stream.text_stream)
            final = stream.get_final_message()
    assert texts == ["tok0 ", "tok1 ", "tok2 ", "tok3 ", "tok4 "]
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5
    assert final.model == "anthropic/claude-sonnet-4.5"
    assert upstream.stats["chunks"] == 5
    assert upstream.stats["streams_finished"] == 1


def test_every_messages_event_validates_as_the_anthropic_type_in_order():
    with _Served(StreamUpstream()) as served:
        events = _events(
            f"http://127.0.0.1:{served.port}/v1/messages",
            {
                "model": "m",
                "max_tokens": 9,
                "stream": True,
                "messages": [{"role": "user", "content": pace_prompt(3, 1)}],
            },
        )
    adapter = TypeAdapter(RawMessageStreamEvent)
    assert [adapter.validate_python(event).type for event in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_the_responses_stream_is_what_the_openai_sdk_accumulates():
    upstream = StreamUpstream()
    with _Served(upstream) as served:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{served.port}/v1", api_key="k", max_retries=0)
        with client.responses.stream(model="openai/gpt-5-mini", input=pace_prompt(5, 1)) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
    assert kinds.count("response.output_text.delta") == 5
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert final.status == "completed"
    assert final.output_text == TEXT
    assert final.usage is not None
    assert final.usage.output_tokens == 5
    assert upstream.stats["chunks"] == 5


def test_every_responses_event_validates_as_the_openai_type_in_order():
    with _Served(StreamUpstream()) as served:
        events = _events(
            f"http://127.0.0.1:{served.port}/v1/responses", {"model": "m", "stream": True, "input": pace_prompt(2, 1)}
        )
    adapter = TypeAdapter(ResponseStreamEvent)
    assert [adapter.validate_python(event).type for event in events] == [
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
    assert [event["sequence_number"] for event in events] == list(range(10))


def test_the_chat_stream_is_what_the_openai_sdk_accumulates():
    with _Served(StreamUpstream()) as served:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{served.port}/v1", api_key="k", max_retries=0)
        with client.chat.completions.stream(
            model="openai/gpt-5-mini",
            messages=[{"role": "user", "content": pace_prompt(5, 1)}],
            stream_options={"include_usage": True},
        ) as stream:
            final = stream.get_final_completion()
    assert final.choices[0].message.content == TEXT
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None
    assert final.usage.completion_tokens == 5


@pytest.mark.parametrize(
    ("fmt", "events_per_stream"),
    [
        ("messages", 5 + 5),  # message_start, block start, 5 deltas, block stop, message_delta, message_stop
        ("responses", 5 + 8),  # created, in_progress, item and part added, 5 deltas, 3 done, completed
    ],
)
def test_the_load_generator_counts_every_format(fmt, events_per_stream):
    upstream = StreamUpstream()
    with _Served(upstream) as served:
        url = served.url.replace("/chat/completions", f"/{fmt}")
        result = asyncio.run(run_load(url, concurrency=3, seconds=0.3, chunks=5, interval_ms=10, fmt=fmt))
    summary = result.summary()
    assert summary["streams"] >= 3
    assert summary["completed"] == summary["streams"]
    assert summary["chunks"] == 5 * summary["streams"]
    assert summary["events"] == events_per_stream * summary["streams"]
    assert summary["errors"] == {"status": 0, "broken": 0, "short": 0, "no_done": 0}
    assert summary["no_usage"] == 0
    assert upstream.stats["chunks"] == summary["chunks"]


def _without(app, marker: bytes):
    """The upstream, minus every SSE event that contains `marker`."""

    async def wrapped(scope, receive, send):
        async def strip(message):
            if message["type"] == "http.response.body":
                kept = [e for e in message.get("body", b"").split(b"\n\n") if marker not in e]
                message = {**message, "body": b"\n\n".join(kept)}
            await send(message)

        await app(scope, receive, strip)

    return wrapped


@pytest.mark.parametrize(("fmt", "terminal"), [("messages", b"message_stop"), ("responses", b"response.completed")])
def test_a_stream_without_its_terminal_event_is_counted_as_such(fmt, terminal):
    with _Served(_without(StreamUpstream(), terminal)) as served:
        url = served.url.replace("/chat/completions", f"/{fmt}")
        result = asyncio.run(run_load(url, concurrency=2, seconds=0.1, chunks=3, interval_ms=5, fmt=fmt))
    summary = result.summary()
    assert summary["streams"] >= 2
    assert summary["completed"] == 0
    assert summary["errors"]["no_done"] == summary["streams"]
    assert summary["chunks"] == 3 * summary["streams"]


def _requiring(app, name: bytes, value: bytes):
    """The upstream, answering 400 to a request without header `name: value` (as a router would)."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and (name, value) not in scope["headers"]:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await app(scope, receive, send)

    return wrapped


def test_a_targets_headers_ride_along_with_every_stream():
    app = _requiring(StreamUpstream(), b"x-portkey-provider", b"openai")
    with _Served(app) as served:
        routed = asyncio.run(
            run_load(
                served.url,
                concurrency=2,
                seconds=0.1,
                chunks=3,
                interval_ms=5,
                headers={"x-portkey-provider": "openai"},
            )
        )
        bare = asyncio.run(run_load(served.url, concurrency=2, seconds=0.1, chunks=3, interval_ms=5))
    assert routed.summary()["completed"] == routed.summary()["streams"]
    assert bare.summary()["errors"]["status"] == bare.summary()["streams"]


def test_the_pace_is_read_from_anywhere_in_the_body():
    assert parse_pace(b'{"input": "chunks=7 interval_ms=2.5"}') == (7, 2.5)
    assert parse_pace(b'{"messages": [{"content": [{"text": "chunks=3 interval_ms=40"}]}]}') == (3, 40.0)
    assert parse_pace(b'{"input": "hello"}') == (40, 25.0)
