"""The server as `make run` starts it, in a subprocess, against a fake upstream served
over real HTTP. One server for the whole session (its first start builds the frontend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from store.db import get_engine

from ..fakes.upstream import ServedUpstream, free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-key-0123456789abcdef"


@dataclass
class LiveServer:
    base_url: str
    database_url: str
    env: dict
    upstream: ServedUpstream
    log_path: Path

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1"

    @property
    def engine(self):
        return get_engine(self.database_url)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "store", *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    def user_with_key(self, email: str, credits: int, rpm: int = 0) -> str:
        """Create a user (with credits) and a key through the admin CLI; returns the key."""
        created = self.cli("create-user", email, "--password", "e2e password 1", "--credits", str(credits))
        assert created.returncode == 0, created.stderr
        issued = self.cli("create-key", email, "--name", "e2e", "--rpm", str(rpm))
        assert issued.returncode == 0, issued.stderr
        return issued.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> LiveServer:
    tmp = tmp_path_factory.mktemp("live")
    with ServedUpstream() as upstream:
        port = free_port()
        database_url = f"sqlite:///{tmp}/platform.db"
        env = {
            **os.environ,
            "PORT": str(port),
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET,
            "OPENROUTER_API_KEY": "fake-upstream-key",
            "OPENROUTER_BASE_URL": upstream.base_url,
            "UPSTREAM_TIMEOUT_S": "3",
            "UPSTREAM_RETRIES": "0",
            # another process's registry and key edits show after this many seconds
            "KEY_CACHE_TTL_S": "1",
            "MEDIA_DIR": str(tmp / "media"),
            "ADMIN_EMAIL": "admin@example.com",
            "ADMIN_PASSWORD": "admin password 1",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("REDIS_URL", None)
        log_path = tmp / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                ["make", "-s", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = LiveServer(f"http://127.0.0.1:{port}", database_url, env, upstream, log_path)
        try:
            _wait_ready(server, proc)
            flat_seed_prices(server)
            yield server
        finally:
            _stop(proc)


SEEDED_CHAT = ("openai/gpt-5", "openai/gpt-5-mini", "anthropic/claude-sonnet-4.5")


def flat_seed_prices(server: LiveServer) -> None:
    """The seeded chat models at their seed fee per request (tests.factories.flat_seed_prices,
    through the CLI): the end-to-end tests count a call's flat fee; the shipped per-token
    prices are tested on their own."""
    for model_id in SEEDED_CHAT:
        done = server.cli(
            "set-model", model_id, "--pricing", "per_request", "--prompt-price", "0", "--completion-price", "0",
            "--cache-read-price", "none", "--cache-write-price", "none",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    time.sleep(1.5)  # KEY_CACHE_TTL_S: the server's registry cache sees the change


def _wait_ready(server: LiveServer, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{server.base_url}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.log_path.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
