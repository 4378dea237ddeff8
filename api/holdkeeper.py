"""This process's open holds (store.holds): which calls it is serving, their upstream ids
once known, and the beat that renews their leases.

Every `lease / 3` seconds one store call extends the lease of all of this process's holds
and notes the upstream ids learnt since the last beat; nothing is written per request. A
hold leaves the set when the write that closes it has committed (a refund, a settlement,
the reconciler's list, or its log row), so its lease is renewed until then. When the
process dies, the beats stop and the reconciler takes its holds once their leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from store import holds

log = logging.getLogger(__name__)


class HoldKeeper:
    def __init__(self, lease_s: float, db: Callable[..., Awaitable[Any]]) -> None:
        self.owner = uuid.uuid4().hex  # this process's instance: the holds' owner
        self.lease_s = lease_s
        self._db = db
        self._open: set[str] = set()
        self._notes: dict[str, str] = {}
        self._lock = threading.Lock()  # the log writer's thread closes holds too

    def info(self, *, endpoint: str, stream: bool, api_key_id: int | None, key_prefix: str | None) -> holds.HoldInfo:
        return holds.HoldInfo(
            owner=self.owner,
            lease_s=self.lease_s,
            endpoint=endpoint,
            stream=stream,
            api_key_id=api_key_id,
            key_prefix=key_prefix,
        )

    def opened(self, ref: str) -> None:
        with self._lock:
            self._open.add(ref)

    def note(self, ref: str, upstream_id: str) -> None:
        """`ref`'s upstream id, written with the next beat (the reconciler finds its record by it)."""
        with self._lock:
            if ref in self._open:
                self._notes[ref] = upstream_id

    def closed(self, refs: list[str] | str) -> None:
        with self._lock:
            for ref in [refs] if isinstance(refs, str) else refs:
                self._open.discard(ref)
                self._notes.pop(ref, None)

    @property
    def open_count(self) -> int:
        return len(self._open)

    async def beat(self) -> None:
        """Renew this process's leases and note the new upstream ids (nothing when idle)."""
        with self._lock:
            if not self._open:
                return
            notes, self._notes = self._notes, {}
        try:
            await self._db(holds.renew, owner=self.owner, lease_s=self.lease_s, upstream_ids=notes)
        except BaseException:
            with self._lock:  # tried again next beat
                for ref, upstream in notes.items():
                    if ref in self._open:
                        self._notes.setdefault(ref, upstream)
            raise

    @contextlib.asynccontextmanager
    async def running(self):
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                try:
                    await self.beat()
                except Exception:
                    log.exception("renewing the leases of open holds failed; will retry")

        task = asyncio.get_running_loop().create_task(loop(), name="hold-keeper")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
