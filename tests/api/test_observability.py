"""GET /metrics (Prometheus, behind METRICS_TOKEN) and the JSON access log."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.access_log import LOGGER
from api.app import create_app

from ..conftest import flush_logs, make_settings
from ..factories import auth, flat_seed_prices, make_key, make_user
from .test_errors import CHAT, chat_body


@pytest.fixture(autouse=True)
def _flat_seed_prices(engine):
    flat_seed_prices(engine)


TOKEN = "metrics-token-0123456789"


@pytest.fixture
async def observed(database_url, tmp_path, monkeypatch, chat_upstream):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    application = create_app(
        make_settings(database_url, tmp_path, metrics_token=TOKEN, openrouter_base_url=chat_upstream.base_url)
    )
    async with application.state.runtime.running():
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            yield application, client


@pytest.fixture
def access_lines():
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Keep()
    logging.getLogger(LOGGER).addHandler(handler)
    yield lines
    logging.getLogger(LOGGER).removeHandler(handler)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def labels(endpoint: str, model: str, status: int) -> frozenset:
    return frozenset({"endpoint": endpoint, "model": model, "status": str(status)}.items())


async def test_metrics_is_404_without_a_token_configured(client):
    response = await client.get("/metrics")
    assert response.status_code == 404


async def test_metrics_needs_the_bearer_token(observed):
    _, client = observed
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200


async def test_requests_latency_credits_upstream_errors_and_log_rows_are_counted(observed, engine, chat_upstream):
    application, client = observed
    user = make_user(engine, credits=100)
    secret = make_key(engine, user)
    chat_upstream.add(json={"id": "gen-1", "choices": [], "usage": {}})
    chat_upstream.add(status=500)
    assert (await client.post(CHAT, json=chat_body(), headers=auth(secret))).status_code == 200
    assert (await client.post(CHAT, json=chat_body(), headers=auth(secret))).status_code == 502
    assert (await client.post(CHAT, json=chat_body("made/up"), headers=auth(secret))).status_code == 404
    assert (await client.post(CHAT, json=chat_body())).status_code == 401
    assert (await client.get("/api/v1/no/such/path")).status_code == 404
    assert (await client.get("/api/v1/images/generations/nope", headers=auth(secret))).status_code == 404
    flush_logs(application)

    got = await scrape(client)
    chat = "/api/v1/chat/completions"
    assert got[("platform_requests_total", labels(chat, "openai/gpt-5", 200))] == 1
    assert got[("platform_requests_total", labels(chat, "openai/gpt-5", 502))] == 1
    assert got[("platform_requests_total", labels(chat, "other", 404))] == 1  # unknown model: no new label
    assert got[("platform_requests_total", labels(chat, "", 401))] == 1  # rejected before the body is read
    assert got[("platform_requests_total", labels("unmatched", "", 404))] == 1
    task_route = "/api/v1/images/generations/{task_id}"
    assert got[("platform_requests_total", labels(task_route, "", 404))] == 1
    assert got[("platform_request_duration_seconds_count", labels(chat, "openai/gpt-5", 200))] == 1
    assert got[("platform_upstream_errors_total", frozenset({"kind": "error"}.items()))] == 1
    assert got[("platform_credits_debited_total", frozenset())] == 6  # two charges of 3
    assert got[("platform_credits_refunded_total", frozenset())] == 3  # the 502's
    assert got[("platform_log_rows_written_total", frozenset())] == 6
    assert got[("platform_log_queue_depth", frozenset())] == 0


async def test_access_log_is_one_json_line_per_request_with_its_id_and_never_a_key(
    observed, engine, access_lines, chat_upstream
):
    application, client = observed
    user = make_user(engine, credits=100)
    secret = make_key(engine, user)
    chat_upstream.add(json={"id": "gen-1", "choices": [], "usage": {}})
    ok = await client.post(CHAT, json=chat_body(), headers=auth(secret))
    bad_key = await client.post(CHAT, json=chat_body(), headers=auth(secret[:-4] + "AAAA"))
    key_in_path = await client.get(f"/api/v1/{secret}")
    key_as_model = await client.post(CHAT, json=chat_body(secret), headers=auth(secret))
    responses = [ok, bad_key, key_in_path, key_as_model]
    application.state.runtime.access_log.flush()  # lines are written together, a moment later

    assert len(access_lines) == len(responses)
    entries = [orjson.loads(line) for line in access_lines]
    assert [e["request_id"] for e in entries] == [r.headers["x-request-id"] for r in responses]
    assert [e["status"] for e in entries] == [200, 401, 404, 404]
    first = entries[0]
    assert (
        first["method"],
        first["path"],
        first["model"],
        first["user_id"],
        first["credit_cost"],
        first["client"],
        first["error_code"],
    ) == ("POST", CHAT, "openai/gpt-5", user.id, 3, "203.0.113.9", None)
    assert isinstance(first["latency_ms"], int) and first["key_id"]
    assert entries[1]["error_code"] == "invalid_api_key" and entries[1]["key_id"] is None
    text = "\n".join(access_lines)
    assert "sk_live_" not in text.replace("sk_live_[redacted]", "")
    assert secret[8:] not in text and "authorization" not in text.lower()
