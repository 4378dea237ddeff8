"""What the bench measures: the fake upstreams themselves, the platform two ways, and LiteLLM.
(Portkey's gateway is in bench/portkey.py, an older commit of the platform in bench/baseline.py.)

Every platform target gets its own SQLite database under bench/out/, a user with credits
for millions of requests and, per run, a fresh unlimited key, so the log rows of one run
can be counted exactly (`rows_for`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from store import credits, keys, registry, users
from store.db import get_engine, session_for
from store.migrate import migrate

from .procs import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
SECRET = "bench-secret-key-0123456789abcdef"
LITELLM_VERSION = "1.100.5"  # newest whose [proxy] extra resolves from PyPI here
# Settings a developer's shell or .env might carry that would change what is measured.
_SCRUB = (
    "DATABASE_URL",
    "REDIS_URL",
    "METRICS_TOKEN",
    "PROMETHEUS_MULTIPROC_DIR",
    "GRANIAN_WORKERS",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "OPENROUTER_API_KEY",
    "OPENROUTER_BASE_URL",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(extra)
    return env


# Issues an unlimited key by name: (the raw key, its id).
KeyIssuer = Callable[[str], tuple[str, int]]


@dataclass
class Target:
    name: str
    label: str
    url: str = ""  # the chat completions endpoint
    database_url: str | None = None  # platform targets: where the log rows go
    user_id: int | None = None
    server: Server | None = None
    issue_key: KeyIssuer | None = None  # platform targets: a fresh key per run
    static_key: str | None = None  # a relay: the key it passes on to the upstream
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (Portkey's routing)
    warmup_s: float = 2.0  # load before the first measured run (a JIT like Node's wants longer)
    run_keys: dict[str, int] = field(default_factory=dict)  # raw key -> key id

    def new_key(self) -> str | None:
        """A fresh unlimited key for one run (a relay: its static key; None: no key)."""
        if self.issue_key is None:
            return self.static_key
        secret, key_id = self.issue_key(f"bench-{len(self.run_keys)}")
        self.run_keys[secret] = key_id
        return secret

    def stream_url(self, fmt: str) -> str:
        """The endpoint of a stream format (bench/streams.py's FORMATS) beside the chat one."""
        from .streams import PATHS

        return self.url.removesuffix(PATHS["chat"]) + PATHS[fmt]

    def rows_for(self, key: str | None, expected: int, wait_s: float = 15) -> int | None:
        """Log rows written for `key`'s run, once the writer has caught up (None: no log)."""
        if key is None or key not in self.run_keys:
            return None
        engine = get_engine(self.database_url)
        query = sa.text("SELECT count(*) FROM request_logs WHERE api_key_id = :k")
        deadline, last, stable_since = time.monotonic() + wait_s, -1, time.monotonic()
        while True:
            with engine.connect() as conn:
                count = conn.execute(query, {"k": self.run_keys[key]}).scalar_one()
            now = time.monotonic()
            if count != last:
                last, stable_since = count, now
            if (count >= expected and now - stable_since >= 0.6) or now > deadline:
                return count
            time.sleep(0.2)


def issue_main_key(database_url: str, user_id: int, name: str) -> tuple[str, int]:
    """An unlimited key issued by this tree's store."""
    with session_for(get_engine(database_url)) as session:
        issued = keys.issue_key(session, secret_key=SECRET, user_id=user_id, name=name, rate_limit_per_minute=0)
        assert issued.key.id is not None
        return issued.secret, issued.key.id


def prepare_database(name: str, *, metered: bool = False) -> tuple[str, int]:
    """A fresh migrated SQLite database with one user holding plenty of credits. `metered`:
    the benchmarked model is priced per token, so every request also writes its settlement."""
    path = OUT / f"{name}.db"
    get_engine(f"sqlite:///{path}").dispose()  # a second table's run: no pooled connection to the old file
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    migrate(url)
    with session_for(get_engine(url)) as session:
        user = users.create_user(
            session,
            email=f"{name}@bench.test",
            password="bench password 1",
            is_admin=False,
            credits_=credits.MAX_BALANCE,
        )
        # The shipped registry prices gpt-5-mini per token; the main targets price it per
        # request (hold only), as the baseline ref does, and `metered` per token (hold + settle).
        prices: dict = (
            dict(pricing="per_token", credit_cost=1_000, prompt_price=1_000_000, completion_price=2_000_000)
            if metered
            else dict(pricing="per_request", credit_cost=1_000_000)
        )
        registry.set_model(session, model_id="openai/gpt-5-mini", actor="bench", **prices)
        if not metered:  # the stream table's /messages model (api_messages rows), priced as chat's
            registry.set_model(session, model_id="anthropic/claude-sonnet-4.5", actor="bench", **prices)
        return url, user.id


# The bench is one account calling at C up to 1000: its calls in flight are the load, not a
# limit to hit (MAX_IN_FLIGHT_PER_USER is a fairness setting, per process, default 32; a
# tree without the setting ignores it). Every target's server gets this.
ONE_ACCOUNT_IN_FLIGHT = "100000"


def platform_env(database_url: str, upstream_base: str, port: int) -> dict[str, str]:
    return clean_env(
        PORT=str(port),
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        OPENROUTER_API_KEY="bench-upstream-key",
        OPENROUTER_BASE_URL=upstream_base,
        UPSTREAM_RETRIES="0",
        MEDIA_DIR=str(OUT / "media"),
        PYTHONPATH=str(ROOT),
        # the bench's stream upstream serves Messages and Responses natively, as OpenRouter
        # does: /messages and /responses go to it as they are (issue 16's measure)
        OPENROUTER_FORMATS="messages,responses",
        MAX_IN_FLIGHT_PER_USER=ONE_ACCOUNT_IN_FLIGHT,
    )


def fake_upstream() -> Server:
    port = free_port()
    return Server(
        "fake upstream",
        [sys.executable, "-m", "tests.fakes.upstream", str(port)],
        env=clean_env(PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        log_path=OUT / "upstream.log",
        ready_url=f"http://127.0.0.1:{port}/",
    )


def stream_upstream() -> Server:
    """bench/stream_upstream.py: N chunks D ms apart, then usage and [DONE]."""
    port = free_port()
    return Server(
        "stream upstream",
        [sys.executable, "-m", "bench.stream_upstream", str(port)],
        env=clean_env(PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        log_path=OUT / "stream_upstream.log",
        ready_url=f"http://127.0.0.1:{port}/",
    )


def direct(upstream: Server) -> Target:
    base = upstream.ready_url.rstrip("/")
    return Target("direct", "direct to the fake upstream (baseline)", url=f"{base}/v1/chat/completions")


def platform(upstream_base: str) -> Target:
    """The server exactly as `make run` serves it: scripts/serve.sh (Reflex prod, granian, SQLite).

    It builds into its own web/state dirs under bench/out, so it never clobbers the .web
    of a developer's `make run` (the first bench run pays for `reflex init` + bun install).
    """
    url, user_id = prepare_database("platform")
    port = free_port()
    env = platform_env(url, upstream_base, port)
    env.update(REFLEX_WEB_WORKDIR=str(OUT / "web"), REFLEX_STATES_WORKDIR=str(OUT / "states"))
    server = Server(
        "platform (make run)",
        [str(ROOT / "scripts" / "serve.sh")],
        env=env,
        cwd=ROOT,
        log_path=OUT / "platform.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
        ready_timeout=900,
    )
    return Target(
        "platform",
        "platform as `make run` serves it (Reflex prod, 1 worker, SQLite)",
        url=f"http://127.0.0.1:{port}/api/v1/chat/completions",
        database_url=url,
        user_id=user_id,
        server=server,
        issue_key=partial(issue_main_key, url, user_id),
    )


def standalone(upstream_base: str, *, metered: bool = False) -> Target:
    """The API alone, one worker, as docs/production.md runs it: `uvicorn api.app:app`
    (uvloop + httptools). BENCH_API_SERVER=granian measures granian instead. `metered`:
    the model priced per token, so each request also settles (a second ledger write)."""
    name = "api_metered" if metered else "api"
    url, user_id = prepare_database(name, metered=metered)
    port = free_port()
    env = platform_env(url, upstream_base, port)
    if os.environ.get("BENCH_API_SERVER", "uvicorn") == "granian":
        command = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "api.app:app",
        ]
        label = "standalone API (granian api.app:app, 1 worker, SQLite)"
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        label = "standalone API (uvicorn api.app:app, 1 worker, SQLite)"
    if metered:
        label += ", per-token pricing: hold + settle"
    server = Server(
        f"standalone API{' (metered)' if metered else ''}",
        command,
        env=env,
        cwd=ROOT,
        log_path=OUT / f"{name}.log",
        ready_url=f"http://127.0.0.1:{port}/api/v1/models",
    )
    return Target(
        name,
        label,
        url=f"http://127.0.0.1:{port}/api/v1/chat/completions",
        database_url=url,
        user_id=user_id,
        server=server,
        issue_key=partial(issue_main_key, url, user_id),
    )


def litellm(upstream_base: str) -> Target:
    """LiteLLM's proxy in its own virtualenv (bench/out/litellm-venv), one worker, no database."""
    venv = OUT / "litellm-venv"
    exe = venv / "bin" / "litellm"
    stamp = venv / f".litellm-{LITELLM_VERSION}"
    if not stamp.exists():
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (once)", flush=True)
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "ensurepip"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                f"litellm[proxy]=={LITELLM_VERSION}",
            ],
            check=True,
        )
        stamp.touch()
    config = OUT / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: openai/gpt-5-mini\n"
        "    litellm_params:\n"
        "      model: openai/openai/gpt-5-mini\n"
        f"      api_base: {upstream_base}\n"
        "      api_key: bench-upstream-key\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    port = free_port()
    env = clean_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", DISABLE_ADMIN_UI="True")
    server = Server(
        "litellm",
        [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env=env,
        cwd=OUT,
        log_path=OUT / "litellm.log",
        ready_url=f"http://127.0.0.1:{port}/health/liveliness",
        ready_timeout=300,
    )
    return Target(
        "litellm",
        f"LiteLLM proxy {LITELLM_VERSION} (1 worker, no database)",
        url=f"http://127.0.0.1:{port}/v1/chat/completions",
        server=server,
    )
