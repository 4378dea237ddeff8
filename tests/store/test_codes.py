"""Redemption codes: issued by the CLI (shown once, stored as HMACs), redeemed once, even
by two people at the same moment."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from store import codes, credits
from store.db import session_for
from store.errors import InvalidInput
from store.models import LedgerEntry, RedemptionCode, utcnow
from store.money import MICRO

from ..conftest import TEST_SECRET
from ..factories import make_user
from . import test_cli

cli = test_cli.cli  # the fixture, bound here for pytest to find
both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def test_the_cli_prints_codes_once_that_redeem_once(cli):
    result = cli("codes", "create", "3", "--credits", "2.5", "--days", "30")
    assert result.returncode == 0, result.stderr
    header, *printed = result.stdout.strip().splitlines()
    assert header == "3 codes of 2.5 credits, for 30 days. Shown once:"
    assert len(printed) == 3 and len(set(printed)) == 3
    assert all(re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{5}-){3}[0-9A-HJKMNP-TV-Z]{5}", c) for c in printed)
    user = make_user(cli.engine, credits=1)
    secret = cli.env["SECRET_KEY"]
    with session_for(cli.engine) as s:
        stored = list(s.exec(select(RedemptionCode)))
        assert [r.credits for r in stored] == [2_500_000] * 3
        assert not any(c.replace("-", "") in repr(stored) for c in printed)  # only HMACs are kept
        # typed in lower case, without dashes, with O for 0: still the code
        typed = printed[0].replace("-", "").lower().replace("0", "o")
        assert codes.redeem(s, secret_key=secret, user_id=user.id, code=typed) == 2_500_000
        with pytest.raises(InvalidInput, match="not valid"):
            codes.redeem(s, secret_key=secret, user_id=user.id, code=printed[0])
        assert credits.balance(s, user_id=user.id) == 3_500_000 == credits.ledger_sum(s, user_id=user.id)
        row = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id, LedgerEntry.ref.like("code:%"))).one()
        assert (row.kind, row.amount, row.note) == (
            "grant",
            2_500_000,
            f"redemption code …{printed[0][-4:]} (2.5 credits)",
        )


@both_databases
def test_bad_expired_and_unknown_codes_change_nothing(session, engine):
    user = make_user(engine, credits=1)
    [code] = codes.create_codes(session, secret_key=TEST_SECRET, count=1, credits_=5 * MICRO, ttl=timedelta(days=1))
    session.execute(sa.update(RedemptionCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    for typed in (code, "", "x" * 500, "AAAAA-AAAAA-AAAAA-AAAAA", code + "0"):
        with pytest.raises(InvalidInput, match="this code is not valid"):
            codes.redeem(session, secret_key=TEST_SECRET, user_id=user.id, code=typed)
    assert credits.balance(session, user_id=user.id) == 1 * MICRO
    assert session.exec(select(RedemptionCode)).one().redeemed_at is None


@both_databases
def test_two_redemptions_of_one_code_at_once_credit_it_once(engine):
    users = [make_user(engine) for _ in range(8)]
    with session_for(engine) as s:
        [code] = codes.create_codes(s, secret_key=TEST_SECRET, count=1, credits_=4 * MICRO)

    def attempt(user_id: int) -> bool:
        with session_for(engine) as s:
            try:
                codes.redeem(s, secret_key=TEST_SECRET, user_id=user_id, code=code)
                return True
            except InvalidInput:
                return False

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, [u.id for u in users]))
    assert outcomes.count(True) == 1
    with session_for(engine) as s:
        balances = [credits.balance(s, user_id=u.id) for u in users]
        assert sorted(balances) == [0] * 7 + [4 * MICRO]
        assert (
            s.exec(sa.select(sa.func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "grant")).one()[0] == 1
        )
        winner = users[balances.index(4 * MICRO)]
        assert s.exec(select(RedemptionCode)).one().redeemed_by_user_id == winner.id
