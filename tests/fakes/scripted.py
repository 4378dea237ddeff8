"""A scripted upstream over real sockets: each request gets the next scripted answer.

For the tests that need an upstream to misbehave in one exact way (a status, a body that
is not JSON, a stream cut after some bytes, a connection dropped after the request was
read, a stall, chunked pieces), where tests/fakes/upstream.py is the well-behaved fake.
A minimal HTTP/1.1 server on asyncio streams in a background thread, so that nothing of
the client under test is faked; TLS when given an `ssl.SSLContext`.

    upstream.add(json={...})                          200 with that JSON
    upstream.add(status=500, body=b"oops")
    upstream.add(chunks=[b"data: ...\\n\\n", ...])     chunked, piece by piece
    upstream.add(chunks=[...], cut=True)              ... then the connection is dropped
    upstream.add(drop=True)                           read the request, close without answering
    upstream.add(stall=30)                            read the request, answer nothing for 30 s
    upstream.add(..., reusable=True)                  answer every later request the same way
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field

import orjson

from .upstream import free_port


@dataclass
class Script:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    cut: bool = False
    drop: bool = False
    stall: float = 0.0
    delay: float = 0.0  # before answering
    reusable: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return orjson.loads(self.body)


class ScriptedUpstream:
    def __init__(self, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.host = host
        scheme = "https" if ssl_context else "http"
        self.base_url = f"{scheme}://{host}:{self.port}/v1"
        self._ssl = ssl_context
        self._scripts: list[Script] = []
        self.requests: list[Seen] = []
        self.connections = 0  # ever opened
        self.open_connections = 0
        self.most_open = 0  # the most open at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # ------------------------------------------------------------ scripting

    def add(
        self,
        *,
        status: int = 200,
        json=None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        chunks: list[bytes] | None = None,
        cut: bool = False,
        drop: bool = False,
        stall: float = 0.0,
        delay: float = 0.0,
        reusable: bool = False,
    ) -> None:
        if json is not None:
            body = orjson.dumps(json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        self._scripts.append(Script(status, body, headers or {}, chunks, cut, drop, stall, delay, reusable))

    def _next(self) -> Script:
        if not self._scripts:
            return Script(500, b'{"error":{"message":"no scripted answer left"}}')
        script = self._scripts[0]
        if not script.reusable:
            self._scripts.pop(0)
        return script

    # ------------------------------------------------------------ serving

    def __enter__(self) -> ScriptedUpstream:
        self._thread.start()
        assert self._ready.wait(10), "scripted upstream did not start"
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
        self._server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self._ssl)
        self._ready.set()
        await self._stopping.wait()
        self._server.close()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self.most_open = max(self.most_open, self.open_connections)
        try:
            while True:
                seen = await _read_request(reader)
                if seen is None:
                    return
                self.requests.append(seen)
                script = self._next()
                if script.drop:
                    return
                if script.stall:
                    await asyncio.sleep(script.stall)
                    return
                if script.delay:
                    await asyncio.sleep(script.delay)
                if not await _answer(writer, script):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            return
        finally:
            self.open_connections -= 1
            writer.close()

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Whether every connection to it ended within `timeout`."""
        deadline = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections == 0


async def _read_request(reader: asyncio.StreamReader) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Seen(method, path, headers, body)


async def _answer(writer: asyncio.StreamWriter, script: Script) -> bool:
    """Write the scripted answer; False when the connection is to be dropped after it."""
    head = [f"HTTP/1.1 {script.status} X"]
    head += [f"{k}: {v}" for k, v in script.headers.items()]
    if script.chunks is None:
        head.append(f"Content-Length: {len(script.body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + script.body)
        await writer.drain()
        return True
    if not any(k.lower() == "content-type" for k in script.headers):
        head.append("Content-Type: text/event-stream")
    head.append("Transfer-Encoding: chunked")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    for piece in script.chunks:
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0)
    if script.cut:
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def sse(*events) -> list[bytes]:
    """Server-sent event pieces, one per event (dicts become `data: <json>`)."""
    return [b"data: " + (orjson.dumps(e) if isinstance(e, dict) else e.encode()) + b"\n\n" for e in events]
