"""`python -m api.worker` as its own process: it finishes tasks, stops on SIGTERM handing
its claims back, and a new process resumes where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import credits, tasks
from store.db import session_for
from store.models import ImageTask
from store.money import MICRO

from ..conftest import TEST_SECRET
from ..factories import make_user
from .fake_replicate import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
MODEL = "google/nano-banana-pro"


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def start_worker(database_url: str, media_dir: Path, fake: FakeUpstream) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "REPLICATE_API_TOKEN": "test-replicate-token",
        "REPLICATE_BASE_URL": f"{fake.url}/v1",
        "MEDIA_DIR": str(media_dir),
        "TASK_POLL_INTERVAL_S": "0.02",
        "TASK_POLL_MAX_INTERVAL_S": "0.05",
        "WORKER_IDLE_S": "0.02",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api.worker"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output.decode()
    return output.decode()


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_standalone_worker_stops_cleanly_and_a_new_one_resumes(database_url, engine, tmp_path, upstream):
    upstream.reset()
    upstream.scenario.final = "hang"
    user = make_user(engine, credits=100)
    with session_for(engine) as s:
        task, _ = tasks.create_task(
            s,
            user_id=user.id,
            model=MODEL,
            provider="replicate",
            upstream_id=MODEL,
            prompt="a robot",
            size="1024x1024",
            n=1,
            unit_cost=10 * MICRO,
            timeout_s=60,
        )

    def row() -> ImageTask:
        with session_for(engine) as s:
            return s.get(ImageTask, task.id)

    first = start_worker(database_url, tmp_path / "media", upstream)
    try:
        wait_until(lambda: upstream.count("poll") >= 2)
    finally:
        log = stop(first)
    assert "stopping" in log
    stopped = row()
    assert (stopped.status, stopped.provider_task_id, stopped.claimed_until) == ("running", "pred0001", None)

    upstream.scenario.final = "succeeded"
    upstream.scenario.polls_until_done = 0
    second = start_worker(database_url, tmp_path / "media", upstream)
    try:
        wait_until(lambda: row().status == "succeeded")
    finally:
        stop(second)
    done = row()
    assert done.outputs == [f"{task.id}/0.png"]
    assert (tmp_path / "media" / task.id / "0.png").read_bytes() == upstream.png
    assert upstream.count("submit") == 1 and upstream.count("download") == 1
    with session_for(engine) as s:
        assert credits.balance(s, user_id=user.id) == 90 * MICRO
