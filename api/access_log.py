"""Access logs: one JSON object per `/api/v1` request, on the `platform.access` logger.

    {"ts":"2026-11-25T20:40:01.123Z","event":"request","request_id":"…","method":"POST",
     "path":"/api/v1/chat/completions","status":200,"error_code":null,"latency_ms":2,
     "model":"openai/gpt-5-mini","stream":false,"user_id":1,"key_id":3,"credit_cost":1,
     "client":"10.0.0.7"}

The line carries the request id (the `x-request-id` header and the log row's id) and
never a key: no header is logged, keys appear only as their id, and anything shaped
like a key in a caller-chosen value (a path, a model name) is redacted.

By default the lines go to stderr; ACCESS_LOG=false turns them off. A deployment that
configures the `platform.access` logger itself (handlers, level) keeps its own setup.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import datetime, timezone

import orjson

from .context import RequestContext

LOGGER = "platform.access"
_KEY = re.compile(rb"sk_live_[A-Za-z0-9_-]*")


class AccessLog:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._log = logging.getLogger(LOGGER)
        if enabled and not self._log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._log.addHandler(handler)
            self._log.setLevel(logging.INFO)
            self._log.propagate = False  # the servers' own root handlers would print it twice

    def emit(self, ctx: RequestContext, latency_ms: int) -> None:
        if not self.enabled or not self._log.isEnabledFor(logging.INFO):
            return
        key = ctx.key
        line = orjson.dumps({
            "ts": _iso_now(),
            "event": "request",
            "request_id": ctx.request_id,
            "method": ctx.method,
            "path": ctx.endpoint,
            "status": ctx.status,
            "error_code": ctx.error_code,
            "latency_ms": latency_ms,
            "model": ctx.model,
            "stream": ctx.stream,
            "user_id": key.user_id if key else None,
            "key_id": key.key_id if key else None,
            "credit_cost": ctx.credit_cost,
            "client": ctx.client,
        })
        if b"sk_live_" in line:
            line = _KEY.sub(b"sk_live_[redacted]", line)
        self._log.info(line.decode())


def _iso_now() -> str:
    now = time.time()
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(now % 1 * 1000):03d}Z"
