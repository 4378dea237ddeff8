"""The stream table (Markdown, like bench/report.py's) and the issue's bars for streaming."""

from __future__ import annotations

# Issue 17's stream bars, as ratios to Portkey's relay in the same run, and issue 16's
# measure: a native stream format costs no more per relayed event than a chat stream.
STREAM_BARS = {
    "portkey_cpu": 0.8,  # server CPU per relayed chunk at C = 200, over Portkey's
    "portkey_ttft_p99": 0.2,  # added TTFT p99 at C = 200, over Portkey's
    "format_cpu": 1.0,  # CPU per relayed event of /messages and /responses, over chat's
    "bar_level": "200@25",
    "held_level": "1000@250",
}
PLATFORM_TARGETS = ("platform", "api")
BASELINE_OF = {"platform": "baseline_platform", "api": "baseline_api"}
OTHER_FORMATS = ("messages", "responses")


def _ours(name: str) -> bool:
    """The platform's own rows (the format rows of the API included), whose errors are bars."""
    return name in PLATFORM_TARGETS or any(name == f"api_{fmt}" for fmt in OTHER_FORMATS)


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


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _times(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def summarize(results: list[dict]) -> dict:
    """Added TTFT over direct at the same level and format, CPU against the upstream's own,
    the ratios to Portkey, to the baseline and to chat, and the bars' verdicts."""
    out: dict = {"added": {}, "baseline": {}, "formats": {}, "checks": []}
    for row in results:
        fmt = row.get("format", "chat")
        direct = _find(results, "direct" if fmt == "chat" else f"direct_{fmt}", row["level"])
        if not row["target"].startswith("direct") and direct:
            out["added"][f"{row['target']} {row['level']}"] = {
                "ttft_p50_ms": row["ttft_p50_ms"] - direct["ttft_p50_ms"],
                "ttft_p99_ms": row["ttft_p99_ms"] - direct["ttft_p99_ms"],
            }
    level = STREAM_BARS["bar_level"]
    checks = out["checks"]
    portkey = _find(results, "portkey", level)
    portkey_added = out["added"].get(f"portkey {level}")
    for name in PLATFORM_TARGETS:
        row = _find(results, name, level)
        if row and portkey and row["cpu_us_per_chunk"] is not None:
            ratio = _ratio(row["cpu_us_per_chunk"], portkey["cpu_us_per_chunk"])
            checks.append(
                (
                    f"{name}: server CPU per relayed chunk at C = 200 (25 ms apart) "
                    f"≤ {STREAM_BARS['portkey_cpu']:g}× Portkey's",
                    f"{row['cpu_us_per_chunk']:.0f} µs vs {_fmt(portkey['cpu_us_per_chunk'], '.0f')} µs, "
                    f"{_times(ratio)}",
                    ratio is not None and ratio <= STREAM_BARS["portkey_cpu"],
                )
            )
        added = out["added"].get(f"{name} {level}")
        if added and portkey_added:
            theirs = portkey_added["ttft_p99_ms"]
            ratio = _ratio(added["ttft_p99_ms"], theirs) if theirs > 0 else None
            checks.append(
                (
                    f"{name}: added TTFT p99 at C = 200 ≤ {STREAM_BARS['portkey_ttft_p99']:g}× Portkey's",
                    f"{added['ttft_p99_ms']:+.1f} ms vs {theirs:+.1f} ms, {_times(ratio)}",
                    ratio is not None and ratio <= STREAM_BARS["portkey_ttft_p99"],
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
        mem = [r for r in results if r["target"] == name and r["kb_per_open_stream"] is not None]
        if mem:
            checks.append(
                (
                    f"{name}: memory per open stream reported",
                    ", ".join(f"C={r['concurrency']}: {r['kb_per_open_stream']:.0f} KB" for r in mem),
                    True,
                )
            )
        base = BASELINE_OF[name]
        for mine in (r for r in results if r["target"] == name):
            theirs = _find(results, base, mine["level"])
            if theirs:
                out["baseline"].setdefault(name, {})[mine["level"]] = {
                    "cpu": _ratio(mine["cpu_us_per_chunk"], theirs["cpu_us_per_chunk"]),
                    "ttft_p99": _ratio(mine["ttft_p99_ms"], theirs["ttft_p99_ms"]),
                    "kb": _ratio(mine["kb_per_open_stream"], theirs["kb_per_open_stream"]),
                }
    for fmt in OTHER_FORMATS:
        for row in (r for r in results if r["target"] == f"api_{fmt}"):
            chat = _find(results, "api", row["level"])
            if chat:
                ratio = _ratio(row["cpu_us_per_chunk"], chat["cpu_us_per_chunk"])
                out["formats"][f"{fmt} {row['level']}"] = ratio
                if row["level"] == level:
                    checks.append(
                        (
                            f"api_{fmt}: server CPU per relayed event at C = 200 "
                            f"≤ {STREAM_BARS['format_cpu']:g}× a chat stream's",
                            f"{_fmt(row['cpu_us_per_chunk'], '.0f')} µs vs {_fmt(chat['cpu_us_per_chunk'], '.0f')} µs, "
                            f"{_times(ratio)}",
                            ratio is not None and ratio <= STREAM_BARS["format_cpu"],
                        )
                    )
    rows = [r for r in results if _ours(r["target"])]
    if rows:
        bad = sum(_errors(r) for r in rows)
        checks.append(("platform targets: non-200, broken streams, missing terminal event = 0", str(bad), bad == 0))
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
        "then a finish chunk, a usage chunk and [DONE] (the /messages and /responses rows: their own events around "
        "the same text chunks); the load generator in its own process; one worker per "
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
        direct = row["target"].startswith("direct")
        ratio = row["cpu_us_per_chunk"] / base if base and row["cpu_us_per_chunk"] and not direct else None
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
    if summary["baseline"]:
        lines += [
            "",
            "Against the baseline (same run; × this tree over the baseline's, per level): "
            + "; ".join(
                f"{name} C={lvl}: CPU/chunk {_times(v['cpu'])}, TTFT p99 {_times(v['ttft_p99'])}, "
                f"KB/open stream {_times(v['kb'])}"
                for name, by_level in summary["baseline"].items()
                for lvl, v in by_level.items()
            ),
        ]
    if summary["formats"]:
        lines += [
            "",
            "Stream formats through the API (same run; CPU per relayed event over a chat stream's at the "
            "same level): " + ", ".join(f"{what}: {_times(ratio)}" for what, ratio in summary["formats"].items()),
        ]
    if summary["checks"]:
        lines += ["", "| bar | measured | met |", "|---|--:|:-:|"]
        lines += [f"| {what} | {value} | {'yes' if ok else '**no**'} |" for what, value, ok in summary["checks"]]
    return "\n".join(lines)
