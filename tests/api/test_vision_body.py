"""Images in chat: a request carrying a base64 image of a few MiB (the default
MAX_BODY_BYTES is 20 MiB) goes upstream unchanged and is billed; a body over the limit
is still 413, with or without a Content-Length. Served over real sockets."""

from __future__ import annotations

import base64
import io
import math
import os
from decimal import Decimal

import httpx
import orjson
import pytest
from PIL import Image
from sqlmodel import select

from api.app import create_app
from store import image_tokens, registry
from store.db import session_for
from store.models import CLEAR, LedgerEntry, RequestLog
from store.money import parse_credits

from ..conftest import make_settings
from ..factories import credits_of, flat_seed_prices, make_key, make_user
from ..fakes.upstream import ServedUpstream
from ..serving import serve


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


MODEL = "openai/gpt-5"  # 3 credits a request in the default registry
LIMIT = 20 * 1024 * 1024


@pytest.fixture
def upstream():
    with ServedUpstream() as served:
        yield served


@pytest.fixture
def served(database_url, tmp_path, upstream):
    settings = make_settings(
        database_url,
        tmp_path,
        openrouter_base_url=upstream.base_url,
        run_pipeline_in_process=False,
        upstream_timeout_s=30,
    )
    assert settings.max_body_bytes == LIMIT  # the default
    app = create_app(settings)
    with serve(app) as (base, _):
        yield app, base


def noise_png(mib: float) -> bytes:
    """A real PNG of about `mib` MiB: random pixels do not compress."""
    side = int(math.sqrt(mib * 1024 * 1024 / 3))
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def image_message(mib: float) -> tuple[list[dict], str]:
    data_url = "data:image/png;base64," + base64.b64encode(noise_png(mib)).decode()
    parts = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": data_url, "detail": "high"}},
    ]
    return [{"role": "user", "content": parts}], data_url


def post(base, key, content: bytes | object, **headers):
    return httpx.post(
        f"{base}/api/v1/chat/completions",
        content=content,
        timeout=60,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
    )


def ledger(engine, ref):
    with session_for(engine) as s:
        return [(r.kind, r.amount) for r in s.exec(select(LedgerEntry).where(LedgerEntry.ref == ref))]


def log_row(app, engine, ref):
    app.state.runtime.logs.flush()
    with session_for(engine) as s:
        return s.exec(select(RequestLog).where(RequestLog.request_id == ref)).one()


def test_image_part_of_a_few_mib_is_relayed_unchanged_and_billed(served, engine, upstream):
    app, base = served
    user = make_user(engine, credits=10)
    key = make_key(engine, user)
    messages, data_url = image_message(3)  # 4 MiB of base64
    r = post(base, key, orjson.dumps({"model": MODEL, "messages": messages}))
    assert r.status_code == 200, r.text[:500]
    received = upstream.app.stats.bodies[-1]
    assert received["messages"] == messages  # every part, the data URL byte for byte
    assert received["messages"][0]["content"][1]["image_url"]["url"] == data_url
    assert received["model"] == "openai/gpt-5"
    assert credits_of(engine, user) == 7
    rid = r.headers["x-request-id"]
    assert ledger(engine, rid) == [("charge", -3_000_000)]
    row = log_row(app, engine, rid)
    assert (row.status, row.error_code, row.credit_cost) == (200, None, 3_000_000)


def test_image_counts_as_its_pixels_in_the_hold(served, engine, upstream):
    app, base = served
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
    user = make_user(engine, credits=10)
    key = make_key(engine, user)
    messages, data_url = image_message(2)
    r = post(base, key, orjson.dumps({"model": MODEL, "messages": messages}))
    assert r.status_code == 200
    sent = orjson.dumps(upstream.app.stats.bodies[-1])
    side = int(math.sqrt(2 * 1024 * 1024 / 3))  # 836 x 836 pixels
    tokens = image_tokens.tokens(side, side)
    assert tokens == 2_240  # Gemini 3's flat highest resolution beats 27 x 27 patches x 2.46 = 1,794
    bound = len(sent) - len(data_url) + tokens  # the data URL counts as its pixels' tokens
    held = 10_000 + -(-(bound * 1_250_000 + 1000 * 10_000_000) // 1_000_000)
    assert bound - tokens < 1000  # the text around the image, not its 2.8 MB of base64
    rid = r.headers["x-request-id"]
    # The fake claims a prompt token per character of the message (millions): the charge
    # stops at the hold, as every charge does.
    assert r.json()["usage"]["cost"] == float(Decimal(held) / 10**6)
    assert ledger(engine, rid) == [("charge", -held)]
    assert credits_of(engine, user) == 10 - Decimal(held) / 10**6


def test_body_at_the_limit_is_read_and_one_byte_over_is_413(served, engine, upstream):
    app, base = served
    user = make_user(engine, credits=10)
    key = make_key(engine, user)
    messages, _ = image_message(1)
    body = orjson.dumps({"model": MODEL, "messages": messages, "user": ""})
    at_limit = body.replace(b'"user":""', b'"user":"' + b"u" * (LIMIT - len(body)) + b'"')
    assert len(at_limit) == LIMIT
    r = post(base, key, at_limit)
    assert r.status_code == 200, r.text[:300]
    seen = len(upstream.app.stats.bodies)
    over = at_limit.replace(b'"user":"', b'"user":"u', 1)
    assert len(over) == LIMIT + 1
    r = post(base, key, over)
    assert r.status_code == 413
    assert r.json() == {
        "error": {
            "message": f"Request body exceeds {LIMIT} bytes",
            "type": "request_too_large",
            "code": "request_too_large",
        }
    }
    assert len(upstream.app.stats.bodies) == seen  # never sent
    assert credits_of(engine, user) == 7  # the first call only
    row = log_row(app, engine, r.headers["x-request-id"])
    assert (row.status, row.error_code, row.credit_cost) == (413, "request_too_large", 0)


def test_chunked_body_over_the_limit_is_413_without_a_content_length(served, engine, upstream):
    app, base = served
    user = make_user(engine, credits=10)
    key = make_key(engine, user)

    def pieces():
        yield b'{"model":"openai/gpt-5","messages":[{"role":"user","content":"'
        for _ in range(21):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    r = post(base, key, pieces())
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert (r.status_code, r.json()["error"]["code"]) == (413, "request_too_large")
    assert upstream.app.stats.bodies == [] and credits_of(engine, user) == 10
