"""Requests held but never settled, because their usage never arrived (the client left
mid-stream, or the upstream sent none): kept here until the reconciler settles them from
the upstream's own generation record, or, once the deadline passes, from the estimate of
what was relayed. Calls interrupted by their process's death (store.holds) wait here too,
and are refunded at the deadline when no record turns up. The settle row, the request-log
update and the row's removal commit together, and the ledger settles a request at most
once: nothing is settled twice, across restarts and across workers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from . import credits, holds
from .db import reads, rowcount
from .models import LedgerEntry, PendingSettlement, RequestLog, utcnow
from .pricing import Usage


def add_pending(
    session: Session,
    *,
    ref: str,
    user_id: int,
    model: str,
    upstream_id: str | None,
    estimate: int,
    first_in_s: float,
    deadline_s: float,
) -> None:
    now = utcnow()
    session.add(
        PendingSettlement(
            ref=ref,
            user_id=user_id,
            model=model,
            upstream_id=upstream_id,
            estimate=estimate,
            next_at=now + timedelta(seconds=first_in_s),
            deadline_at=now + timedelta(seconds=deadline_s),
            created_at=now,
        )
    )
    holds.close_hold(session.connection(), ref=ref)
    session.commit()


def claim_due(session: Session, *, limit: int, lease_s: float) -> list[PendingSettlement]:
    """Up to `limit` rows whose turn has come, each claimed for `lease_s` (so another
    reconciler skips them meanwhile; a crashed one's claims simply come due again)."""
    now = utcnow()
    rows = list(
        session.exec(
            select(PendingSettlement)
            .where(col(PendingSettlement.next_at) <= now)
            .order_by(col(PendingSettlement.next_at))
            .limit(limit)
        )
    )
    session.rollback()
    claimed = []
    for row in rows:
        won = rowcount(
            session.execute(
                sa.update(PendingSettlement)
                .where(col(PendingSettlement.ref) == row.ref, col(PendingSettlement.attempts) == row.attempts)
                .values(attempts=row.attempts + 1, next_at=now + timedelta(seconds=lease_s))
            )
        )
        session.commit()
        if won:
            row.attempts += 1
            claimed.append(row)
    return claimed


def retry_later(session: Session, *, ref: str, at: datetime) -> None:
    session.execute(sa.update(PendingSettlement).where(col(PendingSettlement.ref) == ref).values(next_at=at))
    session.commit()


def settle_pending(
    session: Session, *, ref: str, cost: int | None, usage: Usage | None = None, note: str | None = None
) -> int | None:
    """Settle `ref` at `cost` (None: its whole hold; capped at its hold), note its usage on its log row and drop
    it from the pending list, in one transaction. Returns the charge that stands, or None
    when it was settled (or refunded) already; the row goes either way."""
    final = credits.settle(session, ref=ref, cost=cost, note=note, commit=False)
    session.execute(sa.delete(PendingSettlement).where(col(PendingSettlement.ref) == ref))
    values: dict = {"credit_cost": _net_charge(ref)}
    if final is not None and usage is not None:
        values.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            upstream_cost=usage.cost_usd,
        )
    session.execute(sa.update(RequestLog).where(col(RequestLog.request_id) == ref).values(**values))
    session.commit()
    return final


def refund_pending(session: Session, *, ref: str, note: str) -> bool:
    """Refund `ref` (an interrupted call nothing is known of) and drop it from the list.
    The refund happens at most once (store.credits.refund), so a pass that stopped between
    the two steps only drops the row next time (its log row says 0 either way)."""
    refunded = credits.refund(session, ref=ref, note=note, unless_settled=True)
    session.execute(sa.delete(PendingSettlement).where(col(PendingSettlement.ref) == ref))
    session.execute(sa.update(RequestLog).where(col(RequestLog.request_id) == ref).values(credit_cost=_net_charge(ref)))
    session.commit()
    return refunded


def _net_charge(ref: str) -> sa.ScalarSelect:
    """What the ledger says `ref` cost in the end, for its log row: read from the ledger, not
    from this step, as the step that refunded or settled it may have been another (the
    serving process after its hold was reaped, or this pass's first half before a crash)."""
    return (
        sa.select(-sa.func.coalesce(sa.func.sum(col(LedgerEntry.amount)), 0))
        .where(col(LedgerEntry.ref) == ref)
        .scalar_subquery()
    )


@reads
def pending_count(session: Session) -> int:
    count = session.execute(sa.select(sa.func.count()).select_from(PendingSettlement)).scalar_one()
    session.rollback()  # end the read: the next count sees what was committed since
    return count
