"""The bench's stream load generator against its fake stream upstream: counts, not speed."""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn

from bench.stream_upstream import StreamUpstream
from bench.streams import run_load
from tests.fakes.upstream import free_port


class _Served:
    """An ASGI app on 127.0.0.1 in a background thread."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> _Served:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _without_done(app):
    """The upstream, minus its final `data: [DONE]`: the body just ends."""

    async def wrapped(scope, receive, send):
        async def strip(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": message.get("body", b"").replace(b"data: [DONE]\n\n", b"")}
            await send(message)

        await app(scope, receive, strip)

    return wrapped


def test_every_stream_completes_with_its_chunks_usage_and_done():
    upstream = StreamUpstream()
    with _Served(upstream) as served:
        result = asyncio.run(run_load(served.url, concurrency=3, seconds=0.3, chunks=5, interval_ms=10))
    summary = result.summary()
    assert summary["streams"] >= 3
    assert summary["completed"] == summary["streams"]
    assert summary["chunks"] == 5 * summary["streams"]
    assert summary["events"] == 7 * summary["streams"]  # 5 content chunks, the finish chunk, the usage chunk
    assert summary["errors"] == {"status": 0, "broken": 0, "short": 0, "no_done": 0}
    assert summary["no_usage"] == 0
    assert summary["peak_open"] == 3
    assert upstream.stats["chunks"] == summary["chunks"]
    assert upstream.stats["streams_finished"] == summary["streams"]


def test_a_stream_without_done_is_counted_as_such():
    with _Served(_without_done(StreamUpstream())) as served:
        result = asyncio.run(run_load(served.url, concurrency=2, seconds=0.1, chunks=3, interval_ms=5))
    summary = result.summary()
    assert summary["streams"] >= 2
    assert summary["completed"] == 0
    assert summary["errors"]["no_done"] == summary["streams"]
    assert summary["chunks"] == 3 * summary["streams"]


def test_an_answer_other_than_200_is_counted_as_a_status_error():
    with _Served(StreamUpstream()) as served:
        result = asyncio.run(
            run_load(
                served.url.replace("/chat/completions", "/nowhere"), concurrency=1, seconds=0.1, chunks=3, interval_ms=5
            )
        )
    summary = result.summary()
    assert summary["streams"] >= 1
    assert summary["errors"]["status"] == summary["streams"]
    assert summary["chunks"] == 0
