"""Per-key per-minute limits on model calls, in process and in Redis, with honest headers.

Only model calls count (chat completions, image submissions); reads (`/key`, `/models`,
task status) report the window without using it up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest

from api.app import create_app

from ..conftest import REDIS_URL, require
from ..factories import auth, flat_seed_prices, make_key, make_user
from .test_chat import upstream_completion
from .test_errors import CHAT, assert_error, chat_body


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


IMAGES = "/api/v1/images/generations"


@pytest.fixture
def redis_url():
    return require(REDIS_URL, "TEST_REDIS_URL")  # requested first: a skip registers no upstream


@pytest.fixture
def upstream(chat_upstream):
    chat_upstream.add(json=upstream_completion(), reusable=True)
    return chat_upstream


def chat(client, secret: str):
    return client.post(CHAT, json=chat_body(), headers=auth(secret))


async def _exhaust(client, secret: str, limit: int) -> None:
    for used in range(1, limit + 1):
        r = await chat(client, secret)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == str(limit)
        assert r.headers["x-ratelimit-remaining-requests"] == str(limit - used)
        reset = r.headers["x-ratelimit-reset-requests"]
        assert reset.endswith("s") and 59 <= int(reset[:-1]) <= 60
    r = await chat(client, secret)
    assert_error(r, 429, "rate_limit_exceeded")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining-requests"] == "0"


async def test_in_process_limit_and_headers(client, engine, upstream):
    secret = make_key(engine, make_user(engine, credits=100), rpm=3)
    await _exhaust(client, secret, 3)


async def test_reads_do_not_use_up_the_limit(client, engine, upstream):
    user = make_user(engine, credits=100)
    secret = make_key(engine, user, rpm=2)
    for _ in range(2):
        assert (await chat(client, secret)).status_code == 200
    for _ in range(3):
        for path in ("/api/v1/key", "/api/v1/models"):
            r = await client.get(path, headers=auth(secret))
            assert r.status_code == 200, r.text
            # the current window, reported without consuming it
            assert (r.headers["x-ratelimit-limit-requests"], r.headers["x-ratelimit-remaining-requests"]) == ("2", "0")
            assert 59 <= int(r.headers["x-ratelimit-reset-requests"][:-1]) <= 60
    assert (await client.get("/api/v1/key", headers=auth(secret))).json()["credit_balance"] == 100 - 2 * 3
    assert_error(await chat(client, secret), 429, "rate_limit_exceeded")


async def test_reads_report_a_fresh_window_in_full(client, engine):
    secret = make_key(engine, make_user(engine), rpm=5)
    for _ in range(7):
        r = await client.get("/api/v1/models", headers=auth(secret))
        assert r.status_code == 200
        assert (
            r.headers["x-ratelimit-limit-requests"],
            r.headers["x-ratelimit-remaining-requests"],
            r.headers["x-ratelimit-reset-requests"],
        ) == ("5", "5", "0s")


async def test_task_status_is_a_read_and_image_submission_counts(client, engine, upstream):
    secret = make_key(engine, make_user(engine, credits=100), rpm=1)
    assert (await chat(client, secret)).status_code == 200
    # an image submission is a model call: refused before its body is even read
    assert_error(await client.post(IMAGES, json={}, headers=auth(secret)), 429, "rate_limit_exceeded")
    r = await client.get(f"{IMAGES}/img_{'0' * 32}", headers=auth(secret))
    assert_error(r, 404, "task_not_found")  # reached the lookup: not limited
    assert r.headers["x-ratelimit-remaining-requests"] == "0"


async def test_limit_is_per_key(client, engine, upstream):
    user = make_user(engine, credits=100)
    first, second = make_key(engine, user, rpm=1), make_key(engine, user, rpm=1)
    assert (await chat(client, first)).status_code == 200
    assert (await chat(client, first)).status_code == 429
    assert (await chat(client, second)).status_code == 200


async def test_zero_means_unlimited(client, engine, upstream):
    secret = make_key(engine, make_user(engine, credits=100), rpm=0)
    for _ in range(5):
        r = await chat(client, secret)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == "0"


async def test_rejected_key_is_not_counted_but_still_has_headers(client):
    r = await client.get("/api/v1/models")
    assert (
        r.headers["x-ratelimit-limit-requests"],
        r.headers["x-ratelimit-remaining-requests"],
        r.headers["x-ratelimit-reset-requests"],
    ) == ("0", "0", "0s")


async def test_redis_limit_is_shared_by_two_apps(redis_url, settings, engine, upstream):
    shared = settings.model_copy(update={"redis_url": redis_url, "rate_limit_namespace": f"test-{uuid.uuid4().hex}"})
    first, second = create_app(shared), create_app(shared)
    secret = make_key(engine, make_user(engine, credits=1000), rpm=10)
    async with first.state.runtime.running(), second.state.runtime.running():
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
        ):
            responses = await asyncio.gather(*(chat(a if i % 2 else b, secret) for i in range(16)))
            assert Counter(r.status_code for r in responses) == {200: 10, 429: 6}
            # read right after each hit: under concurrency never more than is really left
            assert all(0 <= int(r.headers["x-ratelimit-remaining-requests"]) <= 9 for r in responses)
            assert {r.headers["x-ratelimit-limit-requests"] for r in responses} == {"10"}
            # and sequentially the count goes on from the shared state: all 10 are used
            assert_error(await chat(a, secret), 429, "rate_limit_exceeded")
            # the other app's reads see the same window, and still answer
            r = await b.get("/api/v1/key", headers=auth(secret))
            assert (r.status_code, r.headers["x-ratelimit-remaining-requests"]) == (200, "0")


async def test_redis_limit_headers_sequential(redis_url, settings, engine, upstream):
    app = create_app(
        settings.model_copy(update={"redis_url": redis_url, "rate_limit_namespace": f"test-{uuid.uuid4().hex}"})
    )
    secret = make_key(engine, make_user(engine, credits=100), rpm=4)
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client:
            await _exhaust(client, secret, 4)
