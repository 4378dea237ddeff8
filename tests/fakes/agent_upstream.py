"""A scripted agent upstream over real sockets: Anthropic Messages, OpenAI Responses and
chat completions, plain and streamed, playing one *tool job* the way a model would.

    job = ToolJob([Call("Write", {"file_path": "/tmp/x/hello.txt", "content": "hi"}),
                   Call("Bash", {"command": "cat hello.txt"})], final="It says: {output}")
    with AgentUpstream(job) as up:      # up.root = http://127.0.0.1:PORT, up.base_url = root + "/v1"
        ...                             # point Claude Code, Codex, an SDK or the platform at it
    up.requests                         # every request: method, path, headers, body
    up.answers                          # what each got: kind, step, usage (provider-neutral), text
    up.play(next_job)                   # the next run's job, the records cleared

Routes (any prefix, so `{root}/v1/...` and a platform's `{base}/...` both work):

    POST …/messages               Anthropic Messages, `stream: true` for its SSE events
    POST …/messages/count_tokens  `{"input_tokens": N}`
    POST …/responses              OpenAI Responses, `stream: true` for its typed events
    POST …/chat/completions       chat completions, `stream: true` for chunks and `[DONE]`
    GET  …/models                 one model (Anthropic's list shape when `anthropic-version` is sent)

How a request is answered follows only what it contains, as a model's answer would:
with n tool results already in the conversation, step n of the job is due. If n equals
the number of calls, the answer is the job's `final` text with `{output}` the last tool
result's text; else, if the request offers the call's tool, it is that tool call (after
the call's `say` text); else (an agent's side request: a title, a summary) `side_text`.
A call whose `arguments` is a string is a freeform input: a Responses `custom` tool gets
a `custom_tool_call`; a function whose schema has one string property gets it there. A
call of a client-run Responses `tool_search` is a `tool_search_call`; the
`tool_search_output` that comes back counts as a tool result, and the tools it loaded
(Codex's MCP namespaces) are offered from then on. A call without a `namespace` finds
its tool in any namespace.

Thinking: when the request asks for it (Anthropic `thinking` enabled/adaptive, Responses
`reasoning`, chat `reasoning`/`reasoning_effort`), the answer opens with the job's
`think` text, signed: Anthropic `thinking` blocks carry a `signature`, Responses
`reasoning` items an `encrypted_content` (when `include` asks for it), chat
`reasoning_details` a `signature`. A later request that sends a thinking block, reasoning
item or reasoning detail back with a signature that does not match its text is answered
400, as Anthropic does: re-serialising that breaks signatures shows up.

Usage is reported in each provider's own terms, from one neutral `Usage` recorded in
`answers`: prompt tokens (a token per 4 bytes of the request body), of which, when the
request marks a cache (`cache_control`, `prompt_cache_key`), half were written to the
cache on the first turn and half read from it later; output tokens a token per 4
characters of what was said, reasoning included.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

from .upstream import free_port

JSON = dict[str, Any]


@dataclass(frozen=True)
class Call:
    tool: str  # the name the client gave the tool
    arguments: JSON | str  # a string: a freeform (custom) tool's input
    say: str = ""  # text said before the call
    namespace: str | None = None  # a Responses namespace the tool sits in


@dataclass
class ToolJob:
    calls: list[Call]
    final: str = "Done. The tool said: {output}"
    side_text: str = "OK"
    think: str = "The job's step {step} is due."


@dataclass(frozen=True)
class Usage:
    """One answer's usage, neutral: `prompt` includes the cached tokens (as OpenAI counts)."""

    prompt: int
    cache_read: int
    cache_write: int
    output: int  # includes reasoning
    reasoning: int

    def anthropic(self) -> JSON:
        return {
            "input_tokens": self.prompt - self.cache_read - self.cache_write,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": self.output,
            "output_tokens_details": {"thinking_tokens": self.reasoning},
        }

    def responses(self) -> JSON:
        return {
            "input_tokens": self.prompt,
            "input_tokens_details": {"cached_tokens": self.cache_read, "cache_write_tokens": self.cache_write},
            "output_tokens": self.output,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.prompt + self.output,
        }

    def chat(self) -> JSON:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.output,
            "total_tokens": self.prompt + self.output,
            "prompt_tokens_details": {"cached_tokens": self.cache_read, "cache_write_tokens": self.cache_write},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning},
            "cost": round((self.prompt + 2 * self.output) * 1e-6, 9),
        }


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Answer:
    path: str
    kind: str  # call, final, side, count_tokens, models, rejected, unknown
    step: int = 0
    stream: bool = False
    usage: Usage | None = None
    text: str = ""  # what the answer said (a final answer: with the tool result it quotes)


def sign(text: str) -> str:
    """The signature the fake gives a thinking text (checked when it comes back)."""
    return base64.b64encode(hashlib.sha256(b"fake-signature:" + text.encode()).digest()).decode()


def pieces(text: str, n: int = 3) -> list[str]:
    """`text` in up to `n` pieces (streams send arguments and text piecewise)."""
    if not text:
        return []
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _text_of(content: Any) -> str:
    """The text of a tool result's content: a string, or a list of text parts or blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


@dataclass
class Conversation:
    """What the fake reads of a request, whatever its format."""

    tools: dict[tuple[str | None, str], JSON] = field(default_factory=dict)  # (namespace, name) → definition
    results: list[str] = field(default_factory=list)  # tool results' text, in order
    thinking: bool = False
    cache_marked: bool = False
    bad_signature: str | None = None  # where a signature came back broken

    def find(self, call: Call) -> tuple[str | None, JSON] | None:
        """The namespace and definition of the tool `call` names; without a namespace
        given, the tool of that name in any namespace."""
        if (call.namespace, call.tool) in self.tools:
            return call.namespace, self.tools[(call.namespace, call.tool)]
        if call.namespace is None:
            for (namespace, name), tool in self.tools.items():
                if name == call.tool:
                    return namespace, tool
        return None


def _anthropic_conversation(body: JSON) -> Conversation:
    conv = Conversation(cache_marked=b'"cache_control"' in orjson.dumps(body))
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            conv.tools[(None, tool["name"])] = tool
    thinking = body.get("thinking")
    conv.thinking = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_result":
                conv.results.append(_text_of(block.get("content")))
            elif block.get("type") == "thinking" and block.get("signature") != sign(block.get("thinking", "")):
                conv.bad_signature = conv.bad_signature or f"messages.{i}.content.{j}"
    return conv


def _responses_conversation(body: JSON) -> Conversation:
    conv = Conversation(cache_marked=bool(body.get("prompt_cache_key")))
    _offer(conv, body.get("tools"))
    reasoning = body.get("reasoning")
    conv.thinking = isinstance(reasoning, dict) and reasoning.get("effort") not in ("none", "minimal")
    source = body.get("input")
    for i, item in enumerate(source if isinstance(source, list) else ()):
        if not isinstance(item, dict):
            continue
        if item.get("type") in ("function_call_output", "custom_tool_call_output"):
            conv.results.append(_text_of(item.get("output")))
        elif item.get("type") == "tool_search_output":  # what a client-run tool search loaded
            _offer(conv, item.get("tools"))
            conv.results.append(orjson.dumps(item.get("tools")).decode())
        elif item.get("type") == "reasoning" and item.get("encrypted_content") is not None:
            summary = "".join(s.get("text", "") for s in item.get("summary") or ())
            if item["encrypted_content"] != sign(summary):
                conv.bad_signature = conv.bad_signature or f"input[{i}]"
    return conv


def _offer(conv: Conversation, tools: Any) -> None:
    """Responses tools (and a tool search's loaded tools): functions, custom tools, namespaces."""
    for tool in tools or ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            for inner in tool.get("tools") or ():
                conv.tools[(tool.get("name"), inner.get("name"))] = inner
        elif tool.get("type") in ("function", "custom"):
            conv.tools[(None, tool.get("name"))] = tool
        elif tool.get("type") == "tool_search":
            conv.tools[(None, "tool_search")] = tool


def _chat_conversation(body: JSON) -> Conversation:
    conv = Conversation(cache_marked=bool(body.get("prompt_cache_key")) or b'"cache_control"' in orjson.dumps(body))
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            conv.tools[(None, function["name"])] = function
    conv.thinking = bool(body.get("reasoning") or body.get("reasoning_effort"))
    for i, message in enumerate(body.get("messages") or ()):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            conv.results.append(_text_of(message.get("content")))
        for detail in message.get("reasoning_details") or ():
            if (
                isinstance(detail, dict)
                and "signature" in detail
                and detail["signature"] != sign(detail.get("text", ""))
            ):
                conv.bad_signature = conv.bad_signature or f"messages[{i}].reasoning_details"
    return conv


@dataclass
class Turn:
    """One answer, before it is written in a format."""

    kind: str  # call, final, side
    step: int
    text: str
    think: str | None
    call: Call | None = None
    tool: JSON | None = None  # the called tool's definition, as the request gave it
    call_id: str = ""
    usage: Usage | None = None

    def arguments(self) -> str:
        """The call's arguments as a function's JSON text."""
        assert self.call is not None
        args = self.call.arguments
        if isinstance(args, str):
            schema = (self.tool or {}).get("parameters") or (self.tool or {}).get("input_schema") or {}
            strings = [k for k, v in (schema.get("properties") or {}).items() if v.get("type") == "string"]
            args = {strings[0] if len(strings) == 1 else "input": args}
        return orjson.dumps(args).decode()

    def freeform(self) -> bool:
        return (
            self.call is not None and isinstance(self.call.arguments, str) and (self.tool or {}).get("type") == "custom"
        )


class AgentUpstream:
    def __init__(self, job: ToolJob, host: str = "127.0.0.1") -> None:
        self.job = job
        self.host = host
        self.port = free_port()
        self.root = f"http://{host}:{self.port}"
        self.base_url = self.root + "/v1"
        self.requests: list[Seen] = []
        self.answers: list[Answer] = []
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # ------------------------------------------------------------ serving

    def __enter__(self) -> AgentUpstream:
        self._thread.start()
        assert self._ready.wait(10), "agent upstream did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, self.host, self.port).start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def play(self, job: ToolJob) -> None:
        """Play `job` from the next request on, the records of earlier requests cleared (one
        upstream can serve several agent runs, one after another)."""
        self.job = job
        self.requests.clear()
        self.answers.clear()

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        self.requests.append(
            Seen(request.method, request.path_qs, {k.lower(): v for k, v in request.headers.items()}, body)
        )
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            data = None
        if request.method == "GET" and path.endswith("/models"):
            self.answers.append(Answer(path, "models"))
            return web.json_response(self._models(request))
        if request.method != "POST" or not isinstance(data, dict):
            self.answers.append(Answer(path, "unknown"))
            return web.json_response({"error": {"message": f"no route {request.method} {path}"}}, status=404)
        if path.endswith("/messages/count_tokens"):
            self.answers.append(Answer(path, "count_tokens"))
            return web.json_response({"input_tokens": max(1, len(body) // 4)})
        for suffix, read, write in (
            ("/messages", _anthropic_conversation, self._anthropic),
            ("/responses", _responses_conversation, self._responses),
            ("/chat/completions", _chat_conversation, self._chat),
        ):
            if path.endswith(suffix):
                conv = read(data)
                stream = data.get("stream") is True
                if conv.bad_signature:
                    self.answers.append(Answer(path, "rejected", stream=stream))
                    return _rejected(suffix, conv.bad_signature)
                turn = self._plan(conv, len(body), data)
                self.answers.append(Answer(path, turn.kind, turn.step, stream, turn.usage, turn.text))
                return await write(request, data, turn, stream)
        self.answers.append(Answer(path, "unknown"))
        return web.json_response({"error": {"message": f"no route POST {path}"}}, status=404)

    def _models(self, request: web.Request) -> JSON:
        if "anthropic-version" in request.headers:
            model = {"type": "model", "id": "fake-model", "display_name": "Fake", "created_at": "2025-01-01T00:00:00Z"}
            return {"data": [model], "has_more": False, "first_id": "fake-model", "last_id": "fake-model"}
        return {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]}

    # ------------------------------------------------------------ the job

    def _plan(self, conv: Conversation, size: int, body: JSON) -> Turn:
        step = len(conv.results)
        think = self.job.think.format(step=step) if conv.thinking else None
        calls = self.job.calls
        if step >= len(calls):
            turn = Turn("final", step, self.job.final.format(output=conv.results[-1] if conv.results else ""), think)
        elif (found := conv.find(calls[step])) is not None:
            call = calls[step] if found[0] == calls[step].namespace else replace(calls[step], namespace=found[0])
            turn = Turn("call", step, call.say, think, call, found[1], self._id("call_fake_"))
        else:
            turn = Turn("side", step, self.job.side_text, think)
        prompt = max(1, size // 4)
        read = prompt // 2 if conv.cache_marked and step else 0
        write = prompt // 2 if conv.cache_marked and not step else 0
        reasoning = len(think) // 4 + 1 if think else 0
        said = len(turn.text) + (len(turn.arguments()) if turn.call else 0)
        turn.usage = Usage(prompt, read, write, said // 4 + 1 + reasoning, reasoning)
        return turn

    # ------------------------------------------------------------ Anthropic

    async def _anthropic(self, request: web.Request, body: JSON, turn: Turn, stream: bool) -> web.StreamResponse:
        assert turn.usage is not None
        blocks: list[JSON] = []
        if turn.think is not None:
            blocks.append({"type": "thinking", "thinking": turn.think, "signature": sign(turn.think)})
        if turn.text:
            blocks.append({"type": "text", "text": turn.text})
        if turn.call is not None:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + turn.call_id,
                    "name": turn.call.tool,
                    "input": orjson.loads(turn.arguments()),
                }
            )
        message = {
            "id": self._id("msg_fake_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": blocks,
            "stop_reason": "tool_use" if turn.call else "end_turn",
            "stop_sequence": None,
            "usage": turn.usage.anthropic(),
        }
        if not stream:
            return web.json_response(message)
        events: list[tuple[str, JSON]] = []
        started = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**turn.usage.anthropic(), "output_tokens": 1},
        }
        events.append(("message_start", {"type": "message_start", "message": started}))
        events.append(("ping", {"type": "ping"}))
        for index, block in enumerate(blocks):
            kind = block["type"]
            opened: JSON = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
                if kind == "text"
                else {**block, "input": {}}
            )
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
            )
            if kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"])]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind == "text":
                deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
            else:  # Anthropic opens a tool's input with an empty partial_json
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces(turn.arguments())]]
            for delta in deltas:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": turn.usage.anthropic(),
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return await _sse(
            request, [b"event: " + n.encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for n, e in events]
        )

    # ------------------------------------------------------------ Responses

    async def _responses(self, request: web.Request, body: JSON, turn: Turn, stream: bool) -> web.StreamResponse:
        assert turn.usage is not None
        items: list[JSON] = []
        if turn.think is not None:
            reasoning: JSON = {
                "type": "reasoning",
                "id": self._id("rs_fake_"),
                "summary": [{"type": "summary_text", "text": turn.think}],
            }
            if "reasoning.encrypted_content" in (body.get("include") or ()):
                reasoning["encrypted_content"] = sign(turn.think)
            items.append(reasoning)
        if turn.text:
            text_part = {"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}
            items.append(
                {
                    "type": "message",
                    "id": self._id("msg_fake_"),
                    "status": "completed",
                    "role": "assistant",
                    "content": [text_part],
                }
            )
        if turn.call is not None:
            call_item: JSON = {
                "id": self._id("fc_fake_"),
                "call_id": turn.call_id,
                "name": turn.call.tool,
                "status": "completed",
            }
            if turn.call.namespace:
                call_item["namespace"] = turn.call.namespace
            if (turn.tool or {}).get("type") == "tool_search":
                call_item |= {"type": "tool_search_call", "execution": "client", "arguments": turn.call.arguments}
                call_item["id"] = call_item["id"].replace("fc_", "ts_")
                call_item.pop("name")
            elif turn.freeform():
                call_item |= {"type": "custom_tool_call", "input": turn.call.arguments}
                call_item.pop("status")
            else:
                call_item |= {"type": "function_call", "arguments": turn.arguments()}
            items.append(call_item)
        shell: JSON = {
            "id": self._id("resp_fake_"),
            "object": "response",
            "created_at": 1_700_000_000,
            "status": "in_progress",
            "model": body.get("model"),
            "output": [],
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "usage": None,
        }
        done = {**shell, "status": "completed", "output": items, "usage": turn.usage.responses()}
        if not stream:
            return web.json_response(done)
        events: list[JSON] = [
            {"type": "response.created", "response": shell},
            {"type": "response.in_progress", "response": shell},
        ]
        for index, item in enumerate(items):
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "reasoning":
                text = item["summary"][0]["text"]
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": {**item, "summary": []}}
                )
                part = {"type": "summary_text", "text": ""}
                events.append(
                    {"type": "response.reasoning_summary_part.added", **where, "summary_index": 0, "part": part}
                )
                for p in pieces(text):
                    events.append(
                        {"type": "response.reasoning_summary_text.delta", **where, "summary_index": 0, "delta": p}
                    )
                events.append(
                    {"type": "response.reasoning_summary_text.done", **where, "summary_index": 0, "text": text}
                )
                part = {"type": "summary_text", "text": text}
                events.append(
                    {"type": "response.reasoning_summary_part.done", **where, "summary_index": 0, "part": part}
                )
            elif item["type"] == "message":
                text = item["content"][0]["text"]
                opened = {**item, "status": "in_progress", "content": []}
                events.append({"type": "response.output_item.added", "output_index": index, "item": opened})
                empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                events.append({"type": "response.content_part.added", **where, "content_index": 0, "part": empty})
                for p in pieces(text):
                    events.append(
                        {"type": "response.output_text.delta", **where, "content_index": 0, "delta": p, "logprobs": []}
                    )
                events.append(
                    {"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []}
                )
                events.append(
                    {"type": "response.content_part.done", **where, "content_index": 0, "part": item["content"][0]}
                )
            elif item["type"] == "function_call":
                opened = {**item, "arguments": "", "status": "in_progress"}
                events.append({"type": "response.output_item.added", "output_index": index, "item": opened})
                for p in pieces(item["arguments"]):
                    events.append({"type": "response.function_call_arguments.delta", **where, "delta": p})
                events.append(
                    {"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]}
                )
            elif item["type"] == "tool_search_call":
                events.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": {**item, "status": "in_progress"},
                    }
                )
            else:  # custom_tool_call
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": {**item, "input": ""}}
                )
                for p in pieces(item["input"]):
                    events.append({"type": "response.custom_tool_call_input.delta", **where, "delta": p})
                events.append({"type": "response.custom_tool_call_input.done", **where, "input": item["input"]})
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        events.append({"type": "response.completed", "response": done})
        raw = [
            b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps({**e, "sequence_number": n}) + b"\n\n"
            for n, e in enumerate(events)
        ]
        return await _sse(request, raw)

    # ------------------------------------------------------------ chat completions

    async def _chat(self, request: web.Request, body: JSON, turn: Turn, stream: bool) -> web.StreamResponse:
        assert turn.usage is not None
        gen_id, model = self._id("gen-fake-"), body.get("model")
        finish = "tool_calls" if turn.call else "stop"
        details = (
            [
                {
                    "type": "reasoning.text",
                    "text": turn.think,
                    "signature": sign(turn.think),
                    "format": "fake-v1",
                    "index": 0,
                }
            ]
            if turn.think is not None
            else []
        )
        call = (
            {
                "id": turn.call_id,
                "type": "function",
                "function": {"name": turn.call.tool, "arguments": turn.arguments()},
            }
            if turn.call
            else None
        )
        if not stream:
            message: JSON = {"role": "assistant", "content": turn.text or None}
            if turn.think is not None:
                message |= {"reasoning": turn.think, "reasoning_details": details}
            if call:
                message["tool_calls"] = [call]
            return web.json_response(
                {
                    "id": gen_id,
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": turn.usage.chat(),
                }
            )

        def chunk(delta: JSON, finish_reason: str | None = None) -> bytes:
            data = {
                "id": gen_id,
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return b"data: " + orjson.dumps(data) + b"\n\n"

        raw = [chunk({"role": "assistant", "content": ""})]
        if turn.think is not None:
            for p in pieces(turn.think):
                raw.append(chunk({"reasoning": p, "reasoning_details": [{**details[0], "text": p, "signature": None}]}))
            raw.append(chunk({"reasoning_details": [{**details[0], "text": "", "signature": details[0]["signature"]}]}))
        raw += [chunk({"content": p}) for p in pieces(turn.text)]
        if call:
            head = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            raw.append(chunk({"tool_calls": [head]}))
            raw += [
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces(turn.arguments())
            ]
        raw.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "id": gen_id,
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [],
                "usage": turn.usage.chat(),
            }
            raw.append(b"data: " + orjson.dumps(usage) + b"\n\n")
        raw.append(b"data: [DONE]\n\n")
        return await _sse(request, raw)


async def _sse(request: web.Request, raw: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for piece in raw:
        await response.write(piece)
    await response.write_eof()
    return response


def _rejected(suffix: str, where: str) -> web.Response:
    message = f"{where}: Invalid `signature` in `thinking` block"
    if suffix == "/messages":
        return web.json_response(
            {"type": "error", "error": {"type": "invalid_request_error", "message": message}}, status=400
        )
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_signature"}}, status=400
    )
