"""The server as `make run` starts it, in a subprocess, against a fake upstream served
over real HTTP. `live_server`: one server for the whole session (its first start builds
the frontend); `server_env` and `make_run` start others (tests/e2e/test_agents.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    upstream: Any  # the fake upstream it calls (ServedUpstream, tests/fakes/agent_upstream.AgentUpstream)
    log_path: Path

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1"

    @property
    def engine(self):
        return get_engine(self.database_url)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return store_cli(self.env, *args)

    def user_with_key(self, email: str, credits: int, rpm: int = 0) -> str:
        """Create a user (with credits) and a key through the admin CLI; returns the key."""
        created = self.cli("create-user", email, "--password", "e2e password 1", "--credits", str(credits))
        assert created.returncode == 0, created.stderr
        issued = self.cli("create-key", email, "--name", "e2e", "--rpm", str(rpm))
        assert issued.returncode == 0, issued.stderr
        return issued.stdout.strip().splitlines()[-1]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def store_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The admin CLI (`python -m store …`) on the database of `env`."""
    return subprocess.run(
        [sys.executable, "-m", "store", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def server_env(tmp: Path, upstream_base_url: str, **extra: str) -> dict[str, str]:
    """The environment `make run` gets: a SQLite database in `tmp`, the fake upstream as
    OpenRouter, no Redis; `extra` adds or overrides settings."""
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{tmp}/platform.db",
        "SECRET_KEY": SECRET,
        "OPENROUTER_API_KEY": "fake-upstream-key",
        "OPENROUTER_BASE_URL": upstream_base_url,
        "UPSTREAM_TIMEOUT_S": "3",
        "UPSTREAM_RETRIES": "0",
        # another process's registry and key edits show after this many seconds
        "KEY_CACHE_TTL_S": "1",
        "MEDIA_DIR": str(tmp / "media"),
        "ADMIN_EMAIL": "admin@example.com",
        "ADMIN_PASSWORD": "admin password 1",
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    env.pop("REDIS_URL", None)
    return env


@contextmanager
def make_run(env: dict[str, str], upstream: Any, log_path: Path) -> Iterator[LiveServer]:
    """`make run` with `env` (server_env), in its own process group, until ready; stopped after."""
    server = LiveServer(f"http://127.0.0.1:{env['PORT']}", env["DATABASE_URL"], env, upstream, log_path)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["make", "-s", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(server, proc)
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("live")
    with ServedUpstream() as upstream, make_run(server_env(tmp, upstream.base_url), upstream, tmp / "server.log") as s:
        flat_seed_prices(s)
        yield s


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
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.log_tail()}")


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
