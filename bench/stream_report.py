"""The stream table (Markdown, like bench/report.py's) and the issue's bars for streaming."""

from __future__ import annotations

STREAM_BARS = {"cpu_us_per_chunk": 100.0, "cpu_level": "200@25", "ttft_p99_ms": 50.0, "held_level": "1000@250"}
PLATFORM_TARGETS = ("platform", "api")


def _find(results: list[dict], target: str, level: str) -> dict | None:
    return next((r for r in results if r["target"] == target and r["level"] == level), None)


def _errors(row: dict) -> int:
    return sum(row["errors"].values())


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def progress_line(row: dict) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in row["errors"].items() if v) or "none"
    return (
        f"   C={row['concurrency']:<4} {row['interval_ms']:g} ms apart: {row['completed']}/{row['streams']} streams "
        f"({row['streams_per_s']:.1f}/s), TTFT p50 {row['ttft_p50_ms']:.1f} ms p99 {row['ttft_p99_ms']:.1f} ms, "
        f"CPU {_fmt(row['cpu_ms_per_stream'], '.2f')} ms/stream {_fmt(row['cpu_us_per_chunk'], '.0f')} µs/chunk, "
        f"RSS peak {row['rss_peak_mb']:.0f} MB ({_fmt(row['kb_per_open_stream'], '.0f')} KB/stream), "
        f"errors: {errors} (load {row['load_before']:.2f})"
    )


def summarize(results: list[dict]) -> dict:
    """Added TTFT over direct at the same level, CPU against the upstream's own, and the bars' verdicts."""
    out: dict = {"added": {}, "checks": []}
    for row in results:
        direct = _find(results, "direct", row["level"])
        if row["target"] != "direct" and direct:
            out["added"][f"{row['target']} {row['level']}"] = {
                "ttft_p50_ms": row["ttft_p50_ms"] - direct["ttft_p50_ms"],
                "ttft_p99_ms": row["ttft_p99_ms"] - direct["ttft_p99_ms"],
            }
    checks = out["checks"]
    for name in PLATFORM_TARGETS:
        row = _find(results, name, STREAM_BARS["cpu_level"])
        if row and row["cpu_us_per_chunk"] is not None:
            checks.append(
                (
                    f"{name}: server CPU per relayed chunk at C = 200 (25 ms apart) "
                    f"≤ {STREAM_BARS['cpu_us_per_chunk']:.0f} µs",
                    f"{row['cpu_us_per_chunk']:.0f} µs",
                    row["cpu_us_per_chunk"] <= STREAM_BARS["cpu_us_per_chunk"],
                )
            )
        held = _find(results, name, STREAM_BARS["held_level"])
        if held:
            checks.append(
                (
                    f"{name}: C = 1000 streams (250 ms apart) on one worker with no errors",
                    f"{held['completed']}/{held['streams']} streams, peak {held['peak_open']} open, "
                    f"{_errors(held)} errors",
                    _errors(held) == 0 and held["peak_open"] >= 1000,
                )
            )
            added = out["added"].get(f"{name} {STREAM_BARS['held_level']}")
            if added:
                checks.append(
                    (
                        f"{name}: added TTFT p99 at C = 1000 ≤ {STREAM_BARS['ttft_p99_ms']:.0f} ms",
                        f"{added['ttft_p99_ms']:.1f} ms",
                        added["ttft_p99_ms"] <= STREAM_BARS["ttft_p99_ms"],
                    )
                )
        mem = [r for r in results if r["target"] == name and r["kb_per_open_stream"] is not None]
        if mem:
            checks.append(
                (
                    f"{name}: memory per open stream reported",
                    ", ".join(f"C={r['concurrency']}: {r['kb_per_open_stream']:.0f} KB" for r in mem),
                    True,
                )
            )
    rows = [r for r in results if r["target"] != "direct"]
    if rows:
        bad = sum(_errors(r) for r in rows if r["target"] in PLATFORM_TARGETS)
        checks.append(("platform targets: non-200, broken streams, missing [DONE] = 0", str(bad), bad == 0))
        lost = sum(max(0, r["streams"] - r["log_rows"]) for r in rows if r.get("log_rows") is not None)
        checks.append(("platform targets: lost log rows = 0", str(lost), lost == 0))
    return out


def failed(summary: dict, target: str) -> bool:
    """Whether `target` missed a bar (then the bench profiles it)."""
    return any(not ok for what, _, ok in summary["checks"] if what.startswith(f"{target}:"))


def render(results: list[dict], summary: dict, *, seconds: float) -> str:
    chunks = results[0]["chunks_per_stream"] if results else 0
    lines = [
        f"Streams: C concurrent streaming chat completions held open for {seconds:.0f}s per level (new streams start "
        f"until then; the last ones run to their end), each {chunks} content chunks paced by the fake stream upstream, "
        "then a finish chunk, a usage chunk and [DONE]; the load generator in its own process; one worker per "
        "server. CPU and RSS from /proc of the server's process tree (for direct: the upstream's). A chunk is "
        "every data event relayed but [DONE].",
        "",
        "| target | C | ms apart | streams/s | TTFT p50 ms | TTFT p99 ms | added p50 | added p99 | CPU ms/stream "
        "| CPU µs/chunk | × upstream | RSS peak MB | KB/open stream | errors | log rows / streams |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in results:
        added = summary["added"].get(f"{row['target']} {row['level']}")
        base = row["upstream_cpu_us_per_chunk"]
        ratio = (
            row["cpu_us_per_chunk"] / base if base and row["cpu_us_per_chunk"] and row["target"] != "direct" else None
        )
        errors = ", ".join(f"{v} {k}" for k, v in row["errors"].items() if v) or "0"
        rows = "–" if row.get("log_rows") is None else f"{row['log_rows']}/{row['streams']}"
        lines.append(
            f"| {row['label']} | {row['concurrency']} | {row['interval_ms']:g} | {row['streams_per_s']:.1f} | "
            f"{row['ttft_p50_ms']:.2f} | {row['ttft_p99_ms']:.2f} | "
            f"{'' if not added else format(added['ttft_p50_ms'], '+.2f')} | "
            f"{'' if not added else format(added['ttft_p99_ms'], '+.2f')} | {_fmt(row['cpu_ms_per_stream'], '.2f')} | "
            f"{_fmt(row['cpu_us_per_chunk'], '.0f')} | {'' if ratio is None else f'{ratio:.1f}×'} | "
            f"{row['rss_peak_mb']:.0f} | {_fmt(row['kb_per_open_stream'], '.0f')} | {errors} | {rows} |"
        )
    bases = [r["upstream_cpu_us_per_chunk"] for r in results if r["upstream_cpu_us_per_chunk"]]
    if bases:
        lines += [
            "",
            f"Baseline: the fake stream upstream's own CPU per produced chunk, "
            f"{min(bases):.0f}–{max(bases):.0f} µs across the levels of this run (× upstream divides a "
            "server's CPU per relayed chunk by the upstream's in the same level).",
        ]
    if summary["checks"]:
        lines += ["", "| bar | measured | met |", "|---|--:|:-:|"]
        lines += [f"| {what} | {value} | {'yes' if ok else '**no**'} |" for what, value, ok in summary["checks"]]
    return "\n".join(lines)
