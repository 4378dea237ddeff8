"""A chat upstream over real sockets that keeps a call open for as long as a test wants,
so the platform's server can be killed while the call is in flight (tests/scaleout/test_crash.py).

What it does depends on the last message's content:

    "stall"        read the call, answer nothing until the other side hangs up
    "stream:N"     stream N chunks under the call's own id (`gen-crash-<k>`), then send
                   nothing more until the other side hangs up
    "gate:N"       stream N chunks, then wait for `release(id, ...)`, then finish: a chunk
                   with finish_reason "stop", the usage chunk with the tokens given, [DONE]

`GET /v1/generation?id=<id>` answers OpenRouter's generation record only once
`serve_record(id, ...)` was called, 404 before (and counts the asks per id).

A minimal HTTP/1.1 server on asyncio streams in a background thread, like
tests/fakes/scripted.py, whose request reader it shares.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import orjson

from .scripted import Seen, _read_request
from .upstream import free_port


class StallingUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.calls: list[Seen] = []  # every chat call, as read
        self.asks: Counter[str] = Counter()  # generation id -> GET /generation asks
        self._records: dict[str, dict] = {}
        self._usage: dict[str, tuple[int, int]] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # ------------------------------------------------------------ steering (the test's thread)

    def serve_record(self, gen_id: str, *, prompt_tokens: int, completion_tokens: int, total_cost: float) -> None:
        """From now on, GET /generation?id=`gen_id` answers this record."""
        record = {
            "id": gen_id,
            "total_cost": total_cost,
            "tokens_prompt": prompt_tokens,
            "tokens_completion": completion_tokens,
        }
        self._call(self._records.__setitem__, gen_id, record)

    def release(self, gen_id: str, *, prompt_tokens: int, completion_tokens: int) -> None:
        """Let the "gate" stream `gen_id` finish, reporting this usage."""

        def go() -> None:
            self._usage[gen_id] = (prompt_tokens, completion_tokens)
            self._gates[gen_id].set()

        self._call(go)

    def _call(self, fn, *args) -> None:
        assert self._loop is not None
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        assert done.wait(10), "the stalling upstream's loop did not answer"

    # ------------------------------------------------------------ serving

    def __enter__(self) -> StallingUpstream:
        self._thread.start()
        assert self._ready.wait(10), "stalling upstream did not start"
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._ready.set()
        await self._stopping.wait()
        server.close()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (seen := await _read_request(reader)) is not None:
                url = urlsplit(seen.path)
                if seen.method == "GET" and url.path.endswith("/generation"):
                    gen_id = (parse_qs(url.query).get("id") or [""])[0]
                    self.asks[gen_id] += 1
                    record = self._records.get(gen_id)
                    if record is None:
                        await _json(writer, 404, {"error": {"message": "Generation not found"}})
                    else:
                        await _json(writer, 200, {"data": record})
                    continue
                if seen.method != "POST" or not url.path.endswith("/chat/completions"):
                    await _json(writer, 404, {"error": {"message": "not found"}})
                    continue
                self.calls.append(seen)
                await self._chat(seen.json(), reader, writer)
                return  # a stalled or gated call ends its connection
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _chat(self, request: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        content = str(request["messages"][-1].get("content", ""))
        if content == "stall":
            await _until_hung_up(reader)
            return
        mode, _, count = content.partition(":")
        if mode not in ("stream", "gate"):
            await _json(writer, 400, {"error": {"message": f"the stalling upstream has no mode {content!r}"}})
            return
        gen_id = f"gen-crash-{next(self._ids)}"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(int(count)):
            await _piece(writer, _event(_chunk(request, gen_id, {"content": f"w{i} "})))
        if mode == "stream":
            await _until_hung_up(reader)
            return
        gate = self._gates[gen_id] = asyncio.Event()
        await gate.wait()
        prompt, completion = self._usage[gen_id]
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        await _piece(
            writer,
            _event(_chunk(request, gen_id, {}, finish_reason="stop"))
            + _event(_chunk(request, gen_id, None) | {"choices": [], "usage": usage})
            + b"data: [DONE]\n\n",
        )
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def _until_hung_up(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


def _chunk(request: dict, gen_id: str, delta: dict | None, finish_reason: str | None = None) -> dict:
    return {
        "id": gen_id,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": request["model"],
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def _piece(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


async def _json(writer: asyncio.StreamWriter, status: int, body: dict) -> None:
    data = orjson.dumps(body)
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    writer.write(head.encode() + data)
    await writer.drain()
