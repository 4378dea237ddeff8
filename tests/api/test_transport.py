"""The lean upstream pool (api/providers/transport.py) against real sockets: a scripted
HTTP/1.1 server for the framing and failure cases, and the fake upstream end to end."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.providers.transport import UpstreamTransport, env_proxy_applies

from ..fakes.upstream import ServedUpstream, free_port

TIMEOUT = httpx.Timeout(2.0).as_dict()


class Scripted:
    """A tiny HTTP/1.1 server: each request gets the next canned reply (bytes, or a
    coroutine function taking the writer); it counts connections and requests."""

    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "Scripted":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if callable(reply):
                    await reply(writer)
                else:
                    writer.write(reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def post(transport: UpstreamTransport, url: str, body: bytes = b"{}") -> httpx.Response:
    request = httpx.Request("POST", url, content=body, headers={"authorization": "Bearer k"},
                            extensions={"timeout": TIMEOUT})
    response = await transport.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


async def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given():
    async with Scripted(ok(), ok(b'{"n":2}')) as server:
        transport = UpstreamTransport()
        first = await post(transport, server.url, b'{"a":1}')
        second = await post(transport, server.url)
        await transport.aclose()
    assert (first.status_code, first.json(), second.json()) == (200, {"ok": True}, {"n": 2})
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"authorization: bearer k" in head.lower() and b"content-length: 7" in head.lower()
    assert body == b'{"a":1}'


async def test_chunked_body_streams_chunk_by_chunk():
    async def chunked(writer):
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")

    async with Scripted(chunked, ok()) as server:
        transport = UpstreamTransport()
        request = httpx.Request("POST", server.url, content=b"{}", extensions={"timeout": TIMEOUT})
        response = await transport.handle_async_request(request)
        pieces = [piece async for piece in response.aiter_raw()]
        await response.aclose()
        again = await post(transport, server.url)
        await transport.aclose()
    assert pieces == [b"data: 1\n\n", b"data: 2\n\n"]
    assert again.status_code == 200 and server.connections == 1  # read to the end: reused


async def test_a_body_closed_early_closes_its_connection():
    async def endless(writer):
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async with Scripted(endless, ok()) as server:
        transport = UpstreamTransport()
        request = httpx.Request("POST", server.url, content=b"{}", extensions={"timeout": TIMEOUT})
        response = await transport.handle_async_request(request)
        async for _ in response.aiter_raw():
            break
        await response.aclose()
        await post(transport, server.url)
        await transport.aclose()
    assert server.connections == 2


async def test_connection_close_and_until_close_bodies_are_not_reused():
    async def until_close(writer):
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with Scripted(ok(extra=b"connection: close\r\n")) as first, Scripted(until_close) as second:
        transport = UpstreamTransport()
        await post(transport, first.url)
        response = await post(transport, second.url)
        await transport.aclose()
    assert response.content == b"all of it"


async def test_a_kept_connection_the_server_dropped_is_replaced_transparently():
    async def answer_then_hang_up(writer):
        writer.write(ok())
        await writer.drain()
        writer.close()

    async with Scripted(answer_then_hang_up, ok(b'{"fresh":1}')) as server:
        transport = UpstreamTransport()
        await post(transport, server.url)
        await asyncio.sleep(0.05)
        response = await post(transport, server.url)
        await transport.aclose()
    assert response.json() == {"fresh": 1} and server.connections == 2


async def test_stall_is_a_read_timeout_and_refusal_a_connect_error():
    async def stall(writer):
        await asyncio.sleep(5)

    async with Scripted(stall) as server:
        transport = UpstreamTransport()
        request = httpx.Request("POST", server.url, content=b"{}",
                                extensions={"timeout": httpx.Timeout(0.2).as_dict()})
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request)
    with pytest.raises(httpx.ConnectError):
        await post(transport, f"http://127.0.0.1:{free_port()}/v1/chat/completions")
    await transport.aclose()


async def test_malformed_status_line_is_a_protocol_error():
    async with Scripted(b"SMTP ready\r\n\r\n") as server:
        transport = UpstreamTransport()
        with pytest.raises(httpx.RemoteProtocolError):
            await post(transport, server.url)
        await transport.aclose()


async def test_against_the_fake_upstream():
    with ServedUpstream(record=False) as upstream:
        transport = UpstreamTransport()
        url = f"{upstream.base_url}/chat/completions"
        body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
        answers = await asyncio.gather(*(post(transport, url, body) for _ in range(20)))
        await transport.aclose()
    assert {a.json()["choices"][0]["message"]["content"] for a in answers} == {"echo: hi"}


def test_env_proxy_applies(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert not env_proxy_applies("https://openrouter.ai/api/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert env_proxy_applies("https://openrouter.ai/api/v1")
    assert not env_proxy_applies("http://127.0.0.1:9/v1")
    monkeypatch.setenv("NO_PROXY", "openrouter.ai")
    assert not env_proxy_applies("https://openrouter.ai/api/v1")
