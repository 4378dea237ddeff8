"""In-process notices of changes that caches elsewhere must see at once.

The API caches verified keys and the registry for a few seconds; a revoke, a disable
or a registry edit made in this process publishes here so the cache drops the entry
immediately. Other processes see the change when their short cache lifetime ends.
"""

from __future__ import annotations

from collections.abc import Callable

KEYS_CHANGED = "keys"  # payload: a user id (all of that user's keys may have changed)
REGISTRY_CHANGED = "registry"

_listeners: list[Callable[[str, object], None]] = []


def subscribe(listener: Callable[[str, object], None]) -> Callable[[], None]:
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def publish(topic: str, payload: object = None) -> None:
    for listener in list(_listeners):
        listener(topic, payload)
