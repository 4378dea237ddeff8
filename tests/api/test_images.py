"""POST/GET /api/v1/images/generations and /api/v1/files: the contract a caller sees."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from sqlmodel import select

from store import registry, signing
from store.db import session_for
from store.models import ImageTask, LedgerEntry, RequestLog
from store.money import MICRO

from ..conftest import TEST_SECRET, flush_logs
from ..factories import as_credits, auth, credits_of, make_key, make_user
from . import image_fixtures
from .fake_replicate import pipeline_settings

# the image tests' shared fixtures (tests/api/image_fixtures.py), bound here for pytest to find
caller = image_fixtures.caller
fresh_upstream = image_fixtures.fresh_upstream
settings = image_fixtures.settings
upstream = image_fixtures.upstream

MODEL = "google/nano-banana-pro"  # replicate, 10 credits per image in the default registry
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


async def submit(client, key, body=None, **headers):
    return await client.post(
        "/api/v1/images/generations",
        headers={**auth(key), **headers},
        json=body if body is not None else {"model": MODEL, "prompt": "a robot", "size": "1024x1024"},
    )


async def wait_for(client, key, task_id, statuses=("succeeded", "failed"), timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/api/v1/images/generations/{task_id}", headers=auth(key))
        assert response.status_code == 200, response.text
        if response.json()["status"] in statuses:
            return response.json()
        assert time.monotonic() < deadline, f"task stayed {response.json()['status']}"
        await asyncio.sleep(0.02)


def balance(engine, user) -> Decimal:
    """The balance in credits (exact)."""
    return credits_of(engine, user)


def ledger(engine, user) -> list[tuple[str, Decimal]]:
    """The user's ledger as (kind, amount in credits) rows, oldest first."""
    with session_for(engine) as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id))
        return [(row.kind, as_credits(row.amount)) for row in rows]


# ---------------------------------------------------------------- happy path


async def test_submission_answers_pending_task_at_once_and_charges_once(client, engine, caller, upstream):
    user, key = caller
    response = await submit(client, key)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"created", "data", "task_id", "provider_task_id", "status", "model"}
    assert body["status"] == "pending"
    assert body["data"] == []
    assert body["model"] == MODEL
    assert body["task_id"].startswith("img_")
    assert body["provider_task_id"] == "pred0001"
    assert abs(body["created"] - time.time()) < 5
    assert balance(engine, user) == 90
    assert upstream.count("submit") == 1
    sent = upstream.bodies[0]
    assert sent["path"] == "/v1/models/google/nano-banana-pro/predictions"
    assert sent["input"] == {"prompt": "a robot", "aspect_ratio": "1:1", "resolution": "1K", "output_format": "png"}
    assert upstream.auth[0] == "Bearer test-replicate-token"


@BOTH
async def test_task_succeeds_and_its_png_is_served_through_the_signed_url(client, engine, caller, upstream, settings):
    user, key = caller
    task_id = (await submit(client, key)).json()["task_id"]
    done = await wait_for(client, key, task_id)
    assert done["status"] == "succeeded"
    assert done["provider_task_id"] == "pred0001"
    assert len(done["data"]) == 1
    url = done["data"][0]["url"]
    assert url.startswith(f"http://platform.test/api/v1/files/{task_id}/0.png?expires=")
    stored = settings.media_dir / task_id / "0.png"
    assert stored.read_bytes() == upstream.png
    image = await client.get(url)  # no bearer header: an <img> tag can show it
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == upstream.png
    assert balance(engine, user) == 90
    assert ledger(engine, user) == [("grant", 100), ("charge", -10)]
    assert upstream.count("download") == 1


async def test_n_images_charge_cost_times_n_and_start_one_prediction_each(client, engine, caller, upstream):
    user, key = caller
    response = await submit(client, key, {"model": MODEL, "prompt": "four cats", "n": 4, "size": "1536x1024"})
    assert response.status_code == 200
    ids = response.json()["provider_task_id"].split(",")  # started concurrently: any order
    assert sorted(ids) == ["pred0001", "pred0002", "pred0003", "pred0004"]
    assert balance(engine, user) == 60
    assert {b["input"]["aspect_ratio"] for b in upstream.bodies} == {"3:2"}
    assert {b["input"]["resolution"] for b in upstream.bodies} == {"2K"}
    done = await wait_for(client, key, response.json()["task_id"])
    assert [d["url"].split("?")[0].rsplit("/", 1)[1] for d in done["data"]] == ["0.png", "1.png", "2.png", "3.png"]


@BOTH
async def test_submission_and_completion_are_both_logged_with_the_task_id(app, client, engine, caller):
    user, key = caller
    response = await submit(client, key)
    task_id = response.json()["task_id"]
    await wait_for(client, key, task_id)
    flush_logs(app)
    with session_for(engine) as s:
        rows = list(s.exec(select(RequestLog).where(RequestLog.task_id == task_id).order_by(RequestLog.id)))
    submission = next(r for r in rows if r.method == "POST")
    assert submission.request_id == response.headers["x-request-id"]
    assert (submission.status, submission.credit_cost, submission.model) == (200, 10 * MICRO, MODEL)
    assert submission.upstream_id == "pred0001"
    completion = next(r for r in rows if r.method == "TASK")
    assert completion.request_id == f"{task_id}:end"
    assert (completion.status, completion.error_code, completion.credit_cost) == (200, None, 0)
    assert completion.endpoint == f"/api/v1/images/generations/{task_id}"
    assert completion.user_id == user.id and completion.key_prefix == key[:12]


# ---------------------------------------------------------------- validation, in the spec's order


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"prompt": "x"}, 400, "model_required"),
        ({"model": "", "prompt": "x"}, 400, "model_required"),
        ({"model": MODEL}, 400, "prompt_required"),
        ({"model": MODEL, "prompt": "   "}, 400, "prompt_required"),
        ({"model": MODEL, "prompt": 7}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "size": "1024"}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "size": "1024x1024x2"}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "size": "10x10"}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "size": 1024}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "n": 0}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "n": 5}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "n": "2"}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "n": True}, 400, "invalid_request"),
        ({"model": MODEL, "prompt": "x", "webhook_url": "ftp://x"}, 400, "invalid_request"),
        ({"model": "openai/gpt-5", "prompt": "x"}, 404, "model_not_available"),
        ({"model": "nobody/nothing", "prompt": "x"}, 404, "model_not_available"),
    ],
)
async def test_bad_submissions_get_their_error_and_charge_nothing(client, engine, caller, upstream, body, status, code):
    user, key = caller
    response = await submit(client, key, body)
    assert response.status_code == status
    assert response.json() == {"error": {"message": response.json()["error"]["message"], "type": code, "code": code}}
    assert balance(engine, user) == 100
    assert upstream.count("submit") == 0


async def test_no_key_is_invalid_api_key(client):
    response = await client.post("/api/v1/images/generations", json={"model": MODEL, "prompt": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_insufficient_credits_never_reaches_the_provider(client, engine, upstream):
    user = make_user(engine, credits=15)
    key = make_key(engine, user)
    response = await submit(client, key, {"model": MODEL, "prompt": "x", "n": 2})
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_credits"
    assert balance(engine, user) == 15
    assert upstream.count("submit") == 0
    with session_for(engine) as s:
        assert s.exec(select(ImageTask)).all() == []


async def test_model_of_an_unconfigured_provider_is_provider_not_configured(database_url, tmp_path, upstream, engine):
    import httpx

    from api.app import create_app

    settings = pipeline_settings(database_url, tmp_path, upstream, replicate_api_token=None)
    app = create_app(settings)
    user = make_user(engine, credits=100)
    key = make_key(engine, user)
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            response = await submit(c, key)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_not_configured"
    assert balance(engine, user) == 100


async def test_malformed_json_is_invalid_request(client, caller):
    _, key = caller
    response = await client.post(
        "/api/v1/images/generations", headers={**auth(key), "content-type": "application/json"}, content=b"{nope"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


# ---------------------------------------------------------------- submission failures


@BOTH
async def test_failed_submission_refunds_and_answers_provider_error(client, engine, caller, upstream):
    user, key = caller
    upstream.scenario.submit_status = 500
    response = await submit(client, key)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"
    assert balance(engine, user) == 100
    assert ledger(engine, user) == [("grant", 100), ("charge", -10), ("refund", 10)]
    with session_for(engine) as s:
        task = s.exec(select(ImageTask)).one()
    assert (task.status, task.error) == ("failed", "Replicate returned HTTP 500")


async def test_submission_timeout_answers_504_and_refunds(database_url, tmp_path, upstream, engine):
    import httpx

    from api.app import create_app

    settings = pipeline_settings(database_url, tmp_path, upstream, upstream_timeout_s=0.3)
    upstream.scenario.submit_delay_s = 1.0
    user = make_user(engine, credits=100)
    key = make_key(engine, user)
    app = create_app(settings)
    async with app.state.runtime.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            response = await submit(c, key)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "provider_error"
    assert balance(engine, user) == 100
    assert ledger(engine, user) == [("grant", 100), ("charge", -10), ("refund", 10)]


async def test_one_prediction_failing_to_start_cancels_the_others(client, engine, caller, upstream):
    user, key = caller
    upstream.scenario.submit_status = 422  # the upstream's judgement of the request: the caller's 400
    response = await submit(client, key, {"model": MODEL, "prompt": "x", "n": 3})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_request")
    assert balance(engine, user) == 100
    upstream.scenario.submit_status = 500  # an outage: 502
    response = await submit(client, key, {"model": MODEL, "prompt": "y", "n": 3})
    assert (response.status_code, response.json()["error"]["code"]) == (502, "provider_error")
    assert balance(engine, user) == 100


# ---------------------------------------------------------------- idempotency


@BOTH
async def test_idempotent_resubmission_returns_the_same_task_without_a_second_charge(client, engine, caller, upstream):
    user, key = caller
    first = await submit(client, key, None, **{"Idempotency-Key": "order-42"})
    second = await submit(client, key, None, **{"Idempotency-Key": "order-42"})
    assert first.status_code == second.status_code == 200
    assert second.json()["task_id"] == first.json()["task_id"]
    assert second.json()["provider_task_id"] == "pred0001"
    assert balance(engine, user) == 90
    assert upstream.count("submit") == 1
    third = await submit(client, key, None, **{"Idempotency-Key": "order-43"})
    assert third.json()["task_id"] != first.json()["task_id"]
    assert balance(engine, user) == 80


@BOTH
async def test_concurrent_resubmissions_make_one_task(client, engine, caller, upstream):
    user, key = caller
    answers = await asyncio.gather(*(submit(client, key, None, **{"Idempotency-Key": "same"}) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert balance(engine, user) == 90
    assert upstream.count("submit") == 1


async def test_idempotency_key_reused_for_another_request_is_invalid_request(client, engine, caller):
    user, key = caller
    await submit(client, key, None, **{"Idempotency-Key": "k1"})
    response = await submit(client, key, {"model": MODEL, "prompt": "something else"}, **{"Idempotency-Key": "k1"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert balance(engine, user) == 90


async def test_idempotency_keys_are_per_user(client, engine, caller):
    _, key = caller
    other = make_user(engine, credits=100)
    a = await submit(client, key, None, **{"Idempotency-Key": "shared"})
    b = await submit(client, make_key(engine, other), None, **{"Idempotency-Key": "shared"})
    assert a.json()["task_id"] != b.json()["task_id"]


async def test_a_failed_submission_can_be_retried_with_the_same_key(client, engine, caller, upstream):
    user, key = caller
    upstream.scenario.submit_status = 503
    assert (await submit(client, key, None, **{"Idempotency-Key": "retry-me"})).status_code == 502
    upstream.scenario.submit_status = 201
    retried = await submit(client, key, None, **{"Idempotency-Key": "retry-me"})
    assert retried.status_code == 200
    assert retried.json()["status"] == "pending"
    assert balance(engine, user) == 90


# ---------------------------------------------------------------- reading tasks


@BOTH
async def test_another_users_task_is_task_not_found(client, engine, caller):
    _, key = caller
    task_id = (await submit(client, key)).json()["task_id"]
    stranger = make_key(engine, make_user(engine))
    response = await client.get(f"/api/v1/images/generations/{task_id}", headers=auth(stranger))
    assert response.status_code == 404
    assert response.json() == {
        "error": {"message": "Task not found", "type": "task_not_found", "code": "task_not_found"}
    }


@pytest.mark.parametrize("task_id", ["img_" + "0" * 32, "nope", "img_../../etc"])
async def test_unknown_task_is_task_not_found(client, caller, task_id):
    _, key = caller
    response = await client.get(f"/api/v1/images/generations/{task_id}", headers=auth(key))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"


async def test_reading_a_task_needs_a_key(client, caller):
    _, key = caller
    task_id = (await submit(client, key)).json()["task_id"]
    response = await client.get(f"/api/v1/images/generations/{task_id}")
    assert response.status_code == 401


# ---------------------------------------------------------------- signed files


async def _succeeded_url(client, key) -> str:
    task_id = (await submit(client, key)).json()["task_id"]
    return (await wait_for(client, key, task_id))["data"][0]["url"]


async def test_tampered_signature_is_invalid_signature(client, caller):
    _, key = caller
    url = await _succeeded_url(client, key)
    base, _, sig = url.rpartition("sig=")
    tampered = base + "sig=" + ("0" if sig[0] != "0" else "1") + sig[1:]
    response = await client.get(tampered)
    assert response.status_code == 403
    assert response.json() == {
        "error": {"message": "Invalid or expired signature", "type": "invalid_signature", "code": "invalid_signature"}
    }


async def test_signature_does_not_carry_over_to_another_file_or_expiry(client, caller):
    _, key = caller
    url = await _succeeded_url(client, key)
    path, _, query = url.partition("?")
    other_file = path.replace("/0.png", "/1.png") + "?" + query
    assert (await client.get(other_file)).status_code == 403
    expires = int(query.split("expires=")[1].split("&")[0])
    later = url.replace(f"expires={expires}", f"expires={expires + 3600}")
    assert (await client.get(later)).status_code == 403
    assert (await client.get(path)).status_code == 403  # no signature at all


async def test_expired_signature_is_invalid_signature(client, caller):
    _, key = caller
    url = await _succeeded_url(client, key)
    path = url.split("/api/v1/files/")[1].split("?")[0]
    expired = signing.signed_media_url(TEST_SECRET, path, ttl_s=1, now=time.time() - 3600)
    response = await client.get(expired)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    fresh = signing.signed_media_url(TEST_SECRET, path, ttl_s=60)
    assert (await client.get(fresh)).status_code == 200


async def test_validly_signed_but_missing_file_is_not_found(client):
    url = signing.signed_media_url(TEST_SECRET, "img_" + "a" * 32 + "/0.png", ttl_s=60)
    response = await client.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_webhook_secret_is_per_user(client, engine, caller):
    user, key = caller
    response = await client.get("/api/v1/images/webhook-secret", headers=auth(key))
    assert response.status_code == 200
    assert response.json()["secret"] == signing.webhook_secret(TEST_SECRET, user.id)
    other = make_key(engine, make_user(engine))
    assert (await client.get("/api/v1/images/webhook-secret", headers=auth(other))).json()["secret"] != response.json()[
        "secret"
    ]


async def test_an_image_model_added_by_the_admin_is_usable(client, engine, caller, upstream):
    user, key = caller
    with session_for(engine) as s:
        registry.set_model(
            s,
            actor="test",
            model_id="black-forest-labs/flux-schnell",
            category="image",
            provider="replicate",
            credit_cost=3 * MICRO,
        )
    response = await submit(client, key, {"model": "black-forest-labs/flux-schnell", "prompt": "x"})
    assert response.status_code == 200
    assert balance(engine, user) == 97
    assert upstream.bodies[0]["path"] == "/v1/models/black-forest-labs/flux-schnell/predictions"


async def test_openapi_documents_the_image_routes(client):
    schema = (await client.get("/api/v1/openapi.json")).json()
    post = schema["paths"]["/images/generations"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == ["model", "prompt"]
    assert "404" in schema["paths"]["/images/generations/{task_id}"]["get"]["responses"]
    assert "403" in schema["paths"]["/files/{path}"]["get"]["responses"]
