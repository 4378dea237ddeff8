"""py-spy on a server under load (wrk's, or the stream load's): the functions that hold the most samples.

`py-spy record --format raw` writes collapsed stacks ("f1;f2;leaf COUNT"); from them come
each function's own share (the leaf) and its inclusive share (anywhere on the stack),
over the samples of the server's threads that were doing something (idle waits dropped).
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .streams import run_streams
from .targets import OUT, ROOT, Target
from .wrk import run_wrk

PY_SPY = "py-spy==0.4.3"
# Leaf frames where a thread waits rather than works (py-spy's --gil keeps most of them out).
_IDLE = ("Condition.wait (", "Event.wait (", "Queue.get (", "select (", "Popen.poll (", "process ")


# Inclusive shares are shown for the request path's layers only (not the server's bootstrap).
_LAYERS = (
    "(api/",
    "(store/",
    "(starlette/",
    "(fastapi/",
    "(httpx/",
    "(httpcore/",
    "(sqlalchemy/orm/session",
    "(sqlalchemy/engine/base",
    "(anyio/to_thread",
    "(anyio/_backends",
    "(sqlmodel/",
    "(limits/",
    "(asyncio/",
    "(uvicorn/",
    "(aiohttp/",
    "(reflex/app.py",
)


def ensure_py_spy() -> str:
    exe = Path(sys.executable).with_name("py-spy")
    if exe.exists():
        return str(exe)
    found = shutil.which("py-spy")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", PY_SPY], check=True)
    return str(exe)


def profile_under_load(target: Target, seconds: float, connections: int = 16, top: int = 25) -> dict:
    """Sample `target`'s server (all its processes) while wrk loads it; returns the top entries."""
    key = target.new_key()
    with _py_spy(target, seconds) as raw:
        result = run_wrk(target.url, key=key, connections=connections, seconds=seconds, workdir=OUT)
    return summarize(
        raw.read_text(),
        top=top,
        title=f"py-spy, {target.label}, {connections} connections, {seconds:.0f}s, "
        f"{result.rps:.0f} req/s under the profiler",
    )


def profile_streams(
    target: Target, seconds: float, *, concurrency: int, chunks: int, interval_ms: float, top: int = 25
) -> dict:
    """Sample `target`'s server while it relays `concurrency` streams (bench/streams.py)."""
    key = target.new_key()
    with _py_spy(target, seconds, name=f"{target.name}-streams") as raw:
        seen = run_streams(
            target.url,
            key=key,
            concurrency=concurrency,
            seconds=seconds,
            chunks=chunks,
            interval_ms=interval_ms,
            cwd=ROOT,
        )
    return summarize(
        raw.read_text(),
        top=top,
        title=f"py-spy, {target.label}, {concurrency} streams of {chunks} chunks {interval_ms:g} ms "
        f"apart, {seconds:.0f}s, {seen['streams_per_s']:.0f} streams/s under the profiler",
    )


@contextlib.contextmanager
def _py_spy(target: Target, seconds: float, name: str | None = None) -> Iterator[Path]:
    """py-spy records the server for `seconds` while the block loads it; yields the raw output's path."""
    raw = OUT / f"profile-{name or target.name}.txt"
    raw.unlink(missing_ok=True)
    command = [
        ensure_py_spy(),
        "record",
        "--format",
        "raw",
        "--nolineno",
        "--gil",
        "--subprocesses",
        "--rate",
        "250",
        "--duration",
        str(int(seconds)),
        "--output",
        str(raw),
        "--pid",
        str(target.server.proc.pid),
    ]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield raw
    finally:
        _, err = spy.communicate(timeout=seconds + 60)
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')}")


def summarize(collapsed: str, *, top: int = 25, title: str = "profile") -> dict:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        if any(marker in frames[-1] for marker in _IDLE):
            idle += n
            continue
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{title}: {busy} busy samples ({idle} idle dropped)", "", "| own % | function (file) |", "|--:|---|"]
    lines += [f"| {n / busy * 100:.1f} | `{frame}` |" for frame, n in own.most_common(top)] if busy else []
    lines += ["", "| inclusive % | function (file) |", "|--:|---|"]
    ours = [(frame, n) for frame, n in inclusive.most_common() if any(p in frame for p in _LAYERS)][:top]
    lines += [f"| {n / busy * 100:.1f} | `{frame}` |" for frame, n in ours] if busy else []
    return {
        "busy": busy,
        "idle": idle,
        "own": own.most_common(top),
        "inclusive": inclusive.most_common(top),
        "text": "\n".join(lines),
    }


if __name__ == "__main__":  # python -m bench.profile RAW_FILE: re-read a saved profile
    print(summarize(Path(sys.argv[1]).read_text())["text"])
