"""The chat hop's HTTP client (aiohttp, api/providers/upstream_http.py) against real local
servers: its connection limit, no resend of a request the upstream may have received,
chunked streams, TLS with a self-signed certificate, and a proxy from the environment."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading

import httpx
import orjson
import pytest

from api.app import create_app

from ..conftest import make_settings
from ..factories import credits_of, flat_seed_prices, make_key, make_user
from ..fakes.scripted import ScriptedUpstream, sse
from ..fakes.upstream import free_port
from ..serving import serve


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


COMPLETION = {
    "id": "gen-1",
    "object": "chat.completion",
    "model": "x",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def chat(base, key, **extra):
    return httpx.post(
        f"{base}/api/v1/chat/completions",
        timeout=20,
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}], **extra},
    )


def platform(database_url, tmp_path, upstream_url, **overrides):
    return create_app(make_settings(database_url, tmp_path, openrouter_base_url=upstream_url, **overrides))


def test_the_connection_limit_is_honoured(database_url, tmp_path, engine):
    key = make_key(engine, make_user(engine, credits=100))
    with ScriptedUpstream() as upstream:
        upstream.add(json=COMPLETION, delay=0.2, reusable=True)
        with serve(platform(database_url, tmp_path, upstream.base_url, upstream_max_connections=3)) as (base, _):

            async def burst():
                async with httpx.AsyncClient(timeout=20) as client:
                    return await asyncio.gather(
                        *(
                            client.post(
                                f"{base}/api/v1/chat/completions",
                                headers={"Authorization": f"Bearer {key}"},
                                json={"model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}]},
                            )
                            for _ in range(12)
                        )
                    )

            statuses = [r.status_code for r in asyncio.run(burst())]
        assert statuses == [200] * 12
        assert len(upstream.requests) == 12
        assert upstream.most_open == 3  # twelve calls, never more than three sockets at once


@pytest.mark.parametrize("retries", [0, 1])
def test_a_connection_that_dies_after_the_request_was_read_is_not_resent(database_url, tmp_path, engine, retries):
    user = make_user(engine, credits=10)
    key = make_key(engine, user)
    with ScriptedUpstream() as upstream:
        upstream.add(json=COMPLETION)  # the first call opens a keep-alive connection
        upstream.add(drop=True)  # the second, on that reused connection, is read and dropped
        with serve(platform(database_url, tmp_path, upstream.base_url, upstream_retries=retries)) as (base, _):
            assert chat(base, key).status_code == 200
            r = chat(base, key)
        assert (r.status_code, r.json()["error"]["code"]) == (502, "provider_error")
        assert len(upstream.requests) == 2  # sent once: the upstream may have run it already
        assert upstream.connections == 1
        assert credits_of(engine, user) == 7  # the failed call is refunded


def test_a_chunked_stream_is_relayed_event_by_event(database_url, tmp_path, engine):
    key = make_key(engine, make_user(engine, credits=10))
    events = sse(
        {"id": "g", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"id": "g", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"id": "g", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}},
        "[DONE]",
    )
    joined = b"".join(events)
    pieces = [joined[i : i + 7] for i in range(0, len(joined), 7)]  # events split across chunks anyhow
    with ScriptedUpstream() as upstream:
        upstream.add(chunks=pieces)
        with serve(platform(database_url, tmp_path, upstream.base_url)) as (base, _):
            r = chat(base, key, stream=True)
    data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert [orjson.loads(d)["choices"][0]["delta"]["content"] for d in data[:-1]] == ["Hel", "lo"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (and its key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_with_a_self_signed_certificate_needs_its_ca_file(database_url, tmp_path, engine, certificate):
    cert, cert_key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, cert_key)
    key = make_key(engine, make_user(engine, credits=10))
    with ScriptedUpstream(ssl_context=context) as upstream:
        upstream.add(json=COMPLETION, reusable=True)
        with serve(platform(database_url, tmp_path, upstream.base_url)) as (base, _):
            refused = chat(base, key)  # the system's trust store does not know it
        with serve(platform(database_url, tmp_path, upstream.base_url, upstream_ca_file=str(cert))) as (base, _):
            trusted = chat(base, key)
    assert (refused.status_code, refused.json()["error"]["code"]) == (502, "provider_error")
    assert trusted.status_code == 200 and trusted.json()["choices"][0]["message"]["content"] == "hi"
    assert len(upstream.requests) == 1


class ForwardProxy:
    """A plain HTTP forward proxy on 127.0.0.1 that sends every request to one address."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.seen: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self):
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            head = await reader.readuntil(b"\r\n\r\n")
            self.seen.append(head.split(b"\r\n", 1)[0])
            upstream_writer.write(head)

            async def pipe(src, dst):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()


def test_a_proxy_from_the_environment_is_used(database_url, tmp_path, engine, monkeypatch):
    key = make_key(engine, make_user(engine, credits=10))
    with ScriptedUpstream() as upstream, ForwardProxy(upstream.port) as proxy:
        upstream.add(json=COMPLETION)
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        # a name only the proxy can reach: it sends everything to the scripted upstream
        url = f"http://upstream.invalid:{upstream.port}/v1"
        with serve(platform(database_url, tmp_path, url)) as (base, _):
            r = httpx.post(
                f"{base}/api/v1/chat/completions",
                timeout=20,
                trust_env=False,
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}]},
            )
    assert r.status_code == 200
    assert proxy.seen == [f"POST http://upstream.invalid:{upstream.port}/v1/chat/completions HTTP/1.1".encode()]
