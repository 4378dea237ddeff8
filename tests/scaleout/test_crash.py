"""No hold lives forever, for real: the API as a server process (`uvicorn api.app:app`, the
reconciler in its pipeline worker) is killed with SIGKILL while a call is in flight, and
restarted on the same database (a SQLite file, or PostgreSQL). The call's hold outlives the
process in the `holds` table; once its lease runs out the restarted server settles it from
the upstream's generation record, or refunds it, exactly once, with one log row.

The upstream is tests/fakes/stalling.py: it keeps a call open as long as the test wants
and answers a generation record only when told. Every number is worked out from the
prices set here and the bytes the upstream received (a prompt's bound is its body's bytes).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
import sqlalchemy as sa

from store import credits, holds, pricing, registry, settlements
from store.db import get_engine, read_engine, session_for
from store.models import CLEAR, ApiKey, Hold, LedgerEntry, PendingSettlement, RequestLog, User, table_of
from store.money import parse_credits, usd_micro
from store.pricing import TOKENS_PER_PRICE

from ..conftest import TEST_SECRET
from ..factories import make_key, make_user
from ..fakes.stalling import StallingUpstream
from ..fakes.upstream import free_port
from .conftest import Process, _start, _stop, _wait_ready

ROOT = Path(__file__).resolve().parents[2]
BOTH = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
pytestmark = BOTH

MODEL = "openai/gpt-5"  # priced per token here
FLAT = "openai/gpt-5-mini"  # priced per request here
FEE = parse_credits("0.002")
PROMPT_PRICE = parse_credits("3")  # per 1M tokens
COMPLETION_PRICE = parse_credits("15")
FLAT_FEE = parse_credits("0.5")
MAX_TOKENS = 2000
START = parse_credits("10")  # each caller's credits
LEASE_S = 3.0  # HOLD_LEASE_S: beats every second, so a loaded machine has two to spare
DEADLINE_S = 5.0  # RECONCILE_DEADLINE_S
WAIT_S = 120.0  # the most any poll waits (never a timing assertion: only a bound on a hang)
CHAT = "/api/v1/chat/completions"

T = TypeVar("T")
_HOLDS, _LEDGER, _LOGS = table_of(Hold), table_of(LedgerEntry), table_of(RequestLog)
_PENDING, _USERS, _KEYS = table_of(PendingSettlement), table_of(User), table_of(ApiKey)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def per_token_hold(body_bytes: int) -> int:
    """The hold of a call whose upstream body has `body_bytes` bytes: its prompt bound."""
    return FEE + ceil_div(body_bytes * PROMPT_PRICE + MAX_TOKENS * COMPLETION_PRICE, TOKENS_PER_PRICE)


def per_token_charge(prompt: int, completion: int) -> int:
    return FEE + ceil_div(prompt * PROMPT_PRICE + completion * COMPLETION_PRICE, TOKENS_PER_PRICE)


# ------------------------------------------------------------ the servers


@dataclass
class Platform:
    database_url: str
    upstream: StallingUpstream
    tmp: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    @property
    def engine(self) -> sa.Engine:
        return get_engine(self.database_url)

    def start(self, **env: str) -> Process:
        """One more API server process on the shared database, ready."""
        port = free_port()
        process = _start(
            f"server{len(self.processes) + 1}",
            [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)],
            {**self.env, **env},
            self.tmp,
            base_url=f"http://127.0.0.1:{port}",
        )
        self.processes.append(process)
        _wait_ready(process)
        return process

    def kill(self, process: Process) -> None:
        """SIGKILL of its process group: nothing of it runs a line more."""
        os.killpg(process.popen.pid, signal.SIGKILL)
        assert process.popen.wait(timeout=30) == -signal.SIGKILL

    def pause(self, process: Process, ref: str) -> None:
        """SIGSTOP of its process group, at a moment it holds no lock `ref`'s hold needs (a
        pause mid-transaction would stall the other servers' writes too: not the case tested)."""
        for _ in range(100):
            os.killpg(process.popen.pid, signal.SIGSTOP)
            if self._hold_unlocked(ref):
                return
            os.killpg(process.popen.pid, signal.SIGCONT)
            time.sleep(0.05)
        raise AssertionError(f"{process.name} always held a lock on {ref}'s hold")

    def _hold_unlocked(self, ref: str) -> bool:
        url = sa.engine.make_url(self.database_url)
        if url.get_backend_name() == "sqlite":  # one write lock for the whole file
            conn = sqlite3.connect(url.database, timeout=1.0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return True
            except sqlite3.OperationalError:
                return False
            finally:
                conn.close()
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(_HOLDS.c.ref).where(_HOLDS.c.ref == ref).with_for_update(nowait=True)).all()
                conn.rollback()
            return True
        except sa.exc.OperationalError:
            return False

    def client(self, process: Process, key: str) -> openai.OpenAI:
        assert process.base_url is not None
        return openai.OpenAI(base_url=f"{process.base_url}/api/v1", api_key=key, max_retries=0, timeout=60)

    def wait(self, check: Callable[[], T], what: str) -> T:
        """`check()` once it is truthy; fails (with the servers' output) after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while not (value := check()):
            if time.monotonic() > deadline:
                output = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.processes)
                raise AssertionError(f"not within {WAIT_S:.0f}s: {what}\n{output}")
            time.sleep(0.1)
        return value

    # -------------------------------------------------------- what the database says (read beside the servers)

    def _rows(self, query: sa.Select) -> list[sa.RowMapping]:
        with read_engine(self.engine).connect() as conn:
            return list(conn.execute(query).mappings())

    def holds_of(self, user_id: int) -> list[sa.RowMapping]:
        return self._rows(sa.select(_HOLDS).where(_HOLDS.c.user_id == user_id))

    def ledger(self, ref: str) -> list[tuple[str, int]]:
        rows = self._rows(sa.select(_LEDGER).where(_LEDGER.c.ref == ref).order_by(_LEDGER.c.id))
        return [(row["kind"], row["amount"]) for row in rows]

    def ledger_rows(self, ref: str) -> list[sa.RowMapping]:
        return self._rows(sa.select(_LEDGER).where(_LEDGER.c.ref == ref).order_by(_LEDGER.c.id))

    def pending(self, ref: str) -> list[sa.RowMapping]:
        return self._rows(sa.select(_PENDING).where(_PENDING.c.ref == ref))

    def logs(self, ref: str) -> list[sa.RowMapping]:
        return self._rows(sa.select(_LOGS).where(_LOGS.c.request_id == ref))

    def money(self, user_id: int) -> tuple[int, int]:
        """The balance and the ledger sum, micro-credits."""
        balance = self._rows(sa.select(_USERS.c.balance).where(_USERS.c.id == user_id))[0]["balance"]
        total = self._rows(
            sa.select(sa.func.coalesce(sa.func.sum(_LEDGER.c.amount), 0).label("s")).where(_LEDGER.c.user_id == user_id)
        )[0]["s"]
        return balance, total

    def key_id(self, user_id: int) -> int:
        return self._rows(sa.select(_KEYS.c.id).where(_KEYS.c.user_id == user_id))[0]["id"]

    def reconciled_once_more(self) -> None:
        """Wait for a reconciler pass that starts from now: a hold of a process that died
        (planted here, for a user of its own) is reaped and refunded."""
        user = make_user(self.engine, credits=1)
        ref = f"canary-{uuid.uuid4().hex[:16]}"
        dead = holds.HoldInfo(owner="a-process-that-died", lease_s=-1.0, endpoint=CHAT, stream=False)
        with session_for(self.engine) as s:
            credits.debit_for_request(s, user_id=user.id, cost=1000, ref=ref, model=MODEL, hold=dead)
        self.wait(lambda: self.ledger(ref) == [("charge", -1000), ("refund", 1000)] and not self.pending(ref), ref)


@pytest.fixture
def platform(database_url, tmp_path) -> Iterator[Platform]:
    with session_for(get_engine(database_url)) as s:
        registry.set_model(
            s,
            model_id=MODEL,
            actor="test",
            pricing="per_token",
            credit_cost=FEE,
            prompt_price=PROMPT_PRICE,
            completion_price=COMPLETION_PRICE,
            max_output_tokens=2 * MAX_TOKENS,
            cache_read_price=CLEAR,
            cache_write_price=CLEAR,
        )
        registry.set_model(
            s,
            model_id=FLAT,
            actor="test",
            pricing="per_request",
            credit_cost=FLAT_FEE,
            prompt_price=0,
            completion_price=0,
            max_prompt_tokens=CLEAR,
        )
    with StallingUpstream() as upstream:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            # a few pooled connections per process: several processes and the suite share one
            # PostgreSQL (max_connections 100), and 40 calls at once must not run it out
            "DB_POOL_SIZE": "4",
            "DB_MAX_OVERFLOW": "6",
            "SECRET_KEY": TEST_SECRET,
            "OPENROUTER_API_KEY": "fake-upstream-key",
            "OPENROUTER_BASE_URL": upstream.base_url,
            "UPSTREAM_RETRIES": "0",
            "UPSTREAM_TIMEOUT_S": "600",  # a stalled call is cut by the kill, never by a timeout
            "HOLD_LEASE_S": str(LEASE_S),
            "RECONCILE_DEADLINE_S": str(DEADLINE_S),
            "RECONCILE_BACKOFF_S": "0.2",
            "KEY_CACHE_TTL_S": "0.5",
            "LOG_FLUSH_INTERVAL_S": "0.05",
            "WORKER_IDLE_S": "0.05",
            "RUN_PIPELINE_IN_PROCESS": "true",  # the reconciler runs in each server
            "MEDIA_DIR": str(tmp_path / "media"),
            "ACCESS_LOG": "false",
            "PYTHONPATH": str(ROOT),
        }
        for variable in ("REDIS_URL", "ADMIN_EMAIL", "ADMIN_PASSWORD", "PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN"):
            env.pop(variable, None)
        platform = Platform(database_url, upstream, tmp_path, env)
        try:
            yield platform
        finally:
            for process in platform.processes:
                _stop(process)
            get_engine(database_url).dispose()


def caller(platform: Platform) -> tuple[Any, str]:
    user = make_user(platform.engine, credits=10)
    return user, make_key(platform.engine, user)


def one_hold(platform: Platform, user_id: int, *, noted: str | None = None) -> sa.RowMapping:
    """The user's one open hold, once its upstream id is noted (with `noted`)."""

    def found() -> sa.RowMapping | None:
        rows = platform.holds_of(user_id)
        if len(rows) == 1 and (noted is None or rows[0]["upstream_id"] == noted):
            return rows[0]
        return None

    return platform.wait(found, f"one hold of user {user_id}" + (f" noting {noted}" if noted else ""))


def open_stream(platform: Platform, server: Process, key: str, model: str, content: str, chunks: int):
    """A streamed call through the official SDK, its first `chunks` chunks read: (request id,
    the chunks' one id, the stream's iterator)."""
    raw = platform.client(server, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=MAX_TOKENS, stream=True
    )
    stream = iter(raw.parse())
    ids = {next(stream).id for _ in range(chunks)}
    assert len(ids) == 1
    return raw.headers["x-request-id"], ids.pop(), stream


def assert_cut_off(stream) -> None:
    """The client of a killed server sees its stream break off."""
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for _ in stream:
            pass


# ------------------------------------------------------------ the cases


@pytest.mark.e2e
def test_a_call_killed_mid_call_is_refunded_once_after_the_restart(platform):
    user, key = caller(platform)
    server = platform.start()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(
            platform.client(server, key).chat.completions.create,
            model=MODEL,
            messages=[{"role": "user", "content": "stall"}],
            max_tokens=MAX_TOKENS,
        )
        hold = one_hold(platform, user.id)
        platform.wait(lambda: platform.upstream.calls, "the call at the upstream")
        held = per_token_hold(len(platform.upstream.calls[0].body))
        platform.kill(server)
        assert isinstance(call.exception(timeout=60), openai.APIConnectionError)
    ref = hold["ref"]
    # The process is gone; its hold is not: still held, in the ledger and in the table.
    assert hold["amount"] == held and hold["upstream_id"] is None and hold["model"] == MODEL
    assert platform.ledger(ref) == [("charge", -held)]
    assert platform.money(user.id) == (START - held, START - held)
    assert [h["ref"] for h in platform.holds_of(user.id)] == [ref]
    assert platform.logs(ref) == [] and platform.pending(ref) == []

    platform.start()
    platform.wait(lambda: ("refund", held) in platform.ledger(ref) and not platform.pending(ref), f"{ref} refunded")
    assert platform.ledger(ref) == [("charge", -held), ("refund", held)]
    assert platform.money(user.id) == (START, START)
    assert platform.holds_of(user.id) == []
    [row] = platform.logs(ref)
    assert (row["status"], row["error_code"], row["credit_cost"]) == (500, "interrupted", 0)
    assert (row["endpoint"], row["model"], row["stream"]) == (CHAT, MODEL, False)
    assert (row["api_key_id"], row["key_prefix"]) == (platform.key_id(user.id), key[:12])
    assert platform.upstream.asks == {}  # no upstream id, no record to look for

    platform.reconciled_once_more()  # and later passes change nothing
    assert platform.ledger(ref) == [("charge", -held), ("refund", held)]
    assert platform.money(user.id) == (START, START) and len(platform.logs(ref)) == 1


@pytest.mark.e2e
def test_a_stream_killed_mid_stream_is_settled_from_its_generation_record_once(platform):
    user, key = caller(platform)
    server = platform.start()
    ref, gen_id, stream = open_stream(platform, server, key, MODEL, "stream:3", chunks=3)
    assert gen_id.startswith("gen-crash-")
    hold = one_hold(platform, user.id, noted=gen_id)  # the keeper's beat wrote the id it learnt
    assert hold["ref"] == ref
    held = per_token_hold(len(platform.upstream.calls[0].body))
    platform.kill(server)
    assert_cut_off(stream)
    assert hold["amount"] == held and hold["stream"] is True
    assert platform.ledger(ref) == [("charge", -held)]
    assert platform.money(user.id) == (START - held, START - held)

    platform.upstream.serve_record(gen_id, prompt_tokens=1234, completion_tokens=567, total_cost=0.0123)
    charge = per_token_charge(1234, 567)
    assert charge == FEE + 1234 * 3 + 567 * 15 and 0 < charge < held
    second = platform.start()
    platform.wait(lambda: len(platform.ledger(ref)) == 2 and not platform.pending(ref), f"{ref} settled")
    settled = [("charge", -held), ("settle", held - charge)]
    assert platform.ledger(ref) == settled
    assert platform.money(user.id) == (START - charge, START - charge)
    assert platform.holds_of(user.id) == []
    [row] = platform.logs(ref)
    assert (row["status"], row["error_code"], row["credit_cost"]) == (500, "interrupted", charge)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (1234, 567, 1801)
    assert (row["upstream_id"], row["upstream_cost"], row["stream"]) == (gen_id, usd_micro(0.0123), True)
    asks = platform.upstream.asks[gen_id]
    assert asks >= 1

    # Nothing twice: killed and restarted again, with the record still served, reconciler
    # passes after the restart change nothing and never ask for the record again.
    platform.kill(second)
    platform.start()
    platform.reconciled_once_more()
    assert platform.ledger(ref) == settled
    assert platform.money(user.id) == (START - charge, START - charge)
    assert len(platform.logs(ref)) == 1 and platform.logs(ref)[0]["credit_cost"] == charge
    assert platform.upstream.asks[gen_id] == asks


@pytest.mark.e2e
def test_a_flat_priced_stream_killed_keeps_its_fee_with_a_record_and_is_refunded_without(platform):
    found_user, found_key = caller(platform)
    lost_user, lost_key = caller(platform)
    server = platform.start()
    found_ref, found_id, found_stream = open_stream(platform, server, found_key, FLAT, "stream:2", chunks=2)
    lost_ref, lost_id, lost_stream = open_stream(platform, server, lost_key, FLAT, "stream:2", chunks=2)
    one_hold(platform, found_user.id, noted=found_id)
    one_hold(platform, lost_user.id, noted=lost_id)
    platform.kill(server)
    assert_cut_off(found_stream)
    assert_cut_off(lost_stream)
    for user, ref in ((found_user, found_ref), (lost_user, lost_ref)):
        assert platform.ledger(ref) == [("charge", -FLAT_FEE)]
        assert platform.money(user.id) == (START - FLAT_FEE, START - FLAT_FEE)

    # The record shows the generation happened: the whole fee stands. None ever shows for
    # the other: refunded once its deadline has passed.
    platform.upstream.serve_record(found_id, prompt_tokens=40, completion_tokens=2, total_cost=0.00005)
    platform.start()
    platform.wait(lambda: len(platform.ledger(found_ref)) == 2 and not platform.pending(found_ref), "fee kept")
    platform.wait(lambda: len(platform.ledger(lost_ref)) == 2 and not platform.pending(lost_ref), "refunded")

    assert platform.ledger(found_ref) == [("charge", -FLAT_FEE), ("settle", 0)]
    assert platform.money(found_user.id) == (START - FLAT_FEE, START - FLAT_FEE)
    [row] = platform.logs(found_ref)
    assert (row["status"], row["error_code"], row["credit_cost"]) == (500, "interrupted", FLAT_FEE)
    assert (row["prompt_tokens"], row["completion_tokens"], row["upstream_id"]) == (40, 2, found_id)

    assert platform.ledger(lost_ref) == [("charge", -FLAT_FEE), ("refund", FLAT_FEE)]
    assert platform.money(lost_user.id) == (START, START)
    [row] = platform.logs(lost_ref)
    assert (row["status"], row["error_code"], row["credit_cost"]) == (500, "interrupted", 0)
    assert row["upstream_id"] == lost_id and row["prompt_tokens"] is None
    assert platform.upstream.asks[lost_id] >= 1  # looked for, not found
    charged, refunded = platform.ledger_rows(lost_ref)
    assert _utc(refunded["created_at"]) >= _utc(charged["created_at"]) + timedelta(seconds=DEADLINE_S)
    assert platform.holds_of(found_user.id) == [] and platform.holds_of(lost_user.id) == []

    platform.reconciled_once_more()
    assert platform.ledger(found_ref) == [("charge", -FLAT_FEE), ("settle", 0)]
    assert platform.ledger(lost_ref) == [("charge", -FLAT_FEE), ("refund", FLAT_FEE)]


@pytest.mark.e2e
def test_a_live_stream_whose_lease_is_renewed_is_never_reaped_and_settles_once(platform):
    """Two servers, each with the reconciler: while one relays a long stream, passes of
    both reap holds of a dead process around it, over several of its lease periods; its own
    hold stays, and the stream ends and is settled normally, once."""
    user, key = caller(platform)
    serving = platform.start()
    platform.start()
    ref, gen_id, stream = open_stream(platform, serving, key, MODEL, "gate:2", chunks=2)
    hold = one_hold(platform, user.id, noted=gen_id)
    held = per_token_hold(len(platform.upstream.calls[0].body))
    lease = _utc(hold["lease_until"])
    for _ in range(2):
        # Once the lease it had has run out (its beats renewed it since), a reconciler pass
        # reaps a dead process's hold: this one, had it not been renewed, would have gone with it.
        renewed = platform.wait(
            lambda lease=lease: [
                h for h in platform.holds_of(user.id) if _utc(h["lease_until"]) >= lease + timedelta(seconds=LEASE_S)
            ],
            "the lease renewed",
        )
        lease = _utc(renewed[0]["lease_until"])
        platform.reconciled_once_more()
        [now] = platform.holds_of(user.id)
        assert (now["ref"], now["owner"], now["upstream_id"]) == (ref, hold["owner"], gen_id)
        assert platform.ledger(ref) == [("charge", -held)]
        assert platform.pending(ref) == [] and platform.logs(ref) == []

    platform.upstream.release(gen_id, prompt_tokens=1000, completion_tokens=200)
    rest = list(stream)
    assert rest[-1].choices[0].finish_reason == "stop"
    charge = per_token_charge(1000, 200)
    platform.wait(lambda: len(platform.ledger(ref)) == 2 and platform.logs(ref), f"{ref} settled")
    assert platform.ledger(ref) == [("charge", -held), ("settle", held - charge)]
    assert platform.money(user.id) == (START - charge, START - charge)
    assert platform.holds_of(user.id) == [] and platform.pending(ref) == []
    [row] = platform.logs(ref)
    assert (row["status"], row["error_code"], row["credit_cost"]) == (200, None, charge)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1000, 200)
    assert platform.upstream.asks == {}  # its usage came with it: no record looked for


@pytest.mark.e2e
def test_a_paused_server_whose_hold_was_reaped_and_refunded_never_settles_it_again(platform):
    """A process that stops answering (SIGSTOP: a pause past its lease, as a long stall or
    a database away for a while) loses its hold to another server's reconciler, which
    refunds it; resumed, it finishes the stream, and its settlement must not give the
    unused part of the hold back on top of the refund."""
    user, key = caller(platform)
    serving = platform.start()
    platform.start()
    ref, gen_id, stream = open_stream(platform, serving, key, MODEL, "gate:2", chunks=2)
    one_hold(platform, user.id, noted=gen_id)
    held = per_token_hold(len(platform.upstream.calls[0].body))
    platform.pause(serving, ref)
    try:
        platform.wait(lambda: len(platform.ledger(ref)) == 2 and not platform.pending(ref), f"{ref} refunded")
    finally:
        os.killpg(serving.popen.pid, signal.SIGCONT)
    assert platform.ledger(ref) == [("charge", -held), ("refund", held)]
    assert platform.upstream.asks[gen_id] >= 1

    platform.upstream.release(gen_id, prompt_tokens=1000, completion_tokens=200)
    assert list(stream)[-1].choices[0].finish_reason == "stop"  # the caller got it all
    _stop(serving)  # SIGTERM: the lifespan's end waits for the settlement it had left to write
    assert "Application shutdown complete" in serving.output()
    assert platform.ledger(ref) == [("charge", -held), ("refund", held)]
    assert platform.money(user.id) == (START, START)
    assert platform.holds_of(user.id) == [] and platform.pending(ref) == []
    [row] = platform.logs(ref)
    assert (row["status"], row["error_code"], row["credit_cost"]) == (500, "interrupted", 0)


def _utc(value: datetime) -> datetime:
    """A stored time, aware (SQLite hands back naive UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_a_beat_renews_its_own_holds_and_notes_their_upstream_ids_and_no_others(engine, session):
    """The store half of the keeper's beat, fast: what the SIGKILL tests rely on."""
    user = make_user(engine, credits=10)
    for ref, owner in (("mine", "a" * 32), ("theirs", "b" * 32)):
        info = holds.HoldInfo(owner=owner, lease_s=-1.0, endpoint=CHAT, stream=True)
        credits.debit_for_request(session, user_id=user.id, cost=1000, ref=ref, model=MODEL, hold=info)
    holds.renew(session, owner="a" * 32, lease_s=600, upstream_ids={"mine": "gen-1"})
    assert holds.reap_orphans(session, deadline_s=DEADLINE_S) == 1
    [mine] = session.execute(sa.select(_HOLDS)).mappings().all()
    assert (mine["ref"], mine["upstream_id"]) == ("mine", "gen-1")
    assert _utc(mine["lease_until"]) > datetime.now(UTC) + timedelta(seconds=500)
    [theirs] = session.execute(sa.select(_PENDING)).mappings().all()
    assert (theirs["ref"], theirs["interrupted"], theirs["upstream_id"]) == ("theirs", True, None)
    session.rollback()


def test_settling_a_call_whose_hold_the_reconciler_took_and_refunded_changes_nothing(engine, session):
    """The store half of the paused-server case, fast: the hold's record says who settles."""
    user = make_user(engine, credits=10)
    info = holds.HoldInfo(owner="a" * 32, lease_s=-1.0, endpoint=CHAT, stream=True)
    credits.debit_for_request(session, user_id=user.id, cost=30_000, ref="late", model=MODEL, hold=info)
    assert holds.reap_orphans(session, deadline_s=DEADLINE_S) == 1
    assert settlements.refund_pending(session, ref="late", note="refunded: interrupted")
    assert credits.settle_hold(session, user_id=user.id, ref="late", held=30_000, cost=8_000, model=MODEL) is None
    rows = session.execute(sa.select(_LEDGER.c.kind, _LEDGER.c.amount).where(_LEDGER.c.ref == "late")).all()
    assert [tuple(r) for r in rows] == [("charge", -30_000), ("refund", 30_000)]
    session.rollback()
    assert credits.balance(session, user_id=user.id) == START


@pytest.mark.parametrize("step", ["refund", "settle"])
def test_a_reaped_call_refunded_by_another_step_has_a_log_row_that_says_so(engine, session, step):
    """The refund of a reaped call may come from elsewhere than the reconciler's step (its
    serving process, resumed, failing the call; or the step's own first half, before a crash):
    the log row then still says what the ledger says, 0, never the hold."""
    user = make_user(engine, credits=10)
    info = holds.HoldInfo(owner="a" * 32, lease_s=-1.0, endpoint=CHAT, stream=True)
    credits.debit_for_request(session, user_id=user.id, cost=30_000, ref="gone", model=MODEL, hold=info)
    assert holds.reap_orphans(session, deadline_s=DEADLINE_S) == 1
    assert credits.refund(session, ref="gone", note="the call failed")
    if step == "refund":
        assert settlements.refund_pending(session, ref="gone", note="refunded: interrupted") is False
    else:
        usage = pricing.Usage(prompt_tokens=1000, completion_tokens=200)
        assert settlements.settle_pending(session, ref="gone", cost=8_000, usage=usage) is None
    row = session.execute(sa.select(_LOGS).where(_LOGS.c.request_id == "gone")).mappings().one()
    assert (row["status"], row["error_code"], row["credit_cost"], row["prompt_tokens"]) == (500, "interrupted", 0, None)
    assert session.execute(sa.select(_PENDING)).all() == []
    session.rollback()
    assert credits.balance(session, user_id=user.id) == START
