"""The scale-out topology for real: two API processes (`uvicorn api.app:app`) and one
image-pipeline worker (`python -m api.worker`) as subprocesses, sharing a PostgreSQL
database of this run's own and one Redis (under a namespace of this run's own), with
a fake chat upstream and a fake Replicate on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from store.db import get_engine
from store.migrate import migrate

from ..api.fake_replicate import FakeUpstream
from ..conftest import PG_URL, REDIS_URL, TEST_SECRET, require
from ..factories import flat_seed_prices
from ..fakes.upstream import ServedUpstream, free_port

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "scaleout-metrics-token"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    base_url: str | None = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Topology:
    database_url: str
    apis: list[Process]
    worker: Process
    replicate: FakeUpstream
    sent: dict[str, int] = field(default_factory=dict)

    @property
    def engine(self):
        return get_engine(self.database_url)


def _own_database(base_url: str) -> tuple[str, sa.Engine, str]:
    base = sa.engine.make_url(base_url)
    name = f"{base.database}_scaleout_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return base.set(database=name).render_as_string(hide_password=False), admin, name


def _start(name: str, command: list[str], env: dict[str, str], log_dir: Path, base_url: str | None = None) -> Process:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name, popen, log_path, base_url)


def _wait_ready(process: Process, timeout: float = 60) -> None:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.output()[-3000:]}")
        if process.base_url is None:  # the worker: its start line, or still alive after a while
            if "worker started" in process.output() or time.monotonic() - started > 10:
                return
        else:
            try:
                if httpx.get(f"{process.base_url}/api/v1/models", timeout=2).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} not ready after {timeout:.0f}s:\n{process.output()[-3000:]}")


def _stop(process: Process) -> None:
    if process.popen.poll() is not None:
        return
    os.killpg(process.popen.pid, signal.SIGTERM)
    try:
        process.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(timeout=10)


@pytest.fixture(scope="package")
def topology(tmp_path_factory) -> Topology:
    pg = require(PG_URL, "TEST_DATABASE_URL")
    redis = require(REDIS_URL, "TEST_REDIS_URL")
    tmp = tmp_path_factory.mktemp("scaleout")
    database_url, admin, name = _own_database(pg)
    migrate(database_url)
    flat_seed_prices(get_engine(database_url))  # these tests count the seed's flat fee
    metrics_dir = tmp / "prometheus"  # shared by both API processes: one scrape sums them
    metrics_dir.mkdir()
    replicate = FakeUpstream().start()
    processes: list[Process] = []
    try:
        with ServedUpstream(record=False) as chat:
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                # a few pooled connections per process: several processes and the suite share one
                # PostgreSQL (max_connections 100), and 40 calls at once must not run it out
                "DB_POOL_SIZE": "4",
                "DB_MAX_OVERFLOW": "6",
                "REDIS_URL": redis,
                "RATE_LIMIT_NAMESPACE": f"scaleout-{uuid.uuid4().hex}",
                "SECRET_KEY": TEST_SECRET,
                "OPENROUTER_API_KEY": "fake-upstream-key",
                "OPENROUTER_BASE_URL": chat.base_url,
                "REPLICATE_API_TOKEN": "test-replicate-token",
                "REPLICATE_BASE_URL": f"{replicate.url}/v1",
                "MEDIA_DIR": str(tmp / "media"),
                "UPSTREAM_RETRIES": "0",
                "RUN_PIPELINE_IN_PROCESS": "false",  # the worker below runs the pipeline
                "TASK_POLL_INTERVAL_S": "0.05",
                "TASK_POLL_MAX_INTERVAL_S": "0.1",
                "WORKER_IDLE_S": "0.05",
                "LOG_FLUSH_INTERVAL_S": "0.05",
                "METRICS_TOKEN": METRICS_TOKEN,
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                "PYTHONPATH": str(ROOT),
            }
            for variable in ("ADMIN_EMAIL", "ADMIN_PASSWORD", "ACCESS_LOG"):
                env.pop(variable, None)
            for index in (1, 2):
                port = free_port()
                processes.append(
                    _start(
                        f"api{index}",
                        [
                            sys.executable,
                            "-m",
                            "uvicorn",
                            "api.app:app",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                            "--no-access-log",
                        ],
                        env,
                        tmp,
                        base_url=f"http://127.0.0.1:{port}",
                    )
                )
            worker_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            processes.append(_start("worker", [sys.executable, "-m", "api.worker"], worker_env, tmp))
            for process in processes:
                _wait_ready(process)
            yield Topology(database_url, processes[:2], processes[2], replicate)
    finally:
        for process in processes:
            _stop(process)
        replicate.stop()
        get_engine(database_url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
