"""What must hold across processes: one rate limit per key, one balance, one log row per
request; the separate pipeline worker finishes image tasks; /metrics sums the processes;
access logs are JSON with the request id and never a key."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import orjson
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from store import credits
from store.db import session_for

from ..factories import as_credits, auth, make_key, make_user
from .conftest import METRICS_TOKEN, Topology

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CHAT_BODY = {"model": "openai/gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}  # costs 1
IMAGE_MODEL = "google/nano-banana-pro"  # costs 10


async def fire(
    topology: Topology, key: str, count: int, path: str = "/api/v1/chat/completions", body: dict | None = CHAT_BODY
) -> list[httpx.Response]:
    """`count` requests at once, alternating between the two API processes."""
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [
            client.post(f"{topology.apis[i % 2].base_url}{path}", json=body, headers=auth(key)) for i in range(count)
        ]
        return list(await asyncio.gather(*calls))


def log_rows(topology: Topology, request_ids: list[str], timeout: float = 15) -> dict[str, int]:
    """request id -> number of log rows, once every id has one (or the timeout passed)."""
    query = sa.text("SELECT request_id, count(*) FROM request_logs WHERE request_id = ANY(:ids) GROUP BY request_id")
    deadline = time.monotonic() + timeout
    while True:
        with topology.engine.connect() as conn:
            counts = dict(conn.execute(query, {"ids": request_ids}).all())
        if len(counts) == len(set(request_ids)) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def rows_for_key(topology: Topology, key_prefix: str) -> int:
    with topology.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM request_logs WHERE key_prefix = :p"), {"p": key_prefix}
        ).scalar_one()


def money(topology: Topology, user) -> tuple[Decimal, Decimal]:
    """The balance and the ledger sum, in credits (exact)."""
    with session_for(topology.engine) as s:
        return as_credits(credits.balance(s, user_id=user.id)), as_credits(credits.ledger_sum(s, user_id=user.id))


async def test_a_limit_of_10_per_minute_lets_exactly_10_through_across_both_processes(topology):
    user = make_user(topology.engine, credits=1000)
    key = make_key(topology.engine, user, rpm=10)
    responses = await fire(topology, key, 24)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 14
    served_by = {i % 2 for i, r in enumerate(responses) if r.status_code == 200}
    assert served_by == {0, 1} or len(served_by) == 1  # which process admits is up to timing
    for r in responses:
        assert r.headers["x-ratelimit-limit-requests"] == "10"
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert r.headers["x-ratelimit-remaining-requests"] == "0" and int(r.headers["retry-after"]) >= 1
    assert money(topology, user) == (990, 990)  # rejected requests are never charged
    ids = [r.headers["x-request-id"] for r in responses]
    assert log_rows(topology, ids) == {i: 1 for i in ids}
    assert rows_for_key(topology, key[:12]) == 24


async def test_40_parallel_requests_against_a_balance_for_10_admit_exactly_10(topology):
    user = make_user(topology.engine, credits=10)
    key = make_key(topology.engine, user, rpm=0)
    responses = await fire(topology, key, 40)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [402] * 30
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 402} == {"insufficient_credits"}
    assert money(topology, user) == (0, 0)
    with topology.engine.connect() as conn:
        charges = conn.execute(
            sa.text("SELECT count(*) FROM credit_ledger WHERE user_id = :u AND kind = 'charge'"), {"u": user.id}
        ).scalar_one()
    assert charges == 10
    ids = [r.headers["x-request-id"] for r in responses]
    assert log_rows(topology, ids) == {i: 1 for i in ids}
    assert rows_for_key(topology, key[:12]) == 40


async def test_every_request_has_exactly_one_log_row_rejected_ones_too(topology):
    user = make_user(topology.engine, credits=100)
    key = make_key(topology.engine, user)
    async with httpx.AsyncClient(timeout=30) as client:
        calls = []
        for api in topology.apis:
            base = api.base_url
            calls += [
                client.post(f"{base}/api/v1/chat/completions", json=CHAT_BODY, headers=auth(key)),
                client.post(f"{base}/api/v1/chat/completions", json=CHAT_BODY),  # 401
                client.post(f"{base}/api/v1/chat/completions", json={**CHAT_BODY, "model": "x/y"}, headers=auth(key)),
                client.post(f"{base}/api/v1/chat/completions", content=b"{nope", headers=auth(key)),  # 400
                client.get(f"{base}/api/v1/models", headers=auth(key)),
                client.get(f"{base}/api/v1/key", headers=auth(key)),
                client.get(f"{base}/api/v1/no/such/thing"),  # 404
                client.delete(f"{base}/api/v1/models", headers=auth(key)),  # 405
            ]
        responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200, 401, 404, 400, 200, 200, 404, 405] * 2
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)
    assert log_rows(topology, ids) == {i: 1 for i in ids}


async def test_the_separate_pipeline_worker_finishes_an_image_task_submitted_to_either_process(topology):
    topology.replicate.reset()
    user = make_user(topology.engine, credits=100)
    key = make_key(topology.engine, user)
    first, second = (api.base_url for api in topology.apis)
    async with httpx.AsyncClient(timeout=30) as client:
        submitted = await client.post(
            f"{first}/api/v1/images/generations",
            headers=auth(key),
            json={"model": IMAGE_MODEL, "prompt": "a robot", "size": "1024x1024"},
        )
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["task_id"]
        deadline = time.monotonic() + 30
        while (body := (await client.get(f"{second}/api/v1/images/generations/{task_id}", headers=auth(key))).json())[
            "status"
        ] != "succeeded":
            assert body["status"] in ("pending", "running"), body
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)
        url = body["data"][0]["url"]
        assert url.startswith(f"{second}/")  # signed, served by the process that was asked
        image = await client.get(url)
    assert image.status_code == 200 and image.content == topology.replicate.png
    assert topology.replicate.count("submit") == 1
    assert money(topology, user) == (90, 90)


async def test_metrics_sum_both_processes_and_access_logs_are_json_without_keys(topology):
    user = make_user(topology.engine, credits=100)
    key = make_key(topology.engine, user)
    responses = await fire(topology, key, 6)
    assert [r.status_code for r in responses] == [200] * 6
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{topology.apis[0].base_url}/metrics")).status_code == 401
        scraped = await client.get(
            f"{topology.apis[1].base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    assert scraped.status_code == 200
    per_process: dict[str, float] = {}
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            if sample.name == "platform_requests_total" and sample.labels == {
                "endpoint": "/api/v1/chat/completions",
                "model": "openai/gpt-5-mini",
                "status": "200",
            }:
                per_process["sum"] = per_process.get("sum", 0) + sample.value
    # every 200 chat request of this module so far, from both processes, in one scrape
    assert per_process["sum"] >= 10 + 10 + 2 + 6

    ids = {r.headers["x-request-id"] for r in responses}
    deadline = time.monotonic() + 10  # lines are written together, a moment after the requests
    while True:
        seen: dict[str, int] = {}
        for api in topology.apis:
            text = api.output()
            assert key not in text and key[8:] not in text
            for line in text.splitlines():
                if line.startswith("{"):
                    entry = orjson.loads(line)
                    if entry.get("event") == "request" and entry["request_id"] in ids:
                        seen[entry["request_id"]] = seen.get(entry["request_id"], 0) + 1
                        assert entry["status"] == 200 and entry["key_id"]
                        assert entry["path"] == "/api/v1/chat/completions"
        if len(seen) == len(ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert seen == {i: 1 for i in ids}  # one line each, from the process that served it
