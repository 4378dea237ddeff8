"""A fake OpenAI-compatible upstream (chat completions, embeddings, OpenRouter's Image
API), served for real over HTTP.

Raw ASGI so that it costs next to nothing per request (the benchmark uses it as the
zero-delay baseline). What it does depends on the last message's content:

    "fail:NNN"     answer HTTP NNN with an error body
    "hang"         wait 30 s before answering (past any test timeout)
    "malformed"    answer 200 with a body that is not JSON
    "gate"         stream: send the first chunk, then wait until `release()` is called
    "slow"         stream: one chunk every 50 ms, 200 chunks
    "cut"          stream: one chunk, then the connection is dropped
    "once:NNN"     answer HTTP NNN the first time this exact content is seen, then as usual
    "error200"     answer 200 with an error body (`{"error": {...}}`, no choices)
    "deep"         answer 200 with a completion whose content is nested 300 levels deep
    "errevent"     stream: one chunk, then an event carrying `error`
    "finerror"     stream: one chunk, then a chunk with finish_reason "error"
    "nofinish"     stream: one chunk, then the body ends cleanly, without finish_reason or [DONE]
    "deepevent"    stream: one chunk, then an event nested 300 levels deep
    anything else  answer "echo: <content>" (streamed word by word when `stream: true`)

Usage is as OpenAI and OpenRouter send it: in the body of a completion, and in a stream
only when asked (`stream_options.include_usage`), as a last chunk with no choices. It
counts a prompt token per character of the last message and a completion token per
word sent, and reports OpenRouter's `cost` (USD: 1e-6 a prompt token, 2e-6 a completion
token) and `cost_details`. Each generation has its own id, and `GET /v1/generation?id=`
answers its record (404 until `generation_delay` asks have been made, as OpenRouter's
record appears a few seconds after the end).

`POST /v1/embeddings` answers OpenAI's shape: for each input (a string, or a list of token
ids) the vector [its length, 0.5, -0.25, its index] (cut or padded with 0.125 to
`dimensions`; every value exact in float32), floats unless `encoding_format: "base64"`;
usage counts a prompt token per character (or per token id), with OpenRouter's `cost`.
An input "fail:NNN", "error200" or "malformed" misbehaves as in chat, and "nousage"
answers without usage. `POST /v1/images` (OpenRouter's Image API) answers `n` small PNGs
as `b64_json`; `GET /v1/images/models` lists `image_models`.

It records every request body and counts streams that began, finished, or were cut
off by the other side.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
import threading
import time
from array import array
from dataclasses import dataclass, field

import orjson
import uvicorn


@dataclass
class Stats:
    bodies: list[dict] = field(default_factory=list)
    streams_started: int = 0
    streams_finished: int = 0
    streams_cancelled: int = 0
    generation_asks: int = 0


class FakeUpstream:
    def __init__(self, record: bool = True) -> None:
        self.stats = Stats()
        self.record = record
        self._gate: asyncio.Event | None = None
        self._seen: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self.generations: dict[str, dict] = {}  # id -> OpenRouter's generation record
        self.generation_delay = 0  # asks answered 404 before a record shows
        self.image_models = ["google/gemini-2.5-flash-image"]  # what GET /images/models lists

    def _new_id(self) -> str:
        return f"gen-fake-{next(self._ids)}"

    def _record(self, gen_id: str, prompt: int, completion: int, cancelled: bool = False) -> None:
        self.generations[gen_id] = {
            "id": gen_id,
            "tokens_prompt": prompt,
            "tokens_completion": completion,
            "total_cost": _cost(prompt, completion),
            "cancelled": cancelled,
        }

    def release(self) -> None:
        """Let a "gate" stream go on (called from the test's thread)."""
        if self._loop is not None and self._gate is not None:
            self._loop.call_soon_threadsafe(self._gate.set)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._loop = asyncio.get_running_loop()
                    self._gate = asyncio.Event()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"].endswith("/generation") and scope["method"] == "GET":
            await self._generation(scope, send)
            return
        if scope["path"].endswith("/embeddings") and scope["method"] == "POST":
            await self._embeddings(orjson.loads(body), send)
            return
        if scope["path"].endswith("/images/models") and scope["method"] == "GET":
            await _respond(send, 200, orjson.dumps({"data": [{"id": m} for m in self.image_models]}))
            return
        if scope["path"].endswith("/images") and scope["method"] == "POST":
            request = orjson.loads(body)
            if self.record:
                self.stats.bodies.append(request)
            image = base64.b64encode(PNG).decode()
            await _respond(
                send,
                200,
                orjson.dumps(
                    {
                        "created": int(time.time()),
                        "id": self._new_id(),
                        "data": [{"b64_json": image}] * request.get("n", 1),
                    }
                ),
            )
            return
        if not scope["path"].endswith("/chat/completions"):
            await _respond(send, 404, b'{"error":{"message":"not found"}}')
            return
        request = orjson.loads(body)
        if self.record:
            self.stats.bodies.append(request)
        content = str(request["messages"][-1].get("content", ""))
        first_time = content not in self._seen
        self._seen.add(content)
        if content.startswith("once:") and first_time:
            await _respond(send, int(content[5:]), b'{"error":{"message":"upstream hiccup"}}')
        elif content.startswith("fail:"):
            status = int(content[5:])
            extra = [(b"retry-after", b"7")] if status == 429 else []
            await _respond(
                send, status, b'{"error":{"message":"upstream says no: key sk-or-v1-0123456789abcdef"}}', extra
            )
        elif content == "error200":
            await _respond(send, 200, b'{"error":{"message":"the model crashed","code":502}}')
        elif content == "deep":
            await _respond(
                send,
                200,
                orjson.dumps(_completion(request, "x")).replace(
                    b'"content":"x"', b'"content":' + b"[" * 300 + b"]" * 300
                ),
            )
        elif content == "hang":
            await asyncio.sleep(30)
            await _respond(send, 200, orjson.dumps(_completion(request, "late")))
        elif content == "malformed":
            await _respond(send, 200, b"{this is not json")
        elif request.get("stream"):
            await self._stream_until_disconnect(request, content, receive, send)
        else:
            gen_id = self._new_id()
            answer = _completion(request, f"echo: {content}", gen_id)
            self._record(gen_id, answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"])
            await _respond(send, 200, orjson.dumps(answer))

    async def _embeddings(self, request: dict, send) -> None:
        if self.record:
            self.stats.bodies.append(request)
        given = request["input"]
        inputs = [given] if isinstance(given, str) or (given and isinstance(given[0], int)) else given
        first = inputs[0] if isinstance(inputs[0], str) else ""
        if first.startswith("fail:"):
            await _respond(send, int(first[5:]), b'{"error":{"message":"upstream says no"}}')
            return
        if first == "error200":
            await _respond(send, 200, b'{"error":{"message":"the model crashed","code":502}}')
            return
        if first == "malformed":
            await _respond(send, 200, b"{this is not json")
            return
        dims = request.get("dimensions") or 4
        data = []
        for index, item in enumerate(inputs):
            vector = ([float(len(item)), 0.5, -0.25, float(index)] + [0.125] * dims)[:dims]
            if request.get("encoding_format") == "base64":
                vector = base64.b64encode(array("f", vector).tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(item) for item in inputs)
        answer = {
            "id": self._new_id(),
            "object": "list",
            "data": data,
            "model": request["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "cost": _cost(tokens, 0)},
        }
        if first == "nousage":
            del answer["usage"]
        await _respond(send, 200, orjson.dumps(answer))

    async def _generation(self, scope, send) -> None:
        self.stats.generation_asks += 1
        query = dict(part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part)
        record = self.generations.get(query.get("id", ""))
        if record is None or self.stats.generation_asks <= self.generation_delay:
            await _respond(send, 404, b'{"error":{"message":"Generation not found"}}')
        else:
            await _respond(send, 200, orjson.dumps({"data": record}))

    async def _stream_until_disconnect(self, request: dict, content: str, receive, send) -> None:
        """Stream, and stop the moment the other side hangs up (uvicorn drops writes to a
        closed socket silently, so the disconnect has to be watched for)."""
        streaming = asyncio.ensure_future(self._stream(request, content, send))

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            streaming.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await streaming
        except asyncio.CancelledError:
            pass
        finally:
            watcher.cancel()

    async def _stream(self, request: dict, content: str, send) -> None:
        self.stats.streams_started += 1
        gen_id = self._new_id()
        prompt_tokens = len(content)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        if content == "slow":
            words = [f"w{i} " for i in range(200)]
        else:
            words = [w + " " for w in f"echo: {content}".split()]
        sent = 0
        try:
            for i, word in enumerate(words):
                await send(
                    {
                        "type": "http.response.body",
                        "more_body": True,
                        "body": b"data: " + orjson.dumps(_chunk(request, word, gen_id=gen_id)) + b"\n\n",
                    }
                )
                sent += 1
                if content == "cut":
                    raise ConnectionAbortedError("the fake upstream drops the connection")
                if content in _BAD_ENDINGS:
                    await send({"type": "http.response.body", "body": _BAD_ENDINGS[content](request)})
                    self.stats.streams_finished += 1
                    return
                if content == "gate" and i == 0:
                    await self._gate.wait()
                    self._gate.clear()
                elif content == "slow":
                    await asyncio.sleep(0.05)
            final = b"data: " + orjson.dumps(_chunk(request, "", finish_reason="stop", gen_id=gen_id)) + b"\n\n"
            if (request.get("stream_options") or {}).get("include_usage"):
                usage = _usage(prompt_tokens, len(words))
                final += (
                    b"data: "
                    + orjson.dumps(_chunk(request, None, gen_id=gen_id) | {"choices": [], "usage": usage})
                    + b"\n\n"
                )
            await send({"type": "http.response.body", "more_body": True, "body": final + b"data: [DONE]\n\n"})
            await send({"type": "http.response.body", "body": b""})
            self.stats.streams_finished += 1
            self._record(gen_id, prompt_tokens, len(words))
        except ConnectionAbortedError:
            raise
        except (OSError, asyncio.CancelledError):
            self.stats.streams_cancelled += 1
            self._record(gen_id, prompt_tokens, sent, cancelled=True)
            raise


# A 1x1 PNG, what the Image API answers.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

_BAD_ENDINGS = {
    "errevent": lambda request: b'data: {"error":{"message":"overloaded mid-stream","code":502}}\n\n',
    "finerror": lambda request: b"data: " + orjson.dumps(_chunk(request, "", finish_reason="error")) + b"\n\n",
    "nofinish": lambda request: b"",
    "deepevent": lambda request: b'data: {"id":"gen-fake-s","choices":' + b"[" * 300 + b"]" * 300 + b"}\n\n",
}


async def _respond(send, status: int, body: bytes, extra_headers=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _cost(prompt: int, completion: int) -> float:
    return (prompt * 1 + completion * 2) / 1e6


def _usage(prompt: int, completion: int) -> dict:
    cost = _cost(prompt, completion)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
        "is_byok": False,
        "cost_details": {"upstream_inference_cost": cost},
    }


def _completion(request: dict, text: str, gen_id: str = "gen-fake-0") -> dict:
    content = str(request["messages"][-1].get("content", ""))
    return {
        "id": gen_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": _usage(len(content), len(text.split())),
    }


def _chunk(request: dict, text: str | None, finish_reason: str | None = None, gen_id: str = "gen-fake-s") -> dict:
    delta = {} if text is None else {"content": text}
    return {
        "id": gen_id,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": request["model"],
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# How long the fake keeps an idle connection: nginx's default (uvicorn's is 5 s), longer
# than the platform's UPSTREAM_KEEPALIVE_S (30 s) as a provider's is, so no call is sent on
# a connection the fake is just closing.
KEEP_ALIVE_S = 75


class ServedUpstream:
    """Runs a FakeUpstream (or another ASGI `app`) on 127.0.0.1 in a background thread
    (like httpx's serve_in_thread)."""

    def __init__(self, port: int | None = None, record: bool = True, app=None) -> None:
        self.app = app if app is not None else FakeUpstream(record=record)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=1,
                timeout_keep_alive=KEEP_ALIVE_S,
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServedUpstream:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


if __name__ == "__main__":  # python -m tests.fakes.upstream PORT (used by `make bench`)
    import sys

    uvicorn.run(
        FakeUpstream(record=False),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
