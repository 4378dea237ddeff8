"""Per-key per-minute limits, in process and in Redis, with honest headers."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx

from api.app import create_app

from ..conftest import REDIS_URL, require
from ..factories import auth, make_key, make_user
from .test_errors import assert_error


async def _exhaust(client, secret: str, limit: int) -> None:
    for used in range(1, limit + 1):
        r = await client.get("/api/v1/models", headers=auth(secret))
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == str(limit)
        assert r.headers["x-ratelimit-remaining-requests"] == str(limit - used)
        reset = r.headers["x-ratelimit-reset-requests"]
        assert reset.endswith("s") and 59 <= int(reset[:-1]) <= 60
    r = await client.get("/api/v1/models", headers=auth(secret))
    assert_error(r, 429, "rate_limit_exceeded")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining-requests"] == "0"


async def test_in_process_limit_and_headers(client, engine):
    secret = make_key(engine, make_user(engine), rpm=3)
    await _exhaust(client, secret, 3)


async def test_limit_is_per_key(client, engine):
    user = make_user(engine)
    first, second = make_key(engine, user, rpm=1), make_key(engine, user, rpm=1)
    assert (await client.get("/api/v1/models", headers=auth(first))).status_code == 200
    assert (await client.get("/api/v1/models", headers=auth(first))).status_code == 429
    assert (await client.get("/api/v1/models", headers=auth(second))).status_code == 200


async def test_zero_means_unlimited(client, engine):
    secret = make_key(engine, make_user(engine), rpm=0)
    for _ in range(5):
        r = await client.get("/api/v1/models", headers=auth(secret))
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == "0"


async def test_rejected_key_is_not_counted_but_still_has_headers(client):
    r = await client.get("/api/v1/models")
    assert (r.headers["x-ratelimit-limit-requests"], r.headers["x-ratelimit-remaining-requests"],
            r.headers["x-ratelimit-reset-requests"]) == ("0", "0", "0s")


async def test_redis_limit_is_shared_by_two_apps(settings, engine):
    redis_url = require(REDIS_URL, "TEST_REDIS_URL")
    shared = settings.model_copy(update={"redis_url": redis_url, "rate_limit_namespace": f"test-{uuid.uuid4().hex}"})
    first, second = create_app(shared), create_app(shared)
    secret = make_key(engine, make_user(engine), rpm=10)
    async with first.state.runtime.running(), second.state.runtime.running():
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
        ):
            responses = await asyncio.gather(
                *((a if i % 2 else b).get("/api/v1/models", headers=auth(secret)) for i in range(16))
            )
            assert Counter(r.status_code for r in responses) == {200: 10, 429: 6}
            # read right after each hit: under concurrency never more than is really left
            assert all(0 <= int(r.headers["x-ratelimit-remaining-requests"]) <= 9 for r in responses)
            assert {r.headers["x-ratelimit-limit-requests"] for r in responses} == {"10"}
            # and sequentially the count goes on from the shared state: all 10 are used
            r = await a.get("/api/v1/models", headers=auth(secret))
            assert_error(r, 429, "rate_limit_exceeded")


async def test_redis_limit_headers_sequential(settings, engine):
    redis_url = require(REDIS_URL, "TEST_REDIS_URL")
    app = create_app(settings.model_copy(update={"redis_url": redis_url, "rate_limit_namespace": f"test-{uuid.uuid4().hex}"}))
    secret = make_key(engine, make_user(engine), rpm=4)
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client:
            await _exhaust(client, secret, 4)
