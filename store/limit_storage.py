"""The `limits` storage behind every counter of attempts (API keys, sign-ins).

In memory, or in Redis (redis-py) with short socket timeouts: a Redis that refuses
connections or stops answering fails the call within about `timeout_s` (once more
for a single retry on a fresh connection), instead of failing slowly or hanging the
request. Failures surface as `limits.errors.StorageError`, whatever the client raised.
"""

from __future__ import annotations

from limits.aio.storage import Storage
from limits.storage import storage_from_string
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

REDIS_TIMEOUT_S = 0.5


def counter_storage(uri: str, *, key_prefix: str, timeout_s: float = REDIS_TIMEOUT_S) -> Storage:
    """`uri` is `async+memory://` or `async+redis://…`; `key_prefix` names the counters in Redis."""
    if uri.startswith("async+memory"):
        storage = storage_from_string(uri)
    else:
        storage = storage_from_string(
            uri,
            key_prefix=key_prefix,
            implementation="redispy",
            wrap_exceptions=True,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            # one immediate retry: a pooled connection that Redis closed (a restart) reconnects.
            # limits types its options `float | str | bool`, though it hands them on to redis-py's
            # `Redis.from_url`, which takes a Retry: a gap in the library's annotations.
            retry=Retry(NoBackoff(), 1),  # type: ignore[arg-type]
        )
    assert isinstance(storage, Storage)  # an `async+` scheme: limits' async storage
    return storage
