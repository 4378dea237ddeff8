"""The operator's margin: per model and UTC day, what was charged against what the upstream
reported it cost (`python -m store margin`, the dashboard's Margin page).

Read from the request logs: each row carries the final charge (micro-credits) and, where
the upstream reported one, its USD cost (micro-USD). Margin = credits charged − upstream
USD × CREDITS_PER_USD, in credits; rows without a reported cost count as costing 0 and
are counted apart (`unpriced`) so the reader knows how much of the margin is unproven.
An image task's end row (method "TASK") carries minus its refund: it lowers the charge
of its day without counting as a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, col

from .db import reads
from .models import RequestLog, utcnow
from .money import MICRO, ceil_micro

MAX_DAYS = 3660
TASK_METHOD = "TASK"  # as store.usage.TASK_METHOD


@dataclass(frozen=True, slots=True)
class MarginRow:
    day: date
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    charged: int  # micro-credits
    upstream_usd: int  # micro-USD
    unpriced: int  # requests without a reported upstream cost
    margin: int  # micro-credits

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _utc_day(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", column))
    return sa.func.date(column)  # SQLite keeps UTC wall-clock text


@reads
def margin_by_model_day(
    session: Session, *, credits_per_usd: Decimal, days: int = 30, now: datetime | None = None
) -> list[MarginRow]:
    """The last `days` UTC days, today included: newest day first, then by model.

    Counted: model calls that succeeded (a refused or failed call was charged nothing)
    and image tasks' refunds.
    """
    today = (now or utcnow()).astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)
    day = _utc_day(session, col(RequestLog.created_at)).label("day")
    is_request = sa.and_(col(RequestLog.method) != TASK_METHOD, col(RequestLog.status) < 400)
    query = (
        sa.select(
            day,
            col(RequestLog.model),
            sa.func.count().filter(is_request),
            sa.func.coalesce(sa.func.sum(col(RequestLog.prompt_tokens)).filter(is_request), 0),
            sa.func.coalesce(sa.func.sum(col(RequestLog.completion_tokens)).filter(is_request), 0),
            sa.func.coalesce(sa.func.sum(col(RequestLog.credit_cost)), 0),
            sa.func.coalesce(sa.func.sum(col(RequestLog.upstream_cost)).filter(is_request), 0),
            sa.func.count().filter(is_request, col(RequestLog.upstream_cost).is_(None)),
        )
        .where(
            col(RequestLog.created_at) >= since,
            col(RequestLog.model).is_not(None),
            sa.or_(is_request, sa.and_(col(RequestLog.method) == TASK_METHOD, col(RequestLog.credit_cost) != 0)),
        )
        .group_by(day, col(RequestLog.model))
        .order_by(day.desc(), col(RequestLog.model))
    )
    rows = []
    for when, model, requests, prompt, completion, charged, usd, unpriced in session.execute(query):
        cost = ceil_micro(Decimal(int(usd)) * credits_per_usd)
        rows.append(
            MarginRow(
                day=when if isinstance(when, date) else date.fromisoformat(str(when)),
                model=model,
                requests=int(requests),
                prompt_tokens=int(prompt),
                completion_tokens=int(completion),
                charged=int(charged),
                upstream_usd=int(usd),
                unpriced=int(unpriced),
                margin=int(charged) - cost,
            )
        )
    session.rollback()
    return rows


def usd_text(micro_usd: int) -> str:
    """`1_234_567` micro-USD -> `"1.234567"`, always 6 places (a cost in dollars, to the micro-dollar)."""
    sign = "-" if micro_usd < 0 else ""
    whole, fraction = divmod(abs(micro_usd), MICRO)
    return f"{sign}{whole}.{fraction:06d}"
