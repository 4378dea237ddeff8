"""Short-lived caches of verified keys and of the registry (cachetools' TTLCache), emptied
at once by store events.

The store publishes its events in whichever thread made the change (a store call in a
worker thread, the dashboard), while the API reads the caches on its event loop: a
TTLCache is not thread-safe, so each is used under its own lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cachetools import TTLCache

from store import events
from store.keys import KeyRecord
from store.models import ModelEntry


class KeyCache:
    """HMAC digest -> KeyRecord for `ttl` seconds, at most `max_entries` of them (the least
    recently used go first); only known keys are kept. A `ttl` of 0 keeps nothing."""

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self._entries: TTLCache[str, KeyRecord] | None = TTLCache(max_entries, ttl) if ttl > 0 else None
        self._lock = threading.Lock()

    def get(self, digest: str) -> KeyRecord | None:
        if self._entries is None:
            return None
        with self._lock:
            return self._entries.get(digest)

    def put(self, digest: str, record: KeyRecord) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries[digest] = record

    def drop_user(self, user_id: int) -> None:
        if self._entries is None:
            return
        with self._lock:
            entries = self._entries
            for digest in [d for d in list(entries) if getattr(entries.get(d), "user_id", None) == user_id]:
                entries.pop(digest, None)


_ALL = "models"


class RegistryCache:
    """The whole registry (a few rows) as a dict, reloaded after `ttl` seconds or on a change."""

    def __init__(self, ttl: float) -> None:
        self._fresh: TTLCache[str, dict[str, ModelEntry]] | None = TTLCache(1, ttl) if ttl > 0 else None
        self._lock = threading.Lock()
        self._last: dict[str, ModelEntry] = {}

    def fresh(self) -> dict[str, ModelEntry] | None:
        if self._fresh is None:
            return None
        with self._lock:
            return self._fresh.get(_ALL)

    def store(self, models: list[ModelEntry]) -> dict[str, ModelEntry]:
        loaded = {m.id: m for m in models}
        self._last = loaded
        if self._fresh is not None:
            with self._lock:
                self._fresh[_ALL] = loaded
        return loaded

    def invalidate(self) -> None:
        if self._fresh is not None:
            with self._lock:
                self._fresh.clear()

    def known(self, model_id: str) -> bool:
        """Whether the registry last loaded has this id (stale is fine: it names a metric label)."""
        return model_id in self._last


def subscribe_caches(keys: KeyCache, registry: RegistryCache) -> Callable[[], None]:
    def on_change(topic: str, payload: object) -> None:
        if topic == events.KEYS_CHANGED and isinstance(payload, int):
            keys.drop_user(payload)
        elif topic == events.REGISTRY_CHANGED:
            registry.invalidate()

    return events.subscribe(on_change)
