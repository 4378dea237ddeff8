"""Serve an ASGI app for real on 127.0.0.1 from a background thread (like httpx's serve_in_thread)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import uvicorn

from .fakes.upstream import free_port


class LoopSpy:
    """Wraps an app to remember the server's event loop, so tests can count its tasks."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope, receive, send):
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def task_count(self) -> int:
        assert self.loop is not None
        result: list[int] = []
        done = threading.Event()

        def count() -> None:
            result.append(len(asyncio.all_tasks(self.loop)))
            done.set()

        self.loop.call_soon_threadsafe(count)
        assert done.wait(5)
        return result[0]


@contextlib.contextmanager
def serve(app, lifespan: str = "on"):
    """Yield (base_url, spy) while `app` answers on a free port."""
    spy = LoopSpy(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(spy, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", spy
    finally:
        server.should_exit = True
        thread.join(timeout=15)
