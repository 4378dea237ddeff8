"""A tool job through the platform's translation, driven by the official SDKs: the
anthropic SDK on /messages and the openai SDK and the OpenAI Agents SDK on /responses,
against the scripted agent upstream (tests/fakes/agent_upstream.py) speaking chat over
real sockets. Turn 1 is a tool call, turn 2 (after the tool result) the final answer
quoting the tool's output."""

from __future__ import annotations

import anthropic
import openai
import orjson
import pytest

from api.app import create_app

from ..factories import make_key, make_user
from ..fakes.agent_upstream import AgentUpstream, Call, ToolJob
from ..serving import serve
from .test_responses import set_model

FILE = "Hello from the SDK test!\n"
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+Hello!\n*** End Patch\n"
READ_FILE = {
    "name": "read_file",
    "description": "Read a file in the working directory.",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}
RESPONSES_TOOLS = [
    {"type": "function", "name": "read_file", "parameters": READ_FILE["input_schema"], "strict": False},
    {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch."},
    {"type": "web_search"},
]


@pytest.fixture
def chat_upstream():
    """The agent upstream as the platform's chat provider (tests/conftest.py's `settings` use it)."""
    job = ToolJob([Call("read_file", {"path": "hello.txt"}, say="Let me read it.")], final="The file says: {output}")
    with AgentUpstream(job) as upstream:
        yield upstream


@pytest.fixture
def secret(engine, chat_upstream):
    set_model(engine, upstream_id="openai/gpt-5-upstream")
    return make_key(engine, make_user(engine, credits=100))


@pytest.fixture
def base(settings):
    """The platform served for real (the SDKs speak to it over sockets)."""
    with serve(create_app(settings)) as (url, _):
        yield url


def upstream_bodies(upstream: AgentUpstream) -> list[dict]:
    assert all(seen.path == "/v1/chat/completions" for seen in upstream.requests)
    return [seen.json() for seen in upstream.requests]


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_sdk_tool_round_trip(base, secret, chat_upstream, stream):
    client = anthropic.AsyncAnthropic(base_url=f"{base}/api", api_key=secret, max_retries=0)
    ask = dict(
        model="openai/gpt-5",
        max_tokens=1024,
        tools=[READ_FILE, {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
    )
    messages: list = [{"role": "user", "content": "What does hello.txt say?"}]

    async def turn():
        if not stream:
            return await client.messages.create(messages=messages, **ask)
        async with client.messages.stream(messages=messages, **ask) as events:
            return await events.get_final_message()

    first = await turn()
    assert first.stop_reason == "tool_use"
    text, call = first.content
    assert (text.type, text.text) == ("text", "Let me read it.")
    assert (call.type, call.name, call.input, call.id) == (
        "tool_use",
        "read_file",
        {"path": "hello.txt"},
        "call_fake_0001",
    )
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": FILE}]},
    ]
    final = await turn()
    assert (final.stop_reason, final.content[0].text) == ("end_turn", "The file says: " + FILE)
    assert final.usage.input_tokens == chat_upstream.answers[1].usage.prompt
    sent = upstream_bodies(chat_upstream)
    assert [tool["function"]["name"] for tool in sent[0]["tools"]] == ["read_file"]
    assert sent[1]["messages"] == [
        {"role": "user", "content": "What does hello.txt say?"},
        {
            "role": "assistant",
            "content": "Let me read it.",
            "tool_calls": [
                {
                    "id": "call_fake_0001",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path":"hello.txt"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_fake_0001", "content": FILE},
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_sdk_responses_tool_round_trip(base, secret, chat_upstream, stream):
    client = openai.AsyncOpenAI(base_url=f"{base}/api/v1", api_key=secret, max_retries=0)
    items: list = [{"role": "user", "content": "What does hello.txt say?"}]
    ask = dict(model="openai/gpt-5", tools=RESPONSES_TOOLS, reasoning={"effort": "low"}, store=False)

    async def turn():
        if not stream:
            return await client.responses.create(input=items, **ask)
        async with client.responses.stream(input=items, **ask) as events:
            return await events.get_final_response()

    first = await turn()
    assert [item.type for item in first.output] == ["reasoning", "message", "function_call"]
    assert first.output[0].summary[0].text == "The job's step 0 is due."
    call = first.output[2]
    assert (call.name, call.arguments, call.call_id, call.status) == (
        "read_file",
        '{"path":"hello.txt"}',
        "call_fake_0001",
        "completed",
    )
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": FILE})
    final = await turn()
    assert final.output_text == "The file says: " + FILE
    reported = chat_upstream.answers[1].usage
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens_details.reasoning_tokens) == (
        reported.prompt,
        reported.reasoning,
    )
    sent = upstream_bodies(chat_upstream)
    assert [tool["function"]["name"] for tool in sent[1]["tools"]] == ["read_file", "apply_patch"]
    assert sent[1]["reasoning_effort"] == "low"
    assert sent[1]["messages"][-2:] == [
        {
            "role": "assistant",
            "content": "Let me read it.",
            "tool_calls": [
                {
                    "id": "call_fake_0001",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path":"hello.txt"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_fake_0001", "content": FILE},
    ]


async def test_a_freeform_tool_call_comes_back_as_a_custom_tool_call(base, secret, chat_upstream):
    chat_upstream.job.calls = [Call("apply_patch", PATCH)]
    client = openai.AsyncOpenAI(base_url=f"{base}/api/v1", api_key=secret, max_retries=0)
    async with client.responses.stream(model="openai/gpt-5", input="Write hello.txt", tools=RESPONSES_TOOLS) as events:
        done = await events.get_final_response()
    [call] = done.output
    assert (call.type, call.name, call.input) == ("custom_tool_call", "apply_patch", PATCH)
    [sent] = upstream_bodies(chat_upstream)
    [function] = [t["function"] for t in sent["tools"] if t["function"]["name"] == "apply_patch"]
    assert function["parameters"]["required"] == ["input"]


async def test_openai_agents_sdk_runs_its_tool(base, secret, chat_upstream):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    calls: list[str] = []

    @function_tool
    def read_file(path: str) -> str:
        """Read a file in the working directory."""
        calls.append(path)
        return FILE

    client = openai.AsyncOpenAI(base_url=f"{base}/api/v1", api_key=secret, max_retries=0)
    agent = Agent(
        name="Reader",
        instructions="Answer from the files.",
        tools=[read_file],
        model=OpenAIResponsesModel(model="openai/gpt-5", openai_client=client),
    )
    result = await Runner.run(agent, "What does hello.txt say?")
    assert (result.final_output, calls) == ("The file says: " + FILE, ["hello.txt"])
    sent = upstream_bodies(chat_upstream)
    assert orjson.loads(sent[1]["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {"path": "hello.txt"}


# ------------------------------------------------------------------ the fake, spoken to directly


async def test_the_agent_upstream_speaks_anthropic_as_the_sdk_reads_it():
    """Its native formats are what end-to-end tests of a pass-through will rely on."""
    job = ToolJob([Call("read_file", {"path": "hello.txt"}, say="Let me read it.")], final="It says: {output}")
    with AgentUpstream(job) as upstream:
        client = anthropic.AsyncAnthropic(base_url=upstream.root, api_key="k", max_retries=0)
        ask = dict(
            model="claude-x", max_tokens=2048, tools=[READ_FILE], thinking={"type": "enabled", "budget_tokens": 1024}
        )
        messages: list = [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
        ]
        async with client.messages.stream(messages=messages, **ask) as events:
            first = await events.get_final_message()
        assert [block.type for block in first.content] == ["thinking", "text", "tool_use"]
        assert (first.stop_reason, first.content[2].input) == ("tool_use", {"path": "hello.txt"})
        reported = upstream.answers[0].usage
        assert (first.usage.input_tokens, first.usage.cache_creation_input_tokens) == (
            reported.prompt - reported.cache_write,
            reported.cache_write,
        )
        result = {"type": "tool_result", "tool_use_id": first.content[2].id, "content": FILE}
        final = await client.messages.create(
            messages=[
                *messages,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": [result]},
            ],
            **ask,
        )
        assert final.content[-1].text == "It says: " + FILE
        forged = first.content[0].model_copy(update={"signature": "forged"})
        with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
            await client.messages.create(
                messages=[
                    *messages,
                    {"role": "assistant", "content": [forged, *first.content[1:]]},
                    {"role": "user", "content": [result]},
                ],
                **ask,
            )
        assert [answer.kind for answer in upstream.answers] == ["call", "final", "rejected"]


async def test_the_agent_upstream_speaks_responses_as_the_sdk_reads_it():
    with AgentUpstream(ToolJob([Call("apply_patch", PATCH)])) as upstream:
        client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="k", max_retries=0)
        ask = dict(
            model="gpt-x", tools=RESPONSES_TOOLS, reasoning={"effort": "low"}, include=["reasoning.encrypted_content"]
        )
        async with client.responses.stream(input="write it", **ask) as events:
            first = await events.get_final_response()
        reasoning, call = first.output
        assert (reasoning.encrypted_content is not None, call.type, call.input) == (True, "custom_tool_call", PATCH)
        assert (
            first.usage is not None
            and first.usage.output_tokens_details.reasoning_tokens == upstream.answers[0].usage.reasoning
        )
        items = [item.model_dump(exclude_none=True) for item in first.output]
        items.append({"type": "custom_tool_call_output", "call_id": call.call_id, "output": "patched"})
        final = await client.responses.create(input=items, **ask)
        assert final.output_text == "Done. The tool said: patched"
