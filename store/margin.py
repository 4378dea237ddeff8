"""The operator's margin: per model and day, what was charged against what the upstream
reported it cost (`python -m store margin`, the dashboard's Margin page).

Read from the request logs: each row carries the final charge (micro-credits) and, where
the upstream reported one, its USD cost (micro-USD). Margin = credits charged − upstream
USD × CREDITS_PER_USD, in credits; rows without a reported cost count as costing 0 and
are counted apart (`unpriced`) so the reader knows how much of the margin is unproven.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session

from .models import RequestLog, utcnow
from .money import MICRO, ceil_micro


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


def margin_by_model_day(session: Session, *, credits_per_usd: Decimal, days: int = 30,
                        now: datetime | None = None) -> list[MarginRow]:
    """Newest day first, then by model; only successful model calls count."""
    since = (now or utcnow()) - timedelta(days=days)
    day = sa.func.date(RequestLog.created_at).label("day")
    query = (
        sa.select(
            day,
            RequestLog.model,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(RequestLog.prompt_tokens), 0),
            sa.func.coalesce(sa.func.sum(RequestLog.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(RequestLog.credit_cost), 0),
            sa.func.coalesce(sa.func.sum(RequestLog.upstream_cost), 0),
            sa.func.count().filter(RequestLog.upstream_cost.is_(None)),
        )
        .where(RequestLog.created_at >= since, RequestLog.status < 400, RequestLog.model.is_not(None),
               RequestLog.credit_cost > 0)
        .group_by(day, RequestLog.model)
        .order_by(day.desc(), RequestLog.model)
    )
    rows = []
    for when, model, requests, prompt, completion, charged, usd, unpriced in session.execute(query):
        cost = ceil_micro(Decimal(int(usd)) * credits_per_usd)
        rows.append(MarginRow(day=when if isinstance(when, date) else date.fromisoformat(str(when)),
                              model=model, requests=requests, prompt_tokens=int(prompt),
                              completion_tokens=int(completion), charged=int(charged), upstream_usd=int(usd),
                              unpriced=unpriced, margin=int(charged) - cost))
    session.rollback()
    return rows


def usd_text(micro_usd: int) -> str:
    """`1_234_567` micro-USD -> `"1.234567"`."""
    whole, fraction = divmod(micro_usd, MICRO)
    return f"{whole}.{fraction:06d}"
