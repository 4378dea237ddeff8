"""Streams are charged from usage on any OpenAI-compatible upstream.

OpenAI, vLLM and Ollama (and OpenRouter) send a stream's usage only when the request
asks for it (`stream_options: {"include_usage": true}`), as one last chunk with no
choices; tests/fakes/upstream.py does exactly the same. A caller who did not ask (most
do not) must still be charged the exact per-token price: the platform always asks, bills
from that chunk, and keeps it from a caller who did not want it.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson
import pytest
from sqlmodel import select

from api.app import create_app
from store import registry
from store.db import session_for
from store.models import CLEAR, LedgerEntry, PendingSettlement, RequestLog
from store.money import parse_credits

from ..conftest import make_settings
from ..factories import credits_of, flat_seed_prices, make_key, make_user
from ..fakes.upstream import ServedUpstream
from ..serving import serve


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


MODEL = "openai/gpt-5"
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
# 0.01 + 11 prompt tokens x 1.25/1M + 3 completion tokens x 10/1M = 0.01004375 -> 0.010044
CHARGE = 10_044


@pytest.fixture
def upstream():
    with ServedUpstream() as served:
        yield served


def settled(engine, ref):
    with session_for(engine) as s:
        return [
            (r.kind, r.amount)
            for r in s.exec(select(LedgerEntry).where(LedgerEntry.ref == ref).order_by(LedgerEntry.id))
        ]


@BOTH
@pytest.mark.parametrize("options", [None, {"include_usage": False}, {}])
def test_stream_not_asking_for_usage_is_charged_exactly_from_the_upstreams_usage(
    database_url, tmp_path, engine, upstream, options
):
    with session_for(engine) as s:
        registry.set_model(
            s,
            model_id=MODEL,
            actor="test",
            pricing="per_token",
            credit_cost=parse_credits("0.01"),
            prompt_price=parse_credits("1.25"),
            completion_price=parse_credits("10"),
            max_output_tokens=1000,
            cache_read_price=CLEAR,
        )
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello world"}], "stream": True}
    if options is not None:
        body["stream_options"] = options
    app = create_app(
        make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url, run_pipeline_in_process=False)
    )
    with serve(app) as (base, _):
        r = httpx.post(
            f"{base}/api/v1/chat/completions", json=body, timeout=10, headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == 200
        events = [
            orjson.loads(line[6:])
            for line in r.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
        assert r.text.rstrip().endswith("data: [DONE]")
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == "echo: hello world "
        assert all("usage" not in e for e in events)  # the caller did not ask for it
        sent = upstream.app.stats.bodies[-1]
        assert sent["stream_options"] == {"include_usage": True}  # the platform asked
        rid = r.headers["x-request-id"]
        held = 10_000 + -(-(len(orjson.dumps(sent)) * 1_250_000 + 1000 * 10_000_000) // 1_000_000)
    # `serve` has stopped the app: its settlement and log rows are written
    assert settled(engine, rid) == [("charge", -held), ("settle", held - CHARGE)]
    assert credits_of(engine, user) == 5 - Decimal("0.010044")
    with session_for(engine) as s:
        row = s.exec(select(RequestLog).where(RequestLog.request_id == rid)).one()
        assert s.get(PendingSettlement, rid) is None  # nothing left for the reconciler
    assert (row.stream, row.status, row.credit_cost) == (True, 200, CHARGE)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (11, 3, 14)
