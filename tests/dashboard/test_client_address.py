"""Sign-in limits see the real client: the socket peer, or behind a configured trusted
proxy the address that proxy saw; and an attacker's failures do not lock the owner out."""

from __future__ import annotations

from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from limits import RateLimitItemPerMinute

from dashboard.auth_routes import build_router
from dashboard.client_address import client_address, parse_trusted
from store import accounts
from store.settings import get_settings

from ..factories import make_user

PASSWORD = "a fine password"
PROXY = "10.0.0.5"


@asynccontextmanager
async def from_peer(limiter: accounts.LoginLimiter, peer: str, delays: list[float] | None = None):
    """The routes as a server hands them a connection from `peer` (the ASGI scope's client)."""

    async def sleep(seconds: float) -> None:
        (delays if delays is not None else []).append(seconds)

    app = FastAPI()
    app.include_router(build_router(limiter, sleep=sleep))
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
        yield client


def outcome(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    return parse_qs(location.query).get("error", [location.path])[0]


@pytest.fixture
def trusted(dash_settings, monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", f"{PROXY}, 192.168.0.0/16")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_a_rotating_forwarded_for_from_an_untrusted_peer_does_not_bypass_the_limit(dash_settings, engine):
    limiter = accounts.LoginLimiter(per_client=RateLimitItemPerMinute(5, 15))
    async with from_peer(limiter, "203.0.113.7") as web:
        answers = [
            outcome(
                await web.post(
                    "/auth/login",
                    headers={"x-forwarded-for": f"198.51.100.{i}"},
                    data={"email": f"u{i}@example.com", "password": "wrong one"},
                )
            )
            for i in range(7)
        ]
    assert answers == ["credentials"] * 5 + ["limited"] * 2


async def test_behind_a_trusted_proxy_two_real_clients_are_limited_apart(trusted, engine):
    limiter = accounts.LoginLimiter(per_client=RateLimitItemPerMinute(5, 15))
    async with from_peer(limiter, PROXY) as web:

        async def attempt(chain: str) -> str:
            return outcome(
                await web.post(
                    "/auth/login",
                    headers={"x-forwarded-for": chain},
                    data={"email": "who@example.com", "password": "wrong one"},
                )
            )

        # The client's own additions on the left are ignored: the proxies' right-most entries count.
        first = [await attempt(f"6.6.6.{i}, 198.51.100.1, 192.168.3.4") for i in range(6)]
        second = await attempt("198.51.100.2")
    assert first == ["credentials"] * 5 + ["limited"] and second == "credentials"


async def test_ten_failures_from_an_attacker_do_not_lock_the_owner_out_of_their_own_client(dash_settings, engine):
    make_user(engine, email="owner@example.com", password=PASSWORD)
    limiter = accounts.LoginLimiter()  # the production limits: 10 failures per email and client
    delays: list[float] = []
    async with from_peer(limiter, "203.0.113.66", delays) as attacker:
        answers = [
            outcome(await attacker.post("/auth/login", data={"email": "owner@example.com", "password": f"guess {i}"}))
            for i in range(11)
        ]
    assert answers == ["credentials"] * 10 + ["limited"]
    async with from_peer(limiter, "198.51.100.20", delays) as owner:
        response = await owner.post("/auth/login", data={"email": "owner@example.com", "password": PASSWORD})
    assert outcome(response) == "/" and "platform_session=" in response.headers["set-cookie"]
    # The owner waited once, a bounded time set by the email's failures (10 -> 1.75 s, never above 2 s).
    assert delays[-1] == accounts.failure_delay(10) == 1.75


@pytest.mark.parametrize(
    "peer, forwarded, expected",
    [
        ("203.0.113.7", "1.2.3.4", "203.0.113.7"),  # untrusted peer: the header is ignored
        (PROXY, "", PROXY),  # trusted, no header: the proxy itself
        (PROXY, "1.2.3.4, 5.6.7.8", "5.6.7.8"),  # right to left, first untrusted
        (PROXY, "1.2.3.4, 192.168.1.1", "1.2.3.4"),  # trusted hops are skipped
        (PROXY, "192.168.1.2, 192.168.1.1", "192.168.1.2"),  # all trusted: the farthest
        (PROXY, "not-an-ip, 192.168.1.1", "192.168.1.1"),  # garbage: the last trusted hop
        (PROXY, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_walks_the_forwarded_chain_right_to_left(peer, forwarded, expected):
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"type": "http", "client": (peer, 1234), "headers": headers}
    assert client_address(scope, parse_trusted(f"{PROXY},192.168.0.0/16")) == expected


def test_trusted_proxies_must_be_addresses_or_networks():
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_trusted("10.0.0.1, proxy.example")
