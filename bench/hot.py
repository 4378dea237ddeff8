"""The hot account: one user's balance under many concurrent callers, on two API workers.

One user, one unlimited key, two `uvicorn api.app:app` workers on two ports, both on
PostgreSQL and Redis (`RUN_PIPELINE_IN_PROCESS=false`, as docs/production.md runs more
than one), against the zero-delay fake upstream. At each level C callers (two wrk
processes, C/2 connections each, one per worker) call for `BENCH_HOT_S` seconds: model
calls per second on that one balance, p50/p99 (the slower worker's), errors, the workers'
CPU per call. Every call holds, and with per-token pricing also settles, on the same row.

Then the drain: the balance is cut, through the ledger, to a few holds' worth, and the top
level calls (in rounds of 2 s, for at most `BENCH_HOT_DRAIN_S`) until less than one hold
is left: C callers race for the last credits, so a hold that let a call through without
them would show. (With per-token pricing a hold is ~34 calls' charge, and the 402s of the
others take most of the workers, so the balance may not be spent by the end: the floor
is met all the same, as the 402s show.) After the log rows are all written, zero overspend:
    the balance equals the sum of the user's ledger, and is ≥ 0;
    it equals the grants minus the `credit_cost` of every request logged for the key;
    no refund and no settle appears twice for one ref;
    no settlement is left pending (where the tree has them).

Each target's database is its own, dropped and created each run (`bench_hot_<target>` on
`BENCH_PG_URL`), migrated and filled by that tree's own CLI (bench/baseline.py, StoreCli).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from . import baseline as baseline_mod
from .procs import Server, free_port
from .targets import OUT, ROOT, platform_env
from .wrk import WrkResult, run_wrk

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
MODEL = "openai/gpt-5-mini"
# The drain's budget: this many holds, or calls at their measured cost if that is more.
DRAIN_HOLDS = 3
DRAIN_CALLS = 50
WORKERS = 2


def pg_url() -> str:
    return os.environ.get("BENCH_PG_URL") or PG_URL


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL") or REDIS_URL


def unreachable() -> str | None:
    """Why the hot-account table cannot run here (None: PostgreSQL and Redis both answer)."""
    try:
        engine = sa.create_engine(pg_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver error means: not here
        return f"PostgreSQL at {pg_url()} does not answer ({type(exc).__name__})"
    try:
        import redis

        redis.Redis.from_url(redis_url(), socket_timeout=3, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {redis_url()} does not answer ({type(exc).__name__})"
    return None


def fresh_database(name: str) -> str:
    """Drop and create database `name` beside BENCH_PG_URL's; returns its URL."""
    admin = sa.create_engine(pg_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(pg_url()).set(database=name).render_as_string(hide_password=False)


@dataclass
class HotTarget:
    name: str
    label: str
    tree: Path
    python: str
    per_token: bool  # price the model per token (hold + settle), else per request (hold only)
    env_for: Callable[[str, str, int], dict[str, str]]  # (database url, upstream base, port) -> a worker's env
    store: baseline_mod.StoreCli | None = None
    key: str = ""
    key_id: int = 0
    pricing: str = ""
    workers: list[Server] = field(default_factory=list)


def main_target(per_token: bool) -> HotTarget:
    name = "api" if per_token else "api_per_request"
    return HotTarget(
        name,
        "this tree's API, 2 workers (uvicorn api.app:app), PostgreSQL + Redis",
        ROOT,
        sys.executable,
        per_token,
        env_for=platform_env,
    )


def baseline_target(baseline: baseline_mod.Baseline) -> HotTarget:
    def env_for(database_url: str, upstream_base: str, port: int) -> dict[str, str]:
        return baseline_mod.server_env(baseline, database_url, upstream_base, port)

    return HotTarget(
        "baseline_api",
        f"baseline {baseline.name}'s API, 2 workers (uvicorn api.app:app), PostgreSQL + Redis",
        baseline.tree,
        baseline.python,
        True,
        env_for=env_for,
    )


def prepare(target: HotTarget, upstream_base: str) -> None:
    """Its database (fresh), the user and the key, priced; its two workers, not yet started."""
    url = fresh_database(f"bench_hot_{target.name}")
    target.store = baseline_mod.StoreCli(target.tree, target.python, url, f"hot-{target.name}@bench.test")
    target.store.create()
    if target.per_token and target.store.price_per_token(MODEL):
        target.pricing = "per token: hold + settle"
    else:
        target.per_token = False
        target.pricing = "per request: hold only"
    target.key, target.key_id = target.store.issue_key("hot")
    namespace = f"bench-hot-{os.getpid()}-{target.name}"
    target.workers = []
    for i in range(WORKERS):
        port = free_port()
        env = target.env_for(url, upstream_base, port)
        # (MAX_IN_FLIGHT_PER_USER comes raised with the rest: bench.targets.ONE_ACCOUNT_IN_FLIGHT)
        env.update(REDIS_URL=redis_url(), RUN_PIPELINE_IN_PROCESS="false", RATE_LIMIT_NAMESPACE=namespace)
        command = [target.python, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
        target.workers.append(
            Server(
                f"{target.name} worker {i + 1}",
                command + ["--no-access-log", "--log-level", "warning"],
                env=env,
                cwd=target.tree,
                log_path=OUT / f"hot-{target.name}-{i + 1}.log",
                ready_url=f"http://127.0.0.1:{port}/api/v1/models",
            )
        )


@contextlib.contextmanager
def running(target: HotTarget) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for worker in target.workers:
            stack.enter_context(worker)
        yield


def _url(worker: Server) -> str:
    return worker.ready_url.removesuffix("/models") + "/chat/completions"


def call(target: HotTarget, concurrency: int, seconds: float) -> dict:
    """C callers spread over the workers for `seconds`: the two wrk runs, combined."""
    shares = [concurrency // WORKERS + (i < concurrency % WORKERS) for i in range(WORKERS)]
    cpu_before = sum(w.cpu_seconds() for w in target.workers)
    with ThreadPoolExecutor(WORKERS) as pool:
        runs: list[WrkResult] = list(
            pool.map(
                lambda pair: run_wrk(_url(pair[0]), key=target.key, connections=pair[1], seconds=seconds, workdir=OUT),
                zip(target.workers, shares, strict=True),
            )
        )
    cpu = sum(w.cpu_seconds() for w in target.workers) - cpu_before
    responses = sum(r.responses for r in runs)
    return {
        "concurrency": concurrency,
        "seconds": max(r.seconds for r in runs),
        "responses": responses,
        "rps": sum(r.rps for r in runs),
        "p50_ms": max(r.p50_ms for r in runs),
        "p99_ms": max(r.p99_ms for r in runs),
        "status_402": sum(r.status_402 for r in runs),
        "other_non2xx": sum(r.non2xx - r.status_402 for r in runs),
        "socket_errors": sum(r.socket_errors for r in runs),
        "cpu_ms_per_call": cpu / responses * 1000 if responses else None,
        "load_before": os.getloadavg()[0],
    }


def _engine(target: HotTarget) -> sa.Engine:
    assert target.store is not None
    return baseline_mod._engine(target.store.database_url)


def account(target: HotTarget) -> dict:
    """The user's balance, ledger and the key's log rows, as the database has them now."""
    assert target.store is not None
    user, key = target.store.user_id, target.key_id
    with _engine(target).connect() as conn:

        def one(sql: str, **params: object) -> int:
            return int(conn.execute(sa.text(sql), params).scalar_one() or 0)

        out = {
            "balance": one("SELECT balance FROM users WHERE id = :u", u=user),
            "ledger_sum": one("SELECT COALESCE(SUM(amount), 0) FROM credit_ledger WHERE user_id = :u", u=user),
            "ledger_rows": one("SELECT COUNT(*) FROM credit_ledger WHERE user_id = :u", u=user),
            "grants": one(
                "SELECT COALESCE(SUM(amount), 0) FROM credit_ledger WHERE user_id = :u AND kind = 'grant'", u=user
            ),
            "log_rows": one("SELECT COUNT(*) FROM request_logs WHERE api_key_id = :k", k=key),
            "log_cost": one("SELECT COALESCE(SUM(credit_cost), 0) FROM request_logs WHERE api_key_id = :k", k=key),
            "ok_rows": one("SELECT COUNT(*) FROM request_logs WHERE api_key_id = :k AND status = 200", k=key),
            "twice": one(
                "SELECT COUNT(*) FROM (SELECT kind, ref FROM credit_ledger WHERE user_id = :u "
                "AND kind IN ('refund', 'settle') GROUP BY kind, ref HAVING COUNT(*) > 1) AS dup",
                u=user,
            ),
            "max_hold": one(
                "SELECT COALESCE(MAX(-amount), 0) FROM credit_ledger WHERE user_id = :u AND kind = 'charge'", u=user
            ),
            "pending": None,
        }
        if sa.inspect(conn).has_table("pending_settlements"):
            out["pending"] = one("SELECT COUNT(*) FROM pending_settlements WHERE user_id = :u", u=user)
    return out


def settled(target: HotTarget, expected_rows: int, wait_s: float = 30) -> dict:
    """The account once the workers' writers are done: the log rows at least the calls
    answered, and nothing (rows, ledger, balance) changed for 1.5 s."""
    deadline = time.monotonic() + wait_s
    last, since = None, time.monotonic()
    while True:
        now_state = account(target)
        fingerprint = (now_state["log_rows"], now_state["ledger_rows"], now_state["balance"])
        now = time.monotonic()
        if fingerprint != last:
            last, since = fingerprint, now
        if (now_state["log_rows"] >= expected_rows and now - since >= 1.5) or now > deadline:
            return now_state
        time.sleep(0.25)


def drain(target: HotTarget, concurrency: int, seconds: float) -> dict:
    """Cut the balance to a few holds' worth (at least DRAIN_CALLS calls'), then call in
    rounds of 2 s until less than one hold is left, for at most `seconds`."""
    assert target.store is not None
    state = account(target)
    per_call = max(1, state["log_cost"] // max(1, state["ok_rows"]))
    budget = max(DRAIN_HOLDS * state["max_hold"], DRAIN_CALLS * per_call)
    target.store.grant(budget - state["balance"])
    rounds: list[dict] = []
    started, answered = time.monotonic(), state["log_rows"]
    while True:
        rounds.append(call(target, concurrency, min(2.0, seconds)))
        answered += rounds[-1]["responses"]
        left = settled(target, answered)["balance"]
        if left < max(1, state["max_hold"]) or time.monotonic() - started >= seconds:
            break
    total = {key: sum(r[key] for r in rounds) for key in ("responses", "status_402", "other_non2xx", "socket_errors")}
    return {
        **total,
        "concurrency": concurrency,
        "seconds": time.monotonic() - started,
        "rounds": len(rounds),
        "budget": budget,
        "per_call": per_call,
    }


def measure(target: HotTarget, upstream_base: str, levels: list[int], seconds: float, drain_s: float) -> dict:
    from .hot_report import progress_line

    prepare(target, upstream_base)
    rows: list[dict] = []
    answered = 0
    with running(target):
        answered += call(target, 16, 2)["responses"]  # warm-up: connections, caches, the key
        for concurrency in levels:
            before = settled(target, answered)
            row = call(target, concurrency, seconds)
            answered += row["responses"]
            after = settled(target, answered)
            row.update(target=target.name, log_rows=after["log_rows"] - before["log_rows"])
            rows.append(row)
            print(progress_line(row), flush=True)
        drained = None
        if drain_s > 0:
            drained = drain(target, max(levels), drain_s)
            answered += drained["responses"]
            print(
                f"   drain: {drained['responses']} calls in {drained['seconds']:.1f}s, {drained['status_402']} "
                f"answered 402 (budget {drained['budget']}, ~{drained['per_call']} a call)",
                flush=True,
            )
        final = settled(target, answered)
    return {
        "target": target.name,
        "label": target.label,
        "pricing": target.pricing,
        "rows": rows,
        "drain": drained,
        "answered": answered,
        "final": final,
        "checks": checks(target.name, final, answered, drained),
    }


def checks(name: str, final: dict, answered: int, drained: dict | None) -> list[tuple[str, str, bool]]:
    """Zero overspend, from the account after the run (bench/hot.py's docstring)."""
    out = [
        (
            f"{name}: balance = the sum of its ledger",
            f"{final['balance']} = {final['ledger_sum']}",
            final["balance"] == final["ledger_sum"],
        ),
        (f"{name}: balance ≥ 0", str(final["balance"]), final["balance"] >= 0),
        (
            f"{name}: balance = grants − Σ credit_cost of the key's logged requests",
            f"{final['balance']} = {final['grants']} − {final['log_cost']}",
            final["balance"] == final["grants"] - final["log_cost"],
        ),
        (f"{name}: no refund or settle twice for one ref", str(final["twice"]), final["twice"] == 0),
        (
            f"{name}: every call answered has its log row",
            f"{final['log_rows']}/{answered}",
            final["log_rows"] >= answered,
        ),
    ]
    if final["pending"] is not None:
        out.append((f"{name}: no settlement left pending", str(final["pending"]), final["pending"] == 0))
    if drained is not None:
        # A 402 means the callers met the floor: what was free (the balance less the holds
        # of the calls in flight) did not cover one more hold.
        out.append(
            (
                f"{name}: the drain reached the floor (402s while callers raced for the last holds)",
                f"{drained['status_402']} × 402, {final['balance']} left, one hold {final['max_hold']}",
                drained["status_402"] > 0 and drained["other_non2xx"] + drained["socket_errors"] == 0,
            )
        )
    return out
