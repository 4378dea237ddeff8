"""The official `openai` SDK against the real server, which talks to a real fake upstream."""

from __future__ import annotations

import time
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

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def key(live_server):
    return live_server.user_with_key("sdk@example.com", credits=30)


@pytest.fixture
def sdk(live_server, key):
    return openai.OpenAI(base_url=live_server.api, api_key=key, max_retries=0, timeout=20)


def user_balance(live_server, email: str) -> Decimal:
    """The user's balance in credits (exact), checked against the ledger sum."""
    with session_for(live_server.engine) as s:
        user = s.exec(select(User).where(User.email == email)).one()
        assert credits.ledger_sum(s, user_id=user.id) == user.balance
        return as_credits(user.balance)


def wait_for_log(live_server, request_id: str) -> RequestLog:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with session_for(live_server.engine) as s:
            row = s.exec(select(RequestLog).where(RequestLog.request_id == request_id)).first()
        if row is not None:
            return row
        time.sleep(0.1)
    raise AssertionError(f"no log row for {request_id}")


def test_home_page_and_api_share_one_port(live_server):
    page = httpx.get(live_server.base_url + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    docs = httpx.get(live_server.api + "/docs", timeout=10)
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
    missing = httpx.get(live_server.api + "/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_models_list(sdk):
    ids = {m.id for m in sdk.models.list()}
    assert {"openai/gpt-5", "openai/gpt-5-mini", "google/nano-banana-pro"} <= ids


def test_chat_completion_rewrites_model_and_charges(live_server, sdk):
    with session_for(live_server.engine) as s:
        registry.set_model(s, actor="test", model_id="openai/gpt-5-mini", upstream_id="vendor/mini-upstream")
    time.sleep(1.2)  # an edit from another process shows once the server's 1 s cache expires
    before = user_balance(live_server, "sdk@example.com")
    raw = sdk.chat.completions.with_raw_response.create(
        model="openai/gpt-5-mini", messages=[{"role": "user", "content": "hello there"}]
    )
    completion = raw.parse()
    assert completion.model == "openai/gpt-5-mini"
    assert completion.choices[0].message.content == "echo: hello there"
    assert live_server.upstream.app.stats.bodies[-1]["model"] == "vendor/mini-upstream"
    assert user_balance(live_server, "sdk@example.com") == before - 1
    # the fake upstream counts a prompt token per character of the last message (11) and a
    # completion token per word of its answer ("echo: hello there": 3); usage.cost is the charge
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 3)
    assert completion.usage.model_extra["cost"] == 1
    row = wait_for_log(live_server, raw.headers["x-request-id"])
    assert (row.status, row.model, row.credit_cost, row.total_tokens) == (200, "openai/gpt-5-mini", 1 * MICRO, 14)


def test_streaming_is_relayed_as_it_arrives(live_server, sdk):
    stats = live_server.upstream.app.stats
    stream = sdk.chat.completions.create(
        model="openai/gpt-5", messages=[{"role": "user", "content": "gate"}], stream=True
    )
    chunks = iter(stream)
    first = next(chunks)  # the upstream holds the rest back until released
    assert first.choices[0].delta.content == "echo: "
    assert first.model == "openai/gpt-5"
    live_server.upstream.app.release()
    rest = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(rest) == "gate "
    assert stats.streams_finished >= 1


def test_client_going_away_closes_the_upstream_stream_and_keeps_the_charge(live_server, key):
    stats = live_server.upstream.app.stats
    cancelled_before = stats.streams_cancelled
    before = user_balance(live_server, "sdk@example.com")
    with (
        httpx.Client(timeout=20) as client,
        client.stream(
            "POST",
            live_server.api + "/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "openai/gpt-5", "stream": True, "messages": [{"role": "user", "content": "slow"}]},
        ) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        next(response.iter_lines())
    deadline = time.monotonic() + 10
    while stats.streams_cancelled == cancelled_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats.streams_cancelled == cancelled_before + 1
    assert user_balance(live_server, "sdk@example.com") == before - 3
    row = wait_for_log(live_server, request_id)
    assert (row.stream, row.credit_cost, row.status) == (True, 3 * MICRO, 200)


def test_errors_raise_the_sdks_matching_exceptions(live_server, sdk, key):
    bad = openai.OpenAI(base_url=live_server.api, api_key="sk_live_" + "x" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth_error:
        bad.models.list()
    assert auth_error.value.status_code == 401 and auth_error.value.code == "invalid_api_key"

    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="nope/nope", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_available"

    with pytest.raises(openai.BadRequestError) as bad_request:
        sdk.chat.completions.create(model="openai/gpt-5", messages=[])
    assert bad_request.value.code == "messages_required"

    before = user_balance(live_server, "sdk@example.com")
    with pytest.raises(openai.InternalServerError) as upstream_failed:
        sdk.chat.completions.create(model="openai/gpt-5", messages=[{"role": "user", "content": "fail:500"}])
    assert upstream_failed.value.status_code == 502 and upstream_failed.value.code == "provider_error"
    assert user_balance(live_server, "sdk@example.com") == before  # refunded


def test_insufficient_credits_and_rate_limit(live_server):
    poor = live_server.user_with_key("poor@example.com", credits=2, rpm=2)
    client = openai.OpenAI(base_url=live_server.api, api_key=poor, max_retries=0)
    seen = len(live_server.upstream.app.stats.bodies)
    with pytest.raises(openai.APIStatusError) as short:
        client.chat.completions.create(model="openai/gpt-5", messages=[{"role": "user", "content": "x"}])
    assert short.value.status_code == 402 and short.value.code == "insufficient_credits"
    assert len(live_server.upstream.app.stats.bodies) == seen  # the upstream was never called
    client.models.list()  # reads never use up the limit
    client.models.list()
    with pytest.raises(openai.APIStatusError) as short_again:  # the second model call of the minute
        client.chat.completions.create(model="openai/gpt-5", messages=[{"role": "user", "content": "x"}])
    assert short_again.value.status_code == 402
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="openai/gpt-5", messages=[{"role": "user", "content": "x"}])
    assert limited.value.code == "rate_limit_exceeded"
    assert int(limited.value.response.headers["retry-after"]) >= 1


def test_upstream_timeout_is_504(live_server, sdk):
    before = user_balance(live_server, "sdk@example.com")
    with pytest.raises(openai.APIStatusError) as timed_out:
        sdk.chat.completions.create(model="openai/gpt-5", messages=[{"role": "user", "content": "hang"}])
    assert timed_out.value.status_code == 504 and timed_out.value.code == "provider_error"
    assert user_balance(live_server, "sdk@example.com") == before
