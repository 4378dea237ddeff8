"""Portkey's open-source AI gateway as a target: a pure relay (no auth, billing or logs).

`@portkey-ai/gateway` and the `@hono/node-server` it serves with, from the npm registry,
installed once into bench/out/portkey (stamped by version). The server is pinned by an npm
`overrides` entry, not only beside the gateway: the gateway's own range (and @hono/node-ws's)
would nest @hono/node-server 1.19, whose Response hands a streamed answer the upstream's
immutable headers, and every stream then fails with a 500 ("TypeError: immutable"). Its CLI, build/start-server.js,
takes `--port=N` and listens on every interface (it has no host option). It routes each
request by its headers: `x-portkey-provider: openai` and `x-portkey-custom-host: <the fake
upstream's base>` (127.0.0.1 is among the hosts it trusts by default); the caller's
`Authorization` goes on to the upstream as the provider's key. One Node process: the
gateway's own way of running, as one worker is the platform's.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from .procs import Server, free_port
from .targets import OUT, Target, clean_env

PORTKEY_VERSION = "1.15.2"
NODE_SERVER_VERSION = "1.13.5"
UPSTREAM_KEY = "bench-upstream-key"


def ensure_portkey() -> str:
    """The gateway's start script, installing the pinned packages first if needed."""
    home = OUT / "portkey"
    entry = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    stamp = home / f".portkey-{PORTKEY_VERSION}-node-server-{NODE_SERVER_VERSION}-overridden"
    if stamp.exists() and entry.exists():
        return str(entry)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: the gateway comes from the npm registry (BENCH_PORTKEY=0 skips it)")
    print(
        f"installing @portkey-ai/gateway@{PORTKEY_VERSION} and @hono/node-server@{NODE_SERVER_VERSION} "
        f"into {home} (once)",
        flush=True,
    )
    home.mkdir(parents=True, exist_ok=True)
    (home / "package.json").write_text(
        json.dumps(
            {
                "name": "bench-portkey",
                "private": True,
                "dependencies": {
                    "@portkey-ai/gateway": PORTKEY_VERSION,
                    "@hono/node-server": NODE_SERVER_VERSION,
                },
                "overrides": {"@hono/node-server": NODE_SERVER_VERSION},
            },
            indent=2,
        )
    )
    # From nothing: an earlier install's nested copy would survive the override.
    shutil.rmtree(home / "node_modules", ignore_errors=True)
    (home / "package-lock.json").unlink(missing_ok=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=home, check=True)
    if not entry.exists():
        raise RuntimeError(f"the gateway's start script is missing after npm install: {entry}")
    nested = home / "node_modules" / "@portkey-ai" / "gateway" / "node_modules" / "@hono" / "node-server"
    served = json.loads((home / "node_modules" / "@hono" / "node-server" / "package.json").read_text())["version"]
    if nested.exists() or served != NODE_SERVER_VERSION:
        raise RuntimeError(f"the gateway does not resolve @hono/node-server {NODE_SERVER_VERSION} ({served})")
    stamp.touch()
    return str(entry)


def portkey(upstream_base: str) -> Target:
    """The gateway relaying to the fake upstream: `node build/start-server.js --port=N`."""
    entry = ensure_portkey()
    node = shutil.which("node") or "node"
    port = free_port()
    server = Server(
        "portkey",
        [node, entry, f"--port={port}"],
        env=clean_env(),
        cwd=OUT / "portkey",
        log_path=OUT / "portkey.log",
        ready_url=f"http://127.0.0.1:{port}/",
        ready_timeout=120,
    )
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    return Target(
        "portkey",
        f"Portkey gateway {PORTKEY_VERSION} (Node {version}, 1 process, pure relay)",
        url=f"http://127.0.0.1:{port}/v1/chat/completions",
        server=server,
        static_key=UPSTREAM_KEY,
        headers={"x-portkey-provider": "openai", "x-portkey-custom-host": upstream_base},
        warmup_s=6.0,  # V8 compiles the hot path only after a few thousand requests
    )
