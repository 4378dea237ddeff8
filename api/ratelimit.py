"""Per-key, per-minute limits on `limits`' moving window: in memory, or in Redis when
`REDIS_URL` is set so that every worker on every host shares one count per key.

When Redis cannot answer (refused, timed out), a model call gets 503 with Retry-After
within the client's short timeouts, never a 500 or a hang. After a failure the store is
tried again only every RETRY_AFTER_S (one request probes, the others answer at once),
so a hung Redis holds no crowd of requests; the first success brings it back. The
failure is logged once, and the recovery once.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from store.limit_storage import REDIS_TIMEOUT_S, counter_storage

from .errors import ApiError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # whole seconds until a slot frees (0 when nothing is used)


UNLIMITED = Verdict(True, 0, 0, 0)


class KeyRateLimiter:
    def __init__(
        self, redis_url: str | None = None, namespace: str = "platform-rl", timeout_s: float = REDIS_TIMEOUT_S
    ) -> None:
        uri = f"async+{redis_url}" if redis_url else "async+memory://"
        self._limiter = MovingWindowRateLimiter(counter_storage(uri, key_prefix=namespace, timeout_s=timeout_s))
        self._items: dict[int, RateLimitItemPerMinute] = {}
        self._failing_since: float | None = None
        self._next_try = 0.0

    def _item(self, per_minute: int) -> RateLimitItemPerMinute:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def hit(self, key_id: int, per_minute: int) -> Verdict:
        """Count one model call for `key_id`; a limit of 0 means unlimited.

        `remaining` is read just after the hit: exact for one client, and under
        concurrency never more than what is really left. Raises ApiError
        `service_unavailable` when the store cannot answer.
        """
        if per_minute <= 0:
            return UNLIMITED
        item, ident = self._item(per_minute), str(key_id)
        self._may_try()
        try:
            allowed = await self._limiter.hit(item, ident)
            stats = await self._limiter.get_window_stats(item, ident)
        except StorageError as exc:
            raise self._failed(exc) from None
        self._answered()
        return Verdict(allowed, per_minute, stats.remaining, _reset_s(stats, per_minute))

    async def peek(self, key_id: int, per_minute: int) -> Verdict:
        """The current window of `key_id` without counting anything (for reads).

        Reads do not need the limit, so a store that cannot answer gives a cautious
        verdict (nothing remaining) instead of an error.
        """
        if per_minute <= 0:
            return UNLIMITED
        unknown = Verdict(True, per_minute, 0, RETRY_AFTER_S)
        try:
            self._may_try()
            stats = await self._limiter.get_window_stats(self._item(per_minute), str(key_id))
        except ApiError:
            return unknown
        except StorageError as exc:
            self._failed(exc)
            return unknown
        self._answered()
        return Verdict(True, per_minute, stats.remaining, _reset_s(stats, per_minute))

    def _may_try(self) -> None:
        if self._failing_since is None:
            return
        now = time.monotonic()
        if now < self._next_try:
            raise _unavailable()
        self._next_try = now + RETRY_AFTER_S  # this request probes; the others wait for its answer

    def _failed(self, exc: StorageError) -> ApiError:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.error(
                "rate-limit store unavailable, model calls answer 503 until it is back: %s", exc.storage_error or exc
            )
        self._next_try = now + RETRY_AFTER_S
        return _unavailable()

    def _answered(self) -> None:
        if self._failing_since is not None:
            log.warning("rate-limit store is back after %.1f s", time.monotonic() - self._failing_since)
            self._failing_since = None


def _unavailable() -> ApiError:
    return ApiError(
        "service_unavailable", "Rate limiter unavailable; retry shortly", headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def _reset_s(stats, per_minute: int) -> int:
    return max(0, math.ceil(stats.reset_time - time.time())) if stats.remaining < per_minute else 0
