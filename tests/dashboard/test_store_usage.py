"""The Logs page query, its filters and keyset paging, the CSV export, usage per day, and
the ledger as the Credits page's lines."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from store import credits, logs, usage
from store.db import session_for
from store.errors import InvalidInput
from store.money import parse_credits

from ..factories import make_key, make_user

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def log(user_id, n, *, key=1, model="openai/gpt-5", status=200, at=T0, cost="3", **extra) -> dict:
    """A request-log row; `cost` in credits as a person writes them (`"0.046"`)."""
    row = {name: None for name in logs.LOG_FIELDS}
    row.update(
        request_id=f"req-{user_id}-{n}",
        user_id=user_id,
        api_key_id=key,
        key_prefix="sk_live_abcd",
        method="POST",
        endpoint="/api/v1/chat/completions",
        model=model,
        status=status,
        error_code=None if status < 400 else "provider_error",
        latency_ms=12,
        credit_cost=parse_credits(str(cost)),
        stream=False,
        created_at=at,
    )
    row.update(extra)
    return row


def write(session, rows):
    logs.write_request_logs(session, rows)


@both_databases
def test_pages_are_newest_first_and_keyset_paged_without_gaps_or_repeats(session, engine):
    user, other = make_user(engine), make_user(engine)
    write(
        session,
        [log(user.id, i, at=T0 + timedelta(minutes=i)) for i in range(7)] + [log(other.id, i) for i in range(3)],
    )
    first = usage.logs_page(session, user_id=user.id, limit=3)
    assert [r.request_id for r in first] == [f"req-{user.id}-{i}" for i in (6, 5, 4)]
    seen, before = [], None
    while page := usage.logs_page(session, user_id=user.id, limit=3, before_id=before):
        seen += [r.request_id for r in page]
        before = page[-1].id
    assert seen == [f"req-{user.id}-{i}" for i in range(6, -1, -1)]


@both_databases
def test_filters_by_key_model_status_and_days(session, engine):
    user = make_user(engine)
    day1, day2 = T0, T0 + timedelta(days=1)
    write(
        session,
        [
            log(user.id, 1, key=1, model="a", status=200, at=day1),
            log(user.id, 2, key=2, model="a", status=402, at=day1),
            log(user.id, 3, key=2, model="b", status=502, at=day2),
            log(user.id, 4, key=1, model="b", status=200, at=day2 + timedelta(hours=11, minutes=59)),
        ],
    )

    def ids(**text) -> list[int]:
        rows = usage.logs_page(session, user_id=user.id, filters=usage.LogFilter.parse(**text))
        return sorted(int(r.request_id.rsplit("-", 1)[1]) for r in rows)

    assert ids() == [1, 2, 3, 4]
    assert ids(key="2") == [2, 3]
    assert ids(model="b") == [3, 4]
    assert ids(status="2xx") == [1, 4]
    assert ids(status="errors") == [2, 3]
    assert ids(status="402") == [2]
    assert ids(since="2025-03-11") == [3, 4]
    assert ids(until="2025-03-10") == [1, 2]
    assert ids(since="2025-03-11", until="2025-03-11", key="1", model="b", status="200") == [4]
    assert ids(key="all", model="all", status="all") == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "text, message",
    [
        ({"key": "abc"}, "choose a key"),
        ({"status": "7xx"}, "status must be"),
        ({"status": "999"}, "status must be"),
        ({"since": "yesterday"}, "'from' date"),
        ({"since": "2025-03-12", "until": "2025-03-11"}, "after the 'to' date"),
    ],
)
def test_bad_filters_are_refused_with_a_message(text, message):
    with pytest.raises(InvalidInput, match=message):
        usage.LogFilter.parse(**text)


def test_filter_round_trips_through_its_query_string():
    f = usage.LogFilter.parse(key="3", model="m", status="5xx", since="2025-01-01", until="2025-01-31")
    assert usage.LogFilter.parse(**f.as_query()) == f
    assert usage.LogFilter.parse().as_query() == {}


@both_databases
def test_log_entry_is_only_the_owners(session, engine):
    user, other = make_user(engine), make_user(engine)
    write(session, [log(user.id, 1)])
    row_id = usage.logs_page(session, user_id=user.id)[0].id
    assert usage.log_entry(session, user_id=user.id, log_id=row_id).request_id == f"req-{user.id}-1"
    assert usage.log_entry(session, user_id=other.id, log_id=row_id) is None


@both_databases
def test_csv_export_has_the_filtered_rows_of_that_user_only_and_defuses_formulas(session, engine):
    user, other = make_user(engine), make_user(engine)
    write(
        session,
        [log(user.id, i, status=200 if i % 2 else 502) for i in range(5)]
        + [log(user.id, 9, model='=HYPERLINK("http://evil")'), log(other.id, 1)],
    )
    text = "".join(usage.export_csv(engine, user_id=user.id, filters=usage.LogFilter.parse(status="5xx"), batch=2))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["request_id"] for r in rows] == [f"req-{user.id}-{i}" for i in (4, 2, 0)]
    assert rows[0]["status"] == "502" and rows[0]["time"] == "2025-03-10 12:00:00Z"
    everything = list(
        csv.DictReader(io.StringIO("".join(usage.export_csv(engine, user_id=user.id, filters=usage.LogFilter()))))
    )
    assert len(everything) == 6 and not any(r["request_id"].startswith(f"req-{other.id}-") for r in everything)
    assert everything[0]["model"] == '\'=HYPERLINK("http://evil")'


@both_databases
def test_daily_usage_counts_requests_and_net_credits_per_utc_day(session, engine):
    user = make_user(engine, credits=100)
    today = date(2025, 3, 14)
    write(
        session,
        [
            log(user.id, 1, at=datetime(2025, 3, 14, 0, 5, tzinfo=UTC), cost="0.010044"),
            log(user.id, 6, at=datetime(2025, 3, 14, 9, 0, tzinfo=UTC), cost="2.5"),
            log(user.id, 2, at=datetime(2025, 3, 13, 23, 55, tzinfo=UTC), cost=10),
            log(user.id, 3, at=datetime(2025, 3, 13, 1, 0, tzinfo=UTC), cost=0),
            # an image task's end: refunded 10, not a request of its own
            log(user.id, 4, at=datetime(2025, 3, 13, 23, 58, tzinfo=UTC), cost=-10, method="TASK"),
            log(user.id, 5, at=datetime(2025, 2, 28, 23, 0, tzinfo=UTC), cost=7),
        ],
    )  # 14 days back
    days = usage.daily_usage(session, user_id=user.id, days=14, today=today)
    assert len(days) == 14 and days[0].day == date(2025, 3, 1) and days[-1].day == today
    assert [(d.day.day, d.requests, d.credits) for d in days if d.requests] == [(13, 2, 0), (14, 2, 2_510_044)]


@both_databases
def test_key_names(session, engine):
    user = make_user(engine)
    make_key(engine, user, name="laptop")
    assert list(usage.key_names(session, user_id=user.id).values()) == ["laptop"]


@both_databases
def test_a_negative_number_is_written_as_a_number_and_formula_text_is_defused(session, engine):
    user = make_user(engine)
    write(
        session,
        [
            log(user.id, 1, cost=-5, model="-2+3"),
            log(user.id, 2, cost="-0.000012", model="-1.5", at=T0 + timedelta(seconds=1)),
        ],
    )
    rows = list(
        csv.DictReader(io.StringIO("".join(usage.export_csv(engine, user_id=user.id, filters=usage.LogFilter()))))
    )
    assert [(r["credits"], r["model"]) for r in rows] == [("-0.000012", "-1.5"), ("-5", "'-2+3")]


@both_databases
def test_csv_export_has_each_requests_tokens_and_exact_charge(session, engine):
    user = make_user(engine)
    write(
        session,
        [
            log(user.id, 1, cost="0.010044", prompt_tokens=1000, completion_tokens=500, total_tokens=1500),
            log(user.id, 2, cost="3", at=T0 + timedelta(seconds=1)),
            log(user.id, 3, cost="0", status=502, at=T0 + timedelta(seconds=2)),
        ],
    )
    rows = list(
        csv.DictReader(io.StringIO("".join(usage.export_csv(engine, user_id=user.id, filters=usage.LogFilter()))))
    )
    assert [(r["credits"], r["prompt_tokens"], r["completion_tokens"], r["total_tokens"]) for r in rows] == [
        ("0", "", "", ""),
        ("3", "", "", ""),
        ("0.010044", "1000", "500", "1500"),
    ]
    assert "upstream_cost" not in rows[0]  # what the upstream charged the platform is not the user's


@pytest.mark.parametrize("key", [str(2**63), "99999999999999999999999", "²", "٣"])
def test_a_key_filter_out_of_range_or_not_ascii_digits_is_refused(key):
    with pytest.raises(InvalidInput, match="choose a key from the list"):
        usage.LogFilter.parse(key=key)


def test_the_largest_key_id_is_a_valid_filter():
    assert usage.LogFilter.parse(key=str(2**63 - 1)).api_key_id == 2**63 - 1


# ---------------------------------------------------------------- the ledger as lines


def _hold(session, user, ref, held, *, model="openai/gpt-5", settle_at=None, refund=None):
    """A request's hold of `held` credits, then (maybe) its settlement at `settle_at` or a refund."""
    credits.debit_for_request(session, user_id=user.id, cost=parse_credits(held), ref=ref, model=model)
    if settle_at is not None:
        credits.settle(session, ref=ref, cost=parse_credits(settle_at))
    if refund is not None:
        credits.refund(session, ref=ref, note=refund)


@both_databases
def test_ledger_lines_put_a_requests_hold_settlement_and_refund_on_one_line(session, engine):
    user = make_user(engine, credits=10)
    _hold(session, user, "req-a", "0.21", settle_at="0.010044")
    _hold(session, user, "req-b", "3")  # per_request: the hold is the charge, no settlement
    _hold(session, user, "task-c", "4", model="google/nano-banana-pro", refund="upstream failed")
    credits.grant(session, user_id=user.id, amount=parse_credits("2.5"), note="bonus")
    lines = usage.ledger_lines(session, user_id=user.id)
    assert [(ln.kind, ln.model, ln.category, ln.amount, ln.held, ln.settled, ln.refunded) for ln in lines] == [
        ("grant", None, None, 2_500_000, 0, False, False),
        ("request", "google/nano-banana-pro", "image", 0, 4_000_000, False, True),  # failed: one line, refunded
        ("request", "openai/gpt-5", "chat", -3_000_000, 3_000_000, False, False),
        ("request", "openai/gpt-5", "chat", -10_044, 210_000, True, False),
        ("grant", None, None, 10_000_000, 0, False, False),
    ]
    assert lines[1].note == "upstream failed" and lines[1].ref == "task-c" and lines[3].ref == "req-a"
    session.rollback()  # end the read: on SQLite a transaction holds the write lock (store.db)
    with session_for(engine) as s:  # the lines add up to the balance, as the rows do
        assert sum(ln.amount for ln in lines) == credits.balance(s, user_id=user.id) == 9_489_956


@both_databases
def test_ledger_lines_page_by_keyset_without_gaps_or_repeats(session, engine):
    user = make_user(engine, credits=100)
    for i in range(7):
        _hold(session, user, f"req-{i}", "1", settle_at="0.5")
    other = make_user(engine, credits=5)
    _hold(session, other, "theirs", "1", settle_at="0.25")
    seen, before = [], None
    while page := usage.ledger_lines(session, user_id=user.id, limit=3, before_id=before):
        assert len(page) <= 3
        seen += [ln.ref or ln.kind for ln in page]
        before = page[-1].id
    assert seen == [f"req-{i}" for i in range(6, -1, -1)] + ["grant"]
    assert [ln.amount for ln in usage.ledger_lines(session, user_id=user.id, limit=1)] == [-500_000]


@both_databases
def test_a_hold_waiting_for_its_usage_is_shown_as_settling(session, engine):
    from store import settlements

    user = make_user(engine, credits=1)
    _hold(session, user, "req-s", "0.21")
    settlements.add_pending(
        session,
        ref="req-s",
        user_id=user.id,
        model="openai/gpt-5",
        upstream_id="gen-1",
        estimate=10_000,
        first_in_s=5,
        deadline_s=60,
    )
    [line, _grant] = usage.ledger_lines(session, user_id=user.id)
    assert (line.kind, line.amount, line.held, line.settled, line.settling) == (
        "request",
        -210_000,
        210_000,
        False,
        True,
    )


@both_databases
def test_a_settled_request_refunded_later_is_one_line_that_moved_nothing(session, engine):
    user = make_user(engine, credits=5)
    _hold(session, user, "req-r", "0.21", settle_at="0.05", refund="stream broke off")
    [line, _grant] = usage.ledger_lines(session, user_id=user.id)
    assert (line.kind, line.amount, line.held, line.settled, line.refunded, line.note) == (
        "request",
        0,
        210_000,
        True,
        True,
        "stream broke off",
    )


@both_databases
def test_a_grant_note_over_the_limit_is_refused_not_cut(session, engine):
    user = make_user(engine, credits=5)
    with pytest.raises(InvalidInput, match="the note is 501 characters; at most 500 fit"):
        credits.grant(session, user_id=user.id, amount=1_000_000, note="n" * 501)
    credits.grant(session, user_id=user.id, amount=1_000_000, note="n" * 500)
    [line, _start] = usage.ledger_lines(session, user_id=user.id)
    assert line.note == "n" * 500
    session.rollback()
    assert credits.balance(session, user_id=user.id) == 6_000_000


@both_databases
def test_a_page_of_logs_is_read_in_one_query_and_stays_readable(session, engine):
    """The read ends its transaction without expiring the rows it read (each would cost a
    query of its own when looked at)."""
    user = make_user(engine)
    write(session, [log(user.id, i, at=T0 + timedelta(seconds=i)) for i in range(5)])
    statements: list[str] = []

    def seen(conn, cursor, statement, *rest):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        rows = usage.logs_page(session, user_id=user.id)
        assert [r.request_id for r in rows] == [f"req-{user.id}-{i}" for i in range(4, -1, -1)]
        assert [r.status for r in rows] == [200] * 5
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert len([q for q in statements if q.lstrip().upper().startswith("SELECT")]) == 1
