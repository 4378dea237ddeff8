"""`make bench`: the platform's hop against a zero-delay fake upstream (the wrk table), real
traffic's shape: streams held open for seconds (the stream table), and one balance under
many callers on two workers (the hot-account table); beside the platform, in the same run,
an older commit of it (the baseline ref), Portkey's gateway and, optionally, LiteLLM's proxy.

    python -m bench                      # all three tables: direct, platform (make run), standalone API,
                                         # the baseline ref's two, Portkey's gateway
    BENCH_BASELINE_REF=0216049           # the older commit built and run beside (default; empty: none)
    BENCH_PORTKEY=0                      # no Portkey gateway
    BENCH_LITELLM=1                      # ... and LiteLLM's proxy
    BENCH_DURATION_S=10                  # seconds per wrk run (1 and 16 connections)
    BENCH_SOAK_S=120                     # platform RSS soak at 16 connections (0: skip)
    BENCH_TARGETS=direct,api             # a subset (also: api_metered, the API with per-token pricing,
                                         # whose every request writes its settlement too; baseline_platform,
                                         # baseline_api, portkey, litellm)
    BENCH_PROFILE_S=20                   # py-spy the standalone API under load afterwards
    BENCH_PROFILE_TARGET=platform        # ... or the platform instead
    BENCH_PROFILE_CONNECTIONS=1          # ... at this many connections (default 16)
    BENCH_WRK=0                          # skip the wrk table

    BENCH_STREAMS=0                      # skip the stream table
    BENCH_STREAM_LEVELS=50,200,1000      # concurrent streams per level; C@MS sets the pace (a bare C
                                         # is 25 ms apart below 1000, 250 ms apart from 1000 up)
    BENCH_STREAM_CHUNKS=40               # content chunks per stream
    BENCH_STREAM_S=20                    # seconds per level during which new streams start
    BENCH_STREAM_TARGETS=direct,platform,api   # a subset (default: those, the baseline's two, portkey;
                                         #   litellm joins with BENCH_LITELLM=1)
    BENCH_STREAM_FORMATS=chat,messages,responses   # also Anthropic Messages and Responses streams,
                                         #   through direct and the API (default: chat)
    BENCH_STREAM_FORMAT_LEVELS=200       # ... at these levels (default: BENCH_STREAM_LEVELS)
    BENCH_STREAM_PROFILE_S=20            # py-spy the platform at C = 200 when it misses a stream bar (0: never;
    BENCH_STREAM_PROFILE=1               #   this: always)

    BENCH_HOT=0                          # skip the hot-account table (default: on when PostgreSQL and Redis
                                         #   answer at BENCH_PG_URL and BENCH_REDIS_URL; 1: require them)
    BENCH_HOT_LEVELS=32,128              # concurrent callers on the one balance
    BENCH_HOT_S=10                       # seconds per level
    BENCH_HOT_DRAIN_S=6                  # the drain at the top level, at most this long (0: none)
    BENCH_HOT_TARGETS=api,api_per_request,baseline_api   # a subset
    BENCH_HOT_BASELINE_REF=<ref>         # the baseline of this table (default: BENCH_BASELINE_REF)

All traffic stays on 127.0.0.1. Results: the tables on stdout, and bench/out/results.{json,md}.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import threading
import time

from . import baseline, hot, hot_report, report, stream_bench, stream_report, targets
from .targets import OUT, Target
from .wrk import ensure_wrk, run_wrk

CONNECTIONS = (1, 16)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def measure(target: Target, seconds: float) -> list[dict]:
    """Warm up, then one wrk run per connection count, each with its own key."""
    warm_key = target.new_key()
    run_wrk(target.url, key=warm_key, connections=16, seconds=target.warmup_s, workdir=OUT, headers=target.headers)
    results = []
    for connections in CONNECTIONS:
        key = target.new_key()
        load = os.getloadavg()[0]
        cpu_before = target.server.cpu_seconds() if target.server else None
        result = run_wrk(
            target.url, key=key, connections=connections, seconds=seconds, workdir=OUT, headers=target.headers
        )
        cpu = target.server.cpu_seconds() - cpu_before if target.server else None
        rows = target.rows_for(key, result.responses)
        row = {
            "target": target.name,
            "label": target.label,
            "connections": connections,
            "rps": result.rps,
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            "responses": result.responses,
            "non2xx": result.non2xx,
            "socket_errors": result.socket_errors,
            "log_rows": rows,
            "load_before": load,
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
    return {
        "target": target.name,
        "seconds": seconds,
        "mark_s": mark,
        "rss_mark_mb": at_mark,
        "rss_end_mb": at_end,
        "growth_pct": (at_end - at_mark) / at_mark * 100 if at_mark else 0.0,
        "rps": result.rps,
        "responses": result.responses,
        "non2xx": result.non2xx,
        "log_rows": rows,
    }


# The references first: a bar the platform misses (then profiled) compares with figures already measured.
WRK_ORDER = ("direct", "portkey", "litellm", "baseline_platform", "baseline_api", "platform", "api", "api_metered")
STREAM_ORDER = ("direct", "portkey", "litellm", "baseline_platform", "baseline_api", "platform", "api")


def _wanted(variable: str, order: tuple[str, ...], default: list[str]) -> list[str]:
    """The targets of a table: the variable's list (else `default` with the references that
    are on), LiteLLM added by BENCH_LITELLM=1; always in `order`."""
    chosen = os.environ.get(variable)
    wanted = chosen.split(",") if chosen else list(default)
    if not chosen:
        if baseline.baseline_ref():
            wanted += ["baseline_platform", "baseline_api"]
        if os.environ.get("BENCH_PORTKEY") != "0":
            wanted.append("portkey")
    if os.environ.get("BENCH_LITELLM") == "1":
        wanted.append("litellm")
    unknown = set(wanted) - set(order)
    if unknown:
        raise SystemExit(f"{variable}: unknown targets {', '.join(sorted(unknown))} (known: {', '.join(order)})")
    return [name for name in order if name in wanted]


def wrk_table() -> tuple[str, dict]:
    """The proxy hop: wrk against every target, the platform's soak, optionally a profile."""
    seconds = _env_float("BENCH_DURATION_S", 10)
    soak_s = _env_float("BENCH_SOAK_S", 120)
    profile_s = _env_float("BENCH_PROFILE_S", 0)
    wanted = _wanted("BENCH_TARGETS", WRK_ORDER, ["direct", "platform", "api", "api_metered"])
    ensure_wrk()
    started = time.time()
    results: list[dict] = []
    soak_result = None
    profile = None
    with targets.fake_upstream() as upstream:
        base = upstream.ready_url.rstrip("/") + "/v1"
        for name in wanted:
            if name == "direct":
                target = targets.direct(upstream)
            elif name == "api_metered":
                target = targets.standalone(base, metered=True)
            else:
                target = _make_target(name, base)
            print(f"== {target.label}", flush=True)
            with target.server or contextlib.nullcontext():
                results.extend(measure(target, seconds))
                if name == "platform" and soak_s > 0:
                    print(f"   soak: 16 connections for {soak_s:.0f}s", flush=True)
                    soak_result = soak(target, soak_s)
                    print(
                        f"   RSS {soak_result['rss_mark_mb']:.1f} MB at {soak_result['mark_s']:.0f}s, "
                        f"{soak_result['rss_end_mb']:.1f} MB at the end",
                        flush=True,
                    )
                if name == os.environ.get("BENCH_PROFILE_TARGET", "api") and profile_s > 0:
                    from .profile import profile_under_load

                    profile = profile_under_load(
                        target, profile_s, int(os.environ.get("BENCH_PROFILE_CONNECTIONS") or 16)
                    )
    ref = _baseline_name()
    summary = report.summarize(results, soak_result, baseline_ref=ref)
    table = report.render(
        results, summary, soak_result, loadavg=os.getloadavg(), elapsed=time.time() - started, baseline_ref=ref
    )
    if profile:
        table += "\n\n" + profile["text"]
    return table, {"results": results, "summary": summary, "soak": soak_result, "profile": profile}


def _formats() -> list[str]:
    from .streams import FORMATS

    chosen = [f.strip() for f in (os.environ.get("BENCH_STREAM_FORMATS") or "chat").split(",") if f.strip()]
    unknown = set(chosen) - set(FORMATS)
    if unknown:
        raise SystemExit(f"BENCH_STREAM_FORMATS: unknown {', '.join(sorted(unknown))} (known: {', '.join(FORMATS)})")
    return [f for f in FORMATS if f in chosen and f != "chat"]


def stream_table() -> tuple[str, dict]:
    """Real traffic's shape: C streams held open through each target, for each level; the
    other stream formats through direct and the API when asked for."""
    seconds = _env_float("BENCH_STREAM_S", 20)
    chunks = int(os.environ.get("BENCH_STREAM_CHUNKS") or 40)
    spec = os.environ.get("BENCH_STREAM_LEVELS") or "50,200,1000"
    levels = stream_bench.parse_levels(spec, chunks=chunks, interval_ms=25, slow_interval_ms=250)
    format_levels = stream_bench.parse_levels(
        os.environ.get("BENCH_STREAM_FORMAT_LEVELS") or spec, chunks=chunks, interval_ms=25, slow_interval_ms=250
    )
    formats = _formats()
    wanted = _wanted("BENCH_STREAM_TARGETS", STREAM_ORDER, ["direct", "platform", "api"])
    profile_s = _env_float("BENCH_STREAM_PROFILE_S", 20)
    started = time.time()
    results: list[dict] = []
    profile = None
    with targets.stream_upstream() as upstream:
        base = upstream.ready_url.rstrip("/") + "/v1"
        for name in wanted:
            target = targets.direct(upstream) if name == "direct" else _make_target(name, base)
            print(f"== streams: {target.label}", flush=True)
            with target.server or contextlib.nullcontext():
                results.extend(stream_bench.measure_streams(target, upstream, levels, seconds))
                if name in ("direct", "api"):
                    for fmt in formats:
                        print(f"   {fmt} streams", flush=True)
                        results.extend(stream_bench.measure_streams(target, upstream, format_levels, seconds, fmt))
                missed = stream_report.failed(stream_report.summarize(results), name)
                if name == "platform" and profile_s > 0 and (missed or os.environ.get("BENCH_STREAM_PROFILE") == "1"):
                    from .profile import profile_streams

                    print(f"   py-spy: the platform relaying 200 streams for {profile_s:.0f}s", flush=True)
                    profile = profile_streams(target, profile_s, concurrency=200, chunks=chunks, interval_ms=25)
    summary = stream_report.summarize(results)
    table = stream_report.render(results, summary, seconds=seconds)
    table += (
        f"\n\nStream table: {time.time() - started:.0f}s; load average at the end "
        + " / ".join(f"{x:.2f}" for x in os.getloadavg())
        + "."
    )
    if profile:
        table += "\n\n" + profile["text"]
    return table, {"results": results, "summary": summary, "profile": profile}


def hot_table() -> tuple[str, dict] | None:
    """One balance, two workers, many callers; None when PostgreSQL or Redis is not here."""
    why = hot.unreachable()
    if why:
        if os.environ.get("BENCH_HOT") == "1":
            raise SystemExit(f"BENCH_HOT=1 but {why}")
        print(f"== hot account: skipped, {why}", flush=True)
        return None
    levels = [int(c) for c in (os.environ.get("BENCH_HOT_LEVELS") or "32,128").split(",") if c.strip()]
    seconds = _env_float("BENCH_HOT_S", 10)
    drain_s = _env_float("BENCH_HOT_DRAIN_S", 6)
    ref = os.environ.get("BENCH_HOT_BASELINE_REF", baseline.baseline_ref() or "").strip() or None
    chosen = os.environ.get("BENCH_HOT_TARGETS")
    wanted = chosen.split(",") if chosen else ["api", "api_per_request"] + (["baseline_api"] if ref else [])
    ensure_wrk()
    started = time.time()
    results = []
    with targets.fake_upstream() as upstream:
        base = upstream.ready_url.rstrip("/") + "/v1"
        for name in ("api", "api_per_request", "baseline_api"):
            if name not in wanted:
                continue
            if name == "baseline_api":
                if not ref:
                    raise SystemExit("BENCH_HOT_TARGETS has baseline_api but no baseline ref is set")
                target = hot.baseline_target(baseline.prepare(ref))
            else:
                target = hot.main_target(per_token=name == "api")
            print(f"== hot account: {target.label}", flush=True)
            results.append(hot.measure(target, base, levels, seconds, drain_s))
    name = baseline.prepare(ref).name if ref else None
    summary = hot_report.summarize(results, baseline_ref=name)
    table = hot_report.render(results, summary, seconds=seconds, elapsed=time.time() - started, loadavg=os.getloadavg())
    return table, {"results": results, "summary": summary}


def _baseline_name() -> str | None:
    ref = baseline.baseline_ref()
    return baseline.prepare(ref).name if ref else None


def _make_target(name: str, upstream_base: str) -> Target:
    if name in ("baseline_platform", "baseline_api"):
        ref = baseline.baseline_ref()
        if ref is None:
            raise SystemExit(f"{name} needs a baseline ref: BENCH_BASELINE_REF is empty")
        built = baseline.prepare(ref)
        make = baseline.baseline_platform if name == "baseline_platform" else baseline.baseline_api
        return make(built, upstream_base)
    if name == "portkey":
        from .portkey import portkey

        return portkey(upstream_base)
    factory = {"platform": targets.platform, "api": targets.standalone, "litellm": targets.litellm}[name]
    return factory(upstream_base)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    # 1000 streams hold ~3000 sockets across the processes, which inherit this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    tables, data = [], {}
    if os.environ.get("BENCH_WRK") != "0":
        table, data["wrk"] = wrk_table()
        tables.append(table)
    if os.environ.get("BENCH_STREAMS") != "0":
        table, data["streams"] = stream_table()
        tables.append(table)
    if os.environ.get("BENCH_HOT") != "0":
        hot_result = hot_table()
        if hot_result:
            table, data["hot"] = hot_result
            tables.append(table)
    text = "\n\n".join(tables)
    print()
    print(text)
    (OUT / "results.json").write_text(json.dumps(data, indent=2))
    (OUT / "results.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
