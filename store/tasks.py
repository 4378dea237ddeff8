"""Image tasks: every rule of their life, from the charged submission to the refund.

    pending ──claim──▶ running ──▶ succeeded
       │                  │
       └──────────────────┴──▶ failed (refunded once)

A task is created together with its charge (one transaction: the task row and the
ledger's conditional debit, with the task id as the ledger ref, so the refund of a
failed task can happen only once). Workers *claim* due tasks for a lease; every claim
bumps `attempts`, which is the claim's token: a worker whose lease ran out and was
taken over can no longer move the task, because its token no longer matches. On
PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so many workers share the queue without
waiting on each other; SQLite runs the claim as one atomic write statement.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import credits, signing
from .db import reads
from .errors import Conflict
from .models import ApiKey, ImageTask, LedgerEntry, RequestLog, utcnow

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
ACTIVE = (PENDING, RUNNING)
WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED = "pending", "delivered", "failed"
MAX_ERROR_LEN = 500


def new_task_id() -> str:
    return "img_" + uuid.uuid4().hex


def aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; make them comparable with `utcnow()`."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _in(seconds: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=seconds)


# ---------------------------------------------------------------- submission


def create_task(
    session: Session,
    *,
    user_id: int,
    model: str,
    provider: str,
    upstream_id: str,
    prompt: str,
    size: str | None,
    n: int,
    unit_cost: int,
    timeout_s: float,
    hold_s: float = 0.0,
    api_key_id: int | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    webhook_url: str | None = None,
    alerts: bool = False,
) -> tuple[ImageTask, bool]:
    """Charge `unit_cost × n` and create the task, atomically. Returns (task, created).

    With an `idempotency_key` the user used before, returns that task and charges
    nothing (Conflict if it was for a different request). `hold_s` keeps workers off
    the task for that long, while the caller submits it upstream itself.
    Raises InsufficientCredits (and creates nothing) when the balance is short; with
    `api_key_id`, the key's refusals of store.credits.debit_for_request too (`alerts`
    as there).
    """
    if idempotency_key is not None:
        existing = _by_idempotency_key(session, user_id, idempotency_key)
        if existing is not None:
            return _same_request(existing, model, prompt, size, n), False
    now = utcnow()
    task = ImageTask(
        id=new_task_id(),
        user_id=user_id,
        api_key_id=api_key_id,
        request_id=request_id,
        model=model,
        provider=provider,
        upstream_id=upstream_id,
        prompt=prompt,
        size=size,
        n=n,
        credit_cost=unit_cost * n,
        status=PENDING,
        idempotency_key=idempotency_key,
        webhook_url=webhook_url,
        next_poll_at=now,
        claimed_until=_in(hold_s, now) if hold_s else None,
        deadline_at=_in(timeout_s, now),
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    try:
        session.flush()
    except IntegrityError:  # the same idempotency key, submitted concurrently: theirs won
        session.rollback()
        existing = _by_idempotency_key(session, user_id, idempotency_key or "")
        if existing is None:
            raise
        return _same_request(existing, model, prompt, size, n), False
    # The debit commits the task row with the ledger row, or rolls both back.
    credits.debit_for_request(
        session, user_id=user_id, cost=task.credit_cost, ref=task.id, model=model, key_id=api_key_id, alerts=alerts
    )
    session.commit()
    return task, True


def _by_idempotency_key(session: Session, user_id: int, key: str) -> ImageTask | None:
    task = session.exec(
        select(ImageTask).where(col(ImageTask.user_id) == user_id, col(ImageTask.idempotency_key) == key)
    ).first()
    if task is not None:
        session.expunge(task)  # keep its loaded values past the rollback that ends the read
    session.rollback()
    return task


def _same_request(task: ImageTask, model: str, prompt: str, size: str | None, n: int) -> ImageTask:
    if (task.model, task.prompt, task.size, task.n) != (model, prompt, size, n):
        raise Conflict("this Idempotency-Key was used for a different request")
    return task


def mark_submitted(
    session: Session, *, task_id: str, provider_task_id: str | None, poll_in_s: float, token: int = 0
) -> bool:
    """Record the provider's id and hand the task to the workers (first poll in `poll_in_s`)."""
    return (
        _update(
            session,
            task_id,
            token,
            provider_task_id=provider_task_id,
            claimed_until=None,
            next_poll_at=_in(poll_in_s),
        )
        is not None
    )


# ---------------------------------------------------------------- the workers' side


def _due(now: datetime):
    return sa.and_(
        col(ImageTask.status).in_(ACTIVE),
        col(ImageTask.next_poll_at) <= now,
        sa.or_(col(ImageTask.claimed_until).is_(None), col(ImageTask.claimed_until) < now),
    )


def _any(session: Session, condition) -> bool:
    """A read before the claiming write: an idle worker takes no write lock (SQLite has one)."""
    found = session.execute(sa.select(col(ImageTask.id)).where(condition).limit(1)).first() is not None
    session.rollback()
    return found


def claim_due_tasks(session: Session, *, limit: int, lease_s: float, now: datetime | None = None) -> list[ImageTask]:
    """Take up to `limit` due tasks for `lease_s` seconds; each comes back running.

    The returned task's `attempts` is the claim token the worker passes back.
    """
    now = now or utcnow()
    if not _any(session, _due(now)):
        return []
    candidates = select(col(ImageTask.id)).where(_due(now)).order_by(col(ImageTask.next_poll_at)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    claimed = (
        session.execute(
            sa.update(ImageTask)
            .where(col(ImageTask.id).in_(candidates.scalar_subquery()), _due(now))
            .values(
                status=RUNNING, claimed_until=_in(lease_s, now), attempts=col(ImageTask.attempts) + 1, updated_at=now
            )
            .returning(ImageTask)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        .scalars()
        .all()
    )
    session.commit()
    return sorted(claimed, key=lambda t: aware(t.next_poll_at))


def _update(session: Session, task_id: str, token: int | None, **values: Any) -> ImageTask | None:
    """Change an active task if `token` still holds its claim (None: whoever holds it)."""
    condition = sa.and_(col(ImageTask.id) == task_id, col(ImageTask.status).in_(ACTIVE))
    if token is not None:
        condition = sa.and_(condition, col(ImageTask.attempts) == token)
    task = (
        session.execute(
            sa.update(ImageTask)
            .where(condition)
            .values(updated_at=utcnow(), **values)
            .returning(ImageTask)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        .scalars()
        .first()
    )
    session.commit()
    return task


def record_provider_task(session: Session, *, task_id: str, token: int, provider_task_id: str | None) -> bool:
    return _update(session, task_id, token, provider_task_id=provider_task_id) is not None


def release_task(session: Session, *, task_id: str, token: int, next_poll_at: datetime) -> bool:
    """Give the claim back; the task is due again at `next_poll_at`."""
    return _update(session, task_id, token, claimed_until=None, next_poll_at=next_poll_at) is not None


def complete_task(session: Session, *, task_id: str, token: int, outputs: list[str]) -> ImageTask | None:
    """Mark the task succeeded with its stored files; None if the claim was lost."""
    return _finish(session, task_id, token, status=SUCCEEDED, outputs=outputs)


def fail_task(
    session: Session,
    *,
    task_id: str,
    reason: str,
    token: int | None = None,
    timed_out: bool = False,
    notify: bool = True,
    forget_idempotency_key: bool = False,
) -> bool:
    """Fail an active task and refund its charge. True if this call failed it.

    `notify=False` (a submission the caller saw fail) writes no completion log row and
    sends no webhook; `forget_idempotency_key` lets the caller retry with the same key.
    The refund runs after the failure commits; `refund_failed_tasks` repairs a crash in between.
    """
    extra: dict[str, Any] = {"idempotency_key": None} if forget_idempotency_key else {}
    task = _finish(
        session,
        task_id,
        token,
        status=FAILED,
        error=reason[:MAX_ERROR_LEN],
        timed_out=timed_out,
        notify=notify,
        **extra,
    )
    if task is None:
        return False
    credits.refund(session, ref=task.id, note=reason[:MAX_ERROR_LEN])
    return True


def _finish(
    session: Session,
    task_id: str,
    token: int | None,
    *,
    status: str,
    timed_out: bool = False,
    notify: bool = True,
    **values: Any,
) -> ImageTask | None:
    now = utcnow()
    condition = sa.and_(col(ImageTask.id) == task_id, col(ImageTask.status).in_(ACTIVE))
    if token is not None:
        condition = sa.and_(condition, col(ImageTask.attempts) == token)
    webhook = sa.case((col(ImageTask.webhook_url).is_not(None), WEBHOOK_PENDING), else_=None) if notify else None
    task = (
        session.execute(
            sa.update(ImageTask)
            .where(condition)
            .values(
                status=status,
                claimed_until=None,
                finished_at=now,
                updated_at=now,
                webhook_status=webhook,
                webhook_next_at=now if notify else None,
                **values,
            )
            .returning(ImageTask)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        .scalars()
        .first()
    )
    if task is None:
        session.rollback()
        return None
    if notify:
        session.execute(sa.insert(RequestLog).values(**_completion_log_row(session, task, now, timed_out)))
    session.commit()
    return task


def _completion_log_row(session: Session, task: ImageTask, now: datetime, timed_out: bool) -> dict[str, Any]:
    """The request-log row of a task's end. Its credit_cost is minus the refund, so the
    logs of one task sum to what it finally cost."""
    key = session.get(ApiKey, task.api_key_id) if task.api_key_id is not None else None
    failed = task.status == FAILED
    return {
        "request_id": f"{task.id}:end",
        "user_id": task.user_id,
        "api_key_id": task.api_key_id,
        "key_prefix": key.prefix if key else None,
        "method": "TASK",
        "endpoint": f"/api/v1/images/generations/{task.id}",
        "model": task.model,
        "status": (504 if timed_out else 502) if failed else 200,
        "error_code": "provider_error" if failed else None,
        "latency_ms": int((now - aware(task.created_at)).total_seconds() * 1000),
        "credit_cost": -task.credit_cost if failed else 0,
        "stream": False,
        "upstream_id": (task.provider_task_id or "")[:200] or None,
        "task_id": task.id,
        "created_at": now,
    }


def refund_failed_tasks(session: Session, *, limit: int = 100) -> int:
    """Refund failed tasks whose refund a crash interrupted. Returns how many."""
    charged = sa.exists().where(col(LedgerEntry.kind) == credits.CHARGE, col(LedgerEntry.ref) == col(ImageTask.id))
    refunded = sa.exists().where(col(LedgerEntry.kind) == credits.REFUND, col(LedgerEntry.ref) == col(ImageTask.id))
    ids = session.execute(
        sa.select(col(ImageTask.id), col(ImageTask.error))
        .where(col(ImageTask.status) == FAILED, col(ImageTask.credit_cost) > 0, charged, ~refunded)
        .limit(limit)
    ).all()
    session.rollback()
    return sum(credits.refund(session, ref=task_id, note=error) for task_id, error in ids)


# ---------------------------------------------------------------- webhooks


def claim_due_webhooks(session: Session, *, limit: int, lease_s: float, now: datetime | None = None) -> list[ImageTask]:
    """Take finished tasks whose webhook is due; the lease pushes `webhook_next_at` ahead."""
    now = now or utcnow()
    due = sa.and_(col(ImageTask.webhook_status) == WEBHOOK_PENDING, col(ImageTask.webhook_next_at) <= now)
    if not _any(session, due):
        return []
    candidates = select(col(ImageTask.id)).where(due).order_by(col(ImageTask.webhook_next_at)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    claimed = (
        session.execute(
            sa.update(ImageTask)
            .where(col(ImageTask.id).in_(candidates.scalar_subquery()), due)
            .values(webhook_next_at=_in(lease_s, now), webhook_attempts=col(ImageTask.webhook_attempts) + 1)
            .returning(ImageTask)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        .scalars()
        .all()
    )
    session.commit()
    return list(claimed)


def webhook_result(session: Session, *, task_id: str, delivered: bool, retry_at: datetime | None) -> None:
    """Record a delivery attempt: delivered, to be retried at `retry_at`, or given up (None)."""
    if delivered:
        values: dict[str, Any] = {"webhook_status": WEBHOOK_DELIVERED, "webhook_next_at": None}
    elif retry_at is not None:
        values = {"webhook_next_at": retry_at}
    else:
        values = {"webhook_status": WEBHOOK_FAILED, "webhook_next_at": None}
    session.execute(sa.update(ImageTask).where(col(ImageTask.id) == task_id).values(**values))
    session.commit()


# ---------------------------------------------------------------- reading


@reads
def get_task_for_user(session: Session, *, task_id: str, user_id: int) -> ImageTask | None:
    task = session.get(ImageTask, task_id)
    return task if task is not None and task.user_id == user_id else None


@reads
def get_task(session: Session, *, task_id: str) -> ImageTask | None:
    return session.get(ImageTask, task_id)


@reads
def list_tasks_for_user(
    session: Session, *, user_id: int, limit: int = 50, before_id: str | None = None
) -> list[ImageTask]:
    """The user's tasks, newest first; pass the last id seen as `before_id` for the next page."""
    query = select(ImageTask).where(col(ImageTask.user_id) == user_id)
    if before_id is not None:
        before = get_task_for_user(session, task_id=before_id, user_id=user_id)
        if before is None:
            return []
        query = query.where(
            sa.or_(
                col(ImageTask.created_at) < before.created_at,
                sa.and_(col(ImageTask.created_at) == before.created_at, col(ImageTask.id) < before.id),
            )
        )
    query = query.order_by(col(ImageTask.created_at).desc(), col(ImageTask.id).desc()).limit(limit)
    return list(session.exec(query))


def output_urls(task: ImageTask, *, secret_key: str, ttl_s: int, base: str = "") -> list[str]:
    """Signed URLs of a succeeded task's files (thumbnails in the dashboard use these too)."""
    if task.status != SUCCEEDED:
        return []
    return [signing.signed_media_url(secret_key, path, ttl_s=ttl_s, base=base) for path in task.outputs]


def public_view(task: ImageTask, *, urls: list[str]) -> dict[str, Any]:
    """The task as the API shows it (the seed's shape), with `urls` once it succeeded."""
    view: dict[str, Any] = {
        "created": int(aware(task.created_at).timestamp()),
        "data": [{"url": url} for url in urls],
        "task_id": task.id,
        "provider_task_id": task.provider_task_id,
        "status": task.status,
        "model": task.model,
    }
    if task.status == FAILED:
        view["error"] = {
            "message": task.error or "Image generation failed",
            "type": "provider_error",
            "code": "provider_error",
        }
    return view
