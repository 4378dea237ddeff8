"""Migration 0005 (metering) converts today's data to micro-credits and keeps every
balance equal to its ledger sum, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alembic import command
from store import credits
from store.db import get_engine, session_for
from store.migrate import alembic_config, migrate
from store.money import MICRO


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request, tmp_path):
    """A database at revision 0004 (whole-credit integers), empty."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        with get_engine(url).begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    else:
        url = f"sqlite:///{tmp_path}/old.db"
    command.upgrade(alembic_config(url), "0004")
    return url


def test_upgrade_scales_every_amount_and_keeps_balance_equal_to_the_ledger(old_database):
    engine = get_engine(old_database)
    now = "2026-11-20 10:00:00"
    with engine.begin() as conn:
        for uid, balance in ((1, 7), (2, 0), (3, 1_000)):
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, email, password_hash, is_admin, api_enabled, balance, "
                    "created_at) VALUES (:id, :e, 'x', false, true, :b, :t)"
                ),
                {"id": uid, "e": f"u{uid}@example.com", "b": balance, "t": now},
            )
        ledger = [
            (1, 10, 10, "grant", None),
            (1, -3, 7, "charge", "r1"),
            (2, 5, 5, "grant", None),
            (2, -5, 0, "charge", "r2"),
            (3, 1_000, 1_000, "grant", None),
        ]
        for uid, amount, after, kind, ref in ledger:
            conn.execute(
                sa.text(
                    "INSERT INTO credit_ledger (user_id, amount, balance_after, kind, ref, created_at) "
                    "VALUES (:u, :a, :b, :k, :r, :t)"
                ),
                {"u": uid, "a": amount, "b": after, "k": kind, "r": ref, "t": now},
            )
        conn.execute(
            sa.text(
                "INSERT INTO models (id, display_name, category, capabilities, credit_cost, enabled, "
                "provider, upstream_id, owned_by, created_at, updated_at) VALUES ('m/x', 'X', 'chat', "
                "'[]', 4, true, 'openrouter', 'm/x', 'openrouter', :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO request_logs (request_id, user_id, method, endpoint, status, latency_ms, "
                "credit_cost, stream, created_at) VALUES ('r1', 1, 'POST', '/api/v1/chat/completions', "
                "200, 5, 3, false, :t)"
            ),
            {"t": now},
        )
    migrate(old_database)
    with session_for(engine) as s:
        for uid, balance in ((1, 7), (2, 0), (3, 1_000)):
            assert credits.balance(s, user_id=uid) == balance * MICRO == credits.ledger_sum(s, user_id=uid)
        rows = s.execute(sa.text("SELECT amount, balance_after FROM credit_ledger ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(a * MICRO, b * MICRO) for _, a, b, _, _ in ledger]
        model = s.execute(
            sa.text(
                "SELECT credit_cost, pricing, prompt_price, completion_price, markup, "
                "max_output_tokens FROM models WHERE id = 'm/x'"
            )
        ).one()
        assert tuple(model) == (4 * MICRO, "per_request", 0, 0, MICRO, 16_384)
        assert s.execute(sa.text("SELECT credit_cost FROM request_logs")).scalar_one() == 3 * MICRO
        # the default registry, seeded after the upgrade, is in micro-credits too
        gpt = s.execute(sa.text("SELECT credit_cost FROM models WHERE id = 'openai/gpt-5'")).scalar_one()
        assert gpt == 3 * MICRO
    # a balance past 2^31 credits-worth of micro-credits fits (BIGINT)
    with session_for(engine) as s:
        assert credits.grant(s, user_id=3, amount=5_000 * MICRO) == 6_000 * MICRO
