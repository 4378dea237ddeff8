"""Key and user state take effect at once for the next model call on every process,
whichever process made the change: the debit statement itself checks them (SPEC, "Key and
user state"). Here "another process" is the admin CLI, run for real, or a plain UPDATE
that publishes no event to this process's caches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from api.app import create_app
from store import credits
from store.db import session_for
from store.models import ApiKey, LedgerEntry
from store.money import MICRO

from ..conftest import TEST_SECRET, make_settings
from ..factories import flat_seed_prices, make_key, make_user
from ..fakes.upstream import ServedUpstream
from ..serving import serve


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def upstream():
    with ServedUpstream() as served:
        yield served


def cli(database_url, tmp_path, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "store", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def chat(base, key):
    return httpx.post(
        f"{base}/api/v1/chat/completions",
        timeout=10,
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}]},
    )


def charges(engine, user_id):
    with session_for(engine) as s:
        return len(
            list(s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user_id, LedgerEntry.kind == "charge")))
        )


def test_user_api_access_switched_by_the_cli_applies_to_the_next_call(database_url, tmp_path, engine, upstream):
    settings = make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url, key_cache_ttl_s=600)
    user = make_user(engine, credits=10, email="owner@example.com")
    key = make_key(engine, user)
    with serve(create_app(settings)) as (base, _):
        assert chat(base, key).status_code == 200  # the key is now cached for 10 minutes
        cli(database_url, tmp_path, "set-user", "owner@example.com", "--api-disabled")
        r = chat(base, key)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "api_disabled")
        assert charges(engine, user.id) == 1
        cli(database_url, tmp_path, "set-user", "owner@example.com", "--api-enabled")
        assert chat(base, key).status_code == 200
        assert charges(engine, user.id) == 2
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == (10 - 2 * 3) * MICRO


def test_key_revoked_by_the_cli_is_refused_at_once(database_url, tmp_path, engine, upstream):
    settings = make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url, key_cache_ttl_s=600)
    user = make_user(engine, credits=10)
    key = make_key(engine, user)
    with serve(create_app(settings)) as (base, _):
        assert chat(base, key).status_code == 200
        cli(database_url, tmp_path, "revoke-key", key[:12])
        r = chat(base, key)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_api_key")
        assert charges(engine, user.id) == 1


def test_key_disabled_and_enabled_elsewhere_applies_at_once(database_url, tmp_path, engine, upstream):
    settings = make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url, key_cache_ttl_s=600)
    user = make_user(engine, credits=10)
    key = make_key(engine, user)

    def set_enabled(value: bool) -> None:  # as another process would: no event reaches this one
        with engine.begin() as conn:
            conn.execute(sa.update(ApiKey).where(ApiKey.user_id == user.id).values(enabled=value))

    with serve(create_app(settings)) as (base, _):
        assert chat(base, key).status_code == 200
        set_enabled(False)
        r = chat(base, key)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "api_disabled")
        assert chat(base, key).status_code == 403  # and again, now read afresh
        set_enabled(True)
        assert chat(base, key).status_code == 200
        assert charges(engine, user.id) == 2
