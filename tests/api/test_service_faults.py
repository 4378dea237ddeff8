"""When a service the API leans on cannot answer: Redis down or hung, an SQLite file
whose write lock another process holds. Each answers 503 with Retry-After soon (never
a 500, never a hang), leaves reads working where it can, and recovers on its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
import uuid
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from sqlmodel import select

from api.app import create_app
from store import accounts, credits
from store.db import session_for
from store.models import LedgerEntry

from ..conftest import REDIS_URL, make_settings, require
from ..factories import as_credits, auth, flat_seed_prices, make_key, make_user
from .test_chat import upstream_completion
from .test_errors import CHAT, assert_error, chat_body


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


TEST_TIMEOUT_S = 20  # no test here may hang, whatever the code under test does


class RedisStandIn:
    """One local port that plays Redis `down` (nothing listens), `hung` (accepts
    connections, never answers) or `up` (forwards every byte to the real Redis)."""

    def __init__(self, real_url: str) -> None:
        real = sa.engine.make_url(real_url)
        self._real = (real.host or "127.0.0.1", real.port or 6379)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def hung(self) -> None:
        await self.down()
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", self.port)

    async def up(self) -> None:
        await self.down()
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _hold(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)  # kept open, never written to

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        real_reader, real_writer = await asyncio.open_connection(*self._real)
        self._writers.append(real_writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, real_writer), pipe(real_reader, writer))


@pytest.fixture
async def redis_stand_in():
    stand_in = RedisStandIn(require(REDIS_URL, "TEST_REDIS_URL"))
    yield stand_in
    await stand_in.down()


@pytest.fixture
def upstream(chat_upstream):
    chat_upstream.add(json=upstream_completion(), reusable=True)
    return chat_upstream


@contextlib.asynccontextmanager
async def serving(settings):
    app = create_app(settings)
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://platform.test") as c:
            yield c


def chat(client, secret: str):
    return client.post(CHAT, json=chat_body(), headers=auth(secret))


def balance(engine, user) -> tuple[Decimal, Decimal]:
    """The balance and the ledger sum, in credits (exact)."""
    with session_for(engine) as s:
        return as_credits(credits.balance(s, user_id=user.id)), as_credits(credits.ledger_sum(s, user_id=user.id))


async def _recovers(client, secret: str) -> httpx.Response:
    """Model calls go through again within a few Retry-After periods."""
    for _ in range(40):
        r = await chat(client, secret)
        if r.status_code != 503:
            return r
        await asyncio.sleep(0.1)
    return r


@pytest.mark.parametrize("mode", ["down", "hung"])
async def test_rate_limit_store_failure_is_503_with_retry_after_then_recovers(
    mode, redis_stand_in, database_url, tmp_path, engine, upstream, caplog
):
    settings = make_settings(
        database_url,
        tmp_path,
        openrouter_base_url=upstream.base_url,
        redis_url=redis_stand_in.url,
        rate_limit_namespace=f"test-{uuid.uuid4().hex}",
    )
    user = make_user(engine, credits=100)
    secret = make_key(engine, user, rpm=5)
    caplog.set_level(logging.INFO, logger="api.ratelimit")
    async with asyncio.timeout(TEST_TIMEOUT_S), serving(settings) as client:
        await (redis_stand_in.down() if mode == "down" else redis_stand_in.hung())
        responses = [await chat(client, secret)]
        responses += await asyncio.gather(*(chat(client, secret) for _ in range(5)))
        for r in responses:
            assert_error(r, 503, "service_unavailable")
            assert r.headers["retry-after"] == "1"
        # a read does not need the limiter: the balance can still be read
        r = await client.get("/api/v1/key", headers=auth(secret))
        assert (r.status_code, r.json()["credit_balance"]) == (200, 100)
        assert balance(engine, user) == (100, 100)  # refused before any charge

        await redis_stand_in.up()
        r = await _recovers(client, secret)
        assert r.status_code == 200, r.text
        assert (r.headers["x-ratelimit-limit-requests"], r.headers["x-ratelimit-remaining-requests"]) == ("5", "4")
        assert balance(engine, user) == (97, 97)
    failures = [rec for rec in caplog.records if rec.name == "api.ratelimit" and rec.levelno >= logging.ERROR]
    recoveries = [rec for rec in caplog.records if rec.name == "api.ratelimit" and rec.levelno == logging.WARNING]
    assert (len(failures), len(recoveries)) == (1, 1)  # once on failing, once on recovery: not per request


async def test_login_limiter_on_a_hung_redis_fails_fast(redis_stand_in):
    await redis_stand_in.hung()
    limiter = accounts.LoginLimiter(
        redis_stand_in.url, per_client=RateLimitItemPerMinute(5), namespace=f"test-{uuid.uuid4().hex}"
    )
    async with asyncio.timeout(TEST_TIMEOUT_S):
        with pytest.raises(StorageError):
            await limiter.attempt(client="203.0.113.9", email="a@example.com")
        await redis_stand_in.down()
        with pytest.raises(StorageError):
            await limiter.attempt(client="203.0.113.9", email="a@example.com")
        await redis_stand_in.up()
        assert await limiter.attempt(client="203.0.113.9", email="a@example.com") is None


async def test_a_held_sqlite_write_lock_stalls_no_read_and_fails_a_debit_with_503(
    database_url, tmp_path, engine, upstream
):
    # key and registry caches off: every read below reaches the database
    settings = make_settings(
        database_url, tmp_path, openrouter_base_url=upstream.base_url, sqlite_busy_timeout_s=1.0, key_cache_ttl_s=0
    )
    user = make_user(engine, credits=30)
    secret = make_key(engine, user, rpm=0)
    async with asyncio.timeout(TEST_TIMEOUT_S), serving(settings) as client:
        assert (await chat(client, secret)).status_code == 200
        holder = sqlite3.connect(sa.engine.make_url(database_url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
        try:
            debit = asyncio.create_task(chat(client, secret))
            await asyncio.sleep(0.2)  # the debit is now waiting for the lock
            for path in ("/api/v1/key", "/api/v1/models", "/api/v1/key"):
                r = await client.get(path, headers=auth(secret))
                assert r.status_code == 200, r.text
            r = await client.get(f"/api/v1/images/generations/img_{'0' * 32}", headers=auth(secret))
            assert_error(r, 404, "task_not_found")
            assert not debit.done()  # the reads did not wait behind it
            r = await debit
            assert_error(r, 503, "service_unavailable")
            assert r.headers["retry-after"] == "1"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert balance(engine, user) == (27, 27)  # nothing charged for the refused call
        r = await chat(client, secret)
        assert r.status_code == 200
        assert balance(engine, user) == (24, 24)
        with session_for(engine) as s:
            charges = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id, LedgerEntry.kind == "charge"))
            assert len(list(charges)) == 2
