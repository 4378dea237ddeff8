"""Open holds: the durable record of a model call between its debit and its settlement.

    open      written by store.credits.debit_for_request in the debit's transaction
    renew     the serving process extends its holds' lease (and notes each call's upstream
              id once known) in one statement per beat, never per request
    close     deleted in the transaction that settles, refunds or hands the call to the
              reconciler; a flat-priced call's with its request-log row
    orphans   a hold whose lease ran out belongs to a process that died mid-call: it goes to
              the reconciler's list as interrupted (settled from the upstream's generation
              record when its upstream id was noted, else refunded) with a log row, once

So no hold lives forever, and nothing is settled twice: the reconciler's rules apply
(store.settlements), and whoever deletes the record settles the call: a process whose hold
was reaped while it still served the call (stalled past its lease) leaves it to the reconciler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from .db import rowcount
from .models import Hold, PendingSettlement, RequestLog, table_of, utcnow

HOLDS = table_of(Hold)
_LOGS = table_of(RequestLog)
_INSERT = sa.insert(HOLDS)
_DELETE = sa.delete(HOLDS).where(HOLDS.c.ref == sa.bindparam("hold_ref"))
# (A bind parameter may not take a column's name in an UPDATE: SQLAlchemy reserves those for SET.)
_RENEW = (
    sa.update(HOLDS)
    .where(HOLDS.c.owner == sa.bindparam("hold_owner"))
    .values(lease_until=sa.bindparam("lease_until", type_=HOLDS.c.lease_until.type))
)
_NOTE = sa.update(HOLDS).where(HOLDS.c.ref == sa.bindparam("hold_ref")).values(upstream_id=sa.bindparam("upstream"))
INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class HoldInfo:
    """What a hold's record says of its call, beyond the ledger row: enough to write the
    call's log row if its process dies, and whose lease it is."""

    owner: str  # the serving process's instance id
    lease_s: float
    endpoint: str
    stream: bool
    api_key_id: int | None = None
    key_prefix: str | None = None


def open_hold(conn: sa.Connection, *, ref: str, user_id: int, model: str | None, amount: int, info: HoldInfo) -> None:
    """The hold's record, in the caller's (the debit's) transaction."""
    now = utcnow()
    conn.execute(
        _INSERT,
        {
            "ref": ref,
            "user_id": user_id,
            "api_key_id": info.api_key_id,
            "key_prefix": info.key_prefix,
            "model": (model or "")[:200],
            "endpoint": info.endpoint[:200],
            "stream": info.stream,
            "amount": amount,
            "owner": info.owner,
            "upstream_id": None,
            "lease_until": now + timedelta(seconds=info.lease_s),
            "created_at": now,
        },
    )


def close_hold(conn: sa.Connection, *, ref: str) -> bool:
    """Drop `ref`'s record, in the caller's transaction; False when there was none (never
    opened, closed already, or taken by `reap_orphans`)."""
    return bool(rowcount(conn.execute(_DELETE, {"hold_ref": ref})))


def close_holds(conn: sa.Connection, *, refs: list[str]) -> None:
    if refs:
        conn.execute(sa.delete(HOLDS).where(HOLDS.c.ref.in_(refs)))


def renew(session: Session, *, owner: str, lease_s: float, upstream_ids: dict[str, str]) -> None:
    """Extend every hold of `owner` and note the upstream ids learnt since the last beat."""
    conn = session.connection()
    conn.execute(_RENEW, {"hold_owner": owner, "lease_until": utcnow() + timedelta(seconds=lease_s)})
    if upstream_ids:
        conn.execute(_NOTE, [{"hold_ref": ref, "upstream": upstream[:200]} for ref, upstream in upstream_ids.items()])
    session.commit()


def reap_orphans(session: Session, *, deadline_s: float, limit: int = 100) -> int:
    """Hand every hold whose lease ran out to the reconciler as interrupted, with a log row
    for its call (unless one was written), each in one transaction. Returns how many."""
    now = utcnow()
    rows = session.execute(sa.select(HOLDS).where(HOLDS.c.lease_until < now).limit(limit)).mappings().all()
    session.rollback()
    reaped = 0
    for row in rows:
        conn = session.connection()
        # The lease condition again: a process that was only slow may have renewed it since.
        taken = rowcount(conn.execute(sa.delete(HOLDS).where(HOLDS.c.ref == row["ref"], HOLDS.c.lease_until < now)))
        if not taken:
            session.rollback()
            continue
        conn.execute(sa.insert(table_of(PendingSettlement)), _pending(row, now=now, deadline_s=deadline_s))
        logged = conn.execute(sa.select(_LOGS.c.id).where(_LOGS.c.request_id == row["ref"])).first()
        if logged is None:
            conn.execute(sa.insert(_LOGS), _log_row(row))
        session.commit()
        reaped += 1
    return reaped


def _pending(row: Any, *, now: datetime, deadline_s: float) -> dict[str, Any]:
    created = row["created_at"] if row["created_at"].tzinfo else row["created_at"].replace(tzinfo=now.tzinfo)
    return {
        "ref": row["ref"],
        "user_id": row["user_id"],
        "model": row["model"],
        "upstream_id": row["upstream_id"],
        "estimate": 0,
        "interrupted": True,
        "attempts": 0,
        "next_at": now,
        # Without an upstream id there is no record to wait for: refunded on the first pass.
        "deadline_at": created + timedelta(seconds=deadline_s) if row["upstream_id"] else now,
        "created_at": now,
    }


def _log_row(row: Any) -> dict[str, Any]:
    return {
        "request_id": row["ref"],
        "user_id": row["user_id"],
        "api_key_id": row["api_key_id"],
        "key_prefix": row["key_prefix"],
        "method": "POST",
        "endpoint": row["endpoint"],
        "model": row["model"] or None,
        "status": 500,
        "error_code": INTERRUPTED,
        "latency_ms": 0,
        "credit_cost": row["amount"],
        "stream": row["stream"],
        "upstream_id": row["upstream_id"],
        "created_at": row["created_at"],
    }


def open_count(session: Session) -> int:
    count = session.execute(sa.select(sa.func.count()).select_from(HOLDS)).scalar_one()
    session.rollback()
    return count
