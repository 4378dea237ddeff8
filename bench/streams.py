"""The streaming load: C streams held open at once for T seconds, in one of three formats.

    python -m bench.streams URL --concurrency 200 --seconds 20 --chunks 40 --interval-ms 25 \
        [--format chat|messages|responses] [--key KEY] [--header "Name: value" ...] [--model M]

prints one JSON line (`BENCH_STREAMS {...}`) with what it saw. The bench runs it in its own
process, so its CPU is never counted against the server it measures.

Each of C workers starts one stream after another until T seconds have passed, on one
keep-alive connection (reopened after an error). The workers' first requests are spread
over one stream's length (at most half of T), so the server sees a steady C open streams, not C arriving at
once. The format is the API the stream is asked of, and the URL its endpoint:
    chat       a chat completion (`stream_options.include_usage`, as a metered client asks)
    messages   Anthropic's Messages API (`max_tokens`, `anthropic-version`)
    responses  OpenAI's Responses API (`input`)
the fake upstream (bench/stream_upstream.py) paces its chunks by the request's text.

Per stream it records the status, the time to the first text (from the moment the request
is sent, connecting included), the text chunks and all data events received (every SSE
event but chat's `[DONE]`), whether the usage and the terminal event came (chat's
`[DONE]`, `message_stop`, `response.completed`), and what went wrong:
    status     an answer other than 200
    broken     the connection failed, timed out, or ended mid-body; or an error event
    short      fewer text chunks than the upstream sends
    no_done    the body ended cleanly without the terminal event

The client is asyncio's streams reading HTTP/1.1 (a status line, headers, a chunked or
until-close body), not aiohttp or httpx: it runs in the project's own virtualenv, where
httpx's streaming costs several times the server's per-chunk budget, and on two cores a
load generator that burns a core would skew every other figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from .stream_upstream import pace_prompt

ERRORS = ("status", "broken", "short", "no_done")
FORMATS = ("chat", "messages", "responses")
# The endpoint of each format, after the API's base (`…/v1`).
PATHS = {"chat": "/chat/completions", "messages": "/messages", "responses": "/responses"}
# The model each format asks for by default: Anthropic's API with an Anthropic model.
MODELS = {"chat": "openai/gpt-5-mini", "messages": "anthropic/claude-sonnet-4.5", "responses": "openai/gpt-5-mini"}


@dataclass
class StreamRecord:
    status: int = 0
    ttft_s: float | None = None
    chunks: int = 0  # text chunks
    events: int = 0  # every data event but chat's [DONE]
    usage: bool = False
    done: bool = False
    error: str | None = None


class _BodyEnded(Exception):
    pass


def _text(record: StreamRecord, started: float) -> None:
    record.chunks += 1
    if record.ttft_s is None:
        record.ttft_s = time.monotonic() - started


def on_chat_data(data: bytes, record: StreamRecord, started: float) -> None:
    """A chat stream's data event: content chunks, the usage chunk, `[DONE]`."""
    if data == b"[DONE]":
        record.done = True
        return
    record.events += 1
    event = orjson.loads(data)
    if "error" in event:
        record.error = "broken"
    if event.get("usage"):
        record.usage = True
    for choice in event.get("choices") or ():
        if (choice.get("delta") or {}).get("content"):
            _text(record, started)


def on_messages_data(data: bytes, record: StreamRecord, started: float) -> None:
    """An Anthropic Messages event: text deltas, the usage in message_delta, message_stop."""
    record.events += 1
    event = orjson.loads(data)
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            _text(record, started)
    elif kind == "message_delta":
        record.usage = record.usage or (event.get("usage") or {}).get("output_tokens") is not None
    elif kind == "message_stop":
        record.done = True
    elif kind == "error":
        record.error = "broken"


def on_responses_data(data: bytes, record: StreamRecord, started: float) -> None:
    """A Responses event: text deltas, response.completed with its usage."""
    record.events += 1
    event = orjson.loads(data)
    kind = event.get("type")
    if kind == "response.output_text.delta":
        if event.get("delta"):
            _text(record, started)
    elif kind == "response.completed":
        record.done = True
        record.usage = bool((event.get("response") or {}).get("usage"))
    elif kind in ("error", "response.failed", "response.incomplete"):
        record.error = "broken"


OnData = Callable[[bytes, StreamRecord, float], None] | None
ON_DATA = {"chat": on_chat_data, "messages": on_messages_data, "responses": on_responses_data}


class _Connection:
    """One keep-alive HTTP/1.1 connection; `post_stream` sends a request and reads its events."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def post_stream(
        self, request: bytes, record: StreamRecord, expected_chunks: int, on_data: OnData = None
    ) -> None:
        started = time.monotonic()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        self.writer.write(request)
        reader = self.reader
        status_line = await reader.readline()
        if not status_line:
            raise _BodyEnded("connection closed before the answer")
        record.status = int(status_line.split()[1])
        chunked, length, keep_alive = False, None, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                keep_alive = False
        if not chunked and length is None:
            keep_alive = False  # the body runs until the server closes
        pending = b""
        on_data = on_data or on_chat_data
        async for piece in _body(reader, chunked, length):
            if record.status != 200:
                continue
            pending += piece
            *events, pending = pending.split(b"\n\n")
            for event in events:
                for line in event.split(b"\n"):
                    if line.startswith(b"data:"):
                        on_data(line[5:].strip(), record, started)
        if not keep_alive:
            await self.close()
        if record.status != 200:
            record.error = "status"
        elif record.error is None and not record.done:
            record.error = "no_done"
        elif record.error is None and record.chunks < expected_chunks:
            record.error = "short"


async def _body(reader: asyncio.StreamReader, chunked: bool, length: int | None):
    if chunked:
        while True:
            size_line = await reader.readline()
            if not size_line.endswith(b"\n"):
                raise _BodyEnded("connection closed mid-body")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif length is not None:
        yield await reader.readexactly(length)
    else:
        while piece := await reader.read(1 << 16):
            yield piece


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    records: list[StreamRecord] = field(default_factory=list)
    elapsed_s: float = 0.0
    peak_open: int = 0

    def summary(self) -> dict:
        ok = [r for r in self.records if r.error is None]
        ttfts = sorted(r.ttft_s for r in self.records if r.ttft_s is not None)
        return {
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "elapsed_s": self.elapsed_s,
            "streams": len(self.records),
            "completed": len(ok),
            "streams_per_s": len(ok) / self.elapsed_s if self.elapsed_s else 0.0,
            "chunks": sum(r.chunks for r in self.records),
            "events": sum(r.events for r in self.records),
            "ttft_p50_ms": _percentile(ttfts, 50) * 1000,
            "ttft_p99_ms": _percentile(ttfts, 99) * 1000,
            "errors": {kind: sum(r.error == kind for r in self.records) for kind in ERRORS},
            "no_usage": sum(not r.usage for r in ok),
            "peak_open": self.peak_open,
        }


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


def request_body(fmt: str, chunks: int, interval_ms: float, model: str | None = None) -> dict[str, Any]:
    """A streaming request of `fmt` that asks the fake upstream for its pace."""
    pace = pace_prompt(chunks, interval_ms)
    model = model or MODELS[fmt]
    if fmt == "messages":
        return {"model": model, "max_tokens": 1024, "stream": True, "messages": [{"role": "user", "content": pace}]}
    if fmt == "responses":
        return {"model": model, "stream": True, "input": pace}
    return {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": pace}],
    }


def _request(
    url: str,
    key: str | None,
    chunks: int,
    interval_ms: float,
    *,
    fmt: str = "chat",
    headers: dict[str, str] | None = None,
    model: str | None = None,
) -> bytes:
    parts = urlsplit(url)
    body = orjson.dumps(request_body(fmt, chunks, interval_ms, model))
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
    )
    if fmt == "messages":
        head += "anthropic-version: 2023-06-01\r\n"
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    return head.encode() + b"\r\n" + body


async def run_load(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    chunks: int,
    interval_ms: float,
    key: str | None = None,
    fmt: str = "chat",
    headers: dict[str, str] | None = None,
    model: str | None = None,
) -> LoadResult:
    """Hold `concurrency` streams open for `seconds`; every stream in flight then runs to its end."""
    parts = urlsplit(url)
    request = _request(url, key, chunks, interval_ms, fmt=fmt, headers=headers, model=model)
    on_data = ON_DATA[fmt]
    stream_s = stream_seconds(chunks, interval_ms)
    ramp_s = min(stream_s, seconds / 2)  # first requests spread over one stream's length
    timeout_s = stream_s * 3 + 30
    result = LoadResult(concurrency, seconds)
    start = time.monotonic()
    stop_at = start + seconds
    open_now = 0

    async def worker(i: int) -> None:
        nonlocal open_now
        await asyncio.sleep(i * ramp_s / concurrency)
        connection = _Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            while time.monotonic() < stop_at:
                record = StreamRecord()
                open_now += 1
                result.peak_open = max(result.peak_open, open_now)
                try:
                    await asyncio.wait_for(connection.post_stream(request, record, chunks, on_data), timeout_s)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, _BodyEnded, ValueError, IndexError):
                    record.error = "broken"
                    await connection.close()
                finally:
                    open_now -= 1
                result.records.append(record)
                if record.error is not None:
                    await asyncio.sleep(0.05)  # an answer that fails at once must not spin
        finally:
            await connection.close()

    await asyncio.wait_for(
        asyncio.gather(*(worker(i) for i in range(concurrency))), seconds + stream_s + timeout_s + 30
    )
    result.elapsed_s = time.monotonic() - start
    return result


def stream_seconds(chunks: int, interval_ms: float) -> float:
    """How long one stream of the fake upstream lasts."""
    return max(0.0, (chunks - 1) * interval_ms / 1000)


def run_streams(
    url: str,
    *,
    key: str | None,
    concurrency: int,
    seconds: float,
    chunks: int,
    interval_ms: float,
    cwd: Path,
    fmt: str = "chat",
    headers: dict[str, str] | None = None,
) -> dict:
    """Run the load in its own process (so its CPU is not the server's) and return its summary."""
    command = [
        sys.executable,
        "-m",
        "bench.streams",
        url,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
        "--chunks",
        str(chunks),
        "--interval-ms",
        str(interval_ms),
        "--format",
        fmt,
    ]
    if key:
        command += ["--key", key]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    timeout = seconds + 4 * stream_seconds(chunks, interval_ms) + 120
    out = subprocess.run(
        command, cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd)}, capture_output=True, text=True, timeout=timeout
    )
    line = next((row for row in out.stdout.splitlines() if row.startswith("BENCH_STREAMS ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"the stream load failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    return json.loads(line.removeprefix("BENCH_STREAMS "))


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise SystemExit(f"--header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams")
    parser.add_argument("url")
    parser.add_argument("--key")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--interval-ms", type=float, default=25)
    parser.add_argument("--format", choices=FORMATS, default="chat")
    parser.add_argument("--model", help="the model to ask for (default: by format)")
    parser.add_argument("--header", action="append", default=[], help='"Name: value", sent with every request')
    args = parser.parse_args(argv)
    headers = dict(_header(h) for h in args.header)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.concurrency * 2 + 256)), hard))
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(
            run_load(
                args.url,
                concurrency=args.concurrency,
                seconds=args.seconds,
                chunks=args.chunks,
                interval_ms=args.interval_ms,
                key=args.key,
                fmt=args.format,
                headers=headers,
                model=args.model,
            )
        )
    print("BENCH_STREAMS " + json.dumps(result.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
