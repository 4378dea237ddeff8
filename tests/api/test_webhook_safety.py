"""What a webhook receiver (or its DNS) cannot do to the platform: make it read an endless
answer, hold a delivery past its deadline, or steer it to a private address after the
check. Real receivers on 127.0.0.x sockets; only the resolver and the address policy are
swapped in, as a hostile DNS and a "public" stand-in address."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import subprocess
import time
from dataclasses import dataclass, field

import pytest

from api import webhooks

from ..factories import auth
from . import image_fixtures
from .test_images import MODEL

# the image tests' shared fixtures (tests/api/image_fixtures.py), bound here for pytest to find
caller = image_fixtures.caller
settings = image_fixtures.settings
upstream = image_fixtures.upstream

BODY = b'{"task_id":"img_1","status":"succeeded"}'
STAND_IN = ipaddress.ip_address("127.0.0.2")  # plays a public address the policy allows


def only_stand_in(address) -> bool:
    return address == STAND_IN


async def deliver(url: str, **kwargs) -> bool:
    options = {"allow_private": True, "timeout_s": 2.0, **kwargs}
    return await webhooks.deliver(url=url, body=BODY, secret="whsec_x", event_id="img_1", **options)


@dataclass
class Receiver:
    """An HTTP receiver on a real socket that notes each connection and how much it wrote."""

    answer: str = "ok"  # ok | endless | trickle
    connections: list[dict] = field(default_factory=list)
    written: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    servers: list[asyncio.AbstractServer] = field(default_factory=list)

    async def listen(self, host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> int:
        server = await asyncio.start_server(self._serve, host, port, ssl=tls)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        await reader.readexactly(int(headers.get("content-length", 0)))
        self.connections.append({"local": writer.get_extra_info("sockname")[0], "host": headers.get("host")})
        try:
            if self.answer == "ok":
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif self.answer == "endless":  # 200, then a body that never ends (stopped at 64 MiB)
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
                while self.written < 64 * 2**20:
                    writer.write(chunk)
                    await writer.drain()
                    self.written += len(chunk)
                await asyncio.sleep(30)
            else:  # trickle: one header byte every 50 ms, for ever
                writer.write(b"HTTP/1.1 200 OK\r\n")
                while True:
                    writer.write(b"X")
                    await writer.drain()
                    await asyncio.sleep(0.05)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.done.set()

    def close(self) -> None:
        for server in self.servers:
            server.close()


@pytest.fixture
async def receiver():
    r = Receiver()
    yield r
    r.close()


# ---------------------------------------------------------------- the answer


async def test_an_endless_answer_is_read_only_a_few_kib_and_the_delivery_counts(receiver):
    receiver.answer = "endless"
    port = await receiver.listen("127.0.0.1")
    started = time.monotonic()
    assert await asyncio.wait_for(deliver(f"http://127.0.0.1:{port}/hook"), 10) is True
    assert time.monotonic() - started < 2.0
    await asyncio.wait_for(receiver.done.wait(), 5)  # the platform closed the connection
    # What the receiver could push before that: our read of a few KiB plus the socket
    # buffers of the loopback connection; never its 64 MiB.
    assert receiver.written < 8 * 2**20, receiver.written


async def test_a_trickling_answer_is_cut_at_the_deadline(receiver):
    receiver.answer = "trickle"
    port = await receiver.listen("127.0.0.1")
    started = time.monotonic()
    assert await asyncio.wait_for(deliver(f"http://127.0.0.1:{port}/hook", timeout_s=0.5), 10) is False
    assert time.monotonic() - started < 1.5


# ---------------------------------------------------------------- the address


class Rebinding:
    """A DNS that answers one address, and another one to anyone who asks again."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


async def listen_on_both(receiver: Receiver, tls: ssl.SSLContext | None = None) -> int:
    port = await receiver.listen("127.0.0.2", tls=tls)
    await receiver.listen("127.0.0.1", port, tls=tls)
    return port


async def test_the_delivery_connects_to_the_address_that_was_checked(receiver):
    port = await listen_on_both(receiver)
    dns = Rebinding(["127.0.0.2"], ["127.0.0.1"])
    ok = await deliver(f"http://hook.test:{port}/hook", allow_private=False, resolve=dns, is_allowed=only_stand_in)
    assert ok is True
    assert dns.asked == [("hook.test", port)]  # resolved once
    assert receiver.connections == [{"local": "127.0.0.2", "host": f"hook.test:{port}"}]


async def test_an_answer_with_one_private_address_is_refused_before_connecting(receiver):
    port = await listen_on_both(receiver)
    dns = Rebinding(["127.0.0.2", "127.0.0.1"])
    ok = await deliver(f"http://hook.test:{port}/hook", allow_private=False, resolve=dns, is_allowed=only_stand_in)
    assert ok is False
    assert receiver.connections == []


async def test_https_keeps_the_hostname_for_sni_and_the_certificate(receiver, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
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
            "/CN=hook.test",
            "-addext",
            "subjectAltName=DNS:hook.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _conn, name, _ctx: sni.append(name)
    port = await listen_on_both(receiver, tls=server_tls)
    trust = ssl.create_default_context(cafile=str(cert))
    dns = Rebinding(["127.0.0.2"], ["127.0.0.1"])
    ok = await deliver(
        f"https://hook.test:{port}/hook", allow_private=False, resolve=dns, is_allowed=only_stand_in, verify=trust
    )
    assert ok is True
    assert receiver.connections == [{"local": "127.0.0.2", "host": f"hook.test:{port}"}]
    assert sni == ["hook.test"]
    # The certificate is checked against the hostname, not the address connected to.
    other = Rebinding(["127.0.0.2"])
    assert await deliver(f"https://other.test:{port}/hook", resolve=other, verify=trust) is False
    assert sni == ["hook.test", "other.test"] and len(receiver.connections) == 1


async def test_the_real_resolver_refuses_loopback_names_and_literals(receiver):
    port = await receiver.listen("127.0.0.1")
    for host in ("localhost", "127.0.0.1", "[::ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "0.0.0.0"):
        assert await deliver(f"http://{host}:{port}/hook", allow_private=False) is False, host
    assert receiver.connections == []


@pytest.mark.parametrize(
    "address, public",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),  # multicast
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:8.8.8.8", True),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::10.0.0.1", False),
        ("::8.8.8.8", True),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("64:ff9b:1::808:808", False),  # local-use NAT64 (RFC 8215): a private translator
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:808:808::", True),  # 6to4 of 8.8.8.8
        ("ff0e::1", False),  # multicast
    ],
)
def test_embedded_ipv4_addresses_count_as_the_address_they_embed(address, public):
    assert webhooks.is_public_address(ipaddress.ip_address(address)) is public


# ---------------------------------------------------------------- the URL


@pytest.mark.parametrize(
    "url",
    [
        "https://hook.example/x\x00y",
        "https://hook.example/\r\nX-Injected: 1",
        "https://hook.example/a b",
        "https://hook.example/\x7f",
        "https://hook\x00.example/",
        "https://hook.example/\ud800",
        "http://[::1/",
        "https://hook.example:99999/",
        "https://user@hook.example/",
        "https://:pw@hook.example/",
    ],
)
def test_webhook_urls_with_control_characters_or_broken_parts_are_invalid(url):
    assert webhooks.valid_webhook_url(url) is False


@pytest.mark.parametrize("url", ["https://hook.example/x?y=1", "http://hook.example:8080/", "https://bücher.example/"])
def test_ordinary_webhook_urls_are_valid(url):
    assert webhooks.valid_webhook_url(url) is True


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_nul_in_the_webhook_url_is_400_invalid_request(client, caller):
    _, key = caller
    response = await client.post(
        "/api/v1/images/generations",
        headers=auth(key),
        json={"model": MODEL, "prompt": "a robot", "size": "1024x1024", "webhook_url": "https://hook.example/x\u0000y"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
