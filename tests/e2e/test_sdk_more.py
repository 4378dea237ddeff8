"""More of the official `openai` SDK against the real server (`make run`) and the fake
upstream over real sockets: embeddings (float and base64), models.retrieve, and
images.generate that waits for its image (`Prefer: wait=N`)."""

from __future__ import annotations

import base64
import time
from array import array
from decimal import Decimal

import httpx
import openai
import pytest
from sqlmodel import select

from store import credits, registry
from store.db import session_for
from store.models import RequestLog, User
from store.money import MICRO

from ..factories import as_credits
from ..fakes.upstream import PNG

pytestmark = pytest.mark.e2e

EMAIL = "sdk-more@example.com"
EMBEDDING = "openai/text-embedding-3-small"  # seeded: per_token, 2 credits per 1M prompt tokens


@pytest.fixture(scope="module")
def key(live_server):
    return live_server.user_with_key(EMAIL, credits=30)


@pytest.fixture
def sdk(live_server, key):
    return openai.OpenAI(base_url=live_server.api, api_key=key, max_retries=0, timeout=40)


def balance(live_server) -> Decimal:
    with session_for(live_server.engine) as s:
        user = s.exec(select(User).where(User.email == EMAIL)).one()
        assert credits.ledger_sum(s, user_id=user.id) == user.balance
        return as_credits(user.balance)


def eventually_balance(live_server, expected: Decimal) -> Decimal:
    """The balance once the settlement (written after the answer) is in."""
    deadline = time.monotonic() + 10
    while (value := balance(live_server)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def log_row(live_server, request_id: str) -> RequestLog:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with session_for(live_server.engine) as s:
            row = s.exec(select(RequestLog).where(RequestLog.request_id == request_id)).first()
        if row is not None:
            return row
        time.sleep(0.1)
    raise AssertionError(f"no log row for {request_id}")


def test_embeddings_float_and_the_sdks_default_base64_give_the_same_vectors(live_server, sdk):
    before = balance(live_server)
    raw = sdk.embeddings.with_raw_response.create(model=EMBEDDING, input="hello world", encoding_format="float")
    plain = raw.parse()
    assert plain.model == EMBEDDING
    assert plain.data[0].embedding == [11.0, 0.5, -0.25, 0.0]
    assert (plain.usage.prompt_tokens, plain.usage.total_tokens) == (11, 11)
    # the SDK asks for base64 when not told, and decodes it itself
    decoded = sdk.embeddings.create(model=EMBEDDING, input=["hello world", "hi"])
    assert [d.embedding for d in decoded.data] == [[11.0, 0.5, -0.25, 0.0], [2.0, 0.5, -0.25, 1.0]]
    assert decoded.usage.prompt_tokens == 13
    # 24 prompt tokens x 2 credits / 1M
    assert eventually_balance(live_server, before - Decimal("0.000048")) == before - Decimal("0.000048")
    row = log_row(live_server, raw.headers["x-request-id"])
    assert (row.endpoint, row.status, row.credit_cost, row.prompt_tokens) == ("/api/v1/embeddings", 200, 22, 11)


def test_embeddings_explicit_base64_is_little_endian_float32(sdk):
    result = sdk.embeddings.create(model=EMBEDDING, input="abc", encoding_format="base64", dimensions=5)
    text = result.data[0].embedding
    assert isinstance(text, str)  # asked for explicitly, the SDK hands it over as sent
    packed = array("f")
    packed.frombytes(base64.b64decode(text))
    assert packed.tolist() == [3.0, 0.5, -0.25, 0.0, 0.125]


def test_embeddings_refuse_a_chat_model(sdk):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.embeddings.create(model="openai/gpt-5", input="x")
    assert caught.value.body["code"] == "model_not_available"


def test_models_retrieve(sdk):
    model = sdk.models.retrieve("openai/gpt-5")
    assert (model.id, model.object, model.owned_by) == ("openai/gpt-5", "model", "openrouter")
    assert model.created > 1_700_000_000
    listed = next(m for m in sdk.models.list() if m.id == "openai/gpt-5")
    assert model.model_dump() == listed.model_dump()
    assert sdk.models.retrieve(EMBEDDING).category == "embedding"
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("acme/no-such-model")
    assert caught.value.body["code"] == "model_not_available"


def test_images_generate_with_prefer_wait_answers_a_url(live_server, sdk):
    with session_for(live_server.engine) as s:  # an OpenRouter Image API model: the fake upstream serves it
        registry.set_model(
            s,
            actor="test",
            model_id="acme/image",
            category="image",
            provider="openrouter",
            upstream_id="google/gemini-2.5-flash-image",
            credit_cost=2 * MICRO,
        )
    time.sleep(1.2)  # an edit from another process shows once the server's 1 s cache expires
    before = balance(live_server)
    result = sdk.images.generate(
        model="acme/image", prompt="a lighthouse at dusk", size="1024x1024", extra_headers={"Prefer": "wait=30"}
    )
    assert len(result.data) == 1
    url = result.data[0].url
    assert url.startswith(f"{live_server.api}/files/img_") and "&sig=" in url
    image = httpx.get(url, timeout=10)
    assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/png", PNG)
    inline = sdk.images.generate(
        model="acme/image", prompt="the same, inline", response_format="b64_json", extra_headers={"Prefer": "wait=30"}
    )
    assert base64.b64decode(inline.data[0].b64_json) == PNG
    assert balance(live_server) == before - 4  # 2 credits an image, once each
