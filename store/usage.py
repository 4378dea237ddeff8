"""What the dashboard reads: usage per day, the request-log page, its CSV export, and the
credit ledger as lines a person reads (one per request, grant or refund).

The log page is newest first and keyset-paginated on (created_at, id): a page is
`… WHERE user_id = ? [AND filters] AND (created_at, id) < (:last seen) ORDER BY
created_at DESC, id DESC LIMIT n`, which an index on (user_id[, model | api_key_id | status],
created_at, id) answers by reading only that page's rows, however deep the page and
whatever the date range (migrations 0003, 0004). No count is ever taken. Timings on 1M rows:
`bench/logs_query.py`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from .credits import CHARGE, GRANT, REFUND, SETTLE
from .db import reads, session_for
from .errors import InvalidInput
from .models import ApiKey, LedgerEntry, ModelEntry, PendingSettlement, RequestLog, table_of, utcnow
from .money import format_credits

TASK_METHOD = "TASK"  # the log row of an image task's end (see store.tasks), not a request
MAX_ID = 2**63 - 1  # ids are BIGINTs: a larger number matches nothing and PostgreSQL refuses it
STATUS_CLASSES = {"2xx": (200, 300), "4xx": (400, 500), "5xx": (500, 600), "errors": (400, 600)}
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What the Logs page narrows to. Dates are UTC days, both ends included."""

    api_key_id: int | None = None
    model: str | None = None
    status: str | None = None  # "2xx" | "4xx" | "5xx" | "errors" | an exact code such as "429"
    since: date | None = None
    until: date | None = None

    @classmethod
    def parse(cls, *, key: str = "", model: str = "", status: str = "", since: str = "", until: str = "") -> LogFilter:
        """Build a filter from form or query-string text; empty or "all" means no filter."""

        def blank(text: str | None) -> bool:
            return not text or text.strip() in ("", "all")

        api_key_id = None
        if not blank(key):
            if not _ascii_digits(key) or int(key) > MAX_ID:
                raise InvalidInput("choose a key from the list")
            api_key_id = int(key)
        status_filter = None if blank(status) else status.strip()
        if (
            status_filter is not None
            and status_filter not in STATUS_CLASSES
            and not (_ascii_digits(status_filter) and 100 <= int(status_filter) <= 599)
        ):
            raise InvalidInput("status must be 2xx, 4xx, 5xx, errors or a code from 100 to 599")
        first, last = _day(since, "from"), _day(until, "to")
        if first and last and first > last:
            raise InvalidInput("the 'from' date is after the 'to' date")
        model_filter = None if blank(model) else model.strip()[:200]
        return cls(api_key_id=api_key_id, model=model_filter, status=status_filter, since=first, until=last)

    def as_query(self) -> dict[str, str]:
        """The filter as query-string values (what `parse` reads back)."""
        values = {
            "key": str(self.api_key_id or ""),
            "model": self.model or "",
            "status": self.status or "",
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {k: v for k, v in values.items() if v}


def _ascii_digits(text: str) -> bool:
    """Only 0-9: `str.isdigit` also accepts "²" and "٣", which `int` then refuses or reads."""
    text = text.strip()
    return text.isascii() and text.isdigit()


def _day(text: str | None, name: str) -> date | None:
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"the '{name}' date must look like 2025-01-31") from None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(query, user_id: int, filters: LogFilter):
    query = query.where(col(RequestLog.user_id) == user_id)
    if filters.api_key_id is not None:
        query = query.where(col(RequestLog.api_key_id) == filters.api_key_id)
    if filters.model is not None:
        query = query.where(col(RequestLog.model) == filters.model)
    if filters.status is not None:
        if filters.status in STATUS_CLASSES:
            low, high = STATUS_CLASSES[filters.status]
            # `+ 0` keeps a class off the status index: a class matches many rows, which the
            # time-ordered index finds a page of at once, where the status index would make
            # the database sort them all first (seconds for "2xx" on 1M rows).
            query = query.where(col(RequestLog.status) + 0 >= low, col(RequestLog.status) + 0 < high)
        else:
            query = query.where(col(RequestLog.status) == int(filters.status))
    if filters.since is not None:
        query = query.where(col(RequestLog.created_at) >= _start_of(filters.since))
    if filters.until is not None:
        query = query.where(col(RequestLog.created_at) < _start_of(filters.until + timedelta(days=1)))
    return query


NEWEST_FIRST = (col(RequestLog.created_at).desc(), col(RequestLog.id).desc())


def _after(query, session: Session, user_id: int, before_id: int | None):
    """Rows that come after row `before_id` (newest first); none if it is not the user's."""
    if before_id is None:
        return query
    cursor = session.execute(
        sa.select(col(RequestLog.created_at)).where(col(RequestLog.id) == before_id, col(RequestLog.user_id) == user_id)
    ).scalar_one_or_none()
    if cursor is None:
        return query.where(sa.false())
    return query.where(
        sa.tuple_(col(RequestLog.created_at), col(RequestLog.id))
        < sa.tuple_(sa.literal(cursor, table_of(RequestLog).c.created_at.type), sa.literal(before_id))
    )


@reads
def logs_page(
    session: Session,
    *,
    user_id: int,
    filters: LogFilter = LogFilter(),
    limit: int = 50,
    before_id: int | None = None,
) -> list[RequestLog]:
    """One page of the user's request logs, newest first.

    Pass the last id of a page as `before_id` for the next one.
    """
    query = _after(_filtered(select(RequestLog), user_id, filters), session, user_id, before_id)
    rows = list(session.exec(query.order_by(*NEWEST_FIRST).limit(max(1, min(limit, MAX_PAGE)))))
    _end_read(session)
    return rows


def _end_read(session: Session) -> None:
    """End the read's transaction, keeping the objects read as they are: a rollback alone
    expires them, and each would be read again, one query apiece, when next looked at."""
    session.expunge_all()
    session.rollback()


@reads
def log_entry(session: Session, *, user_id: int, log_id: int) -> RequestLog | None:
    """One log row, only if it is this user's."""
    row = session.get(RequestLog, log_id)
    return row if row is not None and row.user_id == user_id else None


@reads
def key_names(session: Session, *, user_id: int) -> dict[int, str]:
    rows = session.execute(sa.select(col(ApiKey.id), col(ApiKey.name)).where(col(ApiKey.user_id) == user_id))
    return {key_id: name for key_id, name in rows}


# ---------------------------------------------------------------- usage per day


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    requests: int
    credits: int  # spent: charges less refunds


def utc_day(session: Session, column):
    """The UTC date of a timestamp column, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", column))
    return sa.func.date(column)  # SQLite keeps UTC wall-clock text


@reads
def daily_usage(session: Session, *, user_id: int, days: int = 14, today: date | None = None) -> list[DayUsage]:
    """Requests and credits spent on each of the last `days` UTC days, oldest first, zeros included.

    Both come from the request logs: a log row's credit_cost is what that request was
    finally charged (0 when refunded), and an image task's end row carries minus its
    refund, so the sum per day is what the ledger's charges less refunds say.
    Those end rows (method "TASK") are not requests and are not counted as such.
    """
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    day = utc_day(session, col(RequestLog.created_at))
    rows = session.execute(
        sa.select(
            day,
            sa.func.count(),
            sa.func.sum(sa.case((col(RequestLog.method) == TASK_METHOD, 1), else_=0)),
            sa.func.coalesce(sa.func.sum(col(RequestLog.credit_cost)), 0),
        )
        .where(col(RequestLog.user_id) == user_id, col(RequestLog.created_at) >= _start_of(first))
        .group_by(day)
    ).all()
    session.rollback()
    found = {str(d): (int(count) - int(tasks or 0), int(spent)) for d, count, tasks, spent in rows}
    out = []
    for offset in range(days):
        d = first + timedelta(days=offset)
        requests, spent = found.get(d.isoformat(), (0, 0))
        out.append(DayUsage(d, requests, spent))
    return out


# ---------------------------------------------------------------- CSV export

CSV_COLUMNS = (
    "time",
    "request_id",
    "key",
    "key_prefix",
    "method",
    "endpoint",
    "model",
    "status",
    "error_code",
    "latency_ms",
    "credits",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "upstream_id",
    "task_id",
)


_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds") + "Z"
    text = value if isinstance(value, str) else str(value)
    # A cell starting with one of these runs as a formula in a spreadsheet; a plain
    # number such as a refund's -5 does not, and stays a number.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _PLAIN_NUMBER.fullmatch(text):
        text = "'" + text
    return text


_CSV_SOURCE = (
    col(RequestLog.created_at),
    col(RequestLog.request_id),
    col(RequestLog.api_key_id),
    col(RequestLog.key_prefix),
    col(RequestLog.method),
    col(RequestLog.endpoint),
    col(RequestLog.model),
    col(RequestLog.status),
    col(RequestLog.error_code),
    col(RequestLog.latency_ms),
    col(RequestLog.credit_cost),
    col(RequestLog.stream),
    col(RequestLog.prompt_tokens),
    col(RequestLog.completion_tokens),
    col(RequestLog.total_tokens),
    col(RequestLog.upstream_id),
    col(RequestLog.task_id),
    col(RequestLog.id),
)


def export_csv(engine: Engine, *, user_id: int, filters: LogFilter, batch: int = 5000) -> Iterator[str]:
    """The filtered logs as CSV text, header first, newest first, in chunks.

    Walks the same keyset as the page, one short transaction per batch, so a big
    export neither holds a transaction open nor loads everything into memory.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    with session_for(engine) as session:
        names = key_names(session, user_id=user_id)
    before_id = None
    while True:
        with session_for(engine) as session:
            query = _after(_filtered(sa.select(*_CSV_SOURCE), user_id, filters), session, user_id, before_id)
            rows = session.execute(query.order_by(*NEWEST_FIRST).limit(batch)).all()
        for at, request_id, key_id, *middle, stream, p_tokens, c_tokens, t_tokens, upstream, task, _id in rows:
            *middle, charged = middle
            values = (
                at,
                request_id,
                names.get(key_id),
                *middle,
                format_credits(charged),
                "true" if stream else "false",
                p_tokens,
                c_tokens,
                t_tokens,
                upstream,
                task,
            )
            writer.writerow([_cell(v) for v in values])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < batch:
            return
        before_id = rows[-1].id


# ---------------------------------------------------------------- the ledger as lines


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One line of the Credits page. A request's hold (`charge` row), its settlement
    (`settle` row, when the usage made it cheaper) and its refund (`refund` row, when it
    failed) are one line; a grant is a line of its own. The lines' amounts add up to the
    balance, as the rows do."""

    id: int  # the id of the line's first row: the keyset cursor
    created_at: datetime
    kind: str  # "grant" | "request"
    amount: int  # micro-credits this line moved: a request's final charge (negative; 0 when refunded), a grant
    model: str | None = None
    category: str | None = None  # the model's registry category ("chat", "image"), when it is known
    held: int = 0  # a request's hold, micro-credits
    settled: bool = False  # a settle row gave part of the hold back
    settling: bool = False  # the usage is not known yet: the reconciler will settle it
    refunded: bool = False  # it failed: everything it was charged came back
    note: str | None = None  # a grant's; a refunded request's refund note
    ref: str | None = None


@reads
def ledger_lines(session: Session, *, user_id: int, limit: int = 50, before_id: int | None = None) -> list[LedgerLine]:
    """The user's ledger as lines, newest first; pass the last line's id as `before_id` for
    the next page. A page reads only its own rows: the lines' first rows by id (a hold or
    a grant: a settlement and a refund always follow the hold of their request), then the
    settlements, refunds and models of those lines."""
    query = select(LedgerEntry).where(
        col(LedgerEntry.user_id) == user_id, col(LedgerEntry.kind).not_in((SETTLE, REFUND))
    )
    if before_id is not None:
        query = query.where(col(LedgerEntry.id) < before_id)
    firsts = list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(max(1, min(limit, MAX_PAGE)))))
    refs = [e.ref for e in firsts if e.kind == CHARGE and e.ref]
    settled: dict[str, int] = {}
    refunds: dict[str, tuple[int, str | None]] = {}
    pending: set[str] = set()
    if refs:
        for kind, ref, amount, note in session.execute(
            sa.select(
                col(LedgerEntry.kind), col(LedgerEntry.ref), col(LedgerEntry.amount), col(LedgerEntry.note)
            ).where(
                col(LedgerEntry.kind).in_((SETTLE, REFUND)),
                col(LedgerEntry.ref).in_(refs),
                col(LedgerEntry.user_id) == user_id,
            )
        ):
            if kind == SETTLE:
                settled[ref] = amount
            else:
                refunds[ref] = (amount, note)
        pending = set(
            session.execute(
                sa.select(col(PendingSettlement.ref)).where(
                    col(PendingSettlement.ref).in_(refs), col(PendingSettlement.user_id) == user_id
                )
            ).scalars()
        )
    models = {e.model for e in firsts if e.model}
    categories = (
        dict(
            session.execute(
                sa.select(col(ModelEntry.id), col(ModelEntry.category)).where(col(ModelEntry.id).in_(models))
            ).all()
        )
        if models
        else {}
    )
    _end_read(session)
    lines = []
    for e in firsts:
        common: dict[str, Any] = dict(
            id=e.id, created_at=e.created_at, model=e.model, category=categories.get(e.model), ref=e.ref
        )
        if e.kind == CHARGE:
            back = settled.get(e.ref, 0) if e.ref else 0
            refund, refund_note = refunds.get(e.ref, (0, None)) if e.ref else (0, None)
            lines.append(
                LedgerLine(
                    kind="request",
                    amount=e.amount + back + refund,
                    held=-e.amount,
                    settled=e.ref in settled,
                    settling=e.ref in pending,
                    refunded=e.ref in refunds,
                    note=refund_note if e.ref in refunds else e.note,
                    **common,
                )
            )
        else:  # a grant (a kind this version does not know is shown as it is)
            lines.append(LedgerLine(kind=e.kind, amount=e.amount, note=e.note, **common))
    return lines


# ---------------------------------------------------------------- totals (GET /api/v1/key)


@dataclass(frozen=True, slots=True)
class CreditTotals:
    """A user's credits from one read of the ledger, micro-credits. `used` is the net of
    every request's rows (charges, settlements, refunds); `balance` the ledger sum (equal
    to the user's balance); `used + balance` is what was ever granted."""

    used: int
    balance: int


@reads
def credit_totals(session: Session, *, user_id: int) -> CreditTotals:
    """What the user has spent and holds, in one statement (one snapshot)."""
    kind, amount = col(LedgerEntry.kind), col(LedgerEntry.amount)
    spent = sa.func.coalesce(sa.func.sum(sa.case((kind != GRANT, amount), else_=0)), 0)
    total = sa.func.coalesce(sa.func.sum(amount), 0)
    used, balance = session.execute(sa.select(spent, total).where(col(LedgerEntry.user_id) == user_id)).one()
    session.rollback()
    return CreditTotals(used=-int(used), balance=int(balance))
