"""The official `openai` SDK's Responses API and the official `anthropic` SDK's Messages
API against the real server (`make run`), which translates both to chat completions for
the real fake upstream (tests/fakes/upstream.py: "echo: <content>", a prompt token per
character of the last message, a completion token per word)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from store.money import MICRO

from .test_api_sdk import user_balance, wait_for_log

pytestmark = pytest.mark.e2e
EMAIL = "formats@example.com"


@pytest.fixture(scope="module")
def key(live_server):
    return live_server.user_with_key(EMAIL, credits=30)


@pytest.fixture
def oai(live_server, key):
    return openai.OpenAI(base_url=live_server.api, api_key=key, max_retries=0, timeout=20)


@pytest.fixture
def claude(live_server, key):
    # the SDK appends /v1/messages to its base URL, and sends the key as x-api-key
    return anthropic.Anthropic(base_url=f"{live_server.base_url}/api", api_key=key, max_retries=0, timeout=20)


def test_openai_responses_create(live_server, oai):
    before = user_balance(live_server, EMAIL)
    raw = oai.responses.with_raw_response.create(model="openai/gpt-5", input="hello there", instructions="be kind")
    response = raw.parse()
    assert response.output_text == "echo: hello there"
    assert (response.status, response.model) == ("completed", "openai/gpt-5")
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 3, 14)
    sent = live_server.upstream.app.stats.bodies[-1]
    assert sent["messages"] == [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hello there"}]
    assert user_balance(live_server, EMAIL) == before - 3
    row = wait_for_log(live_server, raw.headers["x-request-id"])
    assert (row.endpoint, row.status, row.credit_cost, row.total_tokens) == ("/api/v1/responses", 200, 3 * MICRO, 14)


def test_openai_responses_stream(live_server, oai):
    before = user_balance(live_server, EMAIL)
    with oai.responses.stream(model="openai/gpt-5", input="hello there") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: hello there "
    assert final.output_text == "echo: hello there "
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (11, 3, 14)
    assert final.id.startswith("resp_")
    row = wait_for_log(live_server, final.id.removeprefix("resp_"))
    assert (row.endpoint, row.stream, row.status, row.credit_cost) == ("/api/v1/responses", True, 200, 3 * MICRO)
    assert user_balance(live_server, EMAIL) == before - 3


def test_anthropic_messages_create(live_server, claude):
    before = user_balance(live_server, EMAIL)
    raw = claude.messages.with_raw_response.create(
        model="openai/gpt-5", max_tokens=100, system="be kind", messages=[{"role": "user", "content": "hello there"}]
    )
    message = raw.parse()
    assert message.content[0].text == "echo: hello there"
    assert (message.role, message.model, message.stop_reason) == ("assistant", "openai/gpt-5", "end_turn")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 3)
    assert live_server.upstream.app.stats.bodies[-1]["max_tokens"] == 100
    assert user_balance(live_server, EMAIL) == before - 3
    row = wait_for_log(live_server, raw.headers["x-request-id"])
    assert (row.endpoint, row.status, row.credit_cost, row.key_prefix) == (
        "/api/v1/messages",
        200,
        3 * MICRO,
        claude.api_key[:12],
    )


def test_anthropic_messages_stream(live_server, claude):
    before = user_balance(live_server, EMAIL)
    with claude.messages.stream(
        model="openai/gpt-5", max_tokens=100, messages=[{"role": "user", "content": "hello there"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: hello there "
    assert final.content[0].text == "echo: hello there "
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == ("end_turn", 11, 3)
    row = wait_for_log(live_server, final.id.removeprefix("msg_"))
    assert (row.endpoint, row.stream, row.status, row.credit_cost) == ("/api/v1/messages", True, 200, 3 * MICRO)
    assert user_balance(live_server, EMAIL) == before - 3


def test_errors_raise_each_sdks_matching_exceptions(live_server, oai, claude):
    bad = anthropic.Anthropic(base_url=f"{live_server.base_url}/api", api_key="sk_live_" + "x" * 43, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        bad.messages.create(model="openai/gpt-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert unauthenticated.value.body["error"]["code"] == "invalid_api_key"
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="nope/nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["error"]["code"] == "model_not_available"
    with pytest.raises(anthropic.BadRequestError) as refused:  # no such role in Anthropic's format
        claude.messages.create(model="openai/gpt-5", max_tokens=5, messages=[{"role": "robot", "content": "x"}])
    assert refused.value.body["error"]["code"] == "invalid_request"

    before = user_balance(live_server, EMAIL)
    with pytest.raises(anthropic.InternalServerError) as failed:
        claude.messages.create(model="openai/gpt-5", max_tokens=5, messages=[{"role": "user", "content": "fail:500"}])
    assert failed.value.status_code == 502
    with pytest.raises(openai.InternalServerError) as failed_too:
        oai.responses.create(model="openai/gpt-5", input="fail:500")
    assert (failed_too.value.status_code, failed_too.value.code) == (502, "provider_error")
    # a stream that breaks off: the SDK raises, the credits come back
    with pytest.raises(openai.APIError) as cut, oai.responses.stream(model="openai/gpt-5", input="cut") as stream:
        stream.until_done()
    assert "broke off" in cut.value.message or "finishing" in cut.value.message
    assert user_balance(live_server, EMAIL) == before  # all refunded


def test_short_balance_is_402_through_both_sdks(live_server):
    poor = live_server.user_with_key("formats-poor@example.com", credits=2)
    seen = len(live_server.upstream.app.stats.bodies)
    with pytest.raises(openai.APIStatusError) as short:
        openai.OpenAI(base_url=live_server.api, api_key=poor, max_retries=0).responses.create(
            model="openai/gpt-5", input="x"
        )
    assert (short.value.status_code, short.value.code) == (402, "insufficient_credits")
    with pytest.raises(anthropic.APIStatusError) as short_too:
        anthropic.Anthropic(base_url=f"{live_server.base_url}/api", api_key=poor, max_retries=0).messages.create(
            model="openai/gpt-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert short_too.value.status_code == 402
    assert len(live_server.upstream.app.stats.bodies) == seen  # the upstream was never called
