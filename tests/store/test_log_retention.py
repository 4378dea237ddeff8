"""Old request logs are purged in the background by the log writer's thread."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlmodel import select

from store.db import session_for
from store.logs import RequestLogWriter, purge_request_logs, write_request_logs
from store.models import RequestLog, utcnow


def row(request_id: str, age_days: float) -> dict:
    return {
        "request_id": request_id,
        "method": "GET",
        "endpoint": "/api/v1/models",
        "status": 200,
        "latency_ms": 1,
        "credit_cost": 0,
        "stream": False,
        "created_at": utcnow() - timedelta(days=age_days),
    }


def ids(engine) -> set[str]:
    with session_for(engine) as s:
        return {r.request_id for r in s.exec(select(RequestLog))}


def test_purge_deletes_only_rows_past_retention_in_chunks(engine, session):
    write_request_logs(session, [row(f"old{i}", 91) for i in range(7)] + [row("recent", 89)])
    assert purge_request_logs(session, older_than_days=90, chunk=3) == 7
    assert ids(engine) == {"recent"}


def test_writer_thread_purges_while_writing(engine):
    with session_for(engine) as s:
        write_request_logs(s, [row("ancient", 400), row("fresh", 0)])
    writer = RequestLogWriter(engine, interval=0.02, retention_days=90, purge_every=3600)
    writer.start()
    try:
        writer.submit(row("new", 0))
        deadline = time.monotonic() + 5
        while ("ancient" in ids(engine) or "new" not in ids(engine)) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        writer.close()
    assert ids(engine) == {"fresh", "new"}
    assert (writer.purged, writer.written) == (1, 1)


def test_zero_days_keeps_everything(engine):
    with session_for(engine) as s:
        write_request_logs(s, [row("ancient", 4000)])
    writer = RequestLogWriter(engine, interval=0.02, retention_days=0)
    writer.start()
    time.sleep(0.1)
    writer.close()
    assert ids(engine) == {"ancient"}
