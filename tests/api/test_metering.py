"""Metering through the served app and a local fake upstream: reserved before the call,
settled from usage, shown to the caller as `usage.cost`, reconciled when usage never came.

The fake upstream counts a prompt token per character of the last message and a
completion token per word it sends (tests/fakes/upstream.py), so every charge below is
worked out by hand from those counts and the prices set here.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import orjson
import pytest
from sqlmodel import select

from api.app import create_app
from api.worker import PipelineWorker
from store import credits, registry, settlements
from store.db import session_for
from store.models import CLEAR, LedgerEntry, PendingSettlement, RequestLog
from store.money import MICRO, parse_credits

from ..conftest import make_settings
from ..factories import as_credits, credits_of, make_key, make_user
from ..fakes.upstream import ServedUpstream
from ..serving import serve

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
MODEL = "openai/gpt-5"


@pytest.fixture
def upstream():
    with ServedUpstream() as served:
        yield served


def price(engine, **fields):
    with session_for(engine) as s:
        registry.set_model(s, model_id=MODEL, actor="test", **fields)


def per_token(engine, *, fee="0.01", prompt="1.25", completion="10", cap=1000):
    price(
        engine,
        pricing="per_token",
        credit_cost=parse_credits(fee),
        prompt_price=parse_credits(prompt),
        completion_price=parse_credits(completion),
        max_output_tokens=cap,
        cache_read_price=CLEAR,
        cache_write_price=CLEAR,
    )


def app_for(database_url, tmp_path, upstream, **overrides):
    settings = make_settings(
        database_url, tmp_path, openrouter_base_url=upstream.base_url, run_pipeline_in_process=False, **overrides
    )
    return create_app(settings)


def chat(base, key, content="hello world", **extra):
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(
        f"{base}/api/v1/chat/completions", json=body, timeout=10, headers={"Authorization": f"Bearer {key}"}
    )


def ledger(engine, ref):
    with session_for(engine) as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.ref == ref).order_by(LedgerEntry.id))
        return [(r.kind, r.amount) for r in rows]


def eventually(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def log_row(app, engine, ref):
    def find():
        app.state.runtime.logs.flush()
        with session_for(engine) as s:
            return s.exec(select(RequestLog).where(RequestLog.request_id == ref)).first()

    return eventually(find)


# 0.01 + 11 prompt tokens x 1.25/1M + 3 completion tokens x 10/1M = 0.01004375 -> 0.010044
HELLO_CHARGE = Decimal("0.010044")


# held: 0.01 + the prompt bound (the upstream body's bytes) x 1.25/1M + 1000 x 10/1M
def held_for(body_bytes: int, cap: int = 1000) -> int:
    return parse_credits("0.01") + -(-(body_bytes * 1_250_000 + cap * 10_000_000) // 1_000_000)


@BOTH
def test_per_token_plain_call_is_charged_its_usage_exactly(database_url, tmp_path, engine, upstream):
    per_token(engine)
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    app = app_for(database_url, tmp_path, upstream)
    with serve(app) as (base, _):
        r = chat(base, key)
        assert r.status_code == 200
        usage = r.json()["usage"]
        assert usage == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14, "cost": 0.010044}
        rid = r.headers["x-request-id"]
        sent = orjson.dumps(upstream.app.stats.bodies[-1])
        held = held_for(len(sent))
        assert eventually(lambda: len(ledger(engine, rid)) == 2)
        assert ledger(engine, rid) == [("charge", -held), ("settle", held - 10_044)]
        assert credits_of(engine, user) == 5 - HELLO_CHARGE
        row = log_row(app, engine, rid)
        assert (row.credit_cost, row.prompt_tokens, row.completion_tokens, row.upstream_cost) == (10_044, 11, 3, 17)
        with session_for(engine) as s:
            assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id)


@BOTH
@pytest.mark.parametrize("asked", [True, False])
def test_per_token_stream_is_charged_the_same_and_usage_reaches_only_who_asked(
    database_url, tmp_path, engine, upstream, asked
):
    per_token(engine)
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    extra = {"stream": True, **({"stream_options": {"include_usage": True}} if asked else {})}
    with serve(app_for(database_url, tmp_path, upstream)) as (base, _):
        r = chat(base, key, **extra)
        events = [
            orjson.loads(line[6:])
            for line in r.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
        assert r.text.rstrip().endswith("data: [DONE]")
        assert upstream.app.stats.bodies[-1]["stream_options"] == {"include_usage": True}
        usages = [e["usage"] for e in events if "usage" in e]
        if asked:
            assert usages == [{"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14, "cost": 0.010044}]
        else:
            assert usages == [] and all(e["choices"] for e in events)
        assert eventually(lambda: credits_of(engine, user) == 5 - HELLO_CHARGE)


def test_balance_that_covers_the_charge_but_not_the_hold_is_402_and_never_calls_upstream(
    database_url, tmp_path, engine, upstream
):
    per_token(engine, cap=100_000)  # the hold is at least 100k x 10/1M = 1 credit
    user = make_user(engine, credits="0.5")  # the call itself would cost ~0.01
    key = make_key(engine, user)
    with serve(app_for(database_url, tmp_path, upstream)) as (base, _):
        seen = len(upstream.app.stats.bodies)
        r = chat(base, key)
        assert (r.status_code, r.json()["error"]["code"]) == (402, "insufficient_credits")
        assert len(upstream.app.stats.bodies) == seen
        assert credits_of(engine, user) == Decimal("0.5")


def test_request_policy_drops_routing_and_cost_fields_and_caps_max_tokens(database_url, tmp_path, engine, upstream):
    price(engine, max_output_tokens=256)
    key = make_key(engine, make_user(engine, credits=100))
    dropped = {
        "models": ["x/y"],
        "route": "fallback",
        "provider": {"order": ["z"]},
        "plugins": [{"id": "web"}],
        "transforms": ["middle-out"],
        "preset": "p",
        "usage": {"include": True},
        "service_tier": "priority",
        "web_search_options": {},
        "anything_else": 1,
    }
    with serve(app_for(database_url, tmp_path, upstream)) as (base, _):
        assert chat(base, key, max_tokens=10**6, temperature=0.5, seed=7, **dropped).status_code == 200
        sent = upstream.app.stats.bodies[-1]
        assert set(sent) == {"model", "messages", "max_tokens", "temperature", "seed"}
        assert sent["max_tokens"] == 256
        assert chat(base, key).status_code == 200
        assert upstream.app.stats.bodies[-1]["max_tokens"] == 256  # the cap, when the caller sent none
        assert chat(base, key, max_completion_tokens=50).status_code == 200
        sent = upstream.app.stats.bodies[-1]
        assert (sent["max_completion_tokens"], "max_tokens" in sent) == (50, False)


def test_flat_price_counts_every_choice(database_url, tmp_path, engine, upstream):
    price(engine, pricing="per_request")  # the seed's fee, 3 credits
    user = make_user(engine, credits=10)
    key = make_key(engine, user)
    with serve(app_for(database_url, tmp_path, upstream)) as (base, _):
        r = chat(base, key, n=2)
        assert r.status_code == 200
        assert r.json()["usage"]["cost"] == 6  # 3 credits x 2 choices, as the caller sees it
        assert credits_of(engine, user) == 4
        assert ledger(engine, r.headers["x-request-id"]) == [("charge", -6 * MICRO)]  # nothing to settle


def test_models_show_their_pricing(database_url, tmp_path, engine, upstream):
    per_token(engine)
    key = make_key(engine, make_user(engine))
    with serve(app_for(database_url, tmp_path, upstream)) as (base, _):
        r = httpx.get(f"{base}/api/v1/models", headers={"Authorization": f"Bearer {key}"})
        gpt = next(m for m in r.json()["data"] if m["id"] == MODEL)
        assert gpt["credit_cost"] == 0.01
        assert gpt["pricing"] == {
            "mode": "per_token",
            "request": 0.01,
            "prompt": 1.25,
            "completion": 10,
            "cache_read": 1.25,  # unset: the prompt price
            "cache_write": 1.25,
        }
        mini = next(m for m in r.json()["data"] if m["id"] == "openai/gpt-5-mini")
        # as seeded: the seed's fee and the public reference prices ($0.25 / $2 / $0.025 per 1M)
        assert mini["pricing"] == {
            "mode": "per_token",
            "request": 1,
            "prompt": 25,
            "completion": 200,
            "cache_read": 2.5,
            "cache_write": 25,
        }
        assert (gpt["context_length"], mini["context_length"]) == (400_000, 400_000)


def leave_after_the_first_event(base, key) -> str:
    """Start a slow stream, read one event, hang up; returns the request id."""
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "slow"}]}
    with httpx.stream(
        "POST", f"{base}/api/v1/chat/completions", json=body, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        next(r.iter_lines())
        return r.headers["x-request-id"]


async def _reconcile(settings, passes: int = 1) -> int:
    async with httpx.AsyncClient() as http:
        worker = PipelineWorker(settings, http=http)
        return sum([await worker.reconciler.run_once() for _ in range(passes)])


@BOTH
def test_abandoned_stream_is_settled_once_from_the_generation_record_across_a_restart(
    database_url, tmp_path, engine, upstream
):
    per_token(engine)
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    app = app_for(database_url, tmp_path, upstream, reconcile_backoff_s=0.05)
    upstream.app.generation_delay = 1  # the first ask finds no record yet
    with serve(app) as (base, _):
        rid = leave_after_the_first_event(base, key)
        assert eventually(lambda: upstream.app.stats.streams_cancelled == 1)
        with session_for(engine) as s:
            assert eventually(lambda: settlements.pending_count(s) == 1)
    # the server is gone; a reconciler of a fresh process takes over from the database
    settings = app.state.runtime.settings
    held = -ledger(engine, rid)[0][1]
    assert asyncio.run(_reconcile(settings)) == 0  # 404: not yet
    time.sleep(0.1)
    assert asyncio.run(_reconcile(settings)) == 1
    record = next(iter(r for r in upstream.app.generations.values() if r["cancelled"]))
    prompt, completion = record["tokens_prompt"], record["tokens_completion"]
    assert prompt == 4 and 1 <= completion < 200
    expected = 10_000 + -(-(prompt * 1_250_000 + completion * 10_000_000) // 1_000_000)
    assert ledger(engine, rid) == [("charge", -held), ("settle", held - expected)]
    time.sleep(0.1)
    assert asyncio.run(_reconcile(settings)) == 0  # nothing left: never twice
    assert ledger(engine, rid) == [("charge", -held), ("settle", held - expected)]
    with session_for(engine) as s:
        row = s.exec(select(RequestLog).where(RequestLog.request_id == rid)).one()
        assert (row.credit_cost, row.completion_tokens) == (expected, completion)
        assert credits.balance(s, user_id=user.id) == 5 * MICRO - expected == credits.ledger_sum(s, user_id=user.id)
        assert s.exec(select(PendingSettlement)).all() == []


def test_without_any_record_the_estimate_settles_after_the_deadline(database_url, tmp_path, engine, upstream):
    per_token(engine)
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    app = app_for(database_url, tmp_path, upstream, reconcile_backoff_s=0.05, reconcile_deadline_s=0.2)
    upstream.app.generation_delay = 10**6  # the upstream never has a record
    with serve(app) as (base, _):
        rid = leave_after_the_first_event(base, key)
        with session_for(engine) as s:
            assert eventually(lambda: settlements.pending_count(s) == 1)
            estimate = s.exec(select(PendingSettlement)).one().estimate
    held = -ledger(engine, rid)[0][1]
    assert 10_000 < estimate < held
    time.sleep(0.25)
    assert asyncio.run(_reconcile(app.state.runtime.settings)) == 1
    assert ledger(engine, rid) == [("charge", -held), ("settle", held - estimate)]
    assert credits_of(engine, user) == 5 - as_credits(estimate)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_parallel_metered_calls_never_overspend(database_url, tmp_path, engine, upstream):
    """40 at once against a balance that holds only some of them: admitted ones are those
    whose hold fit, none overspends, and the balance is the ledger sum at the end."""
    per_token(engine, cap=20_000)  # each holds ~0.21 credits and is charged ~0.01
    user = make_user(engine, credits=1)
    key = make_key(engine, user)

    async def burst(base):
        async with httpx.AsyncClient(timeout=20) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{base}/api/v1/chat/completions",
                        headers={"Authorization": f"Bearer {key}"},
                        json={"model": MODEL, "messages": [{"role": "user", "content": "hello world"}]},
                    )
                    for _ in range(40)
                )
            )

    with serve(app_for(database_url, tmp_path, upstream, max_in_flight_per_user=64)) as (base, _):
        responses = asyncio.run(burst(base))
        statuses = sorted(r.status_code for r in responses)
        ok = statuses.count(200)
        assert set(statuses) <= {200, 402} and ok >= 4
        assert eventually(lambda: credits_of(engine, user) == 1 - ok * HELLO_CHARGE)
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == credits.ledger_sum(s, user_id=user.id) >= 0


@BOTH
def test_a_fault_after_pricing_refunds_the_hold_and_settles_nothing(database_url, tmp_path, engine, upstream):
    """The upstream's answer (with its usage) cannot be encoded again: a 500 after the hold
    and after pricing; the hold comes back once and no settlement is ever written."""
    per_token(engine)
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    app = app_for(database_url, tmp_path, upstream)
    with serve(app) as (base, _):
        r = chat(base, key, "deep")
        assert (r.status_code, r.json()["error"]["code"]) == (500, "internal_error")
        rid = r.headers["x-request-id"]
        held = -ledger(engine, rid)[0][1]
        time.sleep(0.2)  # time for any (wrong) background settlement to land
        assert ledger(engine, rid) == [("charge", -held), ("refund", held)]
        assert credits_of(engine, user) == 5
        assert log_row(app, engine, rid).credit_cost == 0


def test_margin_of_a_metered_request(database_url, tmp_path, engine, upstream):
    """One request, end to end: held, used, settled, and its margin against the upstream's cost."""
    from store.margin import margin_by_model_day

    per_token(engine)
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    app = app_for(database_url, tmp_path, upstream)
    with serve(app) as (base, _):
        rid = chat(base, key).headers["x-request-id"]
        assert eventually(lambda: len(ledger(engine, rid)) == 2)
        log_row(app, engine, rid)
    with session_for(engine) as s:
        [row] = [m for m in margin_by_model_day(s, credits_per_usd=Decimal(100)) if m.model == MODEL]
    # charged 0.010044 credits; the upstream reported $0.000017 = 0.0017 credits at 100/USD
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1, 11, 3)
    assert (row.charged, row.upstream_usd, row.unpriced, row.margin) == (10_044, 17, 0, 10_044 - 1_700)


def test_a_stream_that_fails_after_a_zero_charge_usage_still_refunds_its_hold(database_url, tmp_path, engine):
    """The usage chunk prices the call at 0 (no tokens), then the upstream reports an error:
    the generation failed, so the hold comes back all the same, once."""
    from ..fakes.scripted import ScriptedUpstream, sse

    per_token(engine, fee="0")
    user = make_user(engine, credits=5)
    key = make_key(engine, user)
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    with ScriptedUpstream() as upstream:
        upstream.add(
            chunks=sse(
                {"id": "g", "choices": [{"index": 0, "delta": {"content": "a"}}]},
                {"id": "g", "choices": [], "usage": usage},
                {"error": {"message": "overloaded", "code": 502}},
            )
        )
        app = create_app(make_settings(database_url, tmp_path, openrouter_base_url=upstream.base_url))
        with serve(app) as (base, _):
            r = chat(base, key, stream=True)
            rid = r.headers["x-request-id"]
            assert orjson.loads(r.text.rstrip().splitlines()[-1][6:])["error"]["code"] == "provider_error"
            held = -ledger(engine, rid)[0][1]
            assert held > 0
            assert ledger(engine, rid) == [("charge", -held), ("refund", held)]
    assert credits_of(engine, user) == 5
