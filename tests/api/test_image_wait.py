"""POST /api/v1/images/generations with `Prefer: wait=N`: the answer waits for the task
(fake Replicate and OpenRouter on a real socket, the pipeline worker in process)."""

from __future__ import annotations

import base64
import time

import pytest
from sqlmodel import select

from store import registry
from store.db import session_for
from store.models import ImageTask, LedgerEntry, RequestLog

from ..conftest import flush_logs
from ..factories import as_credits, auth, credits_of, make_key, make_user
from . import image_fixtures

# the image tests' shared fixtures (tests/api/image_fixtures.py), bound here for pytest to find
caller = image_fixtures.caller
fresh_upstream = image_fixtures.fresh_upstream
settings = image_fixtures.settings
upstream = image_fixtures.upstream

MODEL = "google/nano-banana-pro"  # replicate, 10 credits an image
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
BODY = {"model": MODEL, "prompt": "a robot", "size": "1024x1024"}


async def submit(client, key, body=BODY, **headers):
    return await client.post("/api/v1/images/generations", headers={**auth(key), **headers}, json=body)


def ledger(engine, user):
    with session_for(engine) as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id))
        return [(row.kind, as_credits(row.amount)) for row in rows]


def log_rows(app, engine, task_id):
    flush_logs(app)
    with session_for(engine) as s:
        rows = s.exec(select(RequestLog).where(RequestLog.task_id == task_id))
        return sorted((row.method, row.status, row.error_code, as_credits(row.credit_cost)) for row in rows)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"message": response.json()["error"]["message"], "type": code, "code": code}}


@BOTH
async def test_wait_answers_with_the_url_filled_and_charges_once(app, client, engine, caller, upstream):
    user, key = caller
    r = await submit(client, key, Prefer="wait=10")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded"
    assert r.headers["preference-applied"] == "wait=10"
    [item] = body["data"]
    assert set(item) == {"url"}
    assert item["url"].startswith(f"http://platform.test/api/v1/files/{body['task_id']}/0.png?expires=")
    image = await client.get(item["url"])
    assert (image.status_code, image.content) == (200, upstream.png)
    assert upstream.count("submit") == 1
    assert ledger(engine, user) == [("grant", 100), ("charge", -10)]
    # the submission's row and the task's end row (written by the worker)
    assert log_rows(app, engine, body["task_id"]) == [("POST", 200, None, 10), ("TASK", 200, None, 0)]


async def test_wait_with_b64_json_answers_the_image_inline(client, engine, caller, upstream):
    user, key = caller
    r = await submit(client, key, {**BODY, "n": 2, "response_format": "b64_json"}, Prefer="wait=10")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [base64.b64decode(item["b64_json"]) for item in data] == [upstream.png, upstream.png]
    assert all(set(item) == {"b64_json"} for item in data)
    assert credits_of(engine, user) == 80


async def test_a_synchronous_provider_waits_the_same(client, engine, caller, upstream):
    user, key = caller
    with session_for(engine) as s:
        registry.set_model(
            s,
            actor="test",
            model_id="google/gemini-image",
            category="image",
            provider="openrouter",
            credit_cost=5 * 10**6,
        )
    r = await submit(client, key, {"model": "google/gemini-image", "prompt": "a cat"}, Prefer="wait=10")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and len(r.json()["data"]) == 1
    assert upstream.count("or_images") == 1
    assert credits_of(engine, user) == 95


async def test_failed_task_while_waiting_is_provider_error_and_refunded(app, client, engine, caller, upstream):
    user, key = caller
    upstream.scenario.final = "failed"
    r = await submit(client, key, Prefer="wait=10")
    assert_error(r, 502, "provider_error")
    assert "NSFW content detected" in r.json()["error"]["message"]
    assert credits_of(engine, user) == 100
    assert ledger(engine, user) == [("grant", 100), ("charge", -10), ("refund", 10)]
    with session_for(engine) as s:
        [task] = s.exec(select(ImageTask)).all()
    # the submission's row keeps its charge, the task's end row its refund: they sum to 0
    assert log_rows(app, engine, task.id) == [("POST", 502, "provider_error", 10), ("TASK", 502, "provider_error", -10)]


async def test_task_still_running_at_the_deadline_answers_the_task(client, engine, caller, upstream):
    user, key = caller
    upstream.scenario.final = "hang"
    started = time.monotonic()
    r = await submit(client, key, Prefer="wait=1")
    assert 0.9 < time.monotonic() - started < 5
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"] in ("pending", "running"), body["data"]) == (True, [])
    assert "preference-applied" not in r.headers
    assert credits_of(engine, user) == 90  # charged once; the task goes on


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=abc", "wait=-1", "wait=1.5", "wait=", "wait=٣".encode()])
async def test_bad_wait_is_400_and_charges_nothing(client, engine, caller, upstream, prefer):
    user, key = caller
    r = await submit(client, key, Prefer=prefer)
    assert_error(r, 400, "invalid_request")
    assert r.json()["error"]["message"] == "`Prefer: wait=N` takes N from 1 to 60 seconds"
    assert upstream.count("submit") == 0 and credits_of(engine, user) == 100


async def test_wait_among_other_preferences_and_bare_wait(client, engine, caller):
    user, key = caller
    r = await submit(client, key, Prefer="respond-async, wait=5")
    assert (r.status_code, r.json()["status"], r.headers["preference-applied"]) == (200, "succeeded", "wait=5")
    r = await submit(client, key, Prefer="wait")  # as Replicate: the most, 60 s
    assert (r.status_code, r.json()["status"], r.headers["preference-applied"]) == (200, "succeeded", "wait=60")
    assert credits_of(engine, user) == 80


async def test_without_prefer_the_answer_is_the_pending_task(client, engine, caller):
    user, key = caller
    r = await submit(client, key, {**BODY, "response_format": "b64_json"})
    assert (r.status_code, r.json()["status"], r.json()["data"]) == (200, "pending", [])


async def test_idempotent_retry_with_wait_gets_the_same_task_filled_without_a_new_charge(
    client, engine, caller, upstream
):
    user, key = caller
    first = await submit(client, key, **{"Idempotency-Key": "k1"})
    again = await submit(client, key, **{"Idempotency-Key": "k1", "Prefer": "wait=10"})
    assert again.status_code == 200
    assert again.json()["task_id"] == first.json()["task_id"]
    assert again.json()["status"] == "succeeded" and len(again.json()["data"]) == 1
    assert upstream.count("submit") == 1 and credits_of(engine, user) == 90


async def test_rejections_keep_their_codes_with_wait(client, engine, upstream):
    poor = make_key(engine, make_user(engine, credits=5))
    assert_error(await submit(client, poor, Prefer="wait=5"), 402, "insufficient_credits")
    assert_error(
        await submit(client, poor, {**BODY, "model": "openai/gpt-5"}, Prefer="wait=5"), 404, "model_not_available"
    )
    assert_error(
        await client.post("/api/v1/images/generations", json=BODY, headers={"Prefer": "wait=5"}), 401, "invalid_api_key"
    )
    limited = make_key(engine, make_user(engine, credits=100), rpm=1)
    assert (await submit(client, limited, Prefer="wait=5")).status_code == 200
    assert_error(await submit(client, limited, Prefer="wait=5"), 429, "rate_limit_exceeded")
    assert upstream.count("submit") == 1
