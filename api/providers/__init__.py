"""Upstream provider clients. They raise UpstreamError; routes decide refunds.

An upstream's answer reaches the caller in the caller's terms (SPEC, the upstream-error
paragraph): what only the upstream can judge about the request (400/404/413/422) is the
caller's `invalid_request` with the upstream's own message, a 429 stays a 429 with its
`Retry-After`, the operator's account trouble (401/402/403) is a generic 502 with the
detail only in the server log, outages are 502 and timeouts 504. An error that is the
request's fault must not look like an outage, or SDKs retry it forever.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import orjson

from ..errors import ApiError

log = logging.getLogger(__name__)

REQUEST_FAULTS = frozenset({400, 404, 413, 422})
ACCOUNT_FAULTS = frozenset({401, 402, 403})
MESSAGE_LIMIT = 500
# Anything shaped like a credential (API keys, bearer tokens) is cut out of a relayed message.
_SECRET_RE = re.compile(r"(?i)(bearer\s+\S+|\b(?:sk|rk|pk|r8)[-_][A-Za-z0-9_\-]{6,}|\bkey[-_][A-Za-z0-9_\-]{6,})")


class UpstreamError(Exception):
    """The upstream failed. `status` is its HTTP status when it answered one; `timeout`
    selects 504; `retryable` allows one more try; `detail` is the upstream's own message."""

    def __init__(
        self,
        message: str,
        *,
        timeout: bool = False,
        retryable: bool = False,
        status: int | None = None,
        detail: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.retryable = retryable
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    @classmethod
    def from_status(
        cls,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        what: str = "Upstream provider",
        retry_statuses: frozenset[int] = frozenset(),
    ) -> UpstreamError:
        """The error for a non-2xx answer, with the upstream's message (trimmed, credentials cut)."""
        retry_after = headers.get("retry-after")
        if retry_after is not None and not retry_after.strip().isdigit():
            retry_after = None
        return cls(
            f"{what} returned HTTP {status}",
            status=status,
            retryable=status in retry_statuses,
            detail=upstream_message(body),
            retry_after=retry_after,
        )

    def as_api_error(self) -> ApiError:
        """What the caller sees (see the module docstring)."""
        if self.status in REQUEST_FAULTS:
            return ApiError("invalid_request", self.detail or "The upstream provider refused the request")
        if self.status == 429:
            return ApiError(
                "provider_error",
                "The upstream provider is rate limiting; retry later",
                status=429,
                headers={"Retry-After": self.retry_after or "1"},
            )
        if self.status in ACCOUNT_FAULTS:
            log.error("upstream refused the platform's account: HTTP %s %s", self.status, self.detail or "")
            return ApiError("provider_error", "Upstream provider error", status=502)
        return ApiError("provider_error", str(self), status=504 if self.timeout else 502)


def upstream_message(body: bytes) -> str | None:
    """The message of an upstream error body (`{"error": {"message"}}`, `{"error": "…"}`,
    `{"message"}` or plain text), trimmed and with anything credential-shaped cut out."""
    text: object = None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:2000].decode("utf-8", "replace").strip()
    else:
        if isinstance(data, dict):
            error = data.get("error")
            text = error.get("message") if isinstance(error, dict) else error
            if text is None:
                text = data.get("message") or data.get("detail")
    if not isinstance(text, str) or not text.strip():
        return None
    return clean_message(text)


def clean_message(text: str) -> str:
    text = _SECRET_RE.sub("[redacted]", " ".join(text.split()))
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
