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

import asyncio
import logging
import re
import sys
import time

import orjson

from store.money import json_credits

from .context import RequestContext

LOGGER = "platform.access"
_KEY = re.compile(rb"sk_live_[A-Za-z0-9_-]*")


class AccessLog:
    """Encodes each request's line when it ends; writes what gathered every `flush_s`.

    Lines are written together, at most `flush_s` after their request ended, from the
    event loop: one write for many requests instead of a logging record and a write
    each (~20 us a request, more under load). `flush()` (the runtime calls it on the
    way out) writes what is left. When the deployment attached its own handlers to the
    `platform.access` logger, each line goes to them as one record instead.
    """

    def __init__(self, enabled: bool = True, flush_s: float = 0.05) -> None:
        self.enabled = enabled
        self._flush_s = flush_s
        self._pending: list[bytes] = []
        self._scheduled = False
        self._log = logging.getLogger(LOGGER)
        self._own_handler: logging.StreamHandler | None = None
        if enabled and not self._log.handlers:
            self._own_handler = logging.StreamHandler(sys.stderr)
            self._own_handler.setFormatter(logging.Formatter("%(message)s"))
            self._log.addHandler(self._own_handler)
            self._log.setLevel(logging.INFO)
            self._log.propagate = False  # the servers' own root handlers would print it twice

    def emit(self, ctx: RequestContext, latency_ms: int) -> None:
        if not self.enabled:
            return
        key = ctx.key
        line = orjson.dumps(
            {
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
                "credit_cost": json_credits(ctx.credit_cost),  # credits, as the API shows them (3, 0.046)
                "client": ctx.client,
            }
        )
        if b"sk_live_" in line:
            line = _KEY.sub(b"sk_live_[redacted]", line)
        self._pending.append(line)
        if not self._scheduled:
            try:
                asyncio.get_running_loop().call_later(self._flush_s, self.flush)
                self._scheduled = True
            except RuntimeError:  # no event loop here: write at once
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        lines, self._pending = self._pending, []
        if not lines or not self._log.isEnabledFor(logging.INFO):
            return
        handlers = self._log.handlers
        if len(handlers) == 1 and handlers[0] is self._own_handler:
            stream = self._own_handler.stream
            try:
                stream.write(b"\n".join(lines).decode() + "\n")
                stream.flush()
            except (OSError, ValueError):  # stderr closed or gone: nothing to do about it
                pass
        else:
            for line in lines:
                self._log.info(line.decode())


_second = -1
_second_text = ""


def _iso_now() -> str:
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:  # formatting the date once a second, not per request
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_second_text}.{int((now - second) * 1000):03d}Z"
