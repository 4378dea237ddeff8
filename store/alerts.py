"""The operator's alerts: queued in the transaction of what caused them, delivered by the
pipeline worker (api.worker) to `ALERT_WEBHOOK_URL`.

    low_balance        a debit took a user's balance below the threshold they set; once per
                       crossing (`users.low_balance_alerted`, re-armed by a top-up back over it)
    key_budget         a key's spend this period (holds included) reached 80 % or 100 % of its
                       budget, or its budget refused a call; once per level and period
    upstream_errors    provider errors piled up in one process (api.alerting)
    payment_shortfall  a Stripe refund or dispute could not take all its credits back

Only a crossing writes: the debit returns the new balance and the key's new spend, so the
caller sees the crossing without reading anything. The body of each delivery is the alert
as JSON (`{"id", "type", "created_at", ...}`, credits as decimal strings).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session, col, select

from . import budgets
from .db import reads, rowcount
from .models import Alert, ApiKey, User, table_of, utcnow
from .money import format_credits

LOW_BALANCE, KEY_BUDGET, UPSTREAM_ERRORS, PAYMENT_SHORTFALL = (
    "low_balance",
    "key_budget",
    "upstream_errors",
    "payment_shortfall",
)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

_ALERTS = table_of(Alert)
_USERS = table_of(User)
_KEYS = table_of(ApiKey)


def enqueue(conn: sa.Connection, *, kind: str, payload: dict[str, Any]) -> None:
    """Queue an alert in the caller's transaction."""
    now = utcnow()
    conn.execute(
        sa.insert(_ALERTS),
        {"kind": kind, "payload": payload, "status": PENDING, "attempts": 0, "next_at": now, "created_at": now},
    )


def balance_crossed(conn: sa.Connection, *, user_id: int, balance: int, threshold: int) -> bool:
    """The debit took the balance below `threshold`: mark it and queue the alert, once."""
    marked = conn.execute(
        sa.update(_USERS)
        .where(_USERS.c.id == user_id, _USERS.c.low_balance_alerted.is_(False))
        .values(low_balance_alerted=True)
        .returning(_USERS.c.email)
    ).first()
    if marked is None:
        return False
    enqueue(
        conn,
        kind=LOW_BALANCE,
        payload={
            "user_id": user_id,
            "email": marked[0],
            "balance": format_credits(balance),
            "threshold": format_credits(threshold),
        },
    )
    return True


def budget_crossed(conn: sa.Connection, *, key_id: int, level: int, spent: int, budget: int) -> bool:
    """A key's spend reached `level` percent of its budget: raise its level and queue the
    alert, unless this period reported that level already."""
    marked = conn.execute(
        sa.update(_KEYS)
        .where(_KEYS.c.id == key_id, _KEYS.c.budget_alert_level < level)
        .values(budget_alert_level=level)
        .returning(_KEYS.c.user_id, _KEYS.c.prefix, _KEYS.c.name, _KEYS.c.budget_period)
    ).first()
    if marked is None:
        return False
    user_id, prefix, name, period = marked
    email = conn.execute(sa.select(_USERS.c.email).where(_USERS.c.id == user_id)).scalar_one()
    enqueue(
        conn,
        kind=KEY_BUDGET,
        payload={
            "user_id": user_id,
            "email": email,
            "key_prefix": prefix,
            "key_name": name,
            "percent": level,
            "spent": format_credits(spent),
            "budget": format_credits(budget),
            "period": period,
        },
    )
    return True


def budget_refused(session: Session | sa.Connection, *, key_id: int) -> bool:
    """A key's budget refused a call: report it as the 100 % alert of this period, once.
    Its own transaction (the refused debit rolled back); writes only the first time."""
    now = utcnow()
    starts = budgets.period_starts(now)
    current = sa.case(*((_KEYS.c.budget_period == p, starts[p]) for p in budgets.PERIODS), else_=sa.null())
    conn = session.connection() if isinstance(session, Session) else session
    row = conn.execute(
        sa.select(_KEYS.c.budget, _KEYS.c.budget_spent).where(
            _KEYS.c.id == key_id,
            _KEYS.c.budget.is_not(None),
            _KEYS.c.budget_alert_level < 100,
            sa.or_(_KEYS.c.budget_period.is_(None), _KEYS.c.budget_period_start >= current),
        )
    ).first()
    if row is None:
        session.rollback()
        return False
    budget, spent = row
    reported = budget_crossed(conn, key_id=key_id, level=100, spent=spent, budget=budget)
    session.commit()
    return reported


def upstream_errors(session: Session, *, errors: int, window_s: float, process: str) -> None:
    """Queue the alert for a spike of provider errors seen by one process."""
    enqueue(
        session.connection(),
        kind=UPSTREAM_ERRORS,
        payload={"errors": errors, "window_s": window_s, "process": process},
    )
    session.commit()


# ---------------------------------------------------------------- delivery (api.worker)


def claim_due(session: Session, *, limit: int, lease_s: float) -> list[Alert]:
    """Up to `limit` pending alerts whose turn has come, each claimed for `lease_s` (the
    attempt count fences the claim, so two workers never send one alert at once)."""
    now = utcnow()
    rows = list(
        session.exec(
            select(Alert)
            .where(col(Alert.status) == PENDING, col(Alert.next_at) <= now)
            .order_by(col(Alert.next_at))
            .limit(limit)
        )
    )
    for row in rows:
        session.expunge(row)  # loaded as read, kept past the rollback that ends the read
    session.rollback()
    claimed = []
    for row in rows:
        # Core, not the ORM's update: that would also move the loaded row's count.
        won = rowcount(
            session.execute(
                sa.update(_ALERTS)
                .where(_ALERTS.c.id == row.id, _ALERTS.c.attempts == row.attempts, _ALERTS.c.status == PENDING)
                .values(attempts=row.attempts + 1, next_at=now + timedelta(seconds=lease_s))
            )
        )
        session.commit()
        if won:
            row.attempts += 1
            claimed.append(row)
    return claimed


def delivery_result(session: Session, *, alert_id: int, delivered: bool, retry_at: datetime | None) -> None:
    """After an attempt: delivered, due again at `retry_at`, or (no retry left) failed."""
    if delivered:
        values: dict[str, Any] = {"status": DELIVERED, "delivered_at": utcnow()}
    elif retry_at is not None:
        values = {"next_at": retry_at}
    else:
        values = {"status": FAILED}
    session.execute(sa.update(Alert).where(col(Alert.id) == alert_id).values(**values))
    session.commit()


def body(alert: Alert) -> bytes:
    created = budgets.aware(alert.created_at)
    return orjson.dumps({"id": alert.id, "type": alert.kind, "created_at": created.isoformat(), **alert.payload})


@reads
def recent(session: Session, *, limit: int = 50) -> list[Alert]:
    """The newest alerts, whatever became of them (an admin's view)."""
    return list(session.exec(select(Alert).order_by(col(Alert.id).desc()).limit(limit)))
