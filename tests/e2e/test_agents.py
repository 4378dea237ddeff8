"""The real coding agents doing a tool job through the real server (`make run`): Claude
Code (`/api/v1/messages`) and the Codex CLI (`/api/v1/responses`), pinned and installed by
`make agents` (which `make test` runs), against a scripted fake upstream over real sockets
(tests/fakes/agent_upstream.py) that plays the job as a model would.

Two servers, one per way the platform reaches the provider, each started once:

    native       OPENROUTER_FORMATS=messages,responses: the upstream is sent /v1/messages
                 and /v1/responses as the agents wrote them (api/native.py)
    translated   OPENROUTER_FORMATS= (empty): the upstream is sent /v1/chat/completions
                 (api/translate/)

Each run asks the agent to write a file and then show it with a command; the upstream
answers with those tool calls, then a final text quoting the last tool result. Checked:
the file holds exactly what was asked, the agent's final answer quotes the command's
output, every upstream call was in the mode's format, the user was charged exactly the
upstream's usage at the model's per-token prices (cache reads and writes at theirs), and
the request log has one row per upstream call.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlmodel import select

from store.db import session_for
from store.models import RequestLog, User

from ..fakes.agent_upstream import AgentUpstream, Answer, Call, ToolJob
from .conftest import ROOT, LiveServer, make_run, server_env, store_cli

pytestmark = pytest.mark.e2e

AGENTS = ROOT / ".tools" / "agents" / "node_modules" / ".bin"
CLAUDE, CODEX = AGENTS / "claude", AGENTS / "codex"
MODES = {"native": "messages,responses", "translated": ""}
# Prices in credits per 1M tokens, so micro-credits per token: every charge is a whole sum.
PROMPT, COMPLETION, CACHE_READ, CACHE_WRITE = 300, 1500, 30, 375
MAX_OUTPUT, CONTEXT = 16_000, 200_000
# The platform's ids. Claude Code is given its model by ANTHROPIC_MODEL; Codex knows
# `gpt-5.5` from its own catalog, which gives it apply_patch (a freeform tool) and exec_command.
CLAUDE_MODEL, CODEX_MODEL = "anthropic/claude-sonnet-4.5", "gpt-5.5"
UPSTREAM_IDS = {CLAUDE_MODEL: "anthropic/claude-sonnet-4.5", CODEX_MODEL: "openai/gpt-5.5"}
CREDITS = 1_000  # each call holds its whole bound (a 16k-token completion at 1500/1M: 24 credits)
AGENT_TIMEOUT_S = 600  # a run takes seconds; the machine may be very busy
SETTLE_TIMEOUT_S = 60
MODEL_CALLS = ("call", "final", "side")  # the upstream answers that are model calls (billed, logged)
PROMPT_TEXT = "Create hello.txt containing a greeting, then show it with cat."


@dataclass
class Platform:
    mode: str
    server: LiveServer
    upstream: AgentUpstream

    @property
    def path(self) -> dict[str, str]:
        """Where the upstream is called for each agent's format, in this mode."""
        if self.mode == "native":
            return {"claude": "/v1/messages", "codex": "/v1/responses"}
        return {"claude": "/v1/chat/completions", "codex": "/v1/chat/completions"}


@pytest.fixture(scope="module", params=list(MODES))
def platform(request, tmp_path_factory) -> Iterator[Platform]:
    """The server as `make run` starts it, in one mode, pointed at an agent upstream. Its
    frontend is built in a directory of the session's own (shared by both modes, which run
    one after the other), so that it never rebuilds the checkout's `.web` under another
    server of the session."""
    mode = request.param
    for binary in (CLAUDE, CODEX):
        assert binary.exists(), f"{binary} is missing: `make agents` installs it (`make test` does)"
    tmp = tmp_path_factory.mktemp(f"agents-{mode}")
    web = tmp_path_factory.getbasetemp() / "agents-frontend"
    with AgentUpstream(ToolJob([])) as upstream:
        env = server_env(
            tmp,
            upstream.base_url,
            OPENROUTER_FORMATS=MODES[mode],
            UPSTREAM_TIMEOUT_S="120",
            REFLEX_WEB_WORKDIR=str(web / "web"),
            REFLEX_STATES_WORKDIR=str(web / "states"),
        )
        # The registry before the server starts, so that it reads these prices from its first call.
        assert store_cli(env, "migrate").returncode == 0
        for model_id, upstream_id in UPSTREAM_IDS.items():
            done = store_cli(
                env,
                "set-model",
                model_id,
                "--category=chat",
                "--provider=openrouter",
                f"--upstream-id={upstream_id}",
                "--pricing=per_token",
                "--cost=0",
                f"--prompt-price={PROMPT}",
                f"--completion-price={COMPLETION}",
                f"--cache-read-price={CACHE_READ}",
                f"--cache-write-price={CACHE_WRITE}",
                f"--max-output-tokens={MAX_OUTPUT}",
                f"--context-length={CONTEXT}",
                "--enable",
            )
            assert done.returncode == 0, done.stderr
        with make_run(env, upstream, tmp / "server.log") as server:
            yield Platform(mode, server, upstream)


@dataclass
class Run:
    """One agent run: what it printed and what the upstream saw meanwhile."""

    command: list[str]
    done: subprocess.CompletedProcess | None
    error: str = ""

    def output(self) -> str:
        if self.done is None:
            return self.error
        done = self.done
        return f"exit {done.returncode}\n--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}"


def run_agent(command: list[str], *, cwd: Path, env: dict[str, str]) -> Run:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=AGENT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        return Run(command, None, f"timed out after {AGENT_TIMEOUT_S}s\n{exc.stdout!r}\n{exc.stderr!r}")
    return Run(command, done)


@contextmanager
def diagnosed(run: Run, platform: Platform) -> Iterator[None]:
    """On a failed check, print what the agent printed, what the upstream saw and answered,
    and the server log's tail (pytest shows them with the failure)."""
    try:
        yield
    except BaseException:
        print(f"=== agent ({platform.mode}): {' '.join(run.command[:3])} …\n{run.output()}")
        print("=== upstream")
        for seen, answer in zip(platform.upstream.requests, platform.upstream.answers, strict=False):
            print(seen.method, seen.path, answer.kind, answer.step, answer.usage)
        print(f"=== server log\n{platform.server.log_tail(8000)}")
        raise


def base_env(home: Path) -> dict[str, str]:
    """Nothing of the developer's own: a HOME of the run's, the PATH (node, the shell's tools)."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb", "LANG": "C.UTF-8"}


def price(answer: Answer) -> int:
    """An upstream answer's usage at the model's prices, in micro-credits (exact)."""
    usage = answer.usage
    assert usage is not None
    fresh = usage.prompt - usage.cache_read - usage.cache_write
    return fresh * PROMPT + usage.cache_read * CACHE_READ + usage.cache_write * CACHE_WRITE + usage.output * COMPLETION


def user_id(platform: Platform, email: str) -> int:
    with session_for(platform.server.engine) as s:
        user = s.exec(select(User).where(User.email == email)).one()
        assert user.id is not None
        return user.id


def settled(platform: Platform, email: str, calls: int) -> tuple[int, list[RequestLog]]:
    """The user's charge so far (micro-credits) and their log rows, once there is a row per
    call and every settlement is written (each is written after its answer: polled, bounded)."""
    uid = user_id(platform, email)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        with session_for(platform.server.engine) as s:
            balance = s.exec(select(User.balance).where(User.id == uid)).one()
            rows = list(s.exec(select(RequestLog).where(RequestLog.user_id == uid).order_by(RequestLog.id)))
        spent = CREDITS * 1_000_000 - balance
        if (len(rows) >= calls and spent == sum(row.credit_cost for row in rows)) or time.monotonic() > deadline:
            return spent, rows
        time.sleep(0.2)


def check_billing(platform: Platform, email: str, endpoint: str, model: str) -> tuple[int, int]:
    """The user's charge equals the upstream's usage priced, one 200 log row per model call.
    Returns (calls, charge)."""
    answers = platform.upstream.answers
    calls = [a for a in answers if a.kind in MODEL_CALLS]
    assert [a.kind for a in answers if a.kind not in MODEL_CALLS] == []  # no count_tokens, no rejection
    # the cache's own prices are part of what is checked: the job wrote to it and read from it
    assert any(a.usage and a.usage.cache_write for a in calls) and any(a.usage and a.usage.cache_read for a in calls)
    expected = sum(price(a) for a in calls)
    spent, rows = settled(platform, email, len(calls))
    assert [(r.endpoint, r.status, r.error_code, r.model) for r in rows] == [(endpoint, 200, None, model)] * len(calls)
    assert sorted(r.credit_cost for r in rows) == sorted(price(a) for a in calls)
    assert spent == expected
    return len(calls), spent


def upstream_paths(platform: Platform) -> list[str]:
    return [urlsplit(seen.path).path for seen in platform.upstream.requests]


# ---------------------------------------------------------------- Claude Code


def test_claude_code_writes_and_cats_a_file(platform: Platform, tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    content = f"Hello from Claude Code through the {platform.mode} platform!\n"
    platform.upstream.play(
        ToolJob(
            [
                Call("Write", {"file_path": str(work / "hello.txt"), "content": content}, "I'll write the file."),
                Call("Bash", {"command": "cat hello.txt", "description": "Show hello.txt"}, "Now I read it back."),
            ],
            final="The file says: {output}",
        )
    )
    email = f"claude-{platform.mode}@example.com"
    key = platform.server.user_with_key(email, credits=CREDITS)
    # the key as Anthropic's (x-api-key) in one mode, as a bearer token in the other: both are taken
    key_variable = "ANTHROPIC_API_KEY" if platform.mode == "native" else "ANTHROPIC_AUTH_TOKEN"
    # docs/api.md's settings ("Coding agents"), with no retries
    env = base_env(home) | {
        "ANTHROPIC_BASE_URL": f"{platform.server.base_url}/api",
        key_variable: key,
        "ANTHROPIC_MODEL": CLAUDE_MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": CLAUDE_MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # a failed call fails the run at once (else it retries for minutes), so it shows as such
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    command = [str(CLAUDE), "-p", PROMPT_TEXT, "--output-format", "json"]
    command += ["--permission-mode", "acceptEdits", "--allowedTools", "Write,Bash"]
    run = run_agent(command, cwd=work, env=env)
    with diagnosed(run, platform):
        assert run.done is not None and run.done.returncode == 0
        result = json.loads(run.done.stdout)
        assert (result["type"], result["subtype"], result["is_error"]) == ("result", "success", False)
        assert (work / "hello.txt").read_text() == content
        kinds = [(a.kind, a.step) for a in platform.upstream.answers if a.kind != "side"]
        assert kinds == [("call", 0), ("call", 1), ("final", 2)]
        # the final answer quotes the Bash result as Claude Code sent it back: the file, then
        # whatever it adds to a tool result (a <system-reminder>)
        final = next(a for a in platform.upstream.answers if a.kind == "final")
        assert final.text.startswith("The file says: " + content)
        assert result["result"] == final.text
        assert set(upstream_paths(platform)) == {platform.path["claude"]}
        calls, charge = check_billing(platform, email, "/api/v1/messages", CLAUDE_MODEL)
        print(f"claude-code {platform.mode}: {calls} upstream calls, charged {charge} micro-credits")


# ---------------------------------------------------------------- Codex


# docs/api.md's ("Coding agents"), with no retries
CODEX_CONFIG = """
model = "{model}"
model_provider = "platform"
check_for_update_on_startup = false

[model_providers.platform]
name = "LLM platform"
base_url = "{base_url}"
env_key = "PLATFORM_API_KEY"
wire_api = "responses"
# a failed call fails the run at once (else it is retried), so it shows as such
request_max_retries = 0
stream_max_retries = 0

[features]
plugins = false
remote_plugin = false
apps = false

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
"""


def test_codex_patches_and_cats_a_file(platform: Platform, tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    line = f"Hello from Codex through the {platform.mode} platform!"
    patch = f"*** Begin Patch\n*** Add File: hello.txt\n+{line}\n*** End Patch\n"
    platform.upstream.play(
        ToolJob(
            [
                Call("apply_patch", patch, "I'll create the file."),
                Call("exec_command", {"cmd": "cat hello.txt"}, "Now I read it back."),
            ],
            final="The file says: {output}",
        )
    )
    email = f"codex-{platform.mode}@example.com"
    key = platform.server.user_with_key(email, credits=CREDITS)
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(model=CODEX_MODEL, base_url=platform.server.api))
    env = base_env(home) | {"CODEX_HOME": str(codex_home), "PLATFORM_API_KEY": key}
    last = tmp_path / "last-message.txt"
    command = [str(CODEX), "exec", "--skip-git-repo-check", "--ephemeral", "--dangerously-bypass-approvals-and-sandbox"]
    command += ["-C", str(work), "--output-last-message", str(last), PROMPT_TEXT]
    run = run_agent(command, cwd=work, env=env)
    with diagnosed(run, platform):
        assert run.done is not None and run.done.returncode == 0
        assert (work / "hello.txt").read_text() == line + "\n"
        kinds = [(a.kind, a.step) for a in platform.upstream.answers if a.kind != "side"]
        assert kinds == [("call", 0), ("call", 1), ("final", 2)]
        # the final answer quotes exec_command's result as Codex sent it back (its output
        # framed by Codex's own lines: exit code, wall time)
        final = next(a for a in platform.upstream.answers if a.kind == "final")
        assert final.text.startswith("The file says: ") and f"\n{line}\n" in final.text
        assert last.read_text() == final.text
        assert set(upstream_paths(platform)) == {platform.path["codex"]}
        calls, charge = check_billing(platform, email, "/api/v1/responses", CODEX_MODEL)
        print(f"codex {platform.mode}: {calls} upstream calls, charged {charge} micro-credits")
