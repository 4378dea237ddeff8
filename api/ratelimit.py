"""Per-key, per-minute limits on `limits`' moving window: in memory, or in Redis when
`REDIS_URL` is set so that every worker on every host shares one count per key."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.aio.strategies import MovingWindowRateLimiter


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # whole seconds until a slot frees (0 when nothing is used)


UNLIMITED = Verdict(True, 0, 0, 0)


class KeyRateLimiter:
    def __init__(self, redis_url: str | None = None, namespace: str = "platform-rl") -> None:
        if redis_url:
            self._storage = storage_from_string(f"async+{redis_url}", key_prefix=namespace)
        else:
            self._storage = storage_from_string("async+memory://")
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._items: dict[int, RateLimitItemPerMinute] = {}

    def _item(self, per_minute: int) -> RateLimitItemPerMinute:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def hit(self, key_id: int, per_minute: int) -> Verdict:
        """Count one request for `key_id`; a limit of 0 means unlimited.

        `remaining` is read just after the hit: exact for one client, and under
        concurrency never more than what is really left.
        """
        if per_minute <= 0:
            return UNLIMITED
        item = self._item(per_minute)
        ident = str(key_id)
        allowed = await self._limiter.hit(item, ident)
        stats = await self._limiter.get_window_stats(item, ident)
        reset_s = max(0, math.ceil(stats.reset_time - time.time())) if stats.remaining < per_minute else 0
        return Verdict(allowed, per_minute, stats.remaining, reset_s)
