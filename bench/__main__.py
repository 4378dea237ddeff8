"""`make bench`: the platform's hop against a zero-delay fake upstream, and LiteLLM's.

    python -m bench                      # direct, platform (make run), standalone API
    BENCH_LITELLM=1 python -m bench      # ... and LiteLLM's proxy as the anchor
    BENCH_DURATION_S=10                  # seconds per wrk run (1 and 16 connections)
    BENCH_SOAK_S=120                     # platform RSS soak at 16 connections (0: skip)
    BENCH_TARGETS=direct,api             # a subset (also: api_metered, the API with per-token pricing,
                                         # whose every request writes its settlement too)
    BENCH_PROFILE_S=20                   # py-spy the standalone API under load afterwards
    BENCH_PROFILE_TARGET=platform        # ... or the platform instead
    BENCH_PROFILE_CONNECTIONS=1          # ... at this many connections (default 16)

All traffic stays on 127.0.0.1. Results: the table on stdout, and bench/out/results.{json,md}.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time

from . import report, targets
from .targets import OUT, Target
from .wrk import ensure_wrk, run_wrk

CONNECTIONS = (1, 16)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def measure(target: Target, seconds: float) -> list[dict]:
    """Warm up, then one wrk run per connection count, each with its own key."""
    warm_key = target.new_key()
    run_wrk(target.url, key=warm_key, connections=16, seconds=2, workdir=OUT)
    results = []
    for connections in CONNECTIONS:
        key = target.new_key()
        load = os.getloadavg()[0]
        cpu_before = target.server.cpu_seconds() if target.server else None
        result = run_wrk(target.url, key=key, connections=connections, seconds=seconds, workdir=OUT)
        cpu = target.server.cpu_seconds() - cpu_before if target.server else None
        rows = target.rows_for(key, result.responses)
        row = {
            "target": target.name, "label": target.label, "connections": connections,
            "rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "responses": result.responses, "non2xx": result.non2xx, "socket_errors": result.socket_errors,
            "log_rows": rows, "load_before": load,
            "rss_mb": target.server.rss_mb() if target.server else None,
            # the server's CPU per response: steadier than latency on a shared machine
            "cpu_ms_per_req": cpu / result.responses * 1000 if cpu is not None and result.responses else None,
        }
        results.append(row)
        print(report.progress_line(row), flush=True)
    return results


def soak(target: Target, seconds: float) -> dict:
    """16 connections for `seconds`; resident memory after the first minute (or fifth) and at the end."""
    key = target.new_key()
    mark = min(60.0, seconds / 5)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        start = time.monotonic()
        while not stop.wait(1.0):
            samples.append((time.monotonic() - start, target.server.rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run_wrk(target.url, key=key, connections=16, seconds=seconds, workdir=OUT)
    finally:
        stop.set()
        sampler.join()
    rows = target.rows_for(key, result.responses)
    at_mark = next((rss for t, rss in samples if t >= mark), samples[0][1] if samples else 0.0)
    at_end = samples[-1][1] if samples else 0.0
    return {"target": target.name, "seconds": seconds, "mark_s": mark, "rss_mark_mb": at_mark,
            "rss_end_mb": at_end, "growth_pct": (at_end - at_mark) / at_mark * 100 if at_mark else 0.0,
            "rps": result.rps, "responses": result.responses, "non2xx": result.non2xx, "log_rows": rows}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_wrk()
    seconds = _env_float("BENCH_DURATION_S", 10)
    soak_s = _env_float("BENCH_SOAK_S", 120)
    profile_s = _env_float("BENCH_PROFILE_S", 0)
    wanted = os.environ.get("BENCH_TARGETS", "direct,platform,api,api_metered").split(",")
    if os.environ.get("BENCH_LITELLM") == "1" and "litellm" not in wanted:
        wanted.append("litellm")
    started = time.time()
    results: list[dict] = []
    soak_result = None
    profile = None
    with targets.fake_upstream() as upstream:
        base = upstream.ready_url.rstrip("/") + "/v1"
        for name in ("direct", "platform", "api", "api_metered", "litellm"):
            if name not in wanted:
                continue
            if name == "direct":
                target = targets.direct(upstream)
            elif name == "api_metered":
                target = targets.standalone(base, metered=True)
            else:
                target = getattr(targets, {"platform": "platform", "api": "standalone", "litellm": "litellm"}[name])(base)
            print(f"== {target.label}", flush=True)
            with target.server or contextlib.nullcontext():
                results.extend(measure(target, seconds))
                if name == "platform" and soak_s > 0:
                    print(f"   soak: 16 connections for {soak_s:.0f}s", flush=True)
                    soak_result = soak(target, soak_s)
                    print(f"   RSS {soak_result['rss_mark_mb']:.1f} MB at {soak_result['mark_s']:.0f}s, "
                          f"{soak_result['rss_end_mb']:.1f} MB at the end", flush=True)
                if name == os.environ.get("BENCH_PROFILE_TARGET", "api") and profile_s > 0:
                    from .profile import profile_under_load

                    profile = profile_under_load(target, profile_s, int(os.environ.get("BENCH_PROFILE_CONNECTIONS") or 16))
    summary = report.summarize(results, soak_result)
    table = report.render(results, summary, soak_result, loadavg=os.getloadavg(), elapsed=time.time() - started)
    print()
    print(table)
    if profile:
        print()
        print(profile["text"])
    (OUT / "results.json").write_text(json.dumps(
        {"results": results, "summary": summary, "soak": soak_result, "profile": profile}, indent=2))
    (OUT / "results.md").write_text(table + ("\n\n" + profile["text"] if profile else "") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
