"""40 parallel requests against a balance that covers 10: exactly 10 get through."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlmodel import select

from store import credits
from store.db import session_for
from store.models import LedgerEntry

from ..conftest import make_settings
from ..factories import auth, flat_seed_prices, make_key, make_user
from .test_chat import upstream_completion
from .test_errors import CHAT, chat_body


@pytest.fixture
def settings(database_url, tmp_path, chat_upstream):
    # 40 calls of one user at once: more than MAX_IN_FLIGHT_PER_USER lets through by default
    return make_settings(database_url, tmp_path, openrouter_base_url=chat_upstream.base_url, max_in_flight_per_user=64)


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_parallel_requests_never_overspend(client, engine, chat_upstream):
    chat_upstream.add(json=upstream_completion(), reusable=True)
    user = make_user(engine, credits=30)  # gpt-5 costs 3: enough for 10
    secret = make_key(engine, user)
    responses = await asyncio.gather(*(client.post(CHAT, json=chat_body(), headers=auth(secret)) for _ in range(40)))
    assert Counter(r.status_code for r in responses) == {200: 10, 402: 30}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 402} == {"insufficient_credits"}
    assert len(chat_upstream.requests) == 10
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 0
        assert credits.ledger_sum(s, user_id=user.id) == 0
        charges = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id, LedgerEntry.kind == "charge"))
        assert len(list(charges)) == 10
