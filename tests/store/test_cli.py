"""The admin CLI as an operator runs it: `python -m store …` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from store import credits, keys
from store.db import get_engine, session_for
from store.migrate import migrate
from store.models import ApiKey, LedgerEntry, ModelAudit, ModelEntry, User

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "cli-test-secret-0123456789",
           "PYTHONPATH": str(ROOT), "DEFAULT_RATE_LIMIT_PER_MINUTE": "17"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "store", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

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
    fresh = subprocess.run([sys.executable, "-m", "store", "migrate"],
                           env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db",
                                "SECRET_KEY": "x" * 20, "PYTHONPATH": str(ROOT)},
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0
    assert "openai/gpt-5" in fresh.stdout
    result = cli("migrate")
    assert result.returncode == 0
    assert "default models added: none" in result.stdout
    with session_for(cli.engine) as s:
        assert s.get(ModelEntry, "openai/gpt-5").credit_cost == 3
        assert s.get(ModelEntry, "google/nano-banana-pro").category == "image"


def test_create_user_grant_and_models(cli):
    assert cli("create-user", "Ann@Example.com", "--password", "long enough", "--credits", "5").returncode == 0
    assert cli("grant", "ann@example.com", "7", "--note", "welcome").stdout.strip() == "ann@example.com: balance 12"
    assert cli("grant", "ann@example.com", "-2").returncode == 0
    with session_for(cli.engine) as s:
        user = s.exec(select(User)).one()
        assert (user.email, user.balance, user.is_admin) == ("ann@example.com", 10, False)
        assert credits.ledger_sum(s, user_id=user.id) == 10
        assert [e.amount for e in s.exec(select(LedgerEntry).order_by(LedgerEntry.id))] == [5, 7, -2]
    listing = cli("models").stdout.splitlines()
    assert any(line.startswith("openai/gpt-5\tchat\tcost=3\tenabled") for line in listing)


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
    assert cli("set-model", "meta/llama", "--category", "chat", "--provider", "openrouter", "--cost", "2",
               "--upstream-id", "meta-llama/llama-3", "--display-name", "Llama").returncode == 0
    assert cli("set-model", "meta/llama", "--disable", "--cost", "4").returncode == 0
    with session_for(cli.engine) as s:
        entry = s.get(ModelEntry, "meta/llama")
        assert (entry.credit_cost, entry.enabled, entry.upstream_id, entry.display_name) == (4, False, "meta-llama/llama-3", "Llama")
        changes = list(s.exec(select(ModelAudit).where(ModelAudit.model_id == "meta/llama").order_by(ModelAudit.id)))
        assert [(c.actor, c.before is None) for c in changes] == [("cli", True), ("cli", False)]
        assert (changes[1].before["credit_cost"], changes[1].after["credit_cost"]) == (2, 4)


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
        ("set-model", "new/model", "--cost", "1"),  # a new model needs category and provider
        ("set-model", "openai/gpt-5", "--provider", "nobody"),
        ("set-user", "c@example.com"),
        ("revoke-key", "sk_live_none"),
        ("no-such-command",),
        (),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(cli, args, monkeypatch, capsys):
    # In process (the same `main` the module runs) to keep 17 cases fast.
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


def _snapshot(s) -> tuple:
    return (
        [(u.email, u.balance, u.is_admin, u.api_enabled) for u in s.exec(select(User))],
        [(k.name, k.revoked_at) for k in s.exec(select(ApiKey))],
        [(e.amount, e.kind) for e in s.exec(select(LedgerEntry))],
        [(m.id, m.credit_cost, m.enabled, m.provider) for m in s.exec(select(ModelEntry))],
    )


def test_commands_before_migrate_fail_cleanly(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/empty.db", "SECRET_KEY": "x" * 20, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "store", "models"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "run `python -m store migrate`" in one_line_error(result)
