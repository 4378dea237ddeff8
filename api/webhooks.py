"""Task-end webhooks: a signed POST to the URL given at submission, retried with backoff.

The body is the task exactly as `GET /api/v1/images/generations/{id}` shows it. The
header `X-Platform-Signature: sha256=<hex>` is HMAC-SHA256 of the raw body under the
user's webhook secret (`GET /api/v1/images/webhook-secret`). Receivers answer 2xx;
anything else, or no answer, is retried (`WEBHOOK_MAX_ATTEMPTS`, backoff doubling from
`WEBHOOK_BACKOFF_S`). Loopback, private and link-local addresses are refused unless
`WEBHOOK_ALLOW_PRIVATE` is set, so a webhook cannot reach into the platform's network.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import anyio
import httpx

from store import signing

MAX_URL_LEN = 2000
SIGNATURE_HEADER = "X-Platform-Signature"


def valid_webhook_url(url: object) -> bool:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LEN:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username


async def _is_public(host: str) -> bool:
    try:
        infos = await anyio.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    return bool(addresses) and all(a.is_global for a in addresses)


async def deliver(client: httpx.AsyncClient, *, url: str, body: bytes, secret: str, event_id: str,
                  timeout_s: float, allow_private: bool = False) -> bool:
    """POST one delivery; True when the receiver answered 2xx."""
    host = urlsplit(url).hostname or ""
    if not allow_private and not await _is_public(host):
        return False
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signing.webhook_signature(secret, body),
        "X-Platform-Event-Id": event_id,
        "User-Agent": "llm-platform-webhooks/1",
    }
    try:
        response = await client.post(url, content=body, headers=headers, timeout=timeout_s,
                                     follow_redirects=False)
    except (httpx.HTTPError, socket.gaierror):
        return False
    return 200 <= response.status_code < 300


def retry_delay(attempt: int, backoff_s: float) -> float:
    """Seconds before retry number `attempt` (1 after the first failure): 1×, 2×, 4× … backoff."""
    return backoff_s * (2 ** (attempt - 1))
