"""store.tasks: charged creation, idempotency, claims with tokens, exactly-once refunds."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from store import credits, signing, tasks
from store.db import session_for
from store.errors import Conflict, InsufficientCredits
from store.models import ImageTask, LedgerEntry, RequestLog, utcnow
from store.money import MICRO

from ..conftest import TEST_SECRET
from ..factories import make_user

MODEL = "google/nano-banana-pro"
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def create(session, user, *, n=1, cost=10 * MICRO, key=None, prompt="a robot", **extra):
    return tasks.create_task(
        session,
        user_id=user.id,
        model=MODEL,
        provider="replicate",
        upstream_id=MODEL,
        prompt=prompt,
        size="1024x1024",
        n=n,
        unit_cost=cost,
        timeout_s=60,
        idempotency_key=key,
        **extra,
    )


def ledger(session, user):
    rows = session.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id))
    return [(r.kind, r.amount, r.ref) for r in rows]


def test_create_charges_cost_times_n_with_the_task_id_as_ref(session, engine):
    user = make_user(engine, credits=100)
    task, created = create(session, user, n=3)
    assert created
    assert (task.status, task.credit_cost, task.n, task.attempts) == ("pending", 30 * MICRO, 3, 0)
    assert credits.balance(session, user_id=user.id) == 70 * MICRO
    assert ledger(session, user)[-1] == ("charge", -30 * MICRO, task.id)


def test_short_balance_creates_nothing(session, engine):
    user = make_user(engine, credits=25)
    with pytest.raises(InsufficientCredits):
        create(session, user, n=3)
    assert session.exec(select(ImageTask)).all() == []
    assert credits.balance(session, user_id=user.id) == 25 * MICRO


def test_free_model_creates_a_task_without_a_ledger_row(session, engine):
    user = make_user(engine, credits=0)
    task, created = create(session, user, cost=0)
    assert created and session.get(ImageTask, task.id) is not None
    assert ledger(session, user) == []


def test_idempotency_key_returns_the_same_task_and_charges_once(session, engine):
    user = make_user(engine, credits=100)
    first, created = create(session, user, key="k")
    again, created_again = create(session, user, key="k")
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert credits.balance(session, user_id=user.id) == 90 * MICRO
    with pytest.raises(Conflict):
        create(session, user, key="k", prompt="another")


@BOTH
def test_concurrent_creations_with_one_key_charge_once(engine, database_url):
    user = make_user(engine, credits=100)
    results, barrier = [], threading.Barrier(8)

    def attempt():
        with session_for(engine) as s:
            barrier.wait()
            results.append(create(s, user, key="same"))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({task.id for task, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 90 * MICRO


def test_a_held_task_is_not_claimed_until_the_hold_ends(session, engine):
    user = make_user(engine, credits=100)
    task, _ = create(session, user, hold_s=60)
    assert tasks.claim_due_tasks(session, limit=10, lease_s=30) == []
    assert tasks.mark_submitted(session, task_id=task.id, provider_task_id="p1", poll_in_s=0)
    [claimed] = tasks.claim_due_tasks(session, limit=10, lease_s=30)
    assert (claimed.id, claimed.status, claimed.attempts, claimed.provider_task_id) == (task.id, "running", 1, "p1")
    assert tasks.claim_due_tasks(session, limit=10, lease_s=30) == []  # claimed: nobody else gets it


def test_release_makes_the_task_due_again_later_and_old_tokens_are_fenced_off(session, engine):
    user = make_user(engine, credits=100)
    task, _ = create(session, user)
    [claimed] = tasks.claim_due_tasks(session, limit=1, lease_s=30)
    assert tasks.release_task(
        session, task_id=task.id, token=claimed.attempts, next_poll_at=utcnow() + timedelta(seconds=60)
    )
    assert tasks.claim_due_tasks(session, limit=1, lease_s=30) == []
    assert tasks.claim_due_tasks(session, limit=1, lease_s=30, now=utcnow() + timedelta(seconds=61))[0].attempts == 2
    assert not tasks.release_task(session, task_id=task.id, token=1, next_poll_at=utcnow())
    assert tasks.complete_task(session, task_id=task.id, token=1, outputs=["x/0.png"]) is None


def test_an_expired_lease_lets_another_worker_claim(session, engine):
    user = make_user(engine, credits=100)
    create(session, user)
    assert len(tasks.claim_due_tasks(session, limit=1, lease_s=0.05)) == 1
    time.sleep(0.1)
    assert tasks.claim_due_tasks(session, limit=1, lease_s=30)[0].attempts == 2


def test_complete_stores_outputs_logs_the_end_and_schedules_the_webhook(session, engine):
    user = make_user(engine, credits=100)
    task, _ = create(session, user, webhook_url="https://example.com/hook", api_key_id=None)
    [claimed] = tasks.claim_due_tasks(session, limit=1, lease_s=30)
    done = tasks.complete_task(session, task_id=task.id, token=claimed.attempts, outputs=[f"{task.id}/0.png"])
    assert (done.status, done.outputs, done.webhook_status) == ("succeeded", [f"{task.id}/0.png"], "pending")
    assert done.finished_at is not None and done.claimed_until is None
    row = session.exec(select(RequestLog).where(RequestLog.task_id == task.id)).one()
    assert (row.method, row.status, row.credit_cost, row.user_id) == ("TASK", 200, 0, user.id)
    assert tasks.fail_task(session, task_id=task.id, reason="late") is False  # finished stays finished
    assert credits.balance(session, user_id=user.id) == 90 * MICRO


@BOTH
def test_failing_a_task_refunds_exactly_once_under_concurrency(engine, database_url):
    user = make_user(engine, credits=100)
    with session_for(engine) as s:
        task, _ = create(s, user)
    results, barrier = [], threading.Barrier(6)

    def attempt():
        with session_for(engine) as s:
            barrier.wait()
            results.append(tasks.fail_task(s, task_id=task.id, reason="boom"))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 100 * MICRO
        assert ledger(s, user)[1:] == [("charge", -10 * MICRO, task.id), ("refund", 10 * MICRO, task.id)]
        assert tasks.refund_failed_tasks(s) == 0
        end = s.exec(select(RequestLog).where(RequestLog.task_id == task.id)).one()
        assert (end.status, end.error_code, end.credit_cost) == (502, "provider_error", -10 * MICRO)


@BOTH
def test_concurrent_claims_never_hand_out_one_task_twice(engine, database_url):
    user = make_user(engine, credits=1000)
    with session_for(engine) as s:
        ids = {create(s, user, cost=1)[0].id for _ in range(40)}
    claimed: list[str] = []
    lock, barrier = threading.Lock(), threading.Barrier(5)

    def claimer():
        barrier.wait()
        while True:
            with session_for(engine) as s:
                got = tasks.claim_due_tasks(s, limit=3, lease_s=60)
            if not got:
                return
            with lock:
                claimed.extend(t.id for t in got)

    threads = [threading.Thread(target=claimer) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # each task exactly once


def test_failed_submission_frees_the_idempotency_key_and_sends_nothing(session, engine):
    user = make_user(engine, credits=100)
    task, _ = create(session, user, key="k", webhook_url="https://example.com/hook", hold_s=60)
    assert tasks.fail_task(
        session, task_id=task.id, token=0, reason="HTTP 500", notify=False, forget_idempotency_key=True
    )
    failed = session.get(ImageTask, task.id)
    assert (failed.status, failed.idempotency_key, failed.webhook_status) == ("failed", None, None)
    assert session.exec(select(RequestLog)).all() == []
    retry, created = create(session, user, key="k")
    assert created and retry.id != task.id


def test_list_tasks_for_user_pages_newest_first_and_hides_others(session, engine):
    user, other = make_user(engine, credits=100), make_user(engine, credits=100)
    mine = [create(session, user, cost=1)[0].id for _ in range(5)]
    create(session, other, cost=1)
    page1 = tasks.list_tasks_for_user(session, user_id=user.id, limit=3)
    page2 = tasks.list_tasks_for_user(session, user_id=user.id, limit=3, before_id=page1[-1].id)
    assert [t.id for t in page1 + page2] == list(reversed(mine))
    assert tasks.list_tasks_for_user(session, user_id=other.id, before_id=mine[0]) == []
    assert tasks.get_task_for_user(session, task_id=mine[0], user_id=other.id) is None


def test_output_urls_are_signed_only_once_succeeded(session, engine):
    user = make_user(engine, credits=100)
    task, _ = create(session, user)
    assert tasks.output_urls(task, secret_key=TEST_SECRET, ttl_s=60) == []
    [claimed] = tasks.claim_due_tasks(session, limit=1, lease_s=30)
    done = tasks.complete_task(session, task_id=task.id, token=claimed.attempts, outputs=[f"{task.id}/0.png"])
    [url] = tasks.output_urls(done, secret_key=TEST_SECRET, ttl_s=60)
    path, query = url.removeprefix("/api/v1/files/").split("?")
    expires, sig = (part.split("=")[1] for part in query.split("&"))
    assert path == f"{task.id}/0.png" and signing.verify_media(TEST_SECRET, path, expires, sig)
    view = tasks.public_view(done, urls=[url])
    assert view == {
        "created": view["created"],
        "data": [{"url": url}],
        "task_id": task.id,
        "provider_task_id": None,
        "status": "succeeded",
        "model": MODEL,
    }


def test_webhooks_are_claimed_once_and_retried_until_given_up(session, engine):
    user = make_user(engine, credits=100)
    task, _ = create(session, user, webhook_url="https://example.com/hook")
    tasks.fail_task(session, task_id=task.id, reason="boom")
    [hook] = tasks.claim_due_webhooks(session, limit=5, lease_s=30)
    assert hook.webhook_attempts == 1
    assert tasks.claim_due_webhooks(session, limit=5, lease_s=30) == []
    tasks.webhook_result(session, task_id=task.id, delivered=False, retry_at=utcnow())
    assert tasks.claim_due_webhooks(session, limit=5, lease_s=30)[0].webhook_attempts == 2
    tasks.webhook_result(session, task_id=task.id, delivered=False, retry_at=None)
    assert session.get(ImageTask, task.id).webhook_status == "failed"
    assert tasks.claim_due_webhooks(session, limit=5, lease_s=30) == []
