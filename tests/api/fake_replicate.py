"""A fake Replicate (and OpenRouter Image API, and webhook receiver) on a real local socket.

`FakeUpstream` runs a Starlette app under uvicorn in a thread, like httpx's own
`serve_in_thread`. Tests script it through `scenario` and read what it saw from
`calls`, `hooks` and the counters; every handler holds one lock, so counts are exact.

    POST /v1/models/{owner}/{name}/predictions   -> 201 {"id", "status": "starting"}
    GET  /v1/predictions/{id}                    -> starting / processing / succeeded | failed | canceled
    POST /v1/predictions/{id}/cancel
    GET  /out/{id}.png                           -> the PNG a succeeded prediction points at
    GET  /or/images/models, POST /or/images, POST /or/chat/completions   (OpenRouter)
    POST /hook                                   -> webhook receiver (fails `hook_failures` times first)
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def make_png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 90)) -> bytes:
    """A small valid PNG, built by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@dataclass
class Scenario:
    """What the fake does; tests change fields before (or during) a run."""

    submit_status: int = 201  # anything else: the submission fails with this status
    submit_delay_s: float = 0.0
    polls_until_done: int = 1  # GETs answering "processing" before the final state
    final: str = "succeeded"  # or "failed", "canceled", "hang" (processing forever)
    output_as_list: bool = False
    poll_status: int = 200
    hook_failures: int = 0  # the webhook receiver answers 500 this many times first
    image_models: list[str] = field(default_factory=lambda: ["google/gemini-image"])


class FakeUpstream:
    def __init__(self) -> None:
        self.png = make_png()
        self.scenario = Scenario()
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # "submit", "poll:<id>", "cancel:<id>", "download:<id>", ...
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.hooks: list[tuple[bytes, dict[str, str]]] = []
        self.hook_attempts = 0
        self._ids = itertools.count(1)
        self._polls: Counter[str] = Counter()
        self._canceled: set[str] = set()
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def reset(self) -> None:
        with self.lock:
            self.scenario = Scenario()
            self.calls.clear()
            self.bodies.clear()
            self.auth.clear()
            self.hooks.clear()
            self.hook_attempts = 0
            self._polls.clear()
            self._canceled.clear()
            self._ids = itertools.count(1)

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(n for name, n in self.calls.items() if name == prefix or name.startswith(prefix + ":"))

    # ------------------------------------------------------------ handlers

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models/{owner}/{name}/predictions", self._submit, methods=["POST"]),
                Route("/v1/predictions/{pid}", self._poll, methods=["GET"]),
                Route("/v1/predictions/{pid}/cancel", self._cancel, methods=["POST"]),
                Route("/out/{pid}.png", self._download, methods=["GET"]),
                Route("/or/images/models", self._or_models, methods=["GET"]),
                Route("/or/images", self._or_images, methods=["POST"]),
                Route("/or/chat/completions", self._or_chat, methods=["POST"]),
                Route("/hook", self._hook, methods=["POST"]),
            ]
        )

    async def _submit(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.calls["submit"] += 1
            self.bodies.append({"path": request.url.path, **body})
            self.auth.append(request.headers.get("authorization"))
            scenario = self.scenario
            pid = f"pred{next(self._ids):04d}"
        if scenario.submit_delay_s:
            await asyncio.sleep(scenario.submit_delay_s)
        if scenario.submit_status != 201:
            return JSONResponse({"detail": "nope"}, status_code=scenario.submit_status)
        return JSONResponse({"id": pid, "status": "starting"}, status_code=201)

    async def _poll(self, request: Request) -> Response:
        pid = request.path_params["pid"]
        with self.lock:
            self.calls[f"poll:{pid}"] += 1
            self._polls[pid] += 1
            polls, scenario, canceled = self._polls[pid], self.scenario, pid in self._canceled
        if scenario.poll_status != 200:
            return JSONResponse({"detail": "down"}, status_code=scenario.poll_status)
        body: dict = {"id": pid, "status": "processing", "output": None, "error": None}
        if canceled:
            body["status"] = "canceled"
        elif polls > scenario.polls_until_done and scenario.final != "hang":
            body["status"] = scenario.final
            if scenario.final == "succeeded":
                url = f"{self.url}/out/{pid}.png"
                body["output"] = [url] if scenario.output_as_list else url
            elif scenario.final == "failed":
                body["error"] = "NSFW content detected"
        return JSONResponse(body)

    async def _cancel(self, request: Request) -> Response:
        pid = request.path_params["pid"]
        with self.lock:
            self.calls[f"cancel:{pid}"] += 1
            self._canceled.add(pid)
        return JSONResponse({"id": pid, "status": "canceled"})

    async def _download(self, request: Request) -> Response:
        with self.lock:
            self.calls[f"download:{request.path_params['pid']}"] += 1
        return Response(self.png, media_type="image/png")

    async def _or_models(self, request: Request) -> Response:
        with self.lock:
            self.calls["or_models"] += 1
            models = list(self.scenario.image_models)
        return JSONResponse({"data": [{"id": m} for m in models]})

    async def _or_images(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.calls["or_images"] += 1
            self.bodies.append({"path": request.url.path, **body})
        b64 = base64.b64encode(self.png).decode()
        return JSONResponse(
            {"created": int(time.time()), "data": [{"b64_json": b64}] * body.get("n", 1), "usage": {"cost": 0.04}}
        )

    async def _or_chat(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.calls["or_chat"] += 1
            self.bodies.append({"path": request.url.path, **body})
        url = "data:image/png;base64," + base64.b64encode(self.png).decode()
        message = {"role": "assistant", "content": "here", "images": [{"type": "image_url", "image_url": {"url": url}}]}
        return JSONResponse({"id": "gen-123", "choices": [{"index": 0, "message": message}]})

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.hook_attempts += 1
            attempt = self.hook_attempts
            self.hooks.append((body, dict(request.headers)))
            failures = self.scenario.hook_failures
        return Response(status_code=500 if attempt <= failures else 204)


def pipeline_settings(database_url: str, tmp_path, fake: FakeUpstream, **overrides):
    """Settings pointing both image providers at `fake`, with a pipeline fast enough for tests."""
    from tests.conftest import make_settings

    values = dict(
        replicate_base_url=f"{fake.url}/v1",
        openrouter_base_url=f"{fake.url}/or",
        task_poll_interval_s=0.02,
        task_poll_max_interval_s=0.05,
        worker_idle_s=0.02,
        webhook_backoff_s=0.02,
        webhook_allow_private=True,
    )
    values.update(overrides)
    return make_settings(database_url, tmp_path, **values)
