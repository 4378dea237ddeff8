"""What the dashboard reads: usage per day, the request-log page, and its CSV export.

The log page is keyset-paginated on the log id (newest first): a page is
`… WHERE user_id = ? [AND filters] AND id < :last_id_seen ORDER BY id DESC LIMIT n`,
which the `(user_id, id)` index answers without counting or skipping rows, however
deep the page. Filters narrow it; see `bench/logs_query.py` for timings on 1M rows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .db import session_for
from .errors import InvalidInput
from .models import ApiKey, LedgerEntry, RequestLog, utcnow

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
    def parse(cls, *, key: str = "", model: str = "", status: str = "", since: str = "",
              until: str = "") -> "LogFilter":
        """Build a filter from form or query-string text; empty or "all" means no filter."""
        def blank(text: str | None) -> bool:
            return not text or text.strip() in ("", "all")

        api_key_id = None
        if not blank(key):
            if not key.strip().isdigit():
                raise InvalidInput("choose a key from the list")
            api_key_id = int(key)
        status = None if blank(status) else status.strip()
        if status is not None and status not in STATUS_CLASSES and not (
            status.isdigit() and 100 <= int(status) <= 599
        ):
            raise InvalidInput("status must be 2xx, 4xx, 5xx, errors or a code from 100 to 599")
        first, last = _day(since, "from"), _day(until, "to")
        if first and last and first > last:
            raise InvalidInput("the 'from' date is after the 'to' date")
        model = None if blank(model) else model.strip()[:200]
        return cls(api_key_id=api_key_id, model=model, status=status, since=first, until=last)

    def as_query(self) -> dict[str, str]:
        """The filter as query-string values (what `parse` reads back)."""
        values = {"key": str(self.api_key_id or ""), "model": self.model or "", "status": self.status or "",
                  "since": self.since.isoformat() if self.since else "",
                  "until": self.until.isoformat() if self.until else ""}
        return {k: v for k, v in values.items() if v}


def _day(text: str | None, name: str) -> date | None:
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"the '{name}' date must look like 2025-01-31") from None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _filtered(query, user_id: int, filters: LogFilter):
    query = query.where(RequestLog.user_id == user_id)
    if filters.api_key_id is not None:
        query = query.where(RequestLog.api_key_id == filters.api_key_id)
    if filters.model is not None:
        query = query.where(RequestLog.model == filters.model)
    if filters.status is not None:
        if filters.status in STATUS_CLASSES:
            low, high = STATUS_CLASSES[filters.status]
            query = query.where(RequestLog.status >= low, RequestLog.status < high)
        else:
            query = query.where(RequestLog.status == int(filters.status))
    if filters.since is not None:
        query = query.where(RequestLog.created_at >= _start_of(filters.since))
    if filters.until is not None:
        query = query.where(RequestLog.created_at < _start_of(filters.until + timedelta(days=1)))
    return query


def logs_page(
    session: Session, *, user_id: int, filters: LogFilter = LogFilter(), limit: int = 50,
    before_id: int | None = None,
) -> list[RequestLog]:
    """One page of the user's request logs, newest first.

    Pass the last id of a page as `before_id` for the next one.
    """
    query = _filtered(select(RequestLog), user_id, filters)
    if before_id is not None:
        query = query.where(RequestLog.id < before_id)
    rows = list(session.exec(query.order_by(RequestLog.id.desc()).limit(max(1, min(limit, MAX_PAGE)))))
    session.rollback()
    return rows


def log_entry(session: Session, *, user_id: int, log_id: int) -> RequestLog | None:
    """One log row, only if it is this user's."""
    row = session.get(RequestLog, log_id)
    return row if row is not None and row.user_id == user_id else None


def key_names(session: Session, *, user_id: int) -> dict[int, str]:
    rows = session.execute(sa.select(ApiKey.id, ApiKey.name).where(ApiKey.user_id == user_id))
    return {key_id: name for key_id, name in rows}


# ---------------------------------------------------------------- usage per day


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    requests: int
    credits: int  # spent: charges less refunds


def _utc_day(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", column))
    return sa.func.date(column)  # SQLite keeps UTC wall-clock text


def daily_usage(session: Session, *, user_id: int, days: int = 14, today: date | None = None) -> list[DayUsage]:
    """Requests and credits spent on each of the last `days` UTC days, oldest first, zeros included."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    start = _start_of(first)

    day = _utc_day(session, RequestLog.created_at)
    requests = dict(session.execute(
        sa.select(day, sa.func.count())
        .where(RequestLog.user_id == user_id, RequestLog.created_at >= start)
        .group_by(day)
    ).all())
    day = _utc_day(session, LedgerEntry.created_at)
    spent = dict(session.execute(
        sa.select(day, -sa.func.sum(LedgerEntry.amount))
        .where(LedgerEntry.user_id == user_id, LedgerEntry.created_at >= start,
               LedgerEntry.kind.in_(("charge", "refund")))
        .group_by(day)
    ).all())
    session.rollback()
    requests = {str(k): v for k, v in requests.items()}
    spent = {str(k): v for k, v in spent.items()}
    out = []
    for offset in range(days):
        d = first + timedelta(days=offset)
        out.append(DayUsage(d, int(requests.get(d.isoformat(), 0)), int(spent.get(d.isoformat(), 0) or 0)))
    return out


# ---------------------------------------------------------------- CSV export

CSV_COLUMNS = ("time", "request_id", "key", "key_prefix", "method", "endpoint", "model", "status",
               "error_code", "latency_ms", "credits", "stream", "prompt_tokens", "completion_tokens",
               "total_tokens", "upstream_id", "task_id")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds") + "Z"
    text = str(value)
    # A cell starting with one of these runs as a formula in a spreadsheet.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


def csv_row(row: RequestLog, key_name: str | None) -> list[str]:
    values = (row.created_at, row.request_id, key_name, row.key_prefix, row.method, row.endpoint,
              row.model, row.status, row.error_code, row.latency_ms, row.credit_cost,
              "true" if row.stream else "false", row.prompt_tokens, row.completion_tokens,
              row.total_tokens, row.upstream_id, row.task_id)
    return [_cell(v) for v in values]


def export_csv(engine: Engine, *, user_id: int, filters: LogFilter, batch: int = 2000) -> Iterator[str]:
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
            query = _filtered(select(RequestLog), user_id, filters)
            if before_id is not None:
                query = query.where(RequestLog.id < before_id)
            rows = list(session.exec(query.order_by(RequestLog.id.desc()).limit(batch)))
        for row in rows:
            writer.writerow(csv_row(row, names.get(row.api_key_id)))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < batch:
            return
        before_id = rows[-1].id
