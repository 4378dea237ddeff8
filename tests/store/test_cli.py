"""The admin CLI as an operator runs it: `python -m store …` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from store import credits, keys, logs
from store.db import get_engine, session_for
from store.migrate import migrate
from store.models import ApiKey, LedgerEntry, ModelAudit, ModelEntry, User, utcnow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "cli-test-secret-0123456789",
        "PYTHONPATH": str(ROOT),
        "DEFAULT_RATE_LIMIT_PER_MINUTE": "17",
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "store", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    migrate(url)  # in process: a subprocess costs seconds; `migrate` itself is tested below
    run.engine = get_engine(url)
    run.env = {k: env[k] for k in ("DATABASE_URL", "SECRET_KEY", "DEFAULT_RATE_LIMIT_PER_MINUTE")}
    run.cwd = tmp_path
    return run


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_migrate_builds_an_empty_database_and_is_idempotent(cli, tmp_path):
    fresh = subprocess.run(
        [sys.executable, "-m", "store", "migrate"],
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db",
            "SECRET_KEY": "x" * 20,
            "PYTHONPATH": str(ROOT),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fresh.returncode == 0
    assert "openai/gpt-5" in fresh.stdout
    result = cli("migrate")
    assert result.returncode == 0
    assert "default models added: none" in result.stdout
    with session_for(cli.engine) as s:
        assert s.get(ModelEntry, "openai/gpt-5").credit_cost == 3_000_000
        assert s.get(ModelEntry, "google/nano-banana-pro").category == "image"


def test_create_user_grant_and_models(cli):
    created = cli("create-user", "Ann@Example.com", "--password", "long enough", "--credits", "5.5")
    assert created.stdout.strip().endswith("admin=False, balance 5.5)")
    assert cli("grant", "ann@example.com", "7", "--note", "welcome").stdout.strip() == "ann@example.com: balance 12.5"
    assert cli("grant", "ann@example.com", "-2.000001").stdout.strip() == "ann@example.com: balance 10.499999"
    with session_for(cli.engine) as s:
        user = s.exec(select(User)).one()
        assert (user.email, user.balance, user.is_admin) == ("ann@example.com", 10_499_999, False)
        assert credits.ledger_sum(s, user_id=user.id) == 10_499_999
        assert [e.amount for e in s.exec(select(LedgerEntry).order_by(LedgerEntry.id))] == [
            5_500_000,
            7_000_000,
            -2_000_001,
        ]
    listing = cli("models").stdout.splitlines()
    assert (
        "openai/gpt-5\tchat\tpricing=per_token\tcost=3\tprompt=125/1M\tcompletion=1000/1M\tmarkup=1"
        "\tcache_read=12.5/1M\tmax_output_tokens=16384\tcontext_length=400000\tenabled\topenrouter:openai/gpt-5\tGPT-5"
    ) in listing


def test_create_key_prints_the_key_alone_on_its_last_line(cli):
    cli("create-user", "a@example.com", "--password", "long enough")
    result = cli("create-key", "a@example.com", "--name", "ci")
    assert result.returncode == 0
    secret = result.stdout.strip().splitlines()[-1]
    assert keys.is_well_formed(secret)
    with session_for(cli.engine) as s:
        key = s.exec(select(ApiKey)).one()
        assert (key.name, key.rate_limit_per_minute, key.prefix) == ("ci", 17, secret[:12])
        assert keys.verify_key(s, secret_key="cli-test-secret-0123456789", raw=secret).key_id == key.id


def test_set_model_creates_and_edits(cli):
    assert (
        cli(
            "set-model",
            "meta/llama",
            "--category",
            "chat",
            "--provider",
            "openrouter",
            "--cost",
            "2",
            "--upstream-id",
            "meta-llama/llama-3",
            "--display-name",
            "Llama",
        ).returncode
        == 0
    )
    assert cli("set-model", "meta/llama", "--disable", "--cost", "0.046").returncode == 0
    with session_for(cli.engine) as s:
        entry = s.get(ModelEntry, "meta/llama")
        assert (entry.credit_cost, entry.enabled, entry.upstream_id, entry.display_name) == (
            46_000,
            False,
            "meta-llama/llama-3",
            "Llama",
        )
        changes = list(s.exec(select(ModelAudit).where(ModelAudit.model_id == "meta/llama").order_by(ModelAudit.id)))
        assert [(c.actor, c.before is None) for c in changes] == [("cli", True), ("cli", False)]
        assert (changes[1].before["credit_cost"], changes[1].after["credit_cost"]) == (2_000_000, 46_000)


def test_set_model_token_pricing_with_decimals(cli):
    result = cli(
        "set-model",
        "openai/gpt-5",
        "--pricing",
        "upstream_cost",
        "--cost",
        "0",
        "--prompt-price",
        "1.25",
        "--completion-price",
        "10",
        "--markup",
        "1.2",
        "--max-output-tokens",
        "8000",
        "--cache-read-price",
        "none",
        "--context-length",
        "200000",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "updated openai/gpt-5\tchat\tpricing=upstream_cost\tcost=0\tprompt=1.25/1M\tcompletion=10/1M"
        "\tmarkup=1.2\tmax_output_tokens=8000\tcontext_length=200000\tenabled\topenrouter:openai/gpt-5\tGPT-5"
    )
    with session_for(cli.engine) as s:
        entry = s.get(ModelEntry, "openai/gpt-5")
        assert (
            entry.pricing,
            entry.credit_cost,
            entry.prompt_price,
            entry.completion_price,
            entry.markup,
            entry.max_output_tokens,
            entry.context_length,
            entry.cache_read_price,
        ) == ("upstream_cost", 0, 1_250_000, 10_000_000, 1_200_000, 8000, 200_000, None)


def test_margin_reports_each_model_and_day_with_exact_numbers(cli):
    from tests.dashboard.test_store_usage import log  # one way to write a log row in the tests

    now = utcnow()
    today, yesterday = now.date(), (now - timedelta(days=1)).date()
    with session_for(cli.engine) as s:
        logs.write_request_logs(
            s,
            [
                log(1, 1, at=now, cost="0.010044", prompt_tokens=1000, completion_tokens=500, upstream_cost=80),
                log(1, 2, at=now, cost="0.02", prompt_tokens=2000, completion_tokens=1000),
                log(1, 3, at=now, cost=0, status=502, upstream_cost=500),
                log(1, 4, at=now - timedelta(days=1), cost="1", model="openai/gpt-5-mini", upstream_cost=1_000_000),
                log(1, 5, at=now - timedelta(days=3), cost="2", upstream_cost=10),
            ],
        )
    result = cli("margin", "--days", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "day\tmodel\trequests\tprompt_tokens\tcompletion_tokens\tcredits_charged\tupstream_usd\tmargin_credits"
        "\tunpriced_requests",
        f"{today}\topenai/gpt-5\t2\t3000\t1500\t0.030044\t0.000080\t0.022044\t1",
        f"{yesterday}\topenai/gpt-5-mini\t1\t0\t0\t1\t1.000000\t-99\t0",
    ]
    assert len(cli("margin").stdout.splitlines()) == 4  # 30 days by default: the call 3 days back too


def test_set_user_and_revoke_key(cli):
    cli("create-user", "b@example.com", "--password", "long enough")
    secret = cli("create-key", "b@example.com").stdout.strip().splitlines()[-1]
    assert cli("set-user", "b@example.com", "--api-disabled", "--admin").returncode == 0
    assert cli("revoke-key", secret[:12]).returncode == 0
    with session_for(cli.engine) as s:
        user = s.exec(select(User)).one()
        assert (user.api_enabled, user.is_admin) == (False, True)
        assert s.exec(select(ApiKey)).one().revoked_at is not None


@pytest.mark.parametrize(
    "args",
    [
        ("grant", "nobody@example.com", "5"),
        ("grant", "c@example.com", "abc"),
        ("grant", "c@example.com", "-100"),
        ("grant", "c@example.com", "0"),
        ("grant", "c@example.com", "9000000000000000000"),
        ("create-user", "d@example.com", "--password", "long enough", "--credits", "9000000000000000000"),
        ("create-user", "not-an-email", "--password", "long enough"),
        ("create-user", "c@example.com", "--password", "long enough"),  # taken
        ("create-user", "d@example.com", "--password", "short"),
        ("create-user", "d@example.com", "--password", "long enough", "--credits", "-1"),
        ("create-key", "c@example.com", "--rpm", "-1"),
        ("create-key", "c@example.com", "--name", ""),
        ("set-model", "openai/gpt-5", "--cost", "-3"),
        ("set-model", "openai/gpt-5", "--cost", "0.0000001"),
        ("set-model", "openai/gpt-5", "--cost", "three"),
        ("set-model", "openai/gpt-5", "--pricing", "per_word"),
        ("set-model", "openai/gpt-5", "--pricing", "per_token", "--prompt-price", "1.5e-7"),
        ("set-model", "openai/gpt-5", "--markup", "0"),
        ("set-model", "openai/gpt-5", "--max-output-tokens", "0"),
        ("set-model", "google/nano-banana-pro", "--pricing", "per_token"),  # images are per_request
        ("grant", "c@example.com", "1.0000001"),
        ("grant", "c@example.com", "NaN"),
        ("margin", "--days", "0"),
        ("margin", "--days", "3661"),
        ("margin", "--days", "seven"),
        ("margin", "--days", "-1"),
        ("set-model", "new/model", "--cost", "1"),  # a new model needs category and provider
        ("set-model", "openai/gpt-5", "--provider", "nobody"),
        ("set-user", "c@example.com"),
        ("set-user", "c@example.com", "--max-key-rpm", "-1"),
        ("set-user", "c@example.com", "--max-key-rpm", "lots"),
        ("set-model", "openai/gpt-5", "--context-length", "0"),
        ("set-model", "openai/gpt-5", "--context-length", "100000001"),
        ("set-model", "openai/gpt-5", "--max-prompt-tokens", "-5"),
        ("set-model", "openai/gpt-5", "--cache-read-price", "-1"),
        ("set-model", "openai/gpt-5", "--max-output-tokens", "none"),
        ("set-model", "google/nano-banana-pro", "--resolution-price", "8K=5"),
        ("set-model", "google/nano-banana-pro", "--resolution-price", "4K"),
        ("set-model", "openai/gpt-5", "--resolution-price", "4K=5"),
        ("create-user", "e\x00@example.com", "--password", "long enough"),
        ("create-key", "c@example.com", "--name", "nul\x00name"),
        ("revoke-key", "sk_live_none"),
        ("no-such-command",),
        (),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(cli, args, monkeypatch, capsys):
    # In process (the same `main` the module runs) to keep the cases fast.
    from store.cli import main
    from store.settings import get_settings
    from tests.factories import make_user

    make_user(cli.engine, email="c@example.com", credits=3)
    for name, value in cli.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cli.cwd)
    get_settings.cache_clear()
    with session_for(cli.engine) as s:
        before = _snapshot(s)
    try:
        assert main(list(args)) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    with session_for(cli.engine) as s:
        assert _snapshot(s) == before


def test_bad_input_in_a_real_subprocess(cli):
    one_line_error(cli("grant", "nobody@example.com", "5"))
    one_line_error(cli("grant", "x@example.com", "abc"))
    assert one_line_error(cli("margin", "--days", "0")) == "error: --days must be from 1 to 3660"


def _snapshot(s) -> tuple:
    return (
        [(u.email, u.balance, u.is_admin, u.api_enabled) for u in s.exec(select(User))],
        [(k.name, k.revoked_at) for k in s.exec(select(ApiKey))],
        [(e.amount, e.kind) for e in s.exec(select(LedgerEntry))],
        [
            (
                m.id,
                m.pricing,
                m.credit_cost,
                m.prompt_price,
                m.completion_price,
                m.markup,
                m.max_output_tokens,
                m.enabled,
                m.provider,
            )
            for m in s.exec(select(ModelEntry))
        ],
    )


def test_commands_before_migrate_fail_cleanly(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/empty.db",
        "SECRET_KEY": "x" * 20,
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "store", "models"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "run `python -m store migrate`" in one_line_error(result)


def test_set_model_resolution_prices(cli):
    result = cli("set-model", "google/nano-banana-pro", "--resolution-price", "2K=12.5", "--resolution-price", "4k=30")
    assert result.returncode == 0, result.stderr
    with session_for(cli.engine) as s:
        assert s.get(ModelEntry, "google/nano-banana-pro").resolution_prices == {"2K": 12_500_000, "4K": 30_000_000}
    assert cli("set-model", "google/nano-banana-pro", "--resolution-price", "none").returncode == 0
    with session_for(cli.engine) as s:
        assert s.get(ModelEntry, "google/nano-banana-pro").resolution_prices is None
