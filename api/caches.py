"""Short-lived caches of verified keys and of the registry, emptied at once by store events."""

from __future__ import annotations

import time
from typing import Callable

from store import events
from store.keys import KeyRecord
from store.models import ModelEntry


class KeyCache:
    """HMAC digest -> KeyRecord for `ttl` seconds; only known keys are kept."""

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, KeyRecord]] = {}

    def get(self, digest: str) -> KeyRecord | None:
        hit = self._entries.get(digest)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._entries[digest]
            return None
        return hit[1]

    def put(self, digest: str, record: KeyRecord) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self._ttl, record)

    def drop_user(self, user_id: int) -> None:
        for digest, (_, record) in list(self._entries.items()):
            if record.user_id == user_id:
                self._entries.pop(digest, None)


class RegistryCache:
    """The whole registry (a few rows) as a dict, reloaded after `ttl` seconds or on a change."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._expires = 0.0
        self._models: dict[str, ModelEntry] = {}

    def fresh(self) -> dict[str, ModelEntry] | None:
        return self._models if time.monotonic() < self._expires else None

    def store(self, models: list[ModelEntry]) -> dict[str, ModelEntry]:
        self._models = {m.id: m for m in models}
        self._expires = time.monotonic() + self._ttl
        return self._models

    def invalidate(self) -> None:
        self._expires = 0.0

    def known(self, model_id: str) -> bool:
        """Whether the registry last loaded has this id (stale is fine: it names a metric label)."""
        return model_id in self._models


def subscribe_caches(keys: KeyCache, registry: RegistryCache) -> Callable[[], None]:
    def on_change(topic: str, payload: object) -> None:
        if topic == events.KEYS_CHANGED and isinstance(payload, int):
            keys.drop_user(payload)
        elif topic == events.REGISTRY_CHANGED:
            registry.invalidate()

    return events.subscribe(on_change)
