"""Task-end webhooks: a signed POST to the URL given at submission, retried with backoff.

The body is the task exactly as `GET /api/v1/images/generations/{id}` shows it. The
header `X-Platform-Signature: sha256=<hex>` is HMAC-SHA256 of the raw body under the
user's webhook secret (`GET /api/v1/images/webhook-secret`). Receivers answer 2xx;
anything else, or no answer, is retried (`WEBHOOK_MAX_ATTEMPTS`, backoff doubling from
`WEBHOOK_BACKOFF_S`).

What a receiver (or whoever runs its DNS) cannot do:
- reach into the platform's network: the hostname is resolved once, every address it
  has must be public (an IPv6 address embedding an IPv4 one counts as that IPv4
  address), and the delivery connects to a checked address, so a second DNS answer is
  never asked for. The Host header and TLS (SNI and certificate) keep the hostname.
  `WEBHOOK_ALLOW_PRIVATE` lifts the check, not the pinning;
- hold the worker or its memory: one deadline (`WEBHOOK_TIMEOUT_S`) covers the whole
  delivery, and of the answer only the status and at most `ANSWER_READ_BYTES` are read.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import anyio
import httpx

from store import signing

MAX_URL_LEN = 2000
SIGNATURE_HEADER = "X-Platform-Signature"
ANSWER_READ_BYTES = 4096  # of a receiver's answer body; the rest is never read

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# C0/C1 controls, DEL, space (a URL has none; it would be %20) and lone surrogates.
_UNSAFE_IN_URL = re.compile("[\x00-\x20\x7f-\x9f\ud800-\udfff]")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the low 32 bits
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated `::a.b.c.d`; also holds :: and ::1
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: a translator of one's own network


def valid_webhook_url(url: object) -> bool:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LEN or _UNSAFE_IN_URL.search(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError when out of range)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: IPv4-mapped, IPv4-compatible, NAT64, 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public_address(address: IPAddress) -> bool:
    """True for a globally routable unicast address, judged by the IPv4 address it embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def deliver(
    *,
    url: str,
    body: bytes,
    secret: str | None,
    event_id: str,
    timeout_s: float,
    allow_private: bool = False,
    resolve: Resolver = resolve_host,
    is_allowed: Callable[[IPAddress], bool] = is_public_address,
    verify: ssl.SSLContext | None = None,
) -> bool:
    """POST one delivery, signed with `secret` (None: unsigned); True when the receiver
    answered 2xx within `timeout_s`.

    `resolve`, `is_allowed` and `verify` (trusted CAs) are for tests: a hostile DNS, an
    address that plays a public one, a test certificate.
    """
    headers = {
        "Content-Type": "application/json",
        "X-Platform-Event-Id": event_id,
        "User-Agent": "llm-platform-webhooks/1",
    }
    if secret is not None:  # unsigned only for the operator's alerts without ALERT_WEBHOOK_SECRET
        headers[SIGNATURE_HEADER] = signing.webhook_signature(secret, body)
    try:
        with anyio.fail_after(timeout_s):
            target = httpx.URL(url)
            addresses = await _checked_addresses(target, resolve, None if allow_private else is_allowed)
            for address in addresses:
                try:
                    return await _post(target, address, body, headers, timeout_s, verify)
                except httpx.ConnectError:
                    continue  # the next address, as a connect to the hostname would
    except (httpx.HTTPError, httpx.InvalidURL, OSError):  # OSError: DNS failures, TimeoutError
        pass
    return False


async def _checked_addresses(
    target: httpx.URL, resolve: Resolver, is_allowed: Callable[[IPAddress], bool] | None
) -> list[str]:
    """The addresses to connect to, or none when any of them is not allowed."""
    port = target.port or (443 if target.scheme == "https" else 80)
    addresses = await resolve(target.raw_host.decode("ascii"), port)
    parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if is_allowed is not None and not all(is_allowed(a) for a in parsed):
        return []
    return [str(a) for a in parsed]


async def _post(
    target: httpx.URL,
    address: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    verify: ssl.SSLContext | None,
) -> bool:
    """POST to `address` as if to `target`'s host: the URL names the address, the Host
    header and TLS (SNI, certificate check) name the host.

    A client of its own per delivery: its connection serves one hostname only (a shared
    pool keyed by address could hand it to another name), and `trust_env=False` so that
    no proxy from the environment resolves the name again.
    """
    pinned = target.copy_with(host=address)
    extensions = {"sni_hostname": target.raw_host.decode("ascii")} if target.scheme == "https" else {}
    async with httpx.AsyncClient(
        verify=verify or _default_tls(), trust_env=False, timeout=timeout_s, follow_redirects=False
    ) as client:
        request = client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "Host": target.netloc.decode("ascii")},
            extensions=extensions,
        )
        response = await client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= ANSWER_READ_BYTES:
                    break
        finally:
            await response.aclose()  # unread, the connection is closed, not kept
        return response.is_success


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """httpx's default verification (certifi's CAs), built once rather than per delivery."""
    return httpx.create_ssl_context()


def retry_delay(attempt: int, backoff_s: float) -> float:
    """Seconds before retry number `attempt` (1 after the first failure): 1×, 2×, 4× … backoff."""
    return backoff_s * (2 ** (attempt - 1))
