"""Load from `wrk` (Debian's package): one chat completion POSTed over and over.

The Lua script counts every response that is not 2xx (wrk's own summary counts only
4xx/5xx), and the 402s among them (the hot-account table drains a balance), and prints
one JSON line at the end, so nothing is parsed from wrk's prose. A target's own headers
(Portkey's routing headers) ride along with every request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

CHAT_BODY = {"model": "openai/gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}

_SCRIPT = r"""
local threads = {}
local key = nil

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  key = args[1]
  non2xx = 0
  status402 = 0
  wrk.method = "POST"
  wrk.body = args[2]
  wrk.headers["Content-Type"] = "application/json"
  if key ~= nil and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
  -- args[3]: extra headers, one "Name: value" a line
  for line in string.gmatch(args[3] or "", "[^\n]+") do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    if name then
      wrk.headers[name] = value
    end
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 402 then
      status402 = status402 + 1
    end
  end
end

function done(summary, latency, requests)
  local bad, short = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    short = short + thread:get("status402")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"responses":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"status402":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad, short,
    e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    connections: int
    responses: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    status_402: int = 0

    @property
    def rps(self) -> float:
        return self.responses / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """Path to wrk, installing Debian's package first if it is missing (the bench runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing wrk (apt-get install -y wrk)", flush=True)
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk could not be installed")
    return found


def run_wrk(
    url: str,
    *,
    key: str | None,
    connections: int,
    seconds: float,
    workdir: Path,
    body: dict | None = None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """POST `body` to `url` from `connections` keep-alive connections for `seconds`."""
    script = workdir / "chat.lua"
    if not script.exists() or script.read_text() != _SCRIPT:
        # written whole, then renamed: two wrk runs at once (the hot account's) never read half of it
        partial = workdir / f"chat.lua.{os.getpid()}.{threading.get_ident()}"
        partial.write_text(_SCRIPT)
        os.replace(partial, script)
    command = [
        ensure_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        key or "",
        json.dumps(body or CHAT_BODY),
        "\n".join(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((row for row in out.stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(
        connections=connections,
        responses=data["responses"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non2xx=data["non2xx"],
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"],
        status_402=data["status402"],
    )
