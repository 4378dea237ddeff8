"""The hot-account table's zero-overspend checks, read from a real ledger (this tree's store)."""

from __future__ import annotations

import sys

import sqlalchemy as sa

from bench import hot
from bench.baseline import StoreCli
from bench.targets import ROOT, SECRET
from store import credits, keys, users
from store.models import RequestLog, table_of
from store.money import MICRO


def _account(database_url: str, session) -> tuple[hot.HotTarget, int, int]:
    user = users.create_user(session, email="hot@bench.test", password="bench password 1", credits_=100 * MICRO)
    issued = keys.issue_key(session, secret_key=SECRET, user_id=user.id, name="hot", rate_limit_per_minute=0)
    target = hot.main_target(per_token=True)
    target.store = StoreCli(ROOT, sys.executable, database_url, "hot@bench.test")
    target.store.user_id = user.id
    target.key, target.key_id = issued.secret, issued.key.id
    return target, user.id, issued.key.id


def _log(session, *, ref: str, user_id: int, key_id: int, status: int, cost: int) -> None:
    row = {
        "request_id": ref,
        "user_id": user_id,
        "api_key_id": key_id,
        "method": "POST",
        "endpoint": "/api/v1/chat/completions",
        "status": status,
        "latency_ms": 1,
        "credit_cost": cost,
    }
    session.execute(sa.insert(table_of(RequestLog)), [row])
    session.commit()


def _calls(session, user_id: int, key_id: int) -> None:
    """A held-and-settled call, a refunded one, and a refused one, each with its log row."""
    credits.debit_for_request(session, user_id=user_id, cost=30_000, ref="r1", key_id=key_id)
    final = credits.settle(session, ref="r1", cost=1_006)
    _log(session, ref="r1", user_id=user_id, key_id=key_id, status=200, cost=final)
    credits.debit_for_request(session, user_id=user_id, cost=30_000, ref="r2", key_id=key_id)
    credits.refund(session, ref="r2")
    _log(session, ref="r2", user_id=user_id, key_id=key_id, status=502, cost=0)
    _log(session, ref="r3", user_id=user_id, key_id=key_id, status=402, cost=0)


def test_a_consistent_account_passes_every_check(database_url, session):
    target, user_id, key_id = _account(database_url, session)
    _calls(session, user_id, key_id)
    final = hot.account(target)
    assert final["balance"] == 100 * MICRO - 1_006
    assert final["grants"] == 100 * MICRO
    assert final["log_cost"] == 1_006
    assert final["log_rows"] == 3
    assert final["max_hold"] == 30_000
    assert final["pending"] == 0
    verdicts = hot.checks("api", final, answered=3, drained={"status_402": 1, "other_non2xx": 0, "socket_errors": 0})
    assert [ok for _, _, ok in verdicts] == [True] * 7


def test_a_charge_the_logs_do_not_show_fails_the_overspend_check(database_url, session):
    target, user_id, key_id = _account(database_url, session)
    _calls(session, user_id, key_id)
    # A hold that was never settled nor refunded: the ledger took more than the logs say.
    credits.debit_for_request(session, user_id=user_id, cost=30_000, ref="r4", key_id=key_id)
    _log(session, ref="r4", user_id=user_id, key_id=key_id, status=200, cost=1_006)
    verdicts = {what: (value, ok) for what, value, ok in hot.checks("api", hot.account(target), 4, None)}
    assert verdicts["api: balance = grants − Σ credit_cost of the key's logged requests"] == (
        f"{100 * MICRO - 31_006} = {100 * MICRO} − 2012",
        False,
    )
    assert verdicts["api: balance = the sum of its ledger"][1] is True
    assert verdicts["api: every call answered has its log row"] == ("4/4", True)


def test_a_drain_without_a_402_did_not_reach_the_floor(database_url, session):
    target, user_id, key_id = _account(database_url, session)
    _calls(session, user_id, key_id)
    verdicts = hot.checks("api", hot.account(target), 3, {"status_402": 0, "other_non2xx": 0, "socket_errors": 0})
    assert verdicts[-1] == (
        "api: the drain reached the floor (402s while callers raced for the last holds)",
        f"0 × 402, {100 * MICRO - 1_006} left, one hold 30000",
        False,
    )
