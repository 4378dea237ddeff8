"""The whole image path over real sockets: `uvicorn api.app:app` in a subprocess (its
pipeline worker in process) against the fake Replicate, from submission to the PNG
fetched through its signed URL and the signed webhook."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from store import signing

from ..conftest import TEST_SECRET
from ..factories import auth, make_key, make_user
from .fake_replicate import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def served(database_url, tmp_path, upstream):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "REPLICATE_API_TOKEN": "test-replicate-token",
        "REPLICATE_BASE_URL": f"{upstream.url}/v1",
        "MEDIA_DIR": str(tmp_path / "media"),
        "TASK_POLL_INTERVAL_S": "0.05",
        "TASK_POLL_MAX_INTERVAL_S": "0.1",
        "WORKER_IDLE_S": "0.05",
        "WEBHOOK_BACKOFF_S": "0.05",
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "LOG_FLUSH_INTERVAL_S": "0.05",
    }
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/api/v1/models", timeout=1).status_code == 401:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("server did not start: " + proc.communicate()[0].decode()[-2000:])
        time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    # uvicorn re-raises the SIGTERM after its graceful shutdown
    assert proc.returncode in (0, -signal.SIGTERM), output.decode()[-2000:]
    assert b"Application shutdown complete." in output


def test_served_happy_path_from_submission_to_png_and_webhook(served, engine, upstream):
    user = make_user(engine, credits=100)
    key = make_key(engine, user)
    upstream.scenario.hook_failures = 1
    with httpx.Client(base_url=served, timeout=10) as client:
        submitted = client.post(
            "/api/v1/images/generations",
            headers=auth(key),
            json={
                "model": "google/nano-banana-pro",
                "prompt": "A cinematic photo of a robot reading API docs",
                "size": "1024x1024",
                "webhook_url": f"{upstream.url}/hook",
            },
        )
        assert submitted.status_code == 200
        task = submitted.json()
        assert (task["status"], task["data"], task["provider_task_id"]) == ("pending", [], "pred0001")
        deadline = time.monotonic() + 15
        while (task := client.get(f"/api/v1/images/generations/{task['task_id']}", headers=auth(key)).json())[
            "status"
        ] != "succeeded":
            assert task["status"] in ("pending", "running") and time.monotonic() < deadline, task
            time.sleep(0.05)
        url = task["data"][0]["url"]
        assert url.startswith(f"{served}/api/v1/files/{task['task_id']}/0.png?expires=")
        image = httpx.get(url)  # a plain GET, no key
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.content == upstream.png
        assert httpx.get(url.replace("sig=", "sig=0")).status_code == 403
        assert client.get("/api/v1/key", headers=auth(key)).json()["credit_balance"] == 90

        deadline = time.monotonic() + 10
        while upstream.hook_attempts < 2:
            assert time.monotonic() < deadline, upstream.hook_attempts
            time.sleep(0.05)
        secret = client.get("/api/v1/images/webhook-secret", headers=auth(key)).json()["secret"]
    body, headers = upstream.hooks[-1]
    assert signing.verify_webhook(secret, body, headers["x-platform-signature"])
    assert orjson.loads(body)["status"] == "succeeded"


def test_served_non_ascii_signature_is_403_invalid_signature(served):
    """A `sig` that is not ASCII (here "é") is a wrong signature, not a server error."""
    expires = int(time.time()) + 600
    response = httpx.get(f"{served}/api/v1/files/img_{'ab' * 16}/0.png?expires={expires}&sig=%C3%A9")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
