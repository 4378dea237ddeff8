"""OpenAI Responses ⇄ chat with tools, as pure functions: the requests Codex, the openai
SDK and the Agents SDK really sent (tests/fixtures/agents/: function, custom, namespace
and client tool-search tools, hosted tools, every tool item), and chat answers and
streams with tool calls and reasoning turned into the exact Response and typed events,
checked by the openai SDK's own stream accumulator."""

from __future__ import annotations

import orjson
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from api.translate import responses

from .test_translate import captured, events
from .test_translate_anthropic_tools import assert_well_formed, delta_chunk, render, tool_names

CODEX_TOOLS = [
    "exec_command",
    "write_stdin",
    "request_user_input",
    "apply_patch",
    "view_image",
    "get_goal",
    "create_goal",
    "update_goal",
    "tool_search",
]
MCP_TOOLS = [
    *CODEX_TOOLS[:2],
    "list_mcp_resources",
    "list_mcp_resource_templates",
    "read_mcp_resource",
    *CODEX_TOOLS[2:],
]
CODEX = {"reasoning_effort": "medium", "verbosity": "low", "parallel_tool_calls": True, "stream": True}
FALLBACK_TOOLS = [
    "exec_command",
    "write_stdin",
    "request_user_input",
    "view_image",
    *(f"multi_agent_v1__{name}" for name in ("close_agent", "resume_agent", "send_input", "spawn_agent", "wait_agent")),
    "get_goal",
    "create_goal",
    "update_goal",
]


# ------------------------------------------------------------------ captured requests


@pytest.mark.parametrize(
    "name, tools, options",
    [
        ("codex-01", CODEX_TOOLS, CODEX),
        ("codex-03", CODEX_TOOLS, CODEX),
        ("codex-mcp-01", MCP_TOOLS, CODEX),
        (
            "codex-mcp-03",
            [*MCP_TOOLS, "mcp__notes__read_note"],
            CODEX,
        ),
        (
            "codex-fallback-02",
            FALLBACK_TOOLS,
            {"reasoning_effort": "medium", "parallel_tool_calls": True, "stream": True},
        ),
        ("openai-sdk-responses-create-02", ["read_file"], {"reasoning_effort": "low"}),
        ("openai-sdk-responses-stream-02", ["read_file"], {"reasoning_effort": "low", "stream": True}),
        ("openai-agents-02", ["read_file"], {"reasoning_effort": "low"}),
        ("openai-agents-04", ["read_file"], {"reasoning_effort": "low", "stream": True}),
    ],
)
def test_each_captured_request_translates_with_its_tools(name, tools, options):
    request = captured(name)["body"]
    out = responses.chat_body(request)
    assert tool_names(out) == tools
    assert "web_search" not in orjson.dumps(out["tools"]).decode()  # the hosted tool is gone
    asked = {k: out[k] for k in ("reasoning_effort", "verbosity", "parallel_tool_calls", "stream") if k in out}
    assert asked == options
    assert out.get("prompt_cache_key") == request.get("prompt_cache_key")
    assert out.get("tool_choice") == request.get("tool_choice")
    for dropped in ("store", "include", "client_metadata", "reasoning", "text", "input", "instructions"):
        assert dropped not in out
    assert_well_formed(out["messages"])
    for tool in request["tools"]:  # every function keeps its definition exactly
        if tool["type"] == "function":
            [function] = [t["function"] for t in out["tools"] if t["function"]["name"] == tool["name"]]
            assert function == {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}


def test_codex_freeform_apply_patch_is_a_function_of_one_string_with_its_grammar():
    request = captured("codex-01")["body"]
    [patch] = [tool for tool in request["tools"] if tool["type"] == "custom"]
    [function] = [
        t["function"] for t in responses.chat_body(request)["tools"] if t["function"]["name"] == "apply_patch"
    ]
    assert function == {
        "name": "apply_patch",
        "description": patch["description"] + "\n\nPut the whole input in `input`.",
        "parameters": {
            "type": "object",
            "properties": {
                "input": {
                    "type": "string",
                    "description": "The whole input, as one string, following this lark grammar:\n"
                    + patch["format"]["definition"],
                }
            },
            "required": ["input"],
            "additionalProperties": False,
        },
    }


def test_codex_conversation_with_custom_and_function_calls():
    request = captured("codex-03")["body"]
    out = responses.chat_body(request)
    items = request["input"]
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "system", "user", "user", "assistant", "tool", "assistant", "tool"]
    assert out["messages"][0]["content"] == items[0]["content"][0]["text"]  # developer → system
    patch, patched, read, shown = items[6], items[7], items[10], items[11]
    assert out["messages"][4] == {
        "role": "assistant",
        "content": "I'll create the file.",
        "tool_calls": [
            {
                "id": "call_fake_0001",
                "type": "function",
                "function": {"name": "apply_patch", "arguments": orjson.dumps({"input": patch["input"]}).decode()},
            }
        ],
    }
    assert out["messages"][5] == {"role": "tool", "tool_call_id": "call_fake_0001", "content": patched["output"]}
    assert out["messages"][6]["content"] == "Now I read it back."
    assert out["messages"][6]["tool_calls"][0]["function"] == {"name": "exec_command", "arguments": read["arguments"]}
    assert out["messages"][7] == {"role": "tool", "tool_call_id": read["call_id"], "content": shown["output"]}
    assert "encrypted_content" not in orjson.dumps(out).decode()  # the reasoning items are dropped


def test_codex_tool_search_and_namespaced_mcp_call():
    request = captured("codex-mcp-03")["body"]
    out = responses.chat_body(request)
    searched, namespaced = out["messages"][4], out["messages"][6]
    assert searched == {
        "role": "assistant",
        "content": "Let me find the notes tool.",
        "tool_calls": [
            {
                "id": "call_fake_0001",
                "type": "function",
                "function": {"name": "tool_search", "arguments": '{"query":"read note","limit":8}'},
            }
        ],
    }
    assert out["messages"][5] == {
        "role": "tool",
        "tool_call_id": "call_fake_0001",
        "content": "Tools loaded: mcp__notes__read_note",
    }
    assert namespaced["tool_calls"][0]["function"] == {
        "name": "mcp__notes__read_note",
        "arguments": '{"name":"groceries"}',
    }
    [loaded] = [t["function"] for t in out["tools"] if t["function"]["name"] == "mcp__notes__read_note"]
    assert loaded == {
        "name": "mcp__notes__read_note",
        "description": "Read the note with this name.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "strict": False,
    }


def test_the_shell_offers_what_the_model_was_offered():
    request = captured("codex-mcp-03")["body"]
    base = responses.shell(request, response_id="resp_1", model_id="gpt-5.5", created=1, max_tokens=100)
    kinds = [(tool["type"], tool.get("name")) for tool in base["tools"]]
    assert kinds[-2:] == [("tool_search", None), ("namespace", "mcp__notes")]
    assert ("web_search", None) not in kinds
    assert (base["parallel_tool_calls"], base["tool_choice"]) == (True, "auto")


# ------------------------------------------------------------------ request mappings


def ask(**extra) -> dict:
    return {"model": "m", "input": "hi", **extra}


FUNCTION = {"type": "function", "name": "f", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search"},
        {"type": "web_search_preview"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "mcp", "server_label": "x", "server_url": "https://x"},
        {"type": "image_generation"},
        {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"},
        {"type": "local_shell"},
        {"type": "shell"},
        {"type": "apply_patch"},
        {"type": "tool_search"},  # run by the server
    ],
)
def test_hosted_tools_are_dropped_never_refused(tool):
    assert "tools" not in responses.chat_body(ask(tools=[tool], tool_choice="required", parallel_tool_calls=False))
    out = responses.chat_body(ask(tools=[tool, FUNCTION], tool_choice={"type": tool["type"]}))
    assert (tool_names(out), out["tool_choice"]) == (["f"], "auto")


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
        ({"type": "custom", "name": "patch"}, {"type": "function", "function": {"name": "patch"}}),
        ({"type": "function", "name": "gone"}, "auto"),
        (
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]},
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "f"}}]},
            },
        ),
    ],
)
def test_tool_choice(choice, expected):
    tools = [FUNCTION, {"type": "custom", "name": "patch"}]
    assert responses.chat_body(ask(tools=tools, tool_choice=choice))["tool_choice"] == expected


def test_namespaced_and_deferred_tools_are_flat_functions():
    tools = [
        {
            "type": "namespace",
            "name": "crm",
            "description": "CRM",
            "tools": [
                {"type": "function", "name": "lookup", "defer_loading": True, "parameters": {"type": "object"}},
                {"type": "custom", "name": "query", "description": "SQL"},
            ],
        }
    ]
    out = responses.chat_body(ask(tools=tools))
    assert out["tools"] == [
        {"type": "function", "function": {"name": "crm__lookup", "parameters": {"type": "object"}}},
        {
            "type": "function",
            "function": {
                "name": "crm__query",
                "description": "SQL\n\nPut the whole input in `input`.",
                "parameters": {
                    "type": "object",
                    "properties": {"input": {"type": "string", "description": "The whole input, as one string"}},
                    "required": ["input"],
                    "additionalProperties": False,
                },
            },
        },
    ]


def test_tool_output_parts_and_dropped_items():
    out = responses.chat_body(
        ask(
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}
                    ],
                },
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
                {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "look", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [
                        {"type": "input_text", "text": "seen:"},
                        {"type": "input_image", "image_url": "https://x/i.png"},
                    ],
                },
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
                {"role": "user", "content": "thanks"},
            ]
        )
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}}
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "look", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "seen:"},
        {"role": "tool", "tool_call_id": "c2", "content": "done"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/i.png"}}]},
        {"role": "user", "content": "thanks"},
    ]


# ------------------------------------------------------------------ answers

TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
    {"type": "custom", "name": "apply_patch"},
    {
        "type": "namespace",
        "name": "mcp__notes",
        "description": "notes",
        "tools": [{"type": "function", "name": "read_note"}],
    },
    {"type": "tool_search", "execution": "client", "parameters": {"type": "object"}},
]
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 40,
    "total_tokens": 1040,
    "prompt_tokens_details": {"cached_tokens": 600},
    "completion_tokens_details": {"reasoning_tokens": 12},
}
CALLS = [
    ("call_1", "exec_command", '{"cmd":"cat a.txt"}'),
    ("call_2", "apply_patch", orjson.dumps({"input": PATCH}).decode()),
    ("call_3", "mcp__notes__read_note", '{"name":"x"}'),
    ("call_4", "tool_search", '{"query":"notes"}'),
]
ITEMS = [
    {
        "type": "function_call",
        "id": "fc_r1_2",
        "call_id": "call_1",
        "name": "exec_command",
        "arguments": '{"cmd":"cat a.txt"}',
        "status": "completed",
    },
    {"type": "custom_tool_call", "id": "fc_r1_3", "call_id": "call_2", "name": "apply_patch", "input": PATCH},
    {
        "type": "function_call",
        "id": "fc_r1_4",
        "call_id": "call_3",
        "name": "read_note",
        "arguments": '{"name":"x"}',
        "status": "completed",
        "namespace": "mcp__notes",
    },
    {
        "type": "tool_search_call",
        "id": "fc_r1_5",
        "call_id": "call_4",
        "execution": "client",
        "arguments": {"query": "notes"},
        "status": "completed",
    },
]


def base() -> dict:
    return responses.shell(
        {"input": "x", "tools": TOOLS}, response_id="resp_r1", model_id="gpt-5.5", created=7, max_tokens=100
    )


def test_response_with_reasoning_text_and_every_kind_of_tool_call():
    message = {
        "role": "assistant",
        "content": "On it.",
        "reasoning": "Plan the patch.",
        "tool_calls": [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in CALLS],
    }
    data = {"id": "gen-1", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}], "usage": USAGE}
    out = responses.response(base(), data)
    assert out["status"] == "completed"
    assert out["output"] == [
        {"type": "reasoning", "id": "rs_r1_0", "summary": [{"type": "summary_text", "text": "Plan the patch."}]},
        {
            "type": "message",
            "id": "msg_r1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "On it.", "annotations": [], "logprobs": []}],
        },
        *ITEMS,
    ]
    assert out["usage"] == {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 1040,
    }


def stream_of_calls() -> list[dict]:
    chunks = [
        delta_chunk({"role": "assistant", "content": ""}),
        delta_chunk({"reasoning": "Plan "}),
        delta_chunk({"reasoning": "the patch."}),
        delta_chunk({"content": "On it."}),
    ]
    for index, (call_id, name, arguments) in enumerate(CALLS):
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(delta_chunk({"tool_calls": [head]}))
        chunks += [delta_chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[:5]}}]})]
        chunks += [delta_chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[5:]}}]})]
    return [*chunks, delta_chunk({}, "tool_calls"), delta_chunk(usage=USAGE)]


def test_stream_is_the_responses_event_sequence_with_output_indexes_in_order():
    seen = events(render(responses.ResponseEvents(base()), stream_of_calls()))
    shape = [(name, data.get("output_index")) for name, data in seen]
    assert shape == [
        ("response.created", None),
        ("response.in_progress", None),
        ("response.output_item.added", 0),
        ("response.reasoning_summary_part.added", 0),
        ("response.reasoning_summary_text.delta", 0),
        ("response.reasoning_summary_text.delta", 0),
        ("response.reasoning_summary_text.done", 0),
        ("response.reasoning_summary_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.content_part.added", 1),
        ("response.output_text.delta", 1),
        ("response.output_text.done", 1),
        ("response.content_part.done", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.done", 2),
        ("response.output_item.done", 2),
        ("response.output_item.added", 3),
        ("response.custom_tool_call_input.delta", 3),
        ("response.custom_tool_call_input.done", 3),
        ("response.output_item.done", 3),
        ("response.output_item.added", 4),
        ("response.function_call_arguments.delta", 4),
        ("response.function_call_arguments.delta", 4),
        ("response.function_call_arguments.done", 4),
        ("response.output_item.done", 4),
        ("response.output_item.added", 5),
        ("response.output_item.done", 5),
        ("response.completed", None),
    ]
    assert [data["sequence_number"] for _, data in seen] == list(range(len(seen)))
    assert seen[15][1]["item"] == {**ITEMS[0], "arguments": "", "status": "in_progress"}
    assert (
        "".join(d["delta"] for n, d in seen if n == "response.function_call_arguments.delta" and d["output_index"] == 2)
        == CALLS[0][2]
    )
    assert seen[18][1] == {
        "type": "response.function_call_arguments.done",
        "sequence_number": 18,
        "item_id": "fc_r1_2",
        "output_index": 2,
        "arguments": CALLS[0][2],
    }
    assert seen[22][1]["input"] == PATCH
    completed = seen[-1][1]["response"]
    assert completed["output"][2:] == ITEMS
    assert completed["output"][0] == {
        "type": "reasoning",
        "id": "rs_r1_0",
        "summary": [{"type": "summary_text", "text": "Plan the patch."}],
    }
    assert completed["usage"]["output_tokens_details"] == {"reasoning_tokens": 12}


def test_the_openai_sdk_rebuilds_the_streamed_response():
    """The SDK's own accumulator (what `responses.stream` does) gets every item whole."""
    adapter: TypeAdapter = TypeAdapter(ResponseStreamEvent)
    state = ResponseStreamState(input_tools=TOOLS, text_format=omit)  # type: ignore[arg-type]
    for _, data in events(render(responses.ResponseEvents(base()), stream_of_calls())):
        state.handle_event(adapter.validate_python(data))
    final = state._completed_response
    assert final is not None
    assert [item.type for item in final.output] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
        "function_call",
        "tool_search_call",
    ]
    assert final.output[2].arguments == CALLS[0][2]
    assert final.output[3].input == PATCH
    assert final.output[4].namespace == "mcp__notes"


def test_stream_of_text_only_keeps_todays_events():
    chunks = [delta_chunk({"content": "Hel"}), delta_chunk({"content": "lo"}, "stop")]
    seen = events(render(responses.ResponseEvents(base()), chunks))
    assert seen[2][1]["item"] == {
        "type": "message",
        "id": "msg_r1",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert seen[-1][1]["response"]["output"][0]["content"][0]["text"] == "Hello"
