"""Operator alerts: queued only when a debit takes a balance below its user's threshold
(once per crossing, re-armed by a top-up) or a key's spend across 80 % / 100 % of its
budget (once a period), or when upstream errors spike; delivered by the pipeline worker to
ALERT_WEBHOOK_URL, signed, retried, over a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlmodel import select

from api.alerting import ErrorSpike
from api.app import create_app
from api.worker import PipelineWorker
from store import budgets, credits, keys, users
from store.db import session_for
from store.errors import KeyBudgetExceeded
from store.models import CLEAR, Alert, ApiKey, LedgerEntry, User, utcnow
from store.money import MICRO

from ..conftest import TEST_SECRET, make_settings
from ..factories import auth, flat_seed_prices, make_user
from .test_chat import upstream_completion
from .test_errors import CHAT, chat_body

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def queued(engine) -> list[Alert]:
    with session_for(engine) as s:
        return list(s.exec(select(Alert).order_by(Alert.id)))


def new_key(session, user, **controls) -> ApiKey:
    return keys.issue_key(
        session,
        secret_key=TEST_SECRET,
        user_id=user.id,
        name="watched",
        rate_limit_per_minute=0,
        controls=keys.KeyControls(**controls),
    ).key


def charge(session, user, key, cost, ref):
    return credits.debit_for_request(
        session, user_id=user.id, cost=cost, ref=ref, model="openai/gpt-5", key_id=key.id, alerts=True
    )


@both_databases
def test_a_balance_below_its_threshold_alerts_once_per_crossing(session, engine):
    user = make_user(engine, credits=10, email="low@example.com")
    key = new_key(session, user)
    users.set_low_balance_threshold(session, user_id=user.id, threshold=5 * MICRO)
    charge(session, user, key, 3 * MICRO, "a")  # 7: above
    assert queued(engine) == []
    charge(session, user, key, 3 * MICRO, "b")  # 4: crossed
    charge(session, user, key, 1 * MICRO, "c")  # 3: still below, nothing new
    assert credits.refund(session, ref="b")  # 6: back above, but not by a top-up
    charge(session, user, key, 2 * MICRO, "d")  # 4
    [alert] = queued(engine)
    assert (alert.kind, alert.status, alert.payload) == (
        "low_balance",
        "pending",
        {"user_id": user.id, "email": "low@example.com", "balance": "4", "threshold": "5"},
    )
    credits.grant(session, user_id=user.id, amount=10 * MICRO)  # a top-up over it re-arms the alert
    charge(session, user, key, 10 * MICRO, "e")  # 14 -> 4
    assert [a.payload["balance"] for a in queued(engine)] == ["4", "4"]
    credits.debit_for_request(session, user_id=user.id, cost=MICRO, ref="quiet", key_id=key.id)  # alerts off
    assert len(queued(engine)) == 2
    with session_for(engine) as fresh:
        assert users.balance_is_low(fresh.get(User, user.id))  # 3 of 5: the banner shows


@both_databases
def test_a_key_budget_alerts_at_80_and_100_percent_once_a_period(session, engine):
    user = make_user(engine, credits=100)
    key = new_key(session, user, budget=10 * MICRO, budget_period="day")
    charge(session, user, key, 7 * MICRO, "a")
    assert queued(engine) == []
    charge(session, user, key, 1 * MICRO, "b")  # 8 of 10
    assert credits.settle(session, ref="b", cost=0) == 0  # 7 again: the level stays reported
    charge(session, user, key, 1 * MICRO, "c")  # 8 again: nothing new
    charge(session, user, key, 2 * MICRO, "d")  # 10 of 10
    with pytest.raises(KeyBudgetExceeded):
        charge(session, user, key, 1 * MICRO, "e")
    assert [(a.kind, a.payload["percent"], a.payload["spent"]) for a in queued(engine)] == [
        ("key_budget", 80, "8"),
        ("key_budget", 100, "10"),
    ]
    assert queued(engine)[0].payload["key_prefix"] == key.prefix
    # a new day: the spend and the levels start again
    yesterday = budgets.period_starts(utcnow())["day"] - timedelta(days=1)
    session.execute(sa.update(ApiKey).where(ApiKey.id == key.id).values(budget_period_start=yesterday))
    session.commit()
    charge(session, user, key, 9 * MICRO, "f")
    assert [a.payload["percent"] for a in queued(engine)] == [80, 100, 80]


@both_databases
def test_a_budget_that_refuses_a_call_alerts_once_as_its_100_percent(session, engine):
    user = make_user(engine, credits=100)
    key = new_key(session, user, budget=10 * MICRO)
    charge(session, user, key, 7 * MICRO, "a")
    for ref in ("b", "c"):
        with pytest.raises(KeyBudgetExceeded):
            charge(session, user, key, 5 * MICRO, ref)
    [alert] = queued(engine)
    assert (alert.payload["percent"], alert.payload["spent"], alert.payload["budget"]) == (100, "7", "10")
    assert session.exec(select(LedgerEntry).where(LedgerEntry.ref == "b")).first() is None


def test_the_threshold_setter_and_the_cli(session, engine):
    user = make_user(engine, credits=3)
    set_ = users.set_low_balance_threshold(session, user_id=user.id, threshold=5 * MICRO)
    assert (set_.low_balance_threshold, set_.low_balance_alerted, users.balance_is_low(set_)) == (5 * MICRO, True, True)
    cleared = users.set_low_balance_threshold(session, user_id=user.id, threshold=CLEAR)
    assert (cleared.low_balance_threshold, users.balance_is_low(cleared)) == (None, False)
    for bad in (0, -1, 10**30, True):
        with pytest.raises(Exception, match="threshold must be more than 0"):
            users.set_low_balance_threshold(session, user_id=user.id, threshold=bad)


# ---------------------------------------------------------------- delivery


class Receiver:
    """An HTTP receiver on a real socket: records each delivery, answers `statuses` in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.deliveries.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 204
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def worker_settings(database_url, tmp_path, url: str, **extra):
    return make_settings(
        database_url,
        tmp_path,
        alert_webhook_url=url,
        webhook_allow_private=True,  # the receiver is on 127.0.0.1
        webhook_backoff_s=0.01,
        webhook_max_attempts=3,
        **extra,
    )


async def test_the_worker_delivers_each_alert_signed_and_retries_a_failure(database_url, tmp_path, engine):
    receiver = Receiver(statuses=[500])
    url = await receiver.start()
    settings = worker_settings(database_url, tmp_path, url, alert_webhook_secret="alert-secret-123")
    user = make_user(engine, credits=10, email="low@example.com")
    with session_for(engine) as s:
        key = new_key(s, user)
        users.set_low_balance_threshold(s, user_id=user.id, threshold=5 * MICRO)
        charge(s, user, key, 6 * MICRO, "a")
    async with httpx.AsyncClient() as http:
        worker = PipelineWorker(settings, http=http, providers={})
        assert await worker.run_once() == 1  # answered 500
        [alert] = queued(engine)
        assert (alert.status, alert.attempts) == ("pending", 1)
        await asyncio.sleep(0.05)  # past the backoff
        assert await worker.run_once() == 1
        assert await worker.run_once() == 0  # nothing left
    await receiver.stop()
    [alert] = queued(engine)
    assert (alert.status, alert.attempts) == ("delivered", 2)
    assert len(receiver.deliveries) == 2
    headers, body = receiver.deliveries[-1]
    expected = "sha256=" + hmac.new(b"alert-secret-123", body, hashlib.sha256).hexdigest()
    assert headers["x-platform-signature"] == expected
    assert headers["x-platform-event-id"] == f"alert-{alert.id}"
    sent = orjson.loads(body)
    assert {k: sent[k] for k in ("id", "type", "user_id", "email", "balance", "threshold")} == {
        "id": alert.id,
        "type": "low_balance",
        "user_id": user.id,
        "email": "low@example.com",
        "balance": "4",
        "threshold": "5",
    }


async def test_an_alert_that_keeps_failing_is_given_up_after_the_last_attempt(database_url, tmp_path, engine):
    receiver = Receiver(statuses=[500, 500, 500])
    url = await receiver.start()
    settings = worker_settings(database_url, tmp_path, url)  # no ALERT_WEBHOOK_SECRET: unsigned
    user = make_user(engine, credits=10)
    with session_for(engine) as s:
        key = new_key(s, user, budget=MICRO)
        with pytest.raises(KeyBudgetExceeded):
            charge(s, user, key, 2 * MICRO, "a")
    async with httpx.AsyncClient() as http:
        worker = PipelineWorker(settings, http=http, providers={})
        for attempt in range(3):
            assert (attempt, await worker.run_once()) == (attempt, 1)
            await asyncio.sleep(0.05)
        assert await worker.run_once() == 0
    await receiver.stop()
    [alert] = queued(engine)
    assert (alert.status, alert.attempts, len(receiver.deliveries)) == ("failed", 3, 3)
    assert "x-platform-signature" not in receiver.deliveries[0][0]


async def test_alerts_are_not_delivered_to_a_private_address_unless_allowed(database_url, tmp_path, engine):
    receiver = Receiver(statuses=[])
    url = await receiver.start()
    settings = make_settings(database_url, tmp_path, alert_webhook_url=url, webhook_max_attempts=1)
    user = make_user(engine, credits=10)
    with session_for(engine) as s:
        key = new_key(s, user, budget=MICRO)
        with pytest.raises(KeyBudgetExceeded):
            charge(s, user, key, 2 * MICRO, "a")
    async with httpx.AsyncClient() as http:
        assert await PipelineWorker(settings, http=http, providers={}).run_once() == 1
    await receiver.stop()
    assert receiver.deliveries == [] and queued(engine)[0].status == "failed"


# ---------------------------------------------------------------- through the API


async def test_a_call_that_crosses_the_threshold_queues_an_alert(database_url, tmp_path, engine, chat_upstream):
    flat_seed_prices(engine)
    chat_upstream.add(json=upstream_completion(), reusable=True)
    settings = make_settings(
        database_url, tmp_path, openrouter_base_url=chat_upstream.base_url, alert_webhook_url="https://ops.example/h"
    )
    user = make_user(engine, credits=10)
    with session_for(engine) as s:
        key = keys.issue_key(s, secret_key=TEST_SECRET, user_id=user.id, name="k", rate_limit_per_minute=0)
        users.set_low_balance_threshold(s, user_id=user.id, threshold=6 * MICRO)
    app = create_app(settings)
    async with app.state.runtime.running():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            for _ in range(3):  # 7, 4 (crossed), 1
                assert (await client.post(CHAT, json=chat_body(), headers=auth(key.secret))).status_code == 200
    assert [(a.kind, a.payload["balance"]) for a in queued(engine)] == [("low_balance", "4")]


async def test_a_spike_of_upstream_errors_queues_one_alert_a_window(database_url, tmp_path, engine, chat_upstream):
    flat_seed_prices(engine)
    chat_upstream.add(status=502, json={"error": {"message": "upstream down"}}, reusable=True)
    settings = make_settings(
        database_url,
        tmp_path,
        openrouter_base_url=chat_upstream.base_url,
        alert_webhook_url="https://ops.example/h",
        alert_error_spike=3,
        alert_error_window_s=600,
    )
    user = make_user(engine, credits=100)
    with session_for(engine) as s:
        key = keys.issue_key(s, secret_key=TEST_SECRET, user_id=user.id, name="k", rate_limit_per_minute=0)
    app = create_app(settings)
    async with app.state.runtime.running():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            for _ in range(5):
                r = await client.post(CHAT, json=chat_body(), headers=auth(key.secret))
                assert (r.status_code, r.json()["error"]["code"]) == (502, "provider_error")
        await app.state.runtime.quiesce()
    [alert] = queued(engine)
    assert (alert.kind, alert.payload["errors"], alert.payload["window_s"]) == ("upstream_errors", 3, 600.0)


def test_the_spike_counter_slides_and_stays_quiet_for_a_window():
    now = [0.0]
    spike = ErrorSpike(3, 60.0, clock=lambda: now[0])
    seen = []
    for t, code in [(0, "provider_error"), (10, "invalid_request"), (20, "provider_error"), (70, "provider_error")]:
        now[0] = t
        seen.append(spike.observe(code))
    assert seen == [None, None, None, None]  # the first fell out of the window at 60 s
    for t in (75, 80, 130):
        now[0] = t
        seen.append(spike.observe("provider_error"))
    assert seen[-3:] == [3, None, None]  # 3 within 60 s at 75 s; then quiet for a window
    now[0] = 136
    assert spike.observe("provider_error") == 3  # 80, 130, 136: the next window's alert
    assert ErrorSpike(0, 60.0).observe("provider_error") is None
