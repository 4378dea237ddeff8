"""A fake OpenAI-compatible upstream that streams like a real model: N chunks D ms apart.

    python -m bench.stream_upstream PORT      # served by uvicorn (uvloop + httptools), no access log

Raw ASGI, so that a chunk costs next to nothing (the bench reports its CPU per produced
chunk as the baseline). A streamed chat completion sends its first content chunk at once,
then one every D ms, N in all; then a chunk with `finish_reason: "stop"`, the usage chunk
(`choices: []`, `usage`) when `stream_options.include_usage` is set, as OpenAI sends it, and
`data: [DONE]`. The pace comes from the last message's content, so one server serves every
load level, whatever proxy sits in between: "chunks=40 interval_ms=25" (the default pace).
A request without `stream` gets the whole completion at once.

`GET /stats` answers the counters (streams started, finished, cancelled; chunks produced),
so the bench can divide this server's own CPU by the chunks it produced.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time

import orjson

DEFAULT_CHUNKS = 40
DEFAULT_INTERVAL_MS = 25.0
_PACE = re.compile(r"chunks=(\d+)\s+interval_ms=(\d+(?:\.\d+)?)")
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def pace_prompt(chunks: int, interval_ms: float) -> str:
    """The message content that asks this upstream for `chunks` chunks `interval_ms` apart."""
    return f"chunks={chunks} interval_ms={interval_ms:g}"


def parse_pace(content: str) -> tuple[int, float]:
    found = _PACE.search(content)
    if not found:
        return DEFAULT_CHUNKS, DEFAULT_INTERVAL_MS
    return min(int(found[1]), 10_000), min(float(found[2]), 60_000.0)


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
        if scope["path"] == "/stats":
            await _respond(send, 200, orjson.dumps(self.stats))
            return
        if scope["method"] == "GET" and scope["path"] in ("/", "/v1/models"):
            await _respond(send, 200, b'{"object":"list","data":[]}')
            return
        if not scope["path"].endswith("/chat/completions"):
            await _respond(send, 404, b'{"error":{"message":"not found"}}')
            return
        request = orjson.loads(body)
        content = str(request["messages"][-1].get("content", ""))
        chunks, interval_ms = parse_pace(content)
        self._ids += 1
        gen_id = f"gen-stream-{self._ids}"
        usage = _usage(len(content), chunks)
        if not request.get("stream"):
            self.stats["completions"] += 1
            await _respond(
                send,
                200,
                orjson.dumps(
                    {
                        "id": gen_id,
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": request["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "tok " * chunks},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    }
                ),
            )
            return
        with_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        # A stream that outlives its client must stop producing: watch for the disconnect.
        streaming = asyncio.ensure_future(
            self._stream(send, request["model"], gen_id, chunks, interval_ms / 1000, usage if with_usage else None)
        )

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

    async def _stream(self, send, model: str, gen_id: str, chunks: int, interval_s: float, usage: dict | None) -> None:
        self.stats["streams_started"] += 1
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        # Every chunk but the content is the same: serialize the frame once, splice the index in.
        head = (
            b'data: {"id":"'
            + gen_id.encode()
            + b'","object":"chat.completion.chunk","created":1,"model":'
            + orjson.dumps(model)
            + b',"choices":[{"index":0,"delta":{"content":"tok'
        )
        tail = b' "},"finish_reason":null}]}\n\n'
        start = time.monotonic()
        for i in range(chunks):
            if i:  # paced from the start, so a late wake-up does not push every later chunk back
                await asyncio.sleep(max(0.0, start + i * interval_s - time.monotonic()))
            await send({"type": "http.response.body", "body": head + str(i).encode() + tail, "more_body": True})
            self.stats["chunks"] += 1
        final = (
            b'data: {"id":"'
            + gen_id.encode()
            + b'","object":"chat.completion.chunk","created":1,"model":'
            + orjson.dumps(model)
            + b',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        )
        if usage is not None:
            final += (
                b"data: "
                + orjson.dumps(
                    {
                        "id": gen_id,
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
                + b"\n\n"
            )
        await send({"type": "http.response.body", "body": final + b"data: [DONE]\n\n", "more_body": False})
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

    uvicorn.run(
        StreamUpstream(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=30,
    )
