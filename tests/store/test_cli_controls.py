"""The operator's CLI commands for key controls, sign-up invites and redemption codes, run
as an operator runs them: `python -m store …` in a subprocess (bad input in process)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from store import budgets, keys
from store.db import session_for
from store.models import ApiKey, User
from store.money import MICRO

from . import test_cli
from .test_cli import _snapshot, one_line_error

cli = test_cli.cli  # the fixture, bound here for pytest to find


def test_create_key_with_every_control_and_edit_it(cli):
    cli("create-user", "a@example.com", "--password", "long enough")
    created = cli(
        "create-key",
        "a@example.com",
        "--budget",
        "12.5",
        "--budget-period",
        "week",
        "--models",
        "openai/gpt-5-mini, openai/gpt-5",
        "--expires",
        "2099-06-30T12:00:00+02:00",
    )
    assert created.returncode == 0, created.stderr
    summary, secret = created.stdout.strip().splitlines()
    assert summary == (
        f"key {secret[:12]}…{secret[-4:]}\tcli\t17/min\tbudget 12.5 per week (spent 0)"
        "\tmodels openai/gpt-5-mini,openai/gpt-5\texpires 2099-06-30T10:00:00+00:00 for a@example.com. Shown once:"
    )
    with session_for(cli.engine) as s:
        key = s.exec(select(ApiKey)).one()
        assert (key.budget, key.budget_period, keys.models_of(key)) == (
            12_500_000,
            "week",
            ("openai/gpt-5-mini", "openai/gpt-5"),
        )
        assert budgets.aware(key.expires_at) == datetime(2099, 6, 30, 10, tzinfo=UTC)
    edited = cli("edit-key", secret[:12], "--budget-period", "none", "--expires", "none", "--rpm", "5", "--name", "ci")
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.strip() == (
        f"updated {secret[:12]}…{secret[-4:]}\tci\t5/min\tbudget 12.5 (spent 0)\tmodels openai/gpt-5-mini,openai/gpt-5"
    )
    assert cli("edit-key", secret[:12], "--budget", "none", "--models", "none").stdout.strip() == (
        f"updated {secret[:12]}…{secret[-4:]}\tci\t5/min"
    )
    with session_for(cli.engine) as s:
        key = s.exec(select(ApiKey)).one()
        assert (key.budget, key.budget_period, key.allowed_models, key.expires_at, key.budget_spent) == (
            None,
            None,
            None,
            None,
            0,
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (("create-key", "c@example.com", "--budget", "0"), "budget must be more than 0"),
        (("create-key", "c@example.com", "--budget", "lots"), "budget must be a number"),
        (("create-key", "c@example.com", "--budget", "1.0000001"), "more than 6 decimal places"),
        (("create-key", "c@example.com", "--budget-period", "month"), "--budget-period needs --budget"),
        (("create-key", "c@example.com", "--budget", "5", "--budget-period", "yearly"), "day, week, month or none"),
        (("create-key", "c@example.com", "--models", "openai/gpt-5,nope/x"), "unknown model 'nope/x'"),
        (("create-key", "c@example.com", "--expires", "2020-01-01"), "expiry must be in the future"),
        (("create-key", "c@example.com", "--expires", "next week"), "is not an ISO date or time"),
        (("create-key", "c@example.com", "--budget", "none"), "a new key has no such control to remove"),
        (("edit-key", "PREFIX"), "nothing to change"),
        (("edit-key", "sk_live_nope", "--budget", "5"), "no live key with prefix 'sk_live_nope'"),
        (("edit-key", "PREFIX", "--budget-period", "day"), "a budget period needs a budget"),
        (("edit-key", "PREFIX", "--models", "nope/x", "--budget", "5"), "unknown model 'nope/x'"),
        (("edit-key", "PREFIX", "--rpm", "-1"), "rate limit must be a whole number"),
        (("invite", "--credits", "-1"), "--credits must not be negative"),
        (("invite", "--days", "0"), "--days must be from 1 to 365"),
        (("codes", "create", "0", "--credits", "5"), "from 1 to 1000 codes"),
        (("codes", "create", "3", "--credits", "0"), "credits must be more than 0"),
        (("codes", "create", "3"), "the following arguments are required: --credits"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(cli, args, message, monkeypatch, capsys):
    from store.cli import main
    from store.settings import get_settings
    from tests.factories import make_key, make_user

    user = make_user(cli.engine, email="c@example.com", credits=3)
    prefix = make_key(cli.engine, user)[:12]
    args = tuple(prefix if a == "PREFIX" else a for a in args)
    for name, value in cli.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cli.cwd)
    get_settings.cache_clear()
    with session_for(cli.engine) as s:
        before = (
            _snapshot(s),
            [(k.budget, k.budget_period, k.allowed_models, k.expires_at) for k in s.exec(select(ApiKey))],
        )
    try:
        assert main(list(args)) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    with session_for(cli.engine) as s:
        after = (
            _snapshot(s),
            [(k.budget, k.budget_period, k.allowed_models, k.expires_at) for k in s.exec(select(ApiKey))],
        )
    assert after == before


def test_a_budget_of_the_largest_balance_is_accepted(cli):
    cli("create-user", "big@example.com", "--password", "long enough")
    assert cli("create-key", "big@example.com", "--budget", "1000000000").returncode == 0
    with session_for(cli.engine) as s:
        assert s.exec(select(ApiKey)).one().budget == 1_000_000_000 * MICRO
    one_line_error(cli("create-key", "big@example.com", "--budget", "1000000000.000001"))


def test_set_user_low_balance_threshold(cli):
    cli("create-user", "low@example.com", "--password", "long enough", "--credits", "3")
    result = cli("set-user", "low@example.com", "--low-balance", "5.5")
    assert result.stdout.strip() == "low@example.com: api_enabled=True admin=False max_key_rpm=default low_balance=5.5"
    with session_for(cli.engine) as s:
        user = s.exec(select(User)).one()
        assert (user.low_balance_threshold, user.low_balance_alerted) == (5_500_000, True)  # 3 < 5.5 already
    assert (
        cli("set-user", "low@example.com", "--low-balance", "none", "--api-disabled")
        .stdout.strip()
        .endswith("api_enabled=False admin=False max_key_rpm=default low_balance=none")
    )
    # bad input changes nothing, the other flags included
    assert one_line_error(cli("set-user", "low@example.com", "--low-balance", "0", "--api-enabled")) == (
        "error: the low-balance threshold must be more than 0 and at most 1,000,000,000"
    )
    with session_for(cli.engine) as s:
        user = s.exec(select(User)).one()
        assert (user.low_balance_threshold, user.api_enabled) == (None, False)
