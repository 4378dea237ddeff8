"""What an admin reads across users: usage by user, key, model and day, the users list
(search, sort, pages) and one user's account.

Usage comes from the request logs, as the Overview's per-user figures do
(store.usage.daily_usage): a row's `credit_cost` is what the request was finally charged
(0 when refunded), and an image task's end row (method "TASK") carries minus its refund,
so it counts toward spend but is not a request. Requests without a valid key (no user)
are sampled, not logged one by one, and are left out. Every range is a range of
`created_at`, which `ix_request_logs_created_at` answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from .db import reads
from .errors import InvalidInput, NotFound
from .models import ApiKey, RequestLog, User, utcnow
from .usage import TASK_METHOD, utc_day

GROUPS = ("day", "user", "key", "model")
MAX_DAYS = 366
USER_SORTS = ("email", "balance", "created")
USERS_PAGE_SIZE = 25
MAX_SEARCH = 254


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One day, user, key or model over the period."""

    label: str  # "2025-03-14", an email, "name · sk_live_abcd…1234 (email)", a model id
    ref: int | None  # the user's or key's id (None for a day or a model)
    requests: int
    errors: int  # requests answered 4xx or 5xx
    spend: int  # micro-credits: charges less refunds
    latency_total_ms: int  # summed over the requests

    @property
    def mean_latency_ms(self) -> int:
        return round(self.latency_total_ms / self.requests) if self.requests else 0


def _measures():
    is_request = col(RequestLog.method) != TASK_METHOD
    return (
        sa.func.count().filter(is_request),
        sa.func.count().filter(is_request, col(RequestLog.status) >= 400),
        sa.func.coalesce(sa.func.sum(col(RequestLog.credit_cost)), 0),
        sa.func.coalesce(sa.func.sum(col(RequestLog.latency_ms)).filter(is_request), 0),
    )


@reads
def usage_by(
    session: Session, *, by: str, days: int = 30, limit: int = 10, today: date | None = None
) -> list[UsageRow]:
    """Usage of the last `days` UTC days (today included) grouped `by` "day" (every day,
    oldest first, zeros included), or "user", "key" or "model" (the `limit` biggest
    spenders, then the busiest)."""
    if by not in GROUPS:
        raise InvalidInput(f"usage is grouped by one of {', '.join(GROUPS)}")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be from 1 to {MAX_DAYS}")
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    in_period = (col(RequestLog.created_at) >= since, col(RequestLog.user_id).is_not(None))
    measures = _measures()
    if by == "day":
        day = utc_day(session, col(RequestLog.created_at))
        found = {
            str(d): (int(n), int(e), int(s), int(lat))
            for d, n, e, s, lat in session.execute(sa.select(day, *measures).where(*in_period).group_by(day))
        }
        session.rollback()
        out = []
        for offset in range(days):
            d = (first + timedelta(days=offset)).isoformat()
            out.append(UsageRow(d, None, *found.get(d, (0, 0, 0, 0))))
        return out
    if by == "model":
        query = (
            sa.select(col(RequestLog.model), *measures)
            .where(*in_period, col(RequestLog.model).is_not(None))
            .group_by(col(RequestLog.model))
        )
        rows = [
            UsageRow(str(m), None, int(n), int(e), int(s), int(lat)) for m, n, e, s, lat in _top(session, query, limit)
        ]
    elif by == "user":
        query = (
            sa.select(col(User.id), col(User.email), *measures)
            .join(User, col(User.id) == col(RequestLog.user_id))
            .where(*in_period)
            .group_by(col(User.id), col(User.email))
        )
        rows = [
            UsageRow(email, uid, int(n), int(e), int(s), int(lat))
            for uid, email, n, e, s, lat in _top(session, query, limit)
        ]
    else:
        query = (
            sa.select(
                col(ApiKey.id), col(ApiKey.name), col(ApiKey.prefix), col(ApiKey.last4), col(User.email), *measures
            )
            .join(ApiKey, col(ApiKey.id) == col(RequestLog.api_key_id))
            .join(User, col(User.id) == col(ApiKey.user_id))
            .where(*in_period)
            .group_by(col(ApiKey.id), col(ApiKey.name), col(ApiKey.prefix), col(ApiKey.last4), col(User.email))
        )
        rows = [
            UsageRow(f"{name} · {prefix}…{last4} ({email})", kid, int(n), int(e), int(s), int(lat))
            for kid, name, prefix, last4, email, n, e, s, lat in _top(session, query, limit)
        ]
    return rows


@reads
def usage_for_user(session: Session, *, user_id: int, days: int = 30, today: date | None = None) -> UsageRow:
    """One user's usage of the last `days` UTC days, today included, in one row."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be from 1 to {MAX_DAYS}")
    today = today or utcnow().date()
    since = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)
    n, e, s, lat = session.execute(
        sa.select(*_measures()).where(col(RequestLog.user_id) == user_id, col(RequestLog.created_at) >= since)
    ).one()
    session.rollback()
    return UsageRow(str(user_id), user_id, int(n), int(e), int(s), int(lat))


def _top(session: Session, query, limit: int) -> list:
    """The `limit` biggest groups: most spend first, then most requests, then by the first
    column (an id or a model id: a stable order)."""
    spend = sa.func.coalesce(sa.func.sum(col(RequestLog.credit_cost)), 0)
    requests = sa.func.count().filter(col(RequestLog.method) != TASK_METHOD)
    ordered = query.order_by(spend.desc(), requests.desc(), *query.selected_columns[:1])
    rows = list(session.execute(ordered.limit(max(1, min(limit, 100)))))
    session.rollback()
    return rows


# ---------------------------------------------------------------- the users list


@dataclass(frozen=True, slots=True)
class UsersPage:
    users: list[User]
    total: int  # users matching the search
    page: int  # 1-based, within 1..pages
    pages: int


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@reads
def users_page(
    session: Session,
    *,
    search: str = "",
    sort: str = "created",
    descending: bool = False,
    page: int = 1,
    page_size: int = USERS_PAGE_SIZE,
) -> UsersPage:
    """One page of users whose email contains `search` (any case), sorted by email,
    balance or creation (ties by id). A page past the last is the last."""
    if sort not in USER_SORTS:
        raise InvalidInput(f"sort by one of {', '.join(USER_SORTS)}")
    search = (search or "").strip().lower()
    if len(search) > MAX_SEARCH:
        raise InvalidInput(f"a search is at most {MAX_SEARCH} characters")
    page_size = max(1, min(page_size, 200))
    where = []
    if search:
        # Emails are stored lower-cased (store.users.normalize_email).
        where.append(col(User.email).like(f"%{_escape_like(search)}%", escape="\\"))
    total = session.execute(sa.select(sa.func.count()).select_from(User).where(*where)).scalar_one()
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    key = {"email": col(User.email), "balance": col(User.balance), "created": col(User.created_at)}[sort]
    order = (key.desc(), col(User.id).desc()) if descending else (key.asc(), col(User.id).asc())
    found = list(
        session.exec(select(User).where(*where).order_by(*order).offset((page - 1) * page_size).limit(page_size))
    )
    session.expunge_all()  # as read: the rollback that ends the read would expire them
    session.rollback()
    return UsersPage(found, int(total), page, pages)


@reads
def user_account(session: Session, *, user_id: int) -> User:
    """One user, for the admin's page of that user."""
    user = session.get(User, user_id)
    session.expunge_all()
    session.rollback()
    if user is None:
        raise NotFound("no such user")
    return user
