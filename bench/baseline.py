"""An older commit of the platform, built and run as more targets of the same run.

`BENCH_BASELINE_REF` (default 0216049, the commit before the move to maintained parts;
empty: no baseline) is checked out as a detached git worktree in bench/out/baseline-<sha>
(reused when present), with its own virtualenv from its own requirements.txt (stamped by
a copy of that file, as its Makefile stamps .venv). Everything about it is its own: the
database is migrated and filled by its own CLI (`python -m store migrate / create-user /
create-key / grant`, the schema differs between commits), its `scripts/serve.sh` serves it
as its `make run` does (`baseline_platform`, its frontend built into bench/out/baseline-web,
never into anyone's .web) and `uvicorn api.app:app` runs its API alone (`baseline_api`).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from store.db import get_engine

from .procs import Server, free_port
from .targets import ONE_ACCOUNT_IN_FLIGHT, OUT, ROOT, SECRET, Target, clean_env

DEFAULT_REF = "0216049"
CREDITS = 1_000_000_000  # whole credits (0216049 keeps balances as integers of credits; later trees, micro-credits)
MICRO = 1_000_000
PASSWORD = "bench password 1"


def baseline_ref() -> str | None:
    """The ref to compare against (None: BENCH_BASELINE_REF is set empty)."""
    ref = os.environ.get("BENCH_BASELINE_REF", DEFAULT_REF).strip()
    return ref or None


@dataclass(frozen=True)
class Baseline:
    ref: str
    sha: str
    tree: Path

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def python(self) -> str:
        return str(self.tree / ".venv" / "bin" / "python")

    @property
    def name(self) -> str:
        return self.ref if self.sha.startswith(self.ref) else f"{self.ref} ({self.short})"


@functools.cache
def prepare(ref: str) -> Baseline:
    """Check `ref` out and install its requirements, once per machine (both are reused)."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    tree = OUT / f"baseline-{sha[:7]}"
    _ensure_tree(tree, sha)
    _ensure_venv(tree)
    return Baseline(ref, sha, tree)


def _git(*args: str, cwd: Path = ROOT) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def _ensure_tree(tree: Path, sha: str) -> None:
    if (tree / ".git").exists():
        head = _git("rev-parse", "HEAD", cwd=tree).strip()
        if head != sha:
            raise RuntimeError(f"{tree} holds {head}, not {sha}: git worktree remove --force {tree}")
        return
    print(f"checking out the baseline {sha[:7]} into {tree} (once)", flush=True)
    _git("worktree", "prune")  # a bench/out deleted by hand leaves its worktree registered
    _git("worktree", "add", "--detach", str(tree), sha)


def _ensure_venv(tree: Path) -> None:
    venv = tree / ".venv"
    stamp = venv / ".installed"
    wanted = (tree / "requirements.txt").read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"installing the baseline's requirements.txt into {venv} (once)", flush=True)
    if not (venv / "bin" / "python").exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"]
        + [str(tree / "requirements.txt")],
        check=True,
    )
    stamp.write_text(wanted)


class StoreCli:
    """One user of a database, driven through a tree's own admin CLI (`python -m store`):
    the baseline's, or this tree's for the hot account, so both are filled the same way."""

    def __init__(self, tree: Path, python: str, database_url: str, email: str) -> None:
        self.tree, self.python = tree, python
        self.database_url = database_url
        self.email = email
        self.user_id: int | None = None
        # Since store/money.py the balance is kept in micro-credits and the CLI takes credits.
        self.micro = (tree / "store" / "money.py").exists()

    def _cli(self, *args: str) -> str:
        env = clean_env(DATABASE_URL=self.database_url, SECRET_KEY=SECRET, PYTHONPATH=str(self.tree))
        out = subprocess.run(
            [self.python, "-m", "store", *args], cwd=self.tree, env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"`python -m store {args[0]}` in {self.tree} failed: {out.stderr.strip() or out.stdout}")
        return out.stdout

    def create(self, credits: int = CREDITS) -> int:
        """Migrate, then create the user with `credits` whole credits."""
        self._cli("migrate")
        out = self._cli("create-user", self.email, "--password", PASSWORD, "--credits", str(credits))
        found = re.search(r"\(id (\d+),", out)
        if not found:
            raise RuntimeError(f"create-user: unexpected output {out!r}")
        self.user_id = int(found[1])
        return self.user_id

    def issue_key(self, name: str) -> tuple[str, int]:
        """An unlimited key (`--rpm 0`): the raw key, and its id found by its prefix and last 4."""
        secret = self._cli("create-key", self.email, "--name", name, "--rpm", "0").strip().splitlines()[-1]
        query = sa.text("SELECT id FROM api_keys WHERE prefix = :p AND last4 = :l ORDER BY id DESC")
        with _engine(self.database_url).connect() as conn:
            key_id = conn.execute(query, {"p": secret[:12], "l": secret[-4:]}).scalars().first()
        if key_id is None:
            raise RuntimeError(f"create-key: no key row for {secret[:12]}…")
        return secret, int(key_id)

    def grant(self, amount: int) -> None:
        """Add `amount` (negative: remove it) in the database's own units, through the ledger."""
        text = str(Decimal(amount) / MICRO) if self.micro else str(amount)
        self._cli("grant", self.email, text, "--note", "bench")

    def price_per_token(self, model: str) -> bool:
        """Price `model` per token (a 0.001 fee, 1 and 2 credits per 1M prompt and completion
        tokens), so every call holds and then settles; False when this tree cannot."""
        if "--pricing" not in self._cli("set-model", "--help"):
            return False
        self._cli(
            "set-model",
            model,
            "--pricing",
            "per_token",
            "--cost",
            "0.001",
            "--prompt-price",
            "1",
            "--completion-price",
            "2",
        )
        return True


@functools.cache
def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url)


def store_cli(baseline: Baseline, database_url: str, email: str) -> StoreCli:
    return StoreCli(baseline.tree, baseline.python, database_url, email)


def sqlite_database(baseline: Baseline, name: str) -> StoreCli:
    """A fresh SQLite database under bench/out, migrated and filled by the baseline."""
    path = OUT / f"{name}.db"
    # No pooled connection may still read the last table's file once it is unlinked (the
    # key lookups' engine here, and the store's, which counts the log rows).
    _engine(f"sqlite:///{path}").dispose()
    get_engine(f"sqlite:///{path}").dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = store_cli(baseline, f"sqlite:///{path}", f"{name}@bench.test")
    store.create()
    return store


def server_env(baseline: Baseline, database_url: str, upstream_base: str, port: int, **extra: str) -> dict[str, str]:
    """The settings 0216049 reads (store/settings.py there), as bench/targets.py's platform_env."""
    return clean_env(
        PORT=str(port),
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        OPENROUTER_API_KEY="bench-upstream-key",
        OPENROUTER_BASE_URL=upstream_base,
        UPSTREAM_RETRIES="0",
        MEDIA_DIR=str(OUT / "baseline-media"),
        PYTHONPATH=str(baseline.tree),
        MAX_IN_FLIGHT_PER_USER=ONE_ACCOUNT_IN_FLIGHT,
        **extra,
    )


def api_command(baseline: Baseline, port: int) -> list[str]:
    return [baseline.python, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)] + [
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def baseline_platform(baseline: Baseline, upstream_base: str) -> Target:
    """The baseline as its `make run` serves it: its scripts/serve.sh (Reflex prod, granian, SQLite)."""
    store = sqlite_database(baseline, "baseline_platform")
    port = free_port()
    env = server_env(
        baseline,
        store.database_url,
        upstream_base,
        port,
        REFLEX_WEB_WORKDIR=str(OUT / "baseline-web"),
        REFLEX_STATES_WORKDIR=str(OUT / "baseline-states"),
        # its serve.sh puts its own .tools first, which a worktree lacks: bun comes from this tree's
        PATH=f"{ROOT / '.tools' / 'node_modules' / '.bin'}:{os.environ.get('PATH', '')}",
    )
    server = Server(
        f"baseline {baseline.short} (make run)",
        [str(baseline.tree / "scripts" / "serve.sh")],
        env=env,
        cwd=baseline.tree,
        log_path=OUT / "baseline_platform.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
        ready_timeout=900,
    )
    return Target(
        "baseline_platform",
        f"baseline {baseline.name} as `make run` serves it (Reflex prod, 1 worker, SQLite)",
        url=f"http://127.0.0.1:{port}/api/v1/chat/completions",
        database_url=store.database_url,
        user_id=store.user_id,
        server=server,
        issue_key=store.issue_key,
    )


def baseline_api(baseline: Baseline, upstream_base: str) -> Target:
    """The baseline's API alone: `uvicorn api.app:app`, one worker, SQLite."""
    store = sqlite_database(baseline, "baseline_api")
    port = free_port()
    server = Server(
        f"baseline {baseline.short} API",
        api_command(baseline, port),
        env=server_env(baseline, store.database_url, upstream_base, port),
        cwd=baseline.tree,
        log_path=OUT / "baseline_api.log",
        ready_url=f"http://127.0.0.1:{port}/api/v1/models",
    )
    return Target(
        "baseline_api",
        f"baseline {baseline.name} API alone (uvicorn api.app:app, 1 worker, SQLite)",
        url=f"http://127.0.0.1:{port}/api/v1/chat/completions",
        database_url=store.database_url,
        user_id=store.user_id,
        server=server,
        issue_key=store.issue_key,
    )
