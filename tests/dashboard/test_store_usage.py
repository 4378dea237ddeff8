"""The Logs page query, its filters and keyset paging, the CSV export, and usage per day."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest

from store import logs, usage
from store.errors import InvalidInput

from ..factories import make_key, make_user

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)


def log(user_id, n, *, key=1, model="openai/gpt-5", status=200, at=T0, cost=3, **extra) -> dict:
    row = {name: None for name in logs.LOG_FIELDS}
    row.update(request_id=f"req-{user_id}-{n}", user_id=user_id, api_key_id=key, key_prefix="sk_live_abcd",
               method="POST", endpoint="/api/v1/chat/completions", model=model, status=status,
               error_code=None if status < 400 else "provider_error", latency_ms=12, credit_cost=cost,
               stream=False, created_at=at)
    row.update(extra)
    return row


def write(session, rows):
    logs.write_request_logs(session, rows)


@both_databases
def test_pages_are_newest_first_and_keyset_paged_without_gaps_or_repeats(session, engine):
    user, other = make_user(engine), make_user(engine)
    write(session, [log(user.id, i, at=T0 + timedelta(minutes=i)) for i in range(7)]
          + [log(other.id, i) for i in range(3)])
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
    write(session, [
        log(user.id, 1, key=1, model="a", status=200, at=day1),
        log(user.id, 2, key=2, model="a", status=402, at=day1),
        log(user.id, 3, key=2, model="b", status=502, at=day2),
        log(user.id, 4, key=1, model="b", status=200, at=day2 + timedelta(hours=11, minutes=59)),
    ])

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


@pytest.mark.parametrize("text, message", [
    ({"key": "abc"}, "choose a key"),
    ({"status": "7xx"}, "status must be"),
    ({"status": "999"}, "status must be"),
    ({"since": "yesterday"}, "'from' date"),
    ({"since": "2025-03-12", "until": "2025-03-11"}, "after the 'to' date"),
])
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
    write(session, [log(user.id, i, status=200 if i % 2 else 502) for i in range(5)]
          + [log(user.id, 9, model="=HYPERLINK(\"http://evil\")"), log(other.id, 1)])
    text = "".join(usage.export_csv(engine, user_id=user.id, filters=usage.LogFilter.parse(status="5xx"), batch=2))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["request_id"] for r in rows] == [f"req-{user.id}-{i}" for i in (4, 2, 0)]
    assert rows[0]["status"] == "502" and rows[0]["time"] == "2025-03-10 12:00:00Z"
    everything = list(csv.DictReader(io.StringIO("".join(
        usage.export_csv(engine, user_id=user.id, filters=usage.LogFilter())))))
    assert len(everything) == 6 and not any(r["request_id"].startswith(f"req-{other.id}-") for r in everything)
    assert everything[0]["model"] == "'=HYPERLINK(\"http://evil\")"


@both_databases
def test_daily_usage_counts_requests_and_net_credits_per_utc_day(session, engine):
    user = make_user(engine, credits=100)
    today = date(2025, 3, 14)
    write(session, [log(user.id, 1, at=datetime(2025, 3, 14, 0, 5, tzinfo=timezone.utc), cost=3),
                    log(user.id, 2, at=datetime(2025, 3, 13, 23, 55, tzinfo=timezone.utc), cost=10),
                    log(user.id, 3, at=datetime(2025, 3, 13, 1, 0, tzinfo=timezone.utc), cost=0),
                    # an image task's end: refunded 10, not a request of its own
                    log(user.id, 4, at=datetime(2025, 3, 13, 23, 58, tzinfo=timezone.utc), cost=-10,
                        method="TASK"),
                    log(user.id, 5, at=datetime(2025, 2, 28, 23, 0, tzinfo=timezone.utc), cost=7)])  # 14 days back
    days = usage.daily_usage(session, user_id=user.id, days=14, today=today)
    assert len(days) == 14 and days[0].day == date(2025, 3, 1) and days[-1].day == today
    assert [(d.day.day, d.requests, d.credits) for d in days if d.requests] == [(13, 2, 0), (14, 1, 3)]


@both_databases
def test_key_names(session, engine):
    user = make_user(engine)
    make_key(engine, user, name="laptop")
    assert list(usage.key_names(session, user_id=user.id).values()) == ["laptop"]


@both_databases
def test_a_negative_number_is_written_as_a_number_and_formula_text_is_defused(session, engine):
    user = make_user(engine)
    write(session, [log(user.id, 1, cost=-5, model="-2+3"), log(user.id, 2, cost=-12, model="-1.5",
                                                                 at=T0 + timedelta(seconds=1))])
    rows = list(csv.DictReader(io.StringIO("".join(
        usage.export_csv(engine, user_id=user.id, filters=usage.LogFilter())))))
    assert [(r["credits"], r["model"]) for r in rows] == [("-12", "-1.5"), ("-5", "'-2+3")]


@pytest.mark.parametrize("key", [str(2**63), "99999999999999999999999", "²", "٣"])
def test_a_key_filter_out_of_range_or_not_ascii_digits_is_refused(key):
    with pytest.raises(InvalidInput, match="choose a key from the list"):
        usage.LogFilter.parse(key=key)


def test_the_largest_key_id_is_a_valid_filter():
    assert usage.LogFilter.parse(key=str(2**63 - 1)).api_key_id == 2**63 - 1
