"""What an admin reads across users: usage by day, user, key and model; the users list with
search, sort and pages; one user's usage."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from store import admin_usage, credits, keys, logs
from store.db import session_for
from store.errors import InvalidInput, NotFound

from ..factories import make_key, make_user
from .test_store_usage import log

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
TODAY = date(2025, 3, 14)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 3, day, hour, 0, tzinfo=UTC)


def key_id(engine, user) -> int:
    make_key(engine, user, name=f"key of {user.email.split('@')[0]}")
    with session_for(engine) as s:
        return keys.list_keys(s, user_id=user.id)[0].id


@pytest.fixture
def traffic(session, engine):
    """Two users, three keys, two models over three days, errors, a refund and noise."""
    ann = make_user(engine, email="ann@example.com")
    bob = make_user(engine, email="bob@example.com")
    ann_key, bob_key = key_id(engine, ann), key_id(engine, bob)
    make_key(engine, ann, name="second")
    with session_for(engine) as s:
        ann_second = [k.id for k in keys.list_keys(s, user_id=ann.id) if k.name == "second"][0]
    rows = [
        log(ann.id, 1, key=ann_key, model="m/a", at=at(14), cost="3", latency_ms=100),
        log(ann.id, 2, key=ann_key, model="m/a", at=at(14, 13), cost="0", status=502, latency_ms=300),
        log(ann.id, 3, key=ann_second, model="m/b", at=at(13), cost="0.5", latency_ms=200),
        # an image task's end: refunds 0.5 of ann's, is not a request
        log(ann.id, 4, key=ann_second, model="m/b", at=at(13, 14), cost="-0.5", method="TASK", latency_ms=0),
        log(bob.id, 1, key=bob_key, model="m/b", at=at(12), cost="1.25", latency_ms=50),
        log(bob.id, 2, key=bob_key, model="m/b", at=at(12, 1), cost="0", status=429, latency_ms=10),
        # out of the period, and a request without a valid key (no user): neither counts
        log(bob.id, 3, key=bob_key, model="m/a", at=at(7), cost="9"),
        {**log(0, 9, key=None, model=None, at=at(14), cost="0", status=401), "user_id": None, "key_prefix": None},
    ]
    logs.write_request_logs(session, rows)
    return {"ann": ann, "bob": bob, "ann_key": ann_key, "ann_second": ann_second, "bob_key": bob_key}


def summary(rows) -> list[tuple]:
    return [(r.label, r.requests, r.errors, r.spend, r.mean_latency_ms) for r in rows]


@both_databases
def test_usage_per_day_has_every_day_oldest_first(session, traffic):
    days = admin_usage.usage_by(session, by="day", days=7, today=TODAY)
    assert [d.label for d in days] == [f"2025-03-{n:02d}" for n in range(8, 15)]
    assert summary(days)[-3:] == [
        ("2025-03-12", 2, 1, 1_250_000, 30),
        ("2025-03-13", 1, 0, 0, 200),  # 0.5 charged, 0.5 refunded by the task's end row
        ("2025-03-14", 2, 1, 3_000_000, 200),
    ]
    assert all((d.requests, d.spend) == (0, 0) for d in days[:4])


@both_databases
def test_usage_by_user_key_and_model_biggest_spenders_first(session, engine, traffic):
    by_user = admin_usage.usage_by(session, by="user", days=7, today=TODAY)
    assert summary(by_user) == [("ann@example.com", 3, 1, 3_000_000, 200), ("bob@example.com", 2, 1, 1_250_000, 30)]
    assert [r.ref for r in by_user] == [traffic["ann"].id, traffic["bob"].id]
    by_key = admin_usage.usage_by(session, by="key", days=7, today=TODAY)
    assert [(r.ref, r.requests, r.spend) for r in by_key] == [
        (traffic["ann_key"], 2, 3_000_000),
        (traffic["bob_key"], 2, 1_250_000),
        (traffic["ann_second"], 1, 0),
    ]
    with session_for(engine) as s:
        [ann_key] = [k for k in keys.list_keys(s, user_id=traffic["ann"].id) if k.id == traffic["ann_key"]]
    assert by_key[0].label == f"key of ann · {ann_key.prefix}…{ann_key.last4} (ann@example.com)"
    by_model = admin_usage.usage_by(session, by="model", days=7, today=TODAY)
    assert summary(by_model) == [("m/a", 2, 1, 3_000_000, 200), ("m/b", 3, 1, 1_250_000, 87)]
    assert summary(admin_usage.usage_by(session, by="user", days=7, today=TODAY, limit=1)) == summary(by_user[:1])


@both_databases
def test_a_longer_period_takes_in_older_days(session, traffic):
    month = admin_usage.usage_by(session, by="model", days=30, today=TODAY)
    assert [(r.label, r.requests, r.spend) for r in month] == [("m/a", 3, 12_000_000), ("m/b", 3, 1_250_000)]


@both_databases
def test_one_users_usage(session, traffic):
    ann = admin_usage.usage_for_user(session, user_id=traffic["ann"].id, days=7, today=TODAY)
    assert (ann.requests, ann.errors, ann.spend, ann.mean_latency_ms) == (3, 1, 3_000_000, 200)
    nobody = admin_usage.usage_for_user(session, user_id=traffic["bob"].id, days=1, today=TODAY)
    assert (nobody.requests, nobody.spend, nobody.mean_latency_ms) == (0, 0, 0)


@pytest.mark.parametrize("kwargs, message", [({"by": "week"}, "grouped by one of"), ({"days": 0}, "days must be")])
def test_a_bad_usage_question_is_refused(session, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        admin_usage.usage_by(session, **{"by": "day", "days": 7, **kwargs})


# ---------------------------------------------------------------- the users list


@pytest.fixture
def many(engine):
    """30 users with balances 0..29 credits, created in order; two whose emails hold % and _."""
    made = [make_user(engine, email=f"u{i:02d}@example.com", credits=i) for i in range(30)]
    made.append(make_user(engine, email="100%_sure@example.org", credits=5))
    made.append(make_user(engine, email="x100xxsure@example.org", credits=5))
    return made


@both_databases
def test_users_are_paged_25_at_a_time(session, many):
    first = admin_usage.users_page(session, sort="created")
    assert (first.total, first.page, first.pages, len(first.users)) == (32, 1, 2, 25)
    second = admin_usage.users_page(session, sort="created", page=2)
    assert [u.email for u in second.users] == [f"u{i:02d}@example.com" for i in range(25, 30)] + [
        "100%_sure@example.org",
        "x100xxsure@example.org",
    ]
    assert admin_usage.users_page(session, page=99).page == 2  # past the last: the last
    assert admin_usage.users_page(session, page=0).page == 1


@both_databases
def test_users_search_by_email_in_any_case_and_literally(session, many):
    found = admin_usage.users_page(session, search="  U1 ")
    assert [u.email for u in found.users] == [f"u{i}@example.com" for i in range(10, 20)] and found.total == 10
    assert [u.email for u in admin_usage.users_page(session, search="100%_").users] == ["100%_sure@example.org"]
    empty = admin_usage.users_page(session, search="nobody")
    assert (empty.users, empty.total, empty.page, empty.pages) == ([], 0, 1, 1)


@both_databases
def test_users_sort_by_email_balance_and_created(session, many):
    by_email = admin_usage.users_page(session, sort="email", page_size=3)
    assert [u.email for u in by_email.users] == ["100%_sure@example.org", "u00@example.com", "u01@example.com"]
    richest = admin_usage.users_page(session, sort="balance", descending=True, page_size=3)
    assert [u.balance for u in richest.users] == [29_000_000, 28_000_000, 27_000_000]
    poorest = admin_usage.users_page(session, sort="balance", page_size=2)
    assert [u.email for u in poorest.users] == ["u00@example.com", "u01@example.com"]
    newest = admin_usage.users_page(session, sort="created", descending=True, page_size=1)
    assert [u.email for u in newest.users] == ["x100xxsure@example.org"]


def test_a_bad_sort_or_search_is_refused(session):
    with pytest.raises(InvalidInput, match="sort by one of email, balance, created"):
        admin_usage.users_page(session, sort="password")
    with pytest.raises(InvalidInput, match="at most 254 characters"):
        admin_usage.users_page(session, search="x" * 255)


@both_databases
def test_user_account(session, engine):
    user = make_user(engine, credits=2)
    with session_for(engine) as s:
        credits.grant(s, user_id=user.id, amount=500_000, note="x")
    found = admin_usage.user_account(session, user_id=user.id)
    assert (found.email, found.balance) == (user.email, 2_500_000)
    with pytest.raises(NotFound):
        admin_usage.user_account(session, user_id=user.id + 1000)
