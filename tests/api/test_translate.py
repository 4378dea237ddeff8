"""The format translations (api/translate/) as pure functions: request → chat body, chat
answer and chat stream → the caller's format."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from api.errors import ApiError
from api.translate import anthropic, responses

from .test_responses import MESSAGE_EVENTS, RESPONSE_EVENTS

USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14, "cost": 3}
AGENTS = Path(__file__).parents[1] / "fixtures" / "agents"  # requests captured from the real clients


def captured(name: str) -> dict:
    """One captured request (tests/fixtures/agents/README.md): method, path, headers, body."""
    return orjson.loads((AGENTS / f"{name}.json").read_bytes())


def completion(text: str = "Hello!", finish: str = "stop", usage: dict | None = USAGE) -> dict:
    return {
        "id": "gen-1",
        "model": "openai/gpt-5",
        "usage": usage,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
    }


def chunk(text: str | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    data: dict = {
        "id": "gen-1",
        "choices": []
        if text is None and finish is None
        else [{"index": 0, "delta": {} if text is None else {"content": text}, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return data


def events(raw: bytes) -> list[tuple[str, dict]]:
    """(event name, data) of each server-sent event."""
    out = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def refused(fn, body: dict) -> str:
    with pytest.raises(ApiError) as caught:
        fn(body)
    assert (caught.value.code, caught.value.status) == ("invalid_request", 400)
    return caught.value.message


# ------------------------------------------------------------------ Responses


def test_responses_string_input_with_instructions_and_options():
    body = {
        "model": "openai/gpt-5",
        "input": "hi",
        "instructions": "be brief",
        "max_output_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stream": True,
        "store": False,
        "metadata": {"a": "b"},
        "reasoning": {"effort": "low"},
        "text": {"format": {"type": "text"}, "verbosity": "low"},
    }
    assert responses.chat_body(body) == {
        "model": "openai/gpt-5",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stream": True,
        "max_tokens": 50,
        "reasoning_effort": "low",
        "verbosity": "low",
    }


def test_responses_message_items_and_parts():
    body = {
        "model": "m",
        "input": [
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "c"}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": "https://x/i.png", "detail": "low"},
                ],
            },
        ],
    }
    assert responses.chat_body(body)["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "c"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "low"}},
            ],
        },
    ]


def test_responses_json_schema_becomes_response_format():
    fmt = {"type": "json_schema", "name": "r", "schema": {"type": "object"}, "strict": True}
    out = responses.chat_body({"model": "m", "input": "x", "text": {"format": fmt}})
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True},
    }


@pytest.mark.parametrize(
    "extra, where",
    [
        ({"previous_response_id": "resp_1"}, "`previous_response_id`"),
        ({"background": True}, "`background`"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "`input[0]`"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "`input[0].call_id`"),
        ({"tools": [{"type": "function"}]}, "`tools[0]`"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "`input[0].content[0]`"),
        ({"input": [{"role": "tool", "content": "x"}]}, "`input[0].role`"),
        ({"text": {"format": {"type": "grammar"}}}, "`text.format.type`"),
    ],
)
def test_responses_refuses_what_it_cannot_honour(extra, where):
    assert refused(responses.chat_body, {"model": "m", "input": "x", **extra}).startswith(where)


def base(**overrides) -> dict:
    return responses.shell(
        {"input": "x", **overrides}, response_id="resp_r1", model_id="openai/gpt-5", created=7, max_tokens=100
    )


def test_responses_answer_from_a_completion():
    out = responses.response(base(), completion())
    assert (out["id"], out["object"], out["status"], out["model"], out["created_at"]) == (
        "resp_r1",
        "response",
        "completed",
        "openai/gpt-5",
        7,
    )
    assert out["output"] == [
        {
            "type": "message",
            "id": "msg_r1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
        }
    ]
    assert out["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 14,
        "cost": 3,
    }


def test_responses_answer_cut_by_the_token_cap_is_incomplete():
    out = responses.response(base(), completion(finish="length"))
    assert (out["status"], out["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})


def test_responses_stream_events_in_order_with_sequence_numbers():
    fmt = responses.ResponseEvents(base())
    raw = fmt.start() + (fmt.chunk(chunk("Hel")) or b"") + (fmt.chunk(chunk("lo")) or b"")
    raw += (fmt.chunk(chunk("", finish="stop")) or b"") + (fmt.chunk(chunk(usage=USAGE)) or b"") + fmt.end(True)
    seen = events(raw)
    assert [name for name, _ in seen] == RESPONSE_EVENTS
    assert [data["sequence_number"] for _, data in seen] == list(range(10))
    assert all(name == data["type"] for name, data in seen)
    assert [data["delta"] for name, data in seen if name == "response.output_text.delta"] == ["Hel", "lo"]
    completed = seen[-1][1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"][0]["content"][0]["text"] == "Hello"
    assert (
        completed["usage"]["input_tokens"],
        completed["usage"]["output_tokens"],
        completed["usage"]["total_tokens"],
    ) == (11, 3, 14)


def test_responses_stream_error_event_carries_the_platform_error():
    fmt = responses.ResponseEvents(base())
    fmt.start()
    [(name, data)] = events(fmt.error("provider_error", "boom"))
    assert (name, data["type"], data["sequence_number"], data["code"]) == ("error", "error", 2, "provider_error")
    assert data["error"] == {"message": "boom", "type": "provider_error", "code": "provider_error"}


# ------------------------------------------------------------------ Anthropic


def test_anthropic_request_to_chat():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}
    system = [{"type": "text", "text": "be"}, {"type": "text", "text": "brief"}]
    body = {
        "model": "m",
        "max_tokens": 64,
        "system": system,
        "temperature": 0.5,
        "top_k": 5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
        "stream": True,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "yes"}]},
            {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
        ],
    }
    assert anthropic.chat_body(body) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be\nbrief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yes"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                ],
            },
        ],
        "max_tokens": 64,
        "temperature": 0.5,
        "stream": True,
        "stop": ["END"],
        "user": "u1",
    }


@pytest.mark.parametrize(
    "extra, where",
    [
        ({"tools": [{"name": "f"}]}, "`tools[0]`"),
        ({"tool_choice": {"type": "sometimes"}, "tools": [{"name": "f", "input_schema": {}}]}, "`tool_choice.type`"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            "`messages[0].content[0].tool_use_id`",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "hologram"}]}]}, "`messages[0].content[0]`"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
            "`messages[0].content[0].source`",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "`messages[0].role`"),
        ({"system": [{"type": "image"}]}, "`system[0]`"),
    ],
)
def test_anthropic_refuses_what_it_cannot_honour(extra, where):
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **extra}
    assert refused(anthropic.chat_body, body).startswith(where)


def test_anthropic_message_from_a_completion():
    assert anthropic.message(completion(finish="length"), message_id="msg_r1") == {
        "id": "msg_r1",
        "type": "message",
        "role": "assistant",
        "model": "openai/gpt-5",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 3, "cost": 3},
    }


def test_anthropic_stream_events_in_order():
    fmt = anthropic.MessageEvents(message_id="msg_r1", model_id="openai/gpt-5")
    raw = fmt.start() + (fmt.chunk(chunk("Hel")) or b"") + (fmt.chunk(chunk("lo", finish="stop")) or b"")
    raw += (fmt.chunk(chunk(usage=USAGE)) or b"") + fmt.end(True)
    seen = events(raw)
    assert [name for name, _ in seen] == MESSAGE_EVENTS
    assert all(name == data["type"] for name, data in seen)
    assert seen[0][1]["message"]["id"] == "msg_r1"
    assert [d["delta"] for n, d in seen if n == "content_block_delta"] == [
        {"type": "text_delta", "text": "Hel"},
        {"type": "text_delta", "text": "lo"},
    ]
    assert seen[6][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 11, "output_tokens": 3, "cost": 3},
    }


def test_anthropic_stream_without_text_still_has_one_block():
    fmt = anthropic.MessageEvents(message_id="m", model_id="x")
    names = [name for name, _ in events(fmt.start() + fmt.end(True))]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_error_event_is_the_platform_error():
    fmt = anthropic.MessageEvents(message_id="m", model_id="x")
    assert events(fmt.error("provider_error", "boom")) == [
        ("error", {"type": "error", "error": {"message": "boom", "type": "provider_error", "code": "provider_error"}})
    ]
