"""A lean HTTP/1.1 keep-alive pool for the chat upstream, plugged in under httpx.

Profiling the proxy hop showed httpx's client and httpcore's pool (h11, anyio locks,
a readability probe per reuse) costing ~2 ms of CPU per upstream call on this machine,
more than the whole budget of the hop. `UpstreamTransport` is httpx's own
`AsyncHTTPTransport` with that pool swapped for `LeanPool`: plain asyncio streams, one
request per connection at a time, idle connections kept per origin. The provider calls
the transport directly (no `AsyncClient` layers: auth flows, redirects, cookie jars).

Because the class is still an `AsyncHTTPTransport`, everything above the pool is
httpx's: request/response objects, exception mapping (httpcore errors become
`httpx.ConnectError`, `httpx.ReadTimeout`, ...), and pytest-httpx fakes it exactly as
it fakes any other transport.

What it does not do: HTTP/2, proxies (the runtime uses the full client when an
HTTP(S)_PROXY applies), `Expect: 100-continue`, request trailers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import urllib.request
from collections import deque
from typing import AsyncIterator
from urllib.parse import urlsplit

import httpcore
import httpx

_HEAD_LIMIT = 1 << 20  # the largest response head accepted (and the stream buffer limit)
_READ_SIZE = 1 << 16


def env_proxy_applies(url: str) -> bool:
    """Whether HTTP(S)_PROXY/ALL_PROXY from the environment would route `url` (then use httpx's client)."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)


class UpstreamTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, limits: httpx.Limits = httpx.Limits(), verify: bool | ssl.SSLContext = True) -> None:
        super().__init__(limits=limits, verify=verify)
        ssl_context = getattr(self._pool, "_ssl_context", None)
        self._pool = LeanPool(
            ssl_context=ssl_context,
            max_idle_per_origin=1_000_000 if limits.max_keepalive_connections is None
            else limits.max_keepalive_connections,
            keepalive_expiry=float("inf") if limits.keepalive_expiry is None else limits.keepalive_expiry,
        )


class _Connection:
    __slots__ = ("reader", "writer", "idle_since", "requests")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.requests = 0

    def usable(self, now: float, expiry: float) -> bool:
        return (now - self.idle_since < expiry and not self.reader.at_eof()
                and not self.writer.is_closing() and not self.reader._buffer)  # noqa: SLF001 (stray bytes: unsafe)

    def close(self) -> None:
        self.writer.close()


class LeanPool:
    """Duck-types `httpcore.AsyncConnectionPool.handle_async_request` for HTTP/1.1 origins."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None, max_idle_per_origin: int, keepalive_expiry: float) -> None:
        self._ssl = ssl_context
        self._max_idle = max_idle_per_origin
        self._expiry = keepalive_expiry
        self._idle: dict[tuple[bytes, bytes, int], deque[_Connection]] = {}
        self._closed = False

    async def __aenter__(self) -> "LeanPool":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        if url.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        port = url.port or (443 if url.scheme == b"https" else 80)
        origin = (url.scheme, url.host, port)
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        body = b"".join([part async for part in request.stream])
        head = [request.method, b" ", url.target, b" HTTP/1.1\r\n"]
        for name, value in request.headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        payload = b"".join(head) + body

        while True:
            connection = self._checkout(origin)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(origin, timeouts.get("connect"))
            try:
                connection.writer.write(payload)
                status, reason, headers, framing = await _read_head(connection.reader, read_timeout)
            except asyncio.CancelledError:
                connection.close()
                raise
            except TimeoutError:  # (an OSError: caught first)
                connection.close()
                raise httpcore.ReadTimeout("timed out waiting for the upstream's response") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                connection.close()
                # A kept-alive connection the server had already closed: nothing was
                # answered, so the request is sent again once on a fresh connection.
                if reused and isinstance(exc, (asyncio.IncompleteReadError, ConnectionResetError,
                                               BrokenPipeError)) and not getattr(exc, "partial", b""):
                    continue
                raise _map_read_error(exc) from None
            break
        connection.requests += 1
        stream = _ResponseBody(self, origin, connection, framing, read_timeout)
        return httpcore.Response(status, headers=headers, content=stream,
                                 extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason})

    def _checkout(self, origin: tuple[bytes, bytes, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable(now, self._expiry):
                return connection
            connection.close()
        return None

    def release(self, origin: tuple[bytes, bytes, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, deque())
        if self._closed or len(idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(self, origin: tuple[bytes, bytes, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        tls = self._ssl if scheme == b"https" else None
        if scheme == b"https" and tls is None:
            tls = ssl.create_default_context()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    hostname, port, ssl=tls, server_hostname=hostname if tls else None, limit=_HEAD_LIMIT)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {hostname}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot connect to {hostname}:{port}: {exc}") from None
        return _Connection(reader, writer)


# framing: ("length", n) | ("chunked", 0) | ("close", 0)
async def _read_head(reader: asyncio.StreamReader, timeout: float | None):
    # No read timeout (the caller keeps a deadline of its own): no timer to arm and cancel.
    async with _deadline(timeout):
        raw = await reader.readuntil(b"\r\n\r\n")
        while raw.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1")) and not raw.startswith(b"HTTP/1.1 101"):
            raw = await reader.readuntil(b"\r\n\r\n")  # skip 1xx interim answers
    lines = raw[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit():
        raise ValueError("malformed status line")
    status = int(code)
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    keep_alive = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("malformed header line")
        name, value = name.strip(), value.strip()
        headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            length = int(value)
        elif lower == b"transfer-encoding":
            chunked = value.lower().endswith(b"chunked")
        elif lower == b"connection":
            token = value.lower()
            keep_alive = b"close" not in token and (keep_alive or b"keep-alive" in token)
    if status in (204, 304) or 100 <= status < 200:
        framing = ("length", 0)
    elif chunked:
        framing = ("chunked", 0)
    elif length is not None:
        framing = ("length", length)
    else:
        framing = ("close", 0)
        keep_alive = False
    return status, reason, headers, (framing, keep_alive)


class _ResponseBody:
    """The response body as httpcore hands it to httpx: async iterable plus `aclose`.

    A connection goes back to the pool only after its body was read to the end and
    the server allows reuse; a body closed early (a client that left mid-stream) or
    broken closes the connection, so the upstream sees the hang-up at once.
    """

    def __init__(self, pool: LeanPool, origin, connection: _Connection, framing, read_timeout: float | None) -> None:
        self._pool = pool
        self._origin = origin
        self._connection: _Connection | None = connection
        (self._kind, self._remaining), self._keep_alive = framing
        self._timeout = read_timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        reader = connection.reader
        try:
            if self._kind == "length":
                if self._remaining:
                    async with _deadline(self._timeout):
                        data = await reader.readexactly(self._remaining)
                    yield data
            elif self._kind == "chunked":
                while True:
                    async with _deadline(self._timeout):
                        size_line = await reader.readuntil(b"\r\n")
                        size = int(size_line.split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                                pass  # trailers
                            break
                        data = await reader.readexactly(size + 2)
                    yield data[:-2]
            else:
                while True:
                    async with _deadline(self._timeout):
                        data = await reader.read(_READ_SIZE)
                    if not data:
                        break
                    yield data
            self._done = True
        except TimeoutError:
            raise httpcore.ReadTimeout("the upstream stalled mid-response") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise _map_read_error(exc) from None

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._done and self._keep_alive:
            self._pool.release(self._origin, connection)
        else:
            connection.close()


_NO_DEADLINE = contextlib.nullcontext()


def _deadline(seconds: float | None):
    return _NO_DEADLINE if seconds is None else asyncio.timeout(seconds)


def _map_read_error(exc: BaseException) -> httpcore.NetworkError | httpcore.ProtocolError:
    if isinstance(exc, asyncio.IncompleteReadError):
        return httpcore.RemoteProtocolError("the upstream closed the connection mid-response")
    if isinstance(exc, (asyncio.LimitOverrunError, ValueError)):
        return httpcore.RemoteProtocolError(f"malformed response from the upstream ({type(exc).__name__})")
    return httpcore.ReadError(f"reading from the upstream failed ({type(exc).__name__})")
