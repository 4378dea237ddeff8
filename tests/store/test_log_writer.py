"""The request-log writer keeps writing whatever one row holds: text PostgreSQL refuses is
cleaned, a row the database refuses is set aside (and counted) instead of blocking every
later row, and the queue is bounded, its refusals counted."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from api.metrics import Metrics
from store.db import get_engine, session_for
from store.logs import RequestLogWriter, clean_text
from store.models import RequestLog, utcnow

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def row(request_id: str, **fields) -> dict:
    return {
        "request_id": request_id,
        "method": "GET",
        "endpoint": "/api/v1/models",
        "model": None,
        "status": 200,
        "latency_ms": 1,
        "credit_cost": 0,
        "stream": False,
        "created_at": utcnow(),
        **fields,
    }


def stored(engine) -> dict[str, RequestLog]:
    with session_for(engine) as s:
        return {r.request_id: r for r in s.exec(select(RequestLog))}


class Counts:
    def __init__(self) -> None:
        self.written = self.set_aside = self.dropped = 0

    def writer(self, engine, **kwargs) -> RequestLogWriter:
        return RequestLogWriter(
            engine, on_write=self._written, on_set_aside=self._set_aside, on_dropped=self._dropped, **kwargs
        )

    def _written(self, n: int) -> None:
        self.written += n

    def _set_aside(self, n: int) -> None:
        self.set_aside += n

    def _dropped(self, n: int) -> None:
        self.dropped += n


def test_clean_text_replaces_nul_and_lone_surrogates_only():
    assert clean_text("/api/v1/x\x00y") == "/api/v1/x\ufffdy"
    assert clean_text("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert clean_text("ünïcødé 🙂 \t\n") == "ünïcødé 🙂 \t\n"


@BOTH
def test_a_nul_in_endpoint_or_model_is_cleaned_and_the_rows_after_it_are_written(engine):
    counts = Counts()
    writer = counts.writer(engine, batch_size=10)
    writer.submit(row("before"))
    writer.submit(row("nul", endpoint="/api/v1/x\x00y", model="open\x00ai/gpt\ud800"))
    writer.submit(row("after"))
    writer.flush()
    rows = stored(engine)
    assert set(rows) == {"before", "nul", "after"}
    assert (rows["nul"].endpoint, rows["nul"].model) == ("/api/v1/x\ufffdy", "open\ufffdai/gpt\ufffd")
    assert (writer.pending, writer.written, writer.set_aside, counts.written, counts.set_aside) == (0, 3, 0, 3, 0)


@BOTH
def test_a_row_the_database_refuses_is_set_aside_and_the_rest_of_its_batch_lands(engine):
    counts = Counts()
    writer = counts.writer(engine, batch_size=10)
    writer.submit(row("dup"))
    writer.flush()
    for request_id in ("a", "dup", "b"):  # "dup" again: the unique request_id refuses it
        writer.submit(row(request_id))
    writer.flush()
    writer.submit(row("later"))
    writer.flush()
    assert set(stored(engine)) == {"dup", "a", "b", "later"}
    assert (writer.pending, writer.written, writer.set_aside, counts.written, counts.set_aside) == (0, 4, 1, 4, 1)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("bad", [{"endpoint": "/" + "x" * 300}, {"status": "teapot"}, {"latency_ms": 2**40}])
def test_postgres_refuses_a_bad_value_and_only_that_row_is_set_aside(engine, bad):
    counts = Counts()
    writer = counts.writer(engine, batch_size=10)
    writer.submit(row("a"))
    writer.submit(row("bad", **bad))
    writer.submit(row("b"))
    writer.flush()
    assert set(stored(engine)) == {"a", "b"}
    assert (writer.pending, writer.written, writer.set_aside, counts.set_aside) == (0, 2, 1, 1)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_an_unreachable_database_keeps_the_rows_queued_and_sets_none_aside(database_url):
    down = get_engine(database_url.replace("127.0.0.1:5432", "127.0.0.1:1"))
    counts = Counts()
    writer = counts.writer(down, batch_size=2)
    for i in range(3):
        writer.submit(row(f"r{i}"))
    with pytest.raises(Exception):
        writer.flush()
    assert (writer.pending, writer.written, writer.set_aside, counts.set_aside) == (3, 0, 0, 0)
    down.dispose()


def test_the_queue_is_bounded_and_what_it_refuses_is_counted(engine):
    counts = Counts()
    writer = counts.writer(engine, batch_size=100, max_queue=3)
    for i in range(5):
        writer.submit(row(f"r{i}"))
    assert (writer.pending, writer.dropped, counts.dropped) == (3, 2, 2)
    writer.flush()
    writer.submit(row("r5"))
    assert (writer.pending, writer.dropped) == (1, 2)
    writer.flush()
    assert set(stored(engine)) == {"r0", "r1", "r2", "r5"}


def test_metrics_count_rows_set_aside_and_dropped(engine):
    """Wired as the Runtime wires them: each writer callback feeds one counter."""
    metrics = Metrics()
    writer = RequestLogWriter(
        engine, max_queue=2, on_set_aside=metrics.log_rows_set_aside.inc, on_dropped=metrics.log_rows_dropped.inc
    )
    writer.submit(row("x"))
    writer.flush()
    for request_id in ("x", "y", "z"):
        writer.submit(row(request_id))
    writer.flush()
    values = {s.name: s.value for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    assert values["platform_log_rows_set_aside_total"] == 1
    assert values["platform_log_rows_dropped_total"] == 1
