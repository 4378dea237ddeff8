"""Upstream faults against a real fake upstream, through the app served for real.

For each fault: the exact status and code, the refund (or, for an abandoned stream, the
charge) recorded once, one log row, and no upstream connection or task left open.
"""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from sqlmodel import select

from api.app import create_app
from store import credits
from store.db import session_for
from store.models import LedgerEntry, RequestLog
from store.money import MICRO

from ..conftest import make_settings
from ..factories import flat_seed_prices, make_key, make_user
from ..fakes.upstream import ServedUpstream, free_port
from ..serving import serve

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


@pytest.fixture
def upstream():
    with ServedUpstream() as served:
        yield served


def platform(database_url, tmp_path, base_url, **overrides):
    settings = make_settings(database_url, tmp_path, openrouter_base_url=base_url, upstream_timeout_s=1.0, **overrides)
    return create_app(settings)


def call(base, key, content, stream=False, **kw):
    body = {"model": "openai/gpt-5", "messages": [{"role": "user", "content": content}], "stream": stream}
    return httpx.post(
        f"{base}/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10, **kw
    )


def ledger_kinds(engine, request_id):
    with session_for(engine) as s:
        return sorted(e.kind for e in s.exec(select(LedgerEntry).where(LedgerEntry.ref == request_id)))


def log_row(engine, app, request_id):
    """The request's one log row (queued just after the response's last byte, so wait a moment)."""
    deadline = time.monotonic() + 5
    while True:
        app.state.runtime.logs.flush()
        with session_for(engine) as s:
            rows = list(s.exec(select(RequestLog).where(RequestLog.request_id == request_id)))
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(rows) == 1
    return rows[0]


def busy_upstream_connections(app) -> int:
    """Upstream connections still handed out by the chat hop's aiohttp connector (its
    acquired set: aiohttp has no public count of connections in use)."""
    return len(app.state.runtime.upstream.connector._acquired)


def settle(spy, baseline: int) -> int:
    deadline = time.monotonic() + 5
    while spy.task_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    return spy.task_count()


@pytest.mark.parametrize(
    "content,status,code,message,retried",
    [
        ("fail:500", 502, "provider_error", "Upstream provider returned HTTP 500", True),
        # the upstream's own judgement of the request reaches the caller as theirs, never retried
        ("fail:400", 400, "invalid_request", "upstream says no: key [redacted]", False),
        ("fail:404", 400, "invalid_request", "upstream says no: key [redacted]", False),
        ("fail:413", 400, "invalid_request", "upstream says no: key [redacted]", False),
        ("fail:422", 400, "invalid_request", "upstream says no: key [redacted]", False),
        # the operator's account: a generic 502, nothing of the upstream's message
        ("fail:401", 502, "provider_error", "Upstream provider error", False),
        ("fail:402", 502, "provider_error", "Upstream provider error", False),
        ("fail:403", 502, "provider_error", "Upstream provider error", False),
        ("hang", 504, "provider_error", "Upstream provider timed out", False),
        ("malformed", 502, "provider_error", "Upstream provider returned a malformed body", False),
        # a 200 whose body is an error is a failed generation
        ("error200", 502, "provider_error", "Upstream provider returned an error", False),
    ],
)
def test_failed_call_is_refunded_once_and_logged(
    database_url, tmp_path, engine, upstream, content, status, code, message, retried
):
    app = platform(database_url, tmp_path, upstream.base_url, upstream_retries=1)
    user = make_user(engine, credits=9)
    key = make_key(engine, user)
    with serve(app) as (base, spy):
        baseline = spy.task_count()
        seen = len(upstream.app.stats.bodies)
        r = call(base, key, content)
        assert r.status_code == status
        assert r.json() == {"error": {"message": message, "type": code, "code": code}}
        assert len(upstream.app.stats.bodies) - seen == (2 if retried else 1)
        rid = r.headers["x-request-id"]
        assert ledger_kinds(engine, rid) == ["charge", "refund"]
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == 9 * MICRO
        row = log_row(engine, app, rid)
        assert (row.status, row.error_code, row.credit_cost) == (status, code, 0)
        assert busy_upstream_connections(app) == 0
        assert settle(spy, baseline) == baseline


def test_upstream_429_is_a_429_with_its_retry_after_and_refunded(database_url, tmp_path, engine, upstream):
    app = platform(database_url, tmp_path, upstream.base_url, upstream_retries=1)
    user = make_user(engine, credits=9)
    key = make_key(engine, user)
    with serve(app) as (base, _):
        seen = len(upstream.app.stats.bodies)
        r = call(base, key, "fail:429")
        assert (r.status_code, r.headers["retry-after"]) == (429, "7")
        assert r.json()["error"]["code"] == "provider_error"
        assert len(upstream.app.stats.bodies) - seen == 2  # retried once, as UPSTREAM_RETRIES says
        assert ledger_kinds(engine, r.headers["x-request-id"]) == ["charge", "refund"]
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == 9 * MICRO


def test_platform_error_after_the_debit_is_refunded(database_url, tmp_path, engine, upstream):
    """The upstream's answer nests 300 levels deep: it parses but cannot be encoded again,
    so the request fails after its debit (a 500) and the credits come back once."""
    app = platform(database_url, tmp_path, upstream.base_url)
    user = make_user(engine, credits=9)
    key = make_key(engine, user)
    with serve(app) as (base, _):
        r = call(base, key, "deep")
        assert r.status_code == 500
        assert r.json() == {"error": {"message": "Internal error", "type": "internal_error", "code": "internal_error"}}
        rid = r.headers["x-request-id"]
        assert ledger_kinds(engine, rid) == ["charge", "refund"]
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == 9 * MICRO
        assert log_row(engine, app, rid).credit_cost == 0


def test_body_that_cannot_be_sent_upstream_is_refused_before_the_debit(database_url, tmp_path, engine, upstream):
    """A message nested 300 levels passes the JSON parser (1024 levels) but not the encoder
    (255): it is a 400 before anything is charged, and the upstream never sees it."""
    app = platform(database_url, tmp_path, upstream.base_url)
    user = make_user(engine, credits=9)
    key = make_key(engine, user)
    deep = b"[" * 300 + b"]" * 300
    body = b'{"model":"openai/gpt-5","messages":[{"role":"user","content":' + deep + b"}]}"
    with serve(app) as (base, _):
        seen = len(upstream.app.stats.bodies)
        r = httpx.post(
            f"{base}/api/v1/chat/completions",
            content=body,
            timeout=10,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request")
        assert ledger_kinds(engine, r.headers["x-request-id"]) == []
        assert len(upstream.app.stats.bodies) == seen
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == 9 * MICRO


@pytest.mark.parametrize("content", ["errevent", "finerror", "nofinish", "deepevent"])
def test_stream_that_fails_ends_with_an_error_event_and_is_refunded(database_url, tmp_path, engine, upstream, content):
    app = platform(database_url, tmp_path, upstream.base_url)
    user = make_user(engine, credits=3)
    key = make_key(engine, user)
    with serve(app) as (base, spy):
        baseline = spy.task_count()
        r = call(base, key, content, stream=True)
        assert r.status_code == 200
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "echo: "
        code = "internal_error" if content == "deepevent" else "provider_error"
        assert orjson.loads(events[-1])["error"]["code"] == code
        assert "[DONE]" not in events  # the platform never declares a failed stream done
        rid = r.headers["x-request-id"]
        assert ledger_kinds(engine, rid) == ["charge", "refund"]
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == 3 * MICRO
        row = log_row(engine, app, rid)
        assert (row.status, row.error_code, row.credit_cost, row.stream) == (200, code, 0, True)
        assert settle(spy, baseline) == baseline


def test_refused_connection_is_502_and_refunded(database_url, tmp_path, engine):
    app = platform(database_url, tmp_path, f"http://127.0.0.1:{free_port()}/v1", upstream_retries=1)
    user = make_user(engine, credits=3)
    key = make_key(engine, user)
    with serve(app) as (base, _):
        r = call(base, key, "hi")
        assert (r.status_code, r.json()["error"]["code"]) == (502, "provider_error")
        assert ledger_kinds(engine, r.headers["x-request-id"]) == ["charge", "refund"]
        assert log_row(engine, app, r.headers["x-request-id"]).error_code == "provider_error"


def test_a_hiccup_is_retried_and_charged_once(database_url, tmp_path, engine, upstream):
    app = platform(database_url, tmp_path, upstream.base_url, upstream_retries=1)
    user = make_user(engine, credits=3)
    key = make_key(engine, user)
    with serve(app) as (base, _):
        r = call(base, key, "once:503")
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: once:503"
        assert ledger_kinds(engine, r.headers["x-request-id"]) == ["charge"]


def test_no_retry_when_retries_are_off(database_url, tmp_path, engine, upstream):
    app = platform(database_url, tmp_path, upstream.base_url, upstream_retries=0)
    key = make_key(engine, make_user(engine, credits=3))
    with serve(app) as (base, _):
        seen = len(upstream.app.stats.bodies)
        assert call(base, key, "once:500").status_code == 502
        assert len(upstream.app.stats.bodies) - seen == 1


def test_stream_cut_midway_ends_with_error_event_and_refund(database_url, tmp_path, engine, upstream):
    app = platform(database_url, tmp_path, upstream.base_url, upstream_retries=1)
    user = make_user(engine, credits=3)
    key = make_key(engine, user)
    with serve(app) as (base, spy):
        baseline = spy.task_count()
        seen = len(upstream.app.stats.bodies)
        r = call(base, key, "cut", stream=True)
        assert r.status_code == 200
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "echo: "
        assert orjson.loads(events[-1])["error"]["code"] == "provider_error"
        assert len(upstream.app.stats.bodies) - seen == 1  # bytes were sent: never retried
        rid = r.headers["x-request-id"]
        assert ledger_kinds(engine, rid) == ["charge", "refund"]
        row = log_row(engine, app, rid)
        assert (row.status, row.error_code, row.credit_cost, row.stream) == (200, "provider_error", 0, True)
        assert busy_upstream_connections(app) == 0
        assert settle(spy, baseline) == baseline


def test_client_leaving_a_slow_stream_is_charged_once_and_closes_upstream(database_url, tmp_path, engine, upstream):
    app = platform(database_url, tmp_path, upstream.base_url)
    user = make_user(engine, credits=3)
    key = make_key(engine, user)
    stats = upstream.app.stats
    with serve(app) as (base, spy):
        baseline = spy.task_count()
        body = {"model": "openai/gpt-5", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
        with httpx.stream(
            "POST", f"{base}/api/v1/chat/completions", json=body, timeout=10, headers={"Authorization": f"Bearer {key}"}
        ) as r:
            rid = r.headers["x-request-id"]
            next(r.iter_lines())
        deadline = time.monotonic() + 5
        while stats.streams_cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stats.streams_cancelled == 1
        assert ledger_kinds(engine, rid) == ["charge"]
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == 0
        row = log_row(engine, app, rid)
        assert (row.status, row.credit_cost, row.stream) == (200, 3 * MICRO, True)
        assert busy_upstream_connections(app) == 0
        assert settle(spy, baseline) == baseline
