"""A fake upstream that streams like a real model: N text deltas D ms apart, in three formats.

    python -m bench.stream_upstream PORT      # served by uvicorn (uvloop + httptools), no access log

Raw ASGI, so that a chunk costs next to nothing (the bench reports its CPU per produced
chunk as the baseline). Three streams, by the path the request is POSTed to, each sending
its first text at once and then one every D ms, N in all:

    …/chat/completions   OpenAI chat chunks; then a chunk with `finish_reason: "stop"`, the
                         usage chunk (`choices: []`, `usage`) when
                         `stream_options.include_usage` is set, as OpenAI sends it, and
                         `data: [DONE]`
    …/messages           Anthropic's Messages events: message_start (input usage),
                         content_block_start, N content_block_delta `text_delta`,
                         content_block_stop, message_delta (stop_reason, output usage),
                         message_stop
    …/responses          OpenAI's Responses events: response.created, response.in_progress,
                         response.output_item.added, response.content_part.added, N
                         response.output_text.delta, response.output_text.done,
                         response.content_part.done, response.output_item.done,
                         response.completed (with usage)

The pace rides in the request's text, wherever a client or a proxy put it (a message, an
`input`): "chunks=40 interval_ms=25" (the default pace), so one server serves every load
level and every format, whatever proxy sits in between. A request without `stream` gets
the whole answer at once, in its format.

`GET /stats` answers the counters (streams started, finished, cancelled; text chunks
produced), so the bench can divide this server's own CPU by the chunks it produced.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable

import orjson

DEFAULT_CHUNKS = 40
DEFAULT_INTERVAL_MS = 25.0
_PACE = re.compile(rb"chunks=(\d+)\s+interval_ms=(\d+(?:\.\d+)?)")
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def pace_prompt(chunks: int, interval_ms: float) -> str:
    """The text that asks this upstream for `chunks` chunks `interval_ms` apart."""
    return f"chunks={chunks} interval_ms={interval_ms:g}"


def parse_pace(body: bytes) -> tuple[int, float]:
    """The pace asked for anywhere in a request body (the default pace when none is)."""
    found = _PACE.search(body)
    if not found:
        return DEFAULT_CHUNKS, DEFAULT_INTERVAL_MS
    return min(int(found[1]), 10_000), min(float(found[2]), 60_000.0)


def chunk_text(i: int) -> str:
    return f"tok{i} "


def _sse(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class Frames:
    """One stream's wire bytes in one format: what goes out first (with the first text),
    each later text chunk, and the end. Every frame but the text is built once a stream."""

    def __init__(self, model: str, gen_id: str, chunks: int, usage: dict) -> None:
        self.model, self.gen_id, self.chunks, self.usage = model, gen_id, chunks, usage

    def first(self) -> bytes:
        return self.text(0)

    def text(self, i: int) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        raise NotImplementedError


class ChatFrames(Frames):
    def __init__(self, model: str, gen_id: str, chunks: int, usage: dict, *, with_usage: bool) -> None:
        super().__init__(model, gen_id, chunks, usage)
        self.with_usage = with_usage
        # Every chunk but the content is the same: serialize the frame once, splice the index in.
        self._head = (
            b'data: {"id":"'
            + gen_id.encode()
            + b'","object":"chat.completion.chunk","created":1,"model":'
            + orjson.dumps(model)
            + b',"choices":[{"index":0,"delta":{"content":"tok'
        )

    def text(self, i: int) -> bytes:
        return self._head + str(i).encode() + b' "},"finish_reason":null}]}\n\n'

    def end(self) -> bytes:
        final = (
            b'data: {"id":"'
            + self.gen_id.encode()
            + b'","object":"chat.completion.chunk","created":1,"model":'
            + orjson.dumps(self.model)
            + b',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        )
        if self.with_usage:
            usage = {"id": self.gen_id, "object": "chat.completion.chunk", "created": 1, "model": self.model}
            final += b"data: " + orjson.dumps({**usage, "choices": [], "usage": self.usage}) + b"\n\n"
        return final + b"data: [DONE]\n\n"


class MessageFrames(Frames):
    """Anthropic's Messages stream (anthropic.types.RawMessageStreamEvent)."""

    _HEAD = (
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"tok'
    )

    def first(self) -> bytes:
        message = {
            "id": f"msg_{self.gen_id}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.usage["prompt_tokens"], "output_tokens": 1},
        }
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        return (
            _sse("message_start", orjson.dumps({"type": "message_start", "message": message}))
            + _sse("content_block_start", orjson.dumps(block))
            + self.text(0)
        )

    def text(self, i: int) -> bytes:
        return self._HEAD + str(i).encode() + b' "}}\n\n'

    def end(self) -> bytes:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": self.usage["completion_tokens"]},
        }
        return (
            _sse("content_block_stop", b'{"type":"content_block_stop","index":0}')
            + _sse("message_delta", orjson.dumps(delta))
            + _sse("message_stop", b'{"type":"message_stop"}')
        )


class ResponseFrames(Frames):
    """OpenAI's Responses stream (openai.types.responses.ResponseStreamEvent)."""

    def __init__(self, model: str, gen_id: str, chunks: int, usage: dict) -> None:
        super().__init__(model, gen_id, chunks, usage)
        self.item_id = f"msg_{gen_id}"
        self._where = b'"item_id":"' + self.item_id.encode() + b'","output_index":0,"content_index":0'

    def _response(self, status: str, output: list, usage: dict | None) -> dict:
        return {
            "id": f"resp_{self.gen_id}",
            "object": "response",
            "created_at": 1,
            "status": status,
            "model": self.model,
            "output": output,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": {},
            "parallel_tool_calls": False,
            "temperature": None,
            "top_p": None,
            "tool_choice": "auto",
            "tools": [],
            "text": {"format": {"type": "text"}},
            "usage": usage,
        }

    def _event(self, kind: str, sequence: int, fields: dict) -> bytes:
        return _sse(kind, orjson.dumps({"type": kind, "sequence_number": sequence, **fields}))

    def _item(self, status: str, text: str | None) -> dict:
        content = [] if text is None else [_output_text(text)]
        return {"type": "message", "id": self.item_id, "status": status, "role": "assistant", "content": content}

    def first(self) -> bytes:
        started = self._response("in_progress", [], None)
        part = {"item_id": self.item_id, "output_index": 0, "content_index": 0, "part": _output_text("")}
        return (
            self._event("response.created", 0, {"response": started})
            + self._event("response.in_progress", 1, {"response": started})
            + self._event("response.output_item.added", 2, {"output_index": 0, "item": self._item("in_progress", None)})
            + self._event("response.content_part.added", 3, part)
            + self.text(0)
        )

    def text(self, i: int) -> bytes:
        return (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
            + str(4 + i).encode()
            + b","
            + self._where
            + b',"delta":"tok'
            + str(i).encode()
            + b' ","logprobs":[]}\n\n'
        )

    def end(self) -> bytes:
        text = "".join(chunk_text(i) for i in range(self.chunks))
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        item = self._item("completed", text)
        usage = {
            "input_tokens": self.usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": self.usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.usage["total_tokens"],
        }
        seq = 4 + self.chunks
        return (
            self._event("response.output_text.done", seq, {**where, "text": text, "logprobs": []})
            + self._event("response.content_part.done", seq + 1, {**where, "part": _output_text(text)})
            + self._event("response.output_item.done", seq + 2, {"output_index": 0, "item": item})
            + self._event("response.completed", seq + 3, {"response": self._response("completed", [item], usage)})
        )


def _output_text(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _whole(path: str, model: str, gen_id: str, chunks: int, usage: dict) -> bytes:
    """The answer to a request without `stream`, in the format of its path."""
    text = "".join(chunk_text(i) for i in range(chunks))
    if path.endswith("/messages"):
        return orjson.dumps(
            {
                "id": f"msg_{gen_id}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]},
            }
        )
    if path.endswith("/responses"):
        frames = ResponseFrames(model, gen_id, chunks, usage)
        tokens = {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"],
        }
        return orjson.dumps(frames._response("completed", [frames._item("completed", text)], tokens))
    return orjson.dumps(
        {
            "id": gen_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }
    )


_FORMATS: dict[str, Callable[..., Frames]] = {
    "/chat/completions": ChatFrames,
    "/messages": MessageFrames,
    "/responses": ResponseFrames,
}


class StreamUpstream:
    def __init__(self) -> None:
        self.stats = {
            "streams_started": 0,
            "streams_finished": 0,
            "streams_cancelled": 0,
            "chunks": 0,
            "completions": 0,
        }
        self._ids = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/stats":
            await _respond(send, 200, orjson.dumps(self.stats))
            return
        if scope["method"] == "GET" and path in ("/", "/v1/models"):
            await _respond(send, 200, b'{"object":"list","data":[]}')
            return
        kind = next((suffix for suffix in _FORMATS if path.endswith(suffix)), None)
        if kind is None or scope["method"] != "POST":
            await _respond(send, 404, b'{"error":{"message":"not found"}}')
            return
        request = orjson.loads(body)
        chunks, interval_ms = parse_pace(body)
        self._ids += 1
        gen_id = f"gen-stream-{self._ids}"
        usage = _usage(len(body), chunks)
        model = str(request.get("model", ""))
        if not request.get("stream"):
            self.stats["completions"] += 1
            await _respond(send, 200, _whole(path, model, gen_id, chunks, usage))
            return
        if kind == "/chat/completions":
            with_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            frames: Frames = ChatFrames(model, gen_id, chunks, usage, with_usage=with_usage)
        else:
            frames = _FORMATS[kind](model, gen_id, chunks, usage)
        # A stream that outlives its client must stop producing: watch for the disconnect.
        streaming = asyncio.ensure_future(self._stream(send, frames, interval_ms / 1000))

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            streaming.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await streaming
        except (asyncio.CancelledError, OSError):
            self.stats["streams_cancelled"] += 1
        finally:
            watcher.cancel()

    async def _stream(self, send, frames: Frames, interval_s: float) -> None:
        self.stats["streams_started"] += 1
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        start = time.monotonic()
        for i in range(frames.chunks):
            if i:  # paced from the start, so a late wake-up does not push every later chunk back
                await asyncio.sleep(max(0.0, start + i * interval_s - time.monotonic()))
            piece = frames.text(i) if i else frames.first()
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            self.stats["chunks"] += 1
        await send({"type": "http.response.body", "body": frames.end(), "more_body": False})
        self.stats["streams_finished"] += 1


def _usage(prompt: int, completion: int) -> dict:
    cost = (prompt * 1 + completion * 2) / 1e6  # OpenRouter's `cost` (USD), as tests/fakes/upstream.py reports it
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
        "is_byok": False,
        "cost_details": {"upstream_inference_cost": cost},
    }


async def _respond(send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    import uvicorn

    from tests.fakes.upstream import KEEP_ALIVE_S

    uvicorn.run(
        StreamUpstream(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=KEEP_ALIVE_S,  # the tests' fake's: above the platform's keep-alive
    )
