"""Every error code with its exact status, in the seed's shape, in the spec's check order."""

from __future__ import annotations

import orjson
import pytest
from sqlmodel import select

from store import credits, keys, users
from store.db import session_for
from store.models import LedgerEntry
from store.money import MICRO

from ..factories import auth, make_key, make_user

CHAT = "/api/v1/chat/completions"


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["type"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert response.headers["x-request-id"]
    for header in ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"):
        assert header in response.headers


def chat_body(model: str = "openai/gpt-5", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def funded(engine):
    user = make_user(engine, credits=100)
    return user, make_key(engine, user)


async def test_missing_key_is_401(client):
    assert_error(await client.get("/api/v1/models"), 401, "invalid_api_key")


async def test_unknown_key_is_401(client):
    bogus = "sk_live_" + "A" * 43
    assert_error(await client.get("/api/v1/models", headers=auth(bogus)), 401, "invalid_api_key")


async def test_malformed_key_is_401(client):
    assert_error(await client.get("/api/v1/models", headers=auth("not-a-key")), 401, "invalid_api_key")
    assert_error(await client.get("/api/v1/models", headers={"Authorization": "Basic abc"}), 401, "invalid_api_key")


async def test_revoked_key_is_401(client, engine, funded):
    user, secret = funded
    with session_for(engine) as s:
        key = keys.list_keys(s, user_id=user.id)[0]
        keys.revoke_key(s, key_id=key.id)
    assert_error(await client.get("/api/v1/models", headers=auth(secret)), 401, "invalid_api_key")


async def test_disabled_key_is_403(client, engine, funded):
    user, secret = funded
    with session_for(engine) as s:
        keys.set_key_enabled(s, key_id=keys.list_keys(s, user_id=user.id)[0].id, enabled=False)
    assert_error(await client.get("/api/v1/models", headers=auth(secret)), 403, "api_disabled")


async def test_user_with_api_disabled_is_403(client, engine, funded):
    user, secret = funded
    with session_for(engine) as s:
        users.set_user_flags(s, user_id=user.id, api_enabled=False)
    assert_error(await client.post(CHAT, json=chat_body(), headers=auth(secret)), 403, "api_disabled")


async def test_revocation_reaches_a_cached_key_at_once(client, engine, funded):
    user, secret = funded
    assert (await client.get("/api/v1/models", headers=auth(secret))).status_code == 200  # now cached
    with session_for(engine) as s:
        keys.revoke_key(s, key_id=keys.list_keys(s, user_id=user.id)[0].id)
    assert_error(await client.get("/api/v1/models", headers=auth(secret)), 401, "invalid_api_key")


async def test_malformed_json_is_400(client, funded):
    _, secret = funded
    r = await client.post(CHAT, content=b"{not json", headers={**auth(secret), "content-type": "application/json"})
    assert_error(r, 400, "invalid_request")


async def test_non_object_body_is_400(client, funded):
    _, secret = funded
    assert_error(await client.post(CHAT, json=[1, 2], headers=auth(secret)), 400, "invalid_request")


async def test_missing_model_is_model_required(client, funded):
    _, secret = funded
    r = await client.post(CHAT, json={"messages": [{"role": "user", "content": "x"}]}, headers=auth(secret))
    assert_error(r, 400, "model_required")


async def test_model_of_wrong_type_is_invalid_request(client, funded):
    _, secret = funded
    assert_error(await client.post(CHAT, json=chat_body(model=5), headers=auth(secret)), 400, "invalid_request")


@pytest.mark.parametrize("messages", [None, []])
async def test_missing_or_empty_messages_is_messages_required(client, funded, messages):
    _, secret = funded
    body = {"model": "openai/gpt-5"} if messages is None else {"model": "openai/gpt-5", "messages": messages}
    assert_error(await client.post(CHAT, json=body, headers=auth(secret)), 400, "messages_required")


@pytest.mark.parametrize(
    "extra",
    [{"messages": "hello"}, {"stream": "yes"}, {"temperature": 7}, {"max_tokens": 0}, {"temperature": True}],
)
async def test_fields_of_wrong_type_or_range_are_invalid_request(client, funded, extra):
    _, secret = funded
    assert_error(await client.post(CHAT, json=chat_body(**extra), headers=auth(secret)), 400, "invalid_request")


async def test_unknown_model_is_404(client, funded):
    _, secret = funded
    assert_error(await client.post(CHAT, json=chat_body("nope/nope"), headers=auth(secret)), 404, "model_not_available")


async def test_disabled_model_is_404(client, funded, session):
    from store import registry

    registry.set_model(session, actor="test", model_id="openai/gpt-5", enabled=False)
    _, secret = funded
    assert_error(await client.post(CHAT, json=chat_body(), headers=auth(secret)), 404, "model_not_available")


async def test_image_model_on_chat_is_404(client, funded):
    _, secret = funded
    r = await client.post(CHAT, json=chat_body("google/nano-banana-pro"), headers=auth(secret))
    assert_error(r, 404, "model_not_available")


async def test_provider_without_credentials_is_503(settings, funded, tmp_path):
    import httpx

    from api.app import create_app

    unconfigured = settings.model_copy(update={"openrouter_api_key": None})
    app = create_app(unconfigured)
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post(CHAT, json=chat_body(), headers=auth(funded[1]))
    assert_error(r, 503, "provider_not_configured")


async def test_insufficient_credits_is_402_and_never_calls_upstream(client, engine, chat_upstream):
    user = make_user(engine, credits=2)  # gpt-5 costs 3
    secret = make_key(engine, user)
    assert_error(await client.post(CHAT, json=chat_body(), headers=auth(secret)), 402, "insufficient_credits")
    assert chat_upstream.requests == []
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 2 * MICRO


async def test_rejected_body_never_debits(client, engine, funded):
    user, secret = funded
    for body in ({"model": "openai/gpt-5"}, {"messages": [{"role": "user", "content": "x"}]}, chat_body("x/y")):
        assert (await client.post(CHAT, json=body, headers=auth(secret))).status_code in (400, 404)
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 100 * MICRO
        assert list(s.exec(select(LedgerEntry).where(LedgerEntry.kind == "charge"))) == []


async def test_key_is_checked_before_body(client):
    # No key and a malformed body: the key is checked first.
    r = await client.post(CHAT, content=b"{", headers={"content-type": "application/json"})
    assert_error(r, 401, "invalid_api_key")


async def test_model_is_checked_before_credits(client, engine):
    user = make_user(engine, credits=0)
    r = await client.post(CHAT, json=chat_body("unknown/model"), headers=auth(make_key(engine, user)))
    assert_error(r, 404, "model_not_available")


async def test_body_over_limit_is_413(settings, funded):
    import httpx

    from api.app import create_app

    app = create_app(settings.model_copy(update={"max_body_bytes": 1000}))
    big = chat_body(messages=[{"role": "user", "content": "x" * 2000}])
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post(CHAT, json=big, headers=auth(funded[1]))
    assert_error(r, 413, "request_too_large")


async def test_unknown_path_is_404_in_error_shape(client):
    assert_error(await client.get("/api/v1/does-not-exist"), 404, "not_found")
    assert_error(await client.post("/api/v1/chat/completions/extra"), 404, "not_found")


async def test_paths_with_encoded_newlines_stay_in_the_api(client):
    # Found by the fuzzer: Starlette's mount pattern stopped at "\n".
    assert_error(await client.get("/api/v1/images/generations/%0A0"), 401, "invalid_api_key")
    assert_error(await client.get("/api/v1/%0A"), 404, "not_found")


async def test_wrong_method_is_405_in_error_shape(client):
    assert_error(await client.delete("/api/v1/models"), 405, "method_not_allowed")
    assert_error(await client.get(CHAT), 405, "method_not_allowed")


async def test_openapi_and_docs_are_served(client):
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert spec["servers"] == [{"url": "/api/v1"}]
    assert {"/models", "/key", "/chat/completions"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text


@pytest.mark.parametrize(
    "path,field",
    [("/api/v1/chat/completions", "messages"), ("/api/v1/images/generations", "prompt")],
)
async def test_oversized_bodies_on_every_endpoint_are_413_and_change_nothing(settings, engine, path, field):
    import httpx

    from api.app import create_app

    user = make_user(engine, credits=100)
    secret = make_key(engine, user)
    app = create_app(settings.model_copy(update={"max_body_bytes": 4096}))
    big = "x" * 5000
    body = (
        {"model": "openai/gpt-5", "messages": [{"role": "user", "content": big}]}
        if field == "messages"
        else {"model": "google/nano-banana-pro", "prompt": big}
    )

    async def chunks():  # no Content-Length: the limit must hold while streaming in
        raw = orjson.dumps(body)
        for i in range(0, len(raw), 1000):
            yield raw[i : i + 1000]

    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post(path, content=chunks(), headers={**auth(secret), "content-type": "application/json"})
    assert_error(r, 413, "request_too_large")
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 100 * MICRO
        assert [e.kind for e in s.exec(select(LedgerEntry))] == ["grant"]  # only the starting credits


async def test_unhandled_error_on_a_routed_path_answers_in_the_error_shape(app, client):
    """Any route of the v1 app, not only the hot ones: an exception it does not handle is a
    500 in the error shape (never Starlette's plain-text page), with the request id."""
    v1 = app.state.v1

    @v1.get("/test-only/explodes")
    async def explodes():
        raise RuntimeError("a bug with a secret sk_live_" + "x" * 40)

    r = await client.get("/api/v1/test-only/explodes")
    assert r.status_code == 500
    assert r.json() == {"error": {"message": "Internal error", "type": "internal_error", "code": "internal_error"}}
    assert len(r.headers["x-request-id"]) == 32
