"""Anthropic Messages ⇄ chat with tools, thinking and cache breakpoints, as pure functions:
the requests Claude Code and the anthropic SDK really sent (tests/fixtures/agents/),
and chat answers and streams with tool calls and reasoning turned into the exact
Message and events, checked by the anthropic SDK's own stream accumulator."""

from __future__ import annotations

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from api.translate import anthropic

from .test_translate import captured, events

CLAUDE_CODE_TOOLS = [
    "Agent",
    "Bash",
    "Edit",
    "ListAgents",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "Skill",
    "ToolSearch",
    "Workflow",
    "DeferredToolPlaceholder",
    "Write",
]
EPHEMERAL = {"type": "ephemeral"}


def tool_names(out: dict) -> list[str]:
    return [tool["function"]["name"] for tool in out.get("tools", [])]


def assert_well_formed(messages: list[dict]) -> None:
    """Every tool message answers a call of the assistant message before its run of tool
    messages, as chat upstreams require."""
    open_calls: set[str] = set()
    for said in messages:
        if said["role"] == "tool":
            assert said["tool_call_id"] in open_calls, said
            open_calls.discard(said["tool_call_id"])
        else:
            open_calls = {call["id"] for call in said.get("tool_calls", [])}


# ------------------------------------------------------------------ captured requests


@pytest.mark.parametrize(
    "name, tools, reasoning, max_tokens",
    [
        ("claude-code-01", CLAUDE_CODE_TOOLS, {"max_tokens": 31999}, 32000),
        ("claude-code-02", CLAUDE_CODE_TOOLS, {"max_tokens": 31999}, 32000),
        ("claude-code-03", CLAUDE_CODE_TOOLS, {"max_tokens": 31999}, 32000),
        ("claude-code-default-01", CLAUDE_CODE_TOOLS, {"effort": "medium"}, 128000),
        ("claude-code-default-03", CLAUDE_CODE_TOOLS, {"effort": "medium"}, 128000),
        ("claude-code-gpt5-03", CLAUDE_CODE_TOOLS, {"effort": "high"}, 32000),
        (
            "claude-code-toolsearch-03",
            [*CLAUDE_CODE_TOOLS[:8], "TaskList", *CLAUDE_CODE_TOOLS[8:]],
            {"max_tokens": 31999},
            32000,
        ),
        ("anthropic-sdk-create-02", ["read_file"], None, 1024),
        ("anthropic-sdk-stream-02", ["read_file"], {"max_tokens": 2048}, 4096),
    ],
)
def test_each_captured_request_translates_with_its_tools_and_reasoning(name, tools, reasoning, max_tokens):
    request = captured(name)["body"]
    out = anthropic.chat_body(request)
    assert tool_names(out) == tools
    given = {tool["name"]: tool for tool in request["tools"]}
    for tool in out["tools"]:  # each schema and description exactly as given, nothing else
        function = tool["function"]
        assert tool == {"type": "function", "function": function}
        assert function["parameters"] == given[function["name"]]["input_schema"]
        assert function.get("description") == given[function["name"]].get("description")
    assert (out.get("reasoning"), out["max_tokens"], out["model"]) == (reasoning, max_tokens, request["model"])
    for dropped in ("context_management", "thinking", "output_config", "metadata", "system", "top_k"):
        assert dropped not in out
    assert_well_formed(out["messages"])


def test_claude_code_conversation_keeps_signatures_cache_breakpoints_and_tool_results():
    request = captured("claude-code-03")["body"]
    out = anthropic.chat_body(request)
    system, user, first, written, second, shown = out["messages"]
    assert system == {
        "role": "system",
        "content": [{"type": "text", "text": b["text"], **b} for b in request["system"]],
    }
    assert [part.get("cache_control") for part in system["content"]] == [None, EPHEMERAL, EPHEMERAL]
    # its reminders and the prompt, one string where no breakpoint is left on them
    assert user == {"role": "user", "content": "".join(b["text"] for b in request["messages"][0]["content"])}
    thinking, text, tool_use = request["messages"][1]["content"]
    assert first == {
        "role": "assistant",
        "content": "I'll write the file.",
        "tool_calls": [
            {
                "id": "toolu_call_fake_0001",
                "type": "function",
                "function": {"name": "Write", "arguments": orjson.dumps(tool_use["input"]).decode()},
            }
        ],
        "reasoning_details": [
            {"type": "reasoning.text", "text": thinking["thinking"], "signature": thinking["signature"], "index": 0}
        ],
    }
    result = request["messages"][2]["content"][0]["content"]
    assert written == {"role": "tool", "tool_call_id": "toolu_call_fake_0001", "content": result}
    assert second["tool_calls"][0]["function"] == {
        "name": "Bash",
        "arguments": '{"command":"cat hello.txt","description":"Show hello.txt"}',
    }
    assert second["content"] == "Now let me read it back."
    output = request["messages"][4]["content"][0]
    assert output["is_error"] is False and output["cache_control"] == EPHEMERAL
    assert shown == {
        "role": "tool",
        "tool_call_id": "toolu_call_fake_0003",
        "content": [{"type": "text", "text": output["content"], "cache_control": EPHEMERAL}],
    }


def test_first_claude_code_request_keeps_the_breakpoint_on_the_prompt():
    user = anthropic.chat_body(captured("claude-code-01")["body"])["messages"][1]
    assert user["content"][-1] == {
        "type": "text",
        "text": "Create hello.txt containing a greeting, then show it with cat.",
        "cache_control": EPHEMERAL,
    }
    assert all("cache_control" not in part for part in user["content"][:-1])


def test_a_system_turn_among_the_messages_stays_a_system_message():
    request = captured("claude-code-default-01")["body"]
    assert request["messages"][1]["role"] == "system"
    out = anthropic.chat_body(request)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "system"]
    [turn] = request["messages"][1]["content"]
    assert turn["cache_control"] == EPHEMERAL
    assert out["messages"][2] == {
        "role": "system",
        "content": [{"type": "text", "text": turn["text"], "cache_control": EPHEMERAL}],
    }


def test_tool_search_result_is_a_loaded_line_and_the_loaded_tool_is_offered():
    out = anthropic.chat_body(captured("claude-code-toolsearch-02")["body"])
    assert out["messages"][2]["tool_calls"][0]["function"] == {
        "name": "ToolSearch",
        "arguments": '{"query":"select:TaskList","max_results":5}',
    }
    assert out["messages"][3] == {
        "role": "tool",
        "tool_call_id": "toolu_call_fake_0001",
        "content": "Tool loaded: TaskList",
    }
    reminder = "<system-reminder>\n<total_tokens>14978098 tokens left</total_tokens>\n</system-reminder>"
    assert out["messages"][4] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Tool loaded."},
            {"type": "text", "text": reminder, "cache_control": EPHEMERAL},
        ],
    }
    assert "TaskList" in tool_names(out)


def test_sdk_request_drops_the_server_tool_and_keeps_tool_choice():
    request = captured("anthropic-sdk-create-01")["body"]
    assert [tool.get("type") for tool in request["tools"]] == [None, "web_search_20250305"]
    out = anthropic.chat_body(request)
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": request["tools"][0]["input_schema"],
                "description": "Read a file in the working directory.",
            },
        }
    ]
    assert out["tool_choice"] == "auto"
    assert out["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "You are a careful assistant.", "cache_control": EPHEMERAL}],
    }


def test_sdk_stream_request_round_trips_thinking_and_a_tool_result_of_blocks():
    request = captured("anthropic-sdk-stream-02")["body"]
    out = anthropic.chat_body(request)
    thinking = request["messages"][1]["content"][0]
    assert out["messages"][2]["reasoning_details"] == [
        {"type": "reasoning.text", "text": thinking["thinking"], "signature": thinking["signature"], "index": 0}
    ]
    assert out["messages"][3] == {
        "role": "tool",
        "tool_call_id": "toolu_call_fake_0001",
        "content": "Hello from the SDK test!\n",
    }
    assert (out["reasoning"], out["stream"]) == ({"max_tokens": 2048}, True)


# ------------------------------------------------------------------ request mappings


def ask(**extra) -> dict:
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    "tools",
    [
        [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        [{"type": "web_fetch_20250910", "name": "web_fetch"}],
        [{"type": "bash_20250124", "name": "bash"}],
        [{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}],
        [{"type": "code_execution_20250825", "name": "code_execution"}],
        [{"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768}],
        [{"type": "memory_20250818", "name": "memory"}],
        [{"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"}],
    ],
)
def test_server_and_anthropic_defined_tools_are_dropped_never_refused(tools):
    out = anthropic.chat_body(ask(tools=tools, tool_choice={"type": "any"}))
    assert "tools" not in out and "tool_choice" not in out
    assert out["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "choice, expected",
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "f"}, {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        ({"type": "tool", "name": "web_search"}, {"tool_choice": "auto"}),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
    ],
)
def test_tool_choice(choice, expected):
    tools = [{"name": "f", "input_schema": {"type": "object"}, "strict": True, "defer_loading": True}]
    out = anthropic.chat_body(
        ask(tools=tools + [{"type": "web_search_20250305", "name": "web_search"}], tool_choice=choice)
    )
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


@pytest.mark.parametrize(
    "thinking, config, expected",
    [
        ({"type": "enabled", "budget_tokens": 4000}, None, {"reasoning": {"max_tokens": 4000}}),
        ({"type": "enabled", "budget_tokens": 4000}, {"effort": "low"}, {"reasoning": {"max_tokens": 4000}}),
        ({"type": "adaptive"}, None, {"reasoning": {"enabled": True}}),
        ({"type": "adaptive", "display": "omitted"}, {"effort": "max"}, {"reasoning": {"effort": "xhigh"}}),
        (None, {"effort": "low"}, {"reasoning": {"effort": "low"}}),
        ({"type": "disabled"}, {"effort": "low"}, {}),
        (
            None,
            {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
                }
            },
        ),
    ],
)
def test_thinking_and_output_config(thinking, config, expected):
    body = ask(**({"thinking": thinking} if thinking else {}), **({"output_config": config} if config else {}))
    out = anthropic.chat_body(body)
    assert {k: out[k] for k in ("reasoning", "response_format") if k in out} == expected


def test_documents_images_and_tool_results_of_every_kind():
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}
    body = ask(
        cache_control=EPHEMERAL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": pdf, "title": "spec.pdf", "cache_control": EPHEMERAL},
                    {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
                    {"type": "text", "text": "read these"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "tool_use", "id": "t1", "name": "look", "input": {}},
                    {"type": "tool_use", "id": "t2", "name": "look", "input": {"at": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": "no such file"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": [
                            {"type": "text", "text": "a picture:"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                        ],
                    },
                    {"type": "text", "text": "go on"},
                ],
            },
        ],
    )
    assert anthropic.chat_body(body)["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBER"},
                    "cache_control": EPHEMERAL,
                },
                {"type": "file", "file": {"filename": "document.pdf", "file_data": "https://x/a.pdf"}},
                {"type": "text", "text": "plain"},
                {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                {"type": "text", "text": "read these"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "look", "arguments": "{}"}},
                {"id": "t2", "type": "function", "function": {"name": "look", "arguments": '{"at":2}'}},
            ],
            "reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque", "index": 0}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "Error: no such file"},
        {"role": "tool", "tool_call_id": "t2", "content": "a picture:"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "go on", "cache_control": EPHEMERAL},  # the top-level breakpoint
            ],
        },
    ]


# ------------------------------------------------------------------ answers

TOOL_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 40,
    "total_tokens": 1040,
    "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
    "completion_tokens_details": {"reasoning_tokens": 12},
    "cost": 5,
}
SIGNATURE = "EqQBCkYIBRgCKkD-signature=="
ARGUMENTS = '{"file_path":"/tmp/hello.txt","content":"Hi!\\n"}'


def tool_completion(finish: str = "tool_calls") -> dict:
    message = {
        "role": "assistant",
        "content": "I'll write it.",
        "reasoning": "Write the file.",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "Write the file.",
                "signature": SIGNATURE,
                "format": "anthropic-claude-v1",
                "index": 0,
            }
        ],
        "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "Write", "arguments": ARGUMENTS}},
            {"id": "toolu_02", "type": "function", "function": {"name": "Bash", "arguments": "not json"}},
        ],
    }
    return {
        "id": "gen-9",
        "model": "anthropic/claude-sonnet-4.5",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": TOOL_USAGE,
    }


@pytest.mark.parametrize("finish", ["tool_calls", "stop"])  # some upstreams finish a tool call with "stop"
def test_message_with_thinking_and_tool_calls(finish):
    assert anthropic.message(tool_completion(finish), message_id="msg_1") == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "anthropic/claude-sonnet-4.5",
        "content": [
            {"type": "thinking", "thinking": "Write the file.", "signature": SIGNATURE},
            {"type": "text", "text": "I'll write it."},
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "Write",
                "input": {"file_path": "/tmp/hello.txt", "content": "Hi!\n"},
            },
            {"type": "tool_use", "id": "toolu_02", "name": "Bash", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 100,
            "output_tokens": 40,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 600,
            "output_tokens_details": {"thinking_tokens": 12},
            "cost": 5,
        },
    }


def test_message_with_plain_reasoning_and_no_text():
    data = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "hmm",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "length",
            }
        ]
    }
    out = anthropic.message(data, message_id="m")
    assert out["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": ""},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
    ]
    assert (out["stop_reason"], out["usage"]) == ("max_tokens", {"input_tokens": 0, "output_tokens": 0})


def delta_chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    data: dict = {
        "id": "gen-9",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        data["usage"] = usage
    return data


def detail(text: str, signature: str | None = None) -> dict:
    return {"type": "reasoning.text", "text": text, "signature": signature, "format": "anthropic-claude-v1", "index": 0}


# a chat stream as OpenRouter sends one: reasoning (text, then the signature), text, two tool calls
TOOL_STREAM = [
    delta_chunk({"role": "assistant", "content": ""}),
    delta_chunk({"reasoning": "Write ", "reasoning_details": [detail("Write ")]}),
    delta_chunk({"reasoning": "the file.", "reasoning_details": [detail("the file.")]}),
    delta_chunk({"reasoning_details": [detail("", SIGNATURE)]}),
    delta_chunk({"content": "I'll "}),
    delta_chunk({"content": "write it."}),
    delta_chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "toolu_01", "type": "function", "function": {"name": "Write", "arguments": ""}}
            ]
        }
    ),
    *(
        delta_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        for piece in (ARGUMENTS[:7], ARGUMENTS[7:30], ARGUMENTS[30:])
    ),
    delta_chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "toolu_02",
                    "type": "function",
                    "function": {"name": "Bash", "arguments": '{"command":'},
                }
            ]
        }
    ),
    delta_chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"cat hello.txt"}'}}]}),
    delta_chunk({}, "tool_calls"),
    delta_chunk(usage=TOOL_USAGE),
]


def render(fmt, chunks: list[dict]) -> bytes:
    return fmt.start() + b"".join(fmt.chunk(c) or b"" for c in chunks) + fmt.end(True)


def test_stream_with_thinking_text_and_tool_calls_is_anthropics_event_sequence():
    seen = events(render(anthropic.MessageEvents(message_id="msg_1", model_id="m"), TOOL_STREAM))
    shape = [(name, d.get("index"), (d.get("delta") or d.get("content_block") or {}).get("type")) for name, d in seen]
    assert shape == [
        ("message_start", None, None),
        ("ping", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert all(name == data["type"] for name, data in seen)
    assert seen[11][1]["content_block"] == {"type": "tool_use", "id": "toolu_01", "name": "Write", "input": {}}
    assert (
        "".join(d["delta"]["partial_json"] for n, d in seen if n == "content_block_delta" and d["index"] == 2)
        == ARGUMENTS
    )
    assert seen[5][1]["delta"] == {"type": "signature_delta", "signature": SIGNATURE}
    assert seen[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 100,
            "output_tokens": 40,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 600,
            "output_tokens_details": {"thinking_tokens": 12},
            "cost": 5,
        },
    }


def test_the_anthropic_sdk_rebuilds_the_streamed_message():
    """The SDK's own accumulator (what `messages.stream` and Claude Code's client do) gets
    the thinking with its signature, the text and both tool inputs whole."""
    adapter: TypeAdapter = TypeAdapter(RawMessageStreamEvent)
    snapshot, buffers = None, {}
    for _, data in events(render(anthropic.MessageEvents(message_id="msg_1", model_id="m"), TOOL_STREAM)):
        if data["type"] != "ping":
            snapshot = accumulate_event(
                event=adapter.validate_python(data), current_snapshot=snapshot, json_bufs=buffers
            )
    assert snapshot is not None
    assert [block.model_dump(exclude_none=True) for block in snapshot.content] == [
        {"type": "thinking", "thinking": "Write the file.", "signature": SIGNATURE},
        {"type": "text", "text": "I'll write it."},
        {
            "type": "tool_use",
            "id": "toolu_01",
            "name": "Write",
            "input": {"file_path": "/tmp/hello.txt", "content": "Hi!\n"},
        },
        {"type": "tool_use", "id": "toolu_02", "name": "Bash", "input": {"command": "cat hello.txt"}},
    ]
    assert (snapshot.stop_reason, snapshot.usage.output_tokens) == ("tool_use", 40)


def test_stream_tool_call_finished_with_stop_still_says_tool_use():
    chunks = [TOOL_STREAM[6], TOOL_STREAM[7], delta_chunk({}, "stop")]
    seen = events(render(anthropic.MessageEvents(message_id="m", model_id="x"), chunks))
    assert seen[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_stream_of_encrypted_reasoning_is_a_redacted_thinking_block():
    chunks = [
        delta_chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque"}]}),
        delta_chunk({"content": "ok"}, "stop"),
    ]
    seen = events(render(anthropic.MessageEvents(message_id="m", model_id="x"), chunks))
    assert [d.get("content_block") for n, d in seen if n == "content_block_start"] == [
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": ""},
    ]
    assert [n for n, _ in seen].count("content_block_stop") == 2
