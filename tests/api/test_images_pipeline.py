"""The pipeline worker against a fake Replicate on a real socket: failures, cancels and
timeouts refund exactly once, a restart resumes, two workers never share a task,
webhooks are signed and retried, OpenRouter images run inside the task."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlmodel import select

from api.app import create_app
from api.worker import PipelineWorker
from store import credits, registry, signing, tasks
from store.db import session_for
from store.models import ImageTask, LedgerEntry, RequestLog, utcnow
from store.money import MICRO

from ..conftest import flush_logs
from ..factories import as_credits, auth, make_key, make_user
from . import image_fixtures
from .fake_replicate import FakeUpstream, pipeline_settings

# the image tests' shared fixtures (tests/api/image_fixtures.py), bound here for pytest to find
fresh_upstream = image_fixtures.fresh_upstream
upstream = image_fixtures.upstream

MODEL = "google/nano-banana-pro"
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def settings(database_url, tmp_path, upstream):
    """The worker does not run in process: each test drives it, pass by pass."""
    return pipeline_settings(database_url, tmp_path, upstream, run_pipeline_in_process=False)


@pytest.fixture
def caller(engine):
    user = make_user(engine, credits=100)
    return user, make_key(engine, user)


@pytest.fixture
def worker(app, settings):
    runtime = app.state.runtime
    return PipelineWorker(settings, http=runtime.http, providers=runtime.image_providers, engine=runtime.engine)


async def submit(client, key, **extra):
    response = await client.post(
        "/api/v1/images/generations", headers=auth(key), json={"model": MODEL, "prompt": "a robot", **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()["task_id"]


def task_row(engine, task_id) -> ImageTask:
    with session_for(engine) as s:
        return s.get(ImageTask, task_id)


async def drive(worker, engine, task_id, *, until=("succeeded", "failed"), timeout=10.0) -> ImageTask:
    """Run worker passes until the task reaches a status in `until`."""
    deadline = time.monotonic() + timeout
    while (task := task_row(engine, task_id)).status not in until:
        assert time.monotonic() < deadline, f"task stayed {task.status}"
        await worker.run_once()
        await asyncio.sleep(0.01)
    return task


def money(engine, user) -> tuple[Decimal, list[tuple[str, Decimal]]]:
    """The balance and the ledger's (kind, amount) rows, in credits (exact)."""
    with session_for(engine) as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id))
        return as_credits(credits.balance(s, user_id=user.id)), [(r.kind, as_credits(r.amount)) for r in rows]


def assert_refunded_once(engine, user, task_id):
    """However often the failure is repeated, the ledger shows one charge and one refund."""
    with session_for(engine) as s:
        assert tasks.fail_task(s, task_id=task_id, reason="again") is False
        assert tasks.refund_failed_tasks(s) == 0
        assert credits.refund(s, ref=task_id) is False
    assert money(engine, user) == (100, [("grant", 100), ("charge", -10), ("refund", 10)])


# ---------------------------------------------------------------- failures refund exactly once


@BOTH
async def test_provider_failure_fails_the_task_and_refunds_once(client, engine, caller, upstream, worker):
    user, key = caller
    upstream.scenario.final = "failed"
    task_id = await submit(client, key)
    task = await drive(worker, engine, task_id)
    assert task.status == "failed"
    assert task.error == "Replicate prediction failed upstream: NSFW content detected"
    assert_refunded_once(engine, user, task_id)
    response = await client.get(f"/api/v1/images/generations/{task_id}", headers=auth(key))
    assert response.json()["status"] == "failed"
    assert response.json()["data"] == []
    assert response.json()["error"]["code"] == "provider_error"


@BOTH
async def test_upstream_cancel_fails_the_task_and_refunds_once(client, engine, caller, upstream, worker):
    user, key = caller
    upstream.scenario.final = "canceled"
    task_id = await submit(client, key)
    task = await drive(worker, engine, task_id)
    assert (task.status, task.error) == ("failed", "Replicate prediction canceled upstream")
    assert_refunded_once(engine, user, task_id)


@BOTH
async def test_timeout_fails_cancels_upstream_and_refunds_once(app, database_url, tmp_path, engine, caller, upstream):
    user, key = caller
    settings = pipeline_settings(database_url, tmp_path, upstream, task_timeout_s=0.3, run_pipeline_in_process=False)
    runtime = app.state.runtime
    worker = PipelineWorker(settings, http=runtime.http, providers=runtime.image_providers)
    upstream.scenario.final = "hang"
    short = create_app(settings)
    async with short.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=short), base_url="http://t") as c:
            task_id = await submit(c, key)
    task = await drive(worker, engine, task_id)
    assert (task.status, task.error) == ("failed", "Image generation timed out after 0.3 s")
    assert upstream.count("cancel:pred0001") == 1
    assert_refunded_once(engine, user, task_id)
    flush_logs(app)
    with session_for(engine) as s:
        end = s.exec(select(RequestLog).where(RequestLog.request_id == f"{task_id}:end")).one()
    assert (end.status, end.error_code, end.credit_cost, end.task_id) == (504, "provider_error", -10 * MICRO, task_id)


async def test_a_file_that_is_not_an_image_fails_the_task(client, engine, caller, upstream, worker):
    user, key = caller
    upstream.png = b"<html>definitely not a png</html>"
    try:
        task_id = await submit(client, key)
        task = await drive(worker, engine, task_id)
    finally:
        upstream.png = FakeUpstream().png
    assert (task.status, task.error) == ("failed", "the provider returned a file that is not an image")
    assert_refunded_once(engine, user, task_id)


async def test_poll_errors_are_retried_until_the_upstream_answers(client, engine, caller, upstream, worker):
    user, key = caller
    upstream.scenario.poll_status = 503
    task_id = await submit(client, key)
    for _ in range(3):
        await asyncio.sleep(0.06)
        await worker.run_once()
    assert task_row(engine, task_id).status == "running"
    assert upstream.count("poll") >= 2
    upstream.scenario.poll_status = 200
    assert (await drive(worker, engine, task_id)).status == "succeeded"
    assert money(engine, user)[0] == 90


async def test_an_interrupted_refund_is_repaired_by_the_sweep(engine, caller):
    user, _ = caller
    with session_for(engine) as s:
        task, _ = tasks.create_task(
            s,
            user_id=user.id,
            model=MODEL,
            provider="replicate",
            upstream_id=MODEL,
            prompt="x",
            size=None,
            n=1,
            unit_cost=10 * MICRO,
            timeout_s=60,
        )
        # the failure committed, then the process died before the refund
        s.execute(ImageTask.__table__.update().where(ImageTask.id == task.id).values(status="failed"))
        s.commit()
        assert credits.balance(s, user_id=user.id) == 90 * MICRO
        assert tasks.refund_failed_tasks(s) == 1
        assert tasks.refund_failed_tasks(s) == 0
    assert money(engine, user) == (100, [("grant", 100), ("charge", -10), ("refund", 10)])


# ---------------------------------------------------------------- restarts


@BOTH
async def test_a_restart_in_the_middle_resumes_the_task(database_url, tmp_path, engine, caller, upstream):
    user, key = caller
    settings = pipeline_settings(database_url, tmp_path, upstream)  # worker in process, as served
    upstream.scenario.final = "hang"
    first = create_app(settings)
    async with first.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://t") as c:
            task_id = await submit(c, key)
            deadline = time.monotonic() + 5
            while upstream.count("poll") < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
    stopped = task_row(engine, task_id)
    assert (stopped.status, stopped.provider_task_id, stopped.claimed_until) == ("running", "pred0001", None)

    upstream.scenario.final = "succeeded"
    upstream.scenario.polls_until_done = 0
    second = create_app(settings)
    async with second.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as c:
            deadline = time.monotonic() + 5
            while (body := (await c.get(f"/api/v1/images/generations/{task_id}", headers=auth(key))).json())[
                "status"
            ] != "succeeded":
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.02)
            image = await c.get(body["data"][0]["url"])
    assert image.content == upstream.png
    assert upstream.count("submit") == 1  # resumed, not submitted again
    assert upstream.count("download") == 1
    assert money(engine, user) == (90, [("grant", 100), ("charge", -10)])


@BOTH
async def test_a_crashed_workers_claim_lapses_and_another_worker_finishes(
    client, engine, caller, upstream, worker, settings
):
    user, key = caller
    task_id = await submit(client, key)
    await asyncio.sleep(0.05)
    with session_for(engine) as s:  # a worker claims it, then dies without a word
        [claimed] = tasks.claim_due_tasks(s, limit=5, lease_s=60)
    assert await worker.run_once() == 0  # the claim still holds
    with session_for(engine) as s:  # time passes: the lease runs out (moved, not slept: exact under load)
        s.execute(
            sa.update(ImageTask).where(ImageTask.id == task_id).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
        s.commit()
    task = await drive(worker, engine, task_id)
    assert task.status == "succeeded"
    with session_for(engine) as s:  # the dead worker's token can no longer move the task
        assert tasks.complete_task(s, task_id=task_id, token=claimed.attempts, outputs=[]) is None
        assert tasks.fail_task(s, task_id=task_id, token=claimed.attempts, reason="late") is False
    assert money(engine, user)[0] == 90


# ---------------------------------------------------------------- many workers


def _run_worker_in_thread(settings, stop: threading.Event, errors: list) -> threading.Thread:
    async def main():
        async with httpx.AsyncClient() as http:
            worker = PipelineWorker(settings, http=http)
            runner = asyncio.create_task(worker.serve())
            while not stop.is_set():
                await asyncio.sleep(0.01)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    def target():
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_two_workers_never_process_one_task_twice(settings, engine, caller, upstream):
    user, _ = caller
    total = 24
    settings = settings.model_copy(update={"worker_concurrency": 3, "task_poll_interval_s": 0.01})
    with session_for(engine) as s:
        ids = [
            tasks.create_task(
                s,
                user_id=user.id,
                model=MODEL,
                provider="replicate",
                upstream_id=MODEL,
                prompt=f"p{i}",
                size=None,
                n=1,
                unit_cost=1 * MICRO,
                timeout_s=60,
            )[0].id
            for i in range(total)
        ]
    stop, errors = threading.Event(), []
    threads = [_run_worker_in_thread(settings, stop, errors) for _ in range(2)]
    deadline = time.monotonic() + 30
    try:
        while True:
            with session_for(engine) as s:
                done = s.exec(select(ImageTask).where(ImageTask.status == "succeeded")).all()
            if len(done) == total or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert errors == []
    assert len(done) == total
    # every task: submitted once, polled exactly twice (processing, then succeeded), downloaded once
    assert upstream.count("submit") == total
    with upstream.lock:
        polls = {name: n for name, n in upstream.calls.items() if name.startswith("poll:")}
        downloads = {name: n for name, n in upstream.calls.items() if name.startswith("download:")}
    assert len(polls) == total and set(polls.values()) == {2}
    assert len(downloads) == total and set(downloads.values()) == {1}
    assert sorted(t.attempts for t in done) == [3] * total  # submit, poll, poll: three claims each
    assert money(engine, user)[0] == 100 - total
    assert {t.id for t in done} == set(ids)


# ---------------------------------------------------------------- webhooks


def hook_state(engine, task_id) -> tuple[str | None, int]:
    task = task_row(engine, task_id)
    return task.webhook_status, task.webhook_attempts


async def drive_webhook(worker, engine, task_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while hook_state(engine, task_id)[0] not in ("delivered", "failed"):
        assert time.monotonic() < deadline, hook_state(engine, task_id)
        await worker.run_once()
        await asyncio.sleep(0.01)
    return hook_state(engine, task_id)


@BOTH
async def test_webhook_is_signed_and_a_failing_receiver_is_retried(client, engine, caller, upstream, worker):
    user, key = caller
    upstream.scenario.hook_failures = 2
    task_id = await submit(client, key, webhook_url=f"{upstream.url}/hook")
    await drive(worker, engine, task_id)
    assert await drive_webhook(worker, engine, task_id) == ("delivered", 3)
    assert upstream.hook_attempts == 3
    secret = (await client.get("/api/v1/images/webhook-secret", headers=auth(key))).json()["secret"]
    for body, headers in upstream.hooks:
        assert signing.verify_webhook(secret, body, headers["x-platform-signature"])
        assert not signing.verify_webhook(secret, body + b" ", headers["x-platform-signature"])
        assert headers["x-platform-event-id"] == task_id
    payload = orjson.loads(upstream.hooks[-1][0])
    assert (payload["task_id"], payload["status"], payload["model"]) == (task_id, "succeeded", MODEL)
    assert payload["data"][0]["url"].startswith(f"/api/v1/files/{task_id}/0.png?expires=")
    image = await client.get(payload["data"][0]["url"])
    assert image.status_code == 200 and image.content == upstream.png


async def test_webhook_gives_up_after_its_attempts(app, client, database_url, tmp_path, engine, caller, upstream):
    user, key = caller
    settings = pipeline_settings(
        database_url, tmp_path, upstream, webhook_max_attempts=2, run_pipeline_in_process=False
    )
    runtime = app.state.runtime
    worker = PipelineWorker(settings, http=runtime.http, providers=runtime.image_providers)
    upstream.scenario.hook_failures = 99
    upstream.scenario.final = "failed"
    task_id = await submit(client, key, webhook_url=f"{upstream.url}/hook")
    await drive(worker, engine, task_id)
    assert await drive_webhook(worker, engine, task_id) == ("failed", 2)
    assert upstream.hook_attempts == 2
    payload = orjson.loads(upstream.hooks[0][0])
    assert (payload["status"], payload["data"], payload["error"]["code"]) == ("failed", [], "provider_error")


async def test_webhook_to_a_private_address_is_refused_by_default(
    app, client, database_url, tmp_path, engine, caller, upstream
):
    user, key = caller
    settings = pipeline_settings(
        database_url,
        tmp_path,
        upstream,
        webhook_allow_private=False,
        webhook_max_attempts=1,
        run_pipeline_in_process=False,
    )
    runtime = app.state.runtime
    worker = PipelineWorker(settings, http=runtime.http, providers=runtime.image_providers)
    task_id = await submit(client, key, webhook_url=f"{upstream.url}/hook")
    await drive(worker, engine, task_id)
    assert await drive_webhook(worker, engine, task_id) == ("failed", 1)
    assert upstream.hook_attempts == 0


async def test_no_webhook_without_a_url(client, engine, caller, worker):
    _, key = caller
    task_id = await submit(client, key)
    await drive(worker, engine, task_id)
    assert hook_state(engine, task_id) == (None, 0)


# ---------------------------------------------------------------- OpenRouter images (synchronous)


def add_openrouter_model(engine, model_id, upstream_id=None):
    with session_for(engine) as s:
        registry.set_model(
            s,
            actor="test",
            model_id=model_id,
            category="image",
            provider="openrouter",
            credit_cost=5 * MICRO,
            upstream_id=upstream_id or model_id,
        )


async def test_openrouter_image_api_runs_inside_the_task(client, engine, caller, upstream, worker, settings):
    user, key = caller
    add_openrouter_model(engine, "google/gemini-image")
    response = await client.post(
        "/api/v1/images/generations",
        headers=auth(key),
        json={"model": "google/gemini-image", "prompt": "a fox", "n": 2, "size": "1024x768"},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["provider_task_id"], body["data"]) == ("pending", None, [])
    assert upstream.count("or_images") == 0  # nothing upstream until the worker runs it
    assert money(engine, user)[0] == 90
    task = await drive(worker, engine, body["task_id"])
    assert task.status == "succeeded"
    assert task.outputs == [f"{task.id}/0.png", f"{task.id}/1.png"]
    sent = next(b for b in upstream.bodies if b["path"] == "/or/images")
    assert sent == {
        "path": "/or/images",
        "model": "google/gemini-image",
        "prompt": "a fox",
        "n": 2,
        "aspect_ratio": "4:3",
        "resolution": "1K",
        "output_format": "png",
    }
    assert (settings.media_dir / task.id / "1.png").read_bytes() == upstream.png


async def test_openrouter_models_outside_the_image_api_go_through_chat(client, engine, caller, upstream, worker):
    user, key = caller
    add_openrouter_model(engine, "legacy/painter")
    task_id = (
        await client.post(
            "/api/v1/images/generations", headers=auth(key), json={"model": "legacy/painter", "prompt": "a fox", "n": 2}
        )
    ).json()["task_id"]
    task = await drive(worker, engine, task_id)
    assert (task.status, task.provider_task_id) == ("succeeded", "gen-123")
    assert upstream.count("or_chat") == 2 and upstream.count("or_images") == 0
    sent = next(b for b in upstream.bodies if b["path"] == "/or/chat/completions")
    assert sent["modalities"] == ["image", "text"]
    assert sent["messages"] == [{"role": "user", "content": "a fox"}]
