"""Request logs: one row per `/api/v1` request, written in batches off the request path."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from . import holds, keys
from .db import rowcount
from .models import RequestLog, table_of, utcnow
from .offloop import run_store_blocking

log = logging.getLogger(__name__)

LOG_FIELDS = frozenset(RequestLog.model_fields) - {"id"}
_INSERT = sa.insert(table_of(RequestLog))
# What PostgreSQL text cannot hold: NUL, and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Failures of the database rather than of a row: the rows wait and are tried again.
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def clean_text(value: str) -> str:
    """`value` with each character PostgreSQL text refuses replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", value)


# A log row's flag (never stored): its call's money is final, so its hold's record
# (store.holds) is closed in the same transaction as the row is written.
RELEASE_HOLD = "release_hold"


def write_request_logs(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    """Insert many log rows in one statement (their text cleaned first), note when their
    keys were last used and close the holds of the rows flagged RELEASE_HOLD, in one
    transaction. Returns the request ids whose holds were closed."""
    if not rows:
        return []
    released = [row["request_id"] for row in rows if row.get(RELEASE_HOLD)]
    rows = [
        {k: clean_text(v) if isinstance(v, str) else v for k, v in row.items() if k != RELEASE_HOLD} for row in rows
    ]
    session.connection().execute(_INSERT, rows)  # Core executemany: no ORM bulk machinery
    used: dict[int, datetime] = {}
    for row in rows:
        if row.get("api_key_id") is not None and row.get("status", 500) < 400:
            used[row["api_key_id"]] = max(row["created_at"], used.get(row["api_key_id"], row["created_at"]))
    if used:  # in key order, so that two writers never wait on each other's keys in a cycle
        keys.touch_last_used(session, used=dict(sorted(used.items())))
    holds.close_holds(session.connection(), refs=released)
    session.commit()
    return released


def purge_request_logs(session: Session, *, older_than_days: int, chunk: int = 5000) -> int:
    """Delete rows older than the retention, a chunk per transaction so that no lock is
    held for long. Returns how many were deleted."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        ids = sa.select(col(RequestLog.id)).where(col(RequestLog.created_at) < cutoff).limit(chunk)
        count = rowcount(session.execute(sa.delete(RequestLog).where(col(RequestLog.id).in_(ids.scalar_subquery()))))
        session.commit()
        deleted += count
        if count < chunk:
            return deleted


class RequestLogWriter:
    """Queues rows in memory and writes them from one background thread.

    `submit` is a deque append (no I/O, no lock held by the caller's loop). The thread
    writes whatever is queued every `interval` seconds or as soon as `batch_size` rows
    wait; `close` writes everything left, so nothing is lost at shutdown.

    What cannot be written is never lost silently, and never holds up other rows:
    - the database unavailable: the batch goes back to the front and is tried again;
    - the database refusing a batch: its rows are written one by one and each row it
      refuses is set aside (logged, `set_aside`, `on_set_aside`);
    - more than `max_queue` rows waiting: `submit` refuses the row (`dropped`, `on_dropped`);
      a refused row that would have closed a hold leaves it to its lease (store.holds).
    The same thread purges rows older than `retention_days` every `purge_every` seconds
    (0 days: keep all).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 0.2,
        batch_size: int = 500,
        on_write: Callable[[int], None] | None = None,
        retention_days: int = 0,
        purge_every: float = 3600.0,
        max_queue: int = 100_000,
        on_set_aside: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        on_released: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._batch_size = batch_size
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._stopping = False
        self._on_write = on_write
        self._on_set_aside = on_set_aside
        self._on_dropped = on_dropped
        self._on_released = on_released
        self._max_queue = max_queue
        self._thread: threading.Thread | None = None
        self._retention_days = retention_days
        self._purge_every = purge_every
        self._next_purge = 0.0
        self.written = 0
        self.purged = 0
        self.set_aside = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="request-log-writer", daemon=True)
            self._thread.start()

    def submit(self, row: dict[str, Any]) -> None:
        if len(self._queue) >= self._max_queue:  # the database has been away for a while
            self.dropped += 1
            if self._on_dropped:
                self._on_dropped(1)
            return
        self._queue.append(row)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> None:
        """Write everything queued now, from the calling thread.

        Flushes take turns (`_flushing`), so one that returns has seen every row queued
        before it committed, including a batch the writer thread had already taken.
        """
        with self._flushing:
            self._flush_locked()

    def _flush_locked(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                self._write(batch)
            except _UNAVAILABLE:
                self._queue.extendleft(reversed(batch))
                raise
            except Exception:
                self._write_one_by_one(batch)
                continue
            self._count_written(len(batch))

    def _write(self, rows: list[dict[str, Any]]) -> None:
        released = run_store_blocking(self._engine, write_request_logs, rows=rows)
        if released and self._on_released:
            self._on_released(released)

    def _write_one_by_one(self, batch: list[dict[str, Any]]) -> None:
        """Write a batch the database refused row by row, setting aside the refused rows."""
        for i, row in enumerate(batch):
            try:
                self._write([row])
            except _UNAVAILABLE:
                self._queue.extendleft(reversed(batch[i:]))
                raise
            except Exception as exc:
                log.error(
                    "request log row %s refused, set aside: %s: %s",
                    row.get("request_id"),
                    type(exc).__name__,
                    getattr(exc, "orig", None) or exc,
                )
                self.set_aside += 1
                if self._on_set_aside:
                    self._on_set_aside(1)
            else:
                self._count_written(1)

    def _count_written(self, rows: int) -> None:
        self.written += rows
        if self._on_write:
            self._on_write(rows)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("writing request logs failed; will retry")
            if self._retention_days and time.monotonic() >= self._next_purge:
                self._next_purge = time.monotonic() + self._purge_every
                try:
                    self.purged += run_store_blocking(
                        self._engine, purge_request_logs, older_than_days=self._retention_days
                    )
                except Exception:
                    log.exception("purging old request logs failed; will retry")

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
