"""Signed, expiring URLs for generated media, and HMAC signatures for webhooks.

A media URL is `/api/v1/files/<path>?expires=<unix seconds>&sig=<hex>`, where the
signature is HMAC-SHA256(SECRET_KEY, "files:<path>:<expires>"). Anyone holding the URL
may fetch the file until it expires (an `<img>` tag sends no bearer header); changing
the path or the expiry breaks the signature. Pure functions: no I/O, no clock unless
`now` is left out.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from urllib.parse import urlencode

FILES_PREFIX = "/api/v1/files"
# Expiry is rounded up to this many seconds so that one file keeps one URL for a while
# and browsers can cache it across page loads.
EXPIRY_STEP_S = 300
# What a stored media path may look like: "<task id>/<index>.<ext>". Nothing else is served.
MEDIA_PATH_RE = re.compile(r"[A-Za-z0-9_-]{1,64}/[0-9]{1,2}\.(?:png|jpg|webp|gif)")


def _mac(secret_key: str, message: str) -> str:
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def media_signature(secret_key: str, path: str, expires: int) -> str:
    return _mac(secret_key, f"files:{path}:{expires}")


def media_expiry(ttl_s: int, now: float | None = None) -> int:
    """The unix time a URL made now should expire: at least `ttl_s` away, rounded up."""
    at = (time.time() if now is None else now) + ttl_s
    return int(math.ceil(at / EXPIRY_STEP_S) * EXPIRY_STEP_S)


def signed_media_url(secret_key: str, path: str, *, ttl_s: int, now: float | None = None, base: str = "") -> str:
    """The URL that serves stored media `path`; `base` is an origin such as https://host."""
    expires = media_expiry(ttl_s, now)
    query = urlencode({"expires": expires, "sig": media_signature(secret_key, path, expires)})
    return f"{base}{FILES_PREFIX}/{path}?{query}"


def verify_media(
    secret_key: str, path: str, expires: str | int | None, sig: str | None, now: float | None = None
) -> bool:
    """True when `sig` is the signature of `path` and `expires`, and it has not expired."""
    if not sig or expires is None or not MEDIA_PATH_RE.fullmatch(path):
        return False
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return False
    if expires_at < (time.time() if now is None else now):
        return False
    return _same(media_signature(secret_key, path, expires_at), sig)


def webhook_secret(secret_key: str, user_id: int) -> str:
    """The key one user's webhooks are signed with; derived, so nothing is stored.

    The user reads it from `GET /api/v1/images/webhook-secret` and checks every delivery.
    """
    return "whsec_" + _mac(secret_key, f"webhook-secret:{user_id}")


def webhook_signature(secret: str, body: bytes) -> str:
    """The `X-Platform-Signature` header value for a delivery body: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_webhook(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and _same(webhook_signature(secret, body), header)


def _same(expected: str, given: str) -> bool:
    """Constant-time equality; `compare_digest` raises TypeError on non-ASCII str, and a
    signature we made is ASCII, so a non-ASCII one is simply wrong."""
    return given.isascii() and hmac.compare_digest(expected, given)
