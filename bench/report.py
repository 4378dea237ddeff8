"""The bench's table (Markdown, so it pastes into docs/production.md as it is) and its bars."""

from __future__ import annotations

import os
import platform as _platform
from datetime import UTC, datetime

# Issue 17's bars, as ratios in one run (absolute figures move 3× between machines).
BARS = {
    "portkey_rps": 1.5,  # req/s at 16 connections, over Portkey's relay
    "litellm_rps": 10.0,  # ... over LiteLLM's proxy
    "baseline_rps": 1.0,  # ... over the same target built from the baseline ref
    "portkey_added_p50": 0.7,  # added p50 at 1 connection, over Portkey's
    "rss_growth_pct": 10.0,
}
PLATFORM_TARGETS = ("platform", "api")
BASELINE_OF = {"platform": "baseline_platform", "api": "baseline_api"}


def _find(results: list[dict], target: str, connections: int) -> dict | None:
    return next((r for r in results if r["target"] == target and r["connections"] == connections), None)


def _rows(row: dict) -> str:
    if row.get("log_rows") is None:
        return "–"
    lost = max(0, row["responses"] - row["log_rows"])
    return f"{row['log_rows']}/{row['responses']}" + (f" ({lost} lost)" if lost else "")


def _cpu(row: dict) -> str:
    return f"{row['cpu_ms_per_req']:.2f}" if row.get("cpu_ms_per_req") is not None else "–"


def progress_line(row: dict) -> str:
    return (
        f"   c={row['connections']:<2} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
        f"p99 {row['p99_ms']:6.2f} ms  {_cpu(row):>5} CPU ms/req  non-2xx {row['non2xx']}  log rows {_rows(row)}  "
        f"(load {row['load_before']:.2f})"
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(results: list[dict], soak: dict | None, *, baseline_ref: str | None = None) -> dict:
    """Added latency over direct at 1 connection, each target's req/s at 16 against the
    references (Portkey, LiteLLM, the baseline ref), and the bars' verdicts."""
    out: dict = {"added": {}, "ratios": {}, "baseline": {}, "checks": []}
    direct1 = _find(results, "direct", 1)
    for row in results:
        if row["connections"] == 1 and row["target"] != "direct" and direct1:
            out["added"][row["target"]] = {
                "p50_ms": row["p50_ms"] - direct1["p50_ms"],
                "p99_ms": row["p99_ms"] - direct1["p99_ms"],
            }
    for name in PLATFORM_TARGETS:
        row = _find(results, name, 16)
        if not row:
            continue
        refs = {"portkey": "portkey", "litellm": "litellm", "baseline": BASELINE_OF[name]}
        ratios = {}
        for what, ref in refs.items():
            other = _find(results, ref, 16)
            if other:
                ratios[what] = _ratio(row["rps"], other["rps"])
        out["ratios"][name] = ratios
        base = BASELINE_OF[name]
        for connections in (1, 16):
            mine, theirs = _find(results, name, connections), _find(results, base, connections)
            if mine and theirs:
                out["baseline"].setdefault(name, {})[connections] = {
                    "rps": _ratio(mine["rps"], theirs["rps"]),
                    "cpu": _ratio(mine.get("cpu_ms_per_req"), theirs.get("cpu_ms_per_req")),
                    "p50": _ratio(mine["p50_ms"], theirs["p50_ms"]),
                }

    checks = out["checks"]
    ref_name = f"the baseline {baseline_ref}'s" if baseline_ref else "the baseline's"
    for name, ratios in out["ratios"].items():
        mine = _find(results, name, 16)
        for what, bar, against in (
            ("portkey", BARS["portkey_rps"], "Portkey's"),
            ("litellm", BARS["litellm_rps"], "LiteLLM's"),
            ("baseline", BARS["baseline_rps"], f"{ref_name} ({BASELINE_OF[name]})"),
        ):
            ratio = ratios.get(what)
            if what in ratios:
                checks.append(
                    (
                        f"{name}: req/s at 16 connections ≥ {bar:g}× {against}",
                        f"{mine['rps']:.0f} req/s, {_times(ratio)}",
                        ratio is not None and ratio >= bar,
                    )
                )
        added, theirs = out["added"].get(name), out["added"].get("portkey")
        if added and theirs:
            ratio = _ratio(added["p50_ms"], theirs["p50_ms"]) if theirs["p50_ms"] > 0 else None
            checks.append(
                (
                    f"{name}: added p50 at 1 connection ≤ {BARS['portkey_added_p50']:g}× Portkey's",
                    f"{added['p50_ms']:+.2f} ms vs {theirs['p50_ms']:+.2f} ms, {_times(ratio)}",
                    ratio is not None and ratio <= BARS["portkey_added_p50"],
                )
            )
    out["settlement"] = {}
    for connections in (1, 16):
        flat, metered = _find(results, "api", connections), _find(results, "api_metered", connections)
        if flat and metered and flat["rps"]:
            out["settlement"][connections] = {
                "rps_ratio": metered["rps"] / flat["rps"],
                "added_p50_ms": metered["p50_ms"] - flat["p50_ms"],
                "added_cpu_ms": (metered["cpu_ms_per_req"] or 0) - (flat["cpu_ms_per_req"] or 0),
            }
    platform_rows = [r for r in results if r["target"] in ("platform", "api", "api_metered")]
    if platform_rows:
        bad = sum(r["non2xx"] + r["socket_errors"] for r in platform_rows)
        lost = sum(max(0, r["responses"] - (r["log_rows"] or 0)) for r in platform_rows)
        checks.append(("platform targets: non-2xx responses and socket errors = 0", str(bad), bad == 0))
        checks.append(("platform targets: lost log rows = 0", str(lost), lost == 0))
    if soak:
        checks.append(
            (
                f"platform RSS after {soak['seconds']:.0f}s within {BARS['rss_growth_pct']:.0f}% "
                f"of after {soak['mark_s']:.0f}s",
                f"{soak['rss_mark_mb']:.1f} → {soak['rss_end_mb']:.1f} MB ({soak['growth_pct']:+.1f}%)",
                abs(soak["growth_pct"]) <= BARS["rss_growth_pct"],
            )
        )
    return out


def _times(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def render(
    results: list[dict],
    summary: dict,
    soak: dict | None,
    *,
    loadavg: tuple,
    elapsed: float,
    baseline_ref: str | None = None,
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Bench {when} on {_platform.node()} ({_cpu_count()} cores), {elapsed:.0f}s; "
        f"load average at the end {loadavg[0]:.2f} / {loadavg[1]:.2f} / {loadavg[2]:.2f}. "
        "wrk -t1, POST /chat/completions (non-streaming), fake upstream with zero delay; "
        "one worker per server; everything on 127.0.0.1.",
        "",
        "| target | conns | req/s | p50 ms | p99 ms | added p50 | added p99 | server CPU ms/req | non-2xx "
        "| log rows / responses | RSS MB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in results:
        added = summary["added"].get(row["target"]) if row["connections"] == 1 else None
        added_p50 = f"{added['p50_ms']:+.2f}" if added else ""
        added_p99 = f"{added['p99_ms']:+.2f}" if added else ""
        rss = f"{row['rss_mb']:.0f}" if row.get("rss_mb") else ""
        lines.append(
            f"| {row['label']} | {row['connections']} | {row['rps']:.0f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {added_p50} | {added_p99} | {_cpu(row)} | {row['non2xx'] + row['socket_errors']} | "
            f"{_rows(row)} | {rss} |"
        )
    against = {"portkey": "Portkey", "litellm": "LiteLLM", "baseline": f"baseline {baseline_ref or ''}".strip()}
    for name, ratios in summary["ratios"].items():
        if ratios:
            lines.append("")
            lines.append(
                f"Throughput of {name} at 16 connections (same run, one worker each): "
                + ", ".join(f"{_times(ratio)} {against[what]}'s" for what, ratio in ratios.items())
            )
    if summary["baseline"]:
        lines.append("")
        lines.append(
            f"Against the baseline {baseline_ref or ''} (same run; × this tree over the baseline's): "
            + "; ".join(
                f"{name} at {c} conn: req/s {_times(v['rps'])}, CPU/req {_times(v['cpu'])}, p50 {_times(v['p50'])}"
                for name, by_conn in summary["baseline"].items()
                for c, v in by_conn.items()
            )
        )
    if summary.get("settlement"):
        lines.append("")
        lines.append(
            "Settlement (the API with per-token pricing, hold + settle, against per-request, hold only): "
            + "; ".join(
                f"{c} conn: req/s ×{v['rps_ratio']:.2f}, p50 {v['added_p50_ms']:+.2f} ms, "
                f"CPU {v['added_cpu_ms']:+.3f} ms/req"
                for c, v in summary["settlement"].items()
            )
        )
    if soak:
        lines.append("")
        lines.append(
            f"Soak (platform, 16 connections, {soak['seconds']:.0f}s): {soak['rps']:.0f} req/s, "
            f"non-2xx {soak['non2xx']}, log rows {soak['log_rows']}/{soak['responses']}, RSS "
            f"{soak['rss_mark_mb']:.1f} MB at {soak['mark_s']:.0f}s → {soak['rss_end_mb']:.1f} MB at the end "
            f"({soak['growth_pct']:+.1f}%)."
        )
    if summary["checks"]:
        lines += ["", "| bar | measured | met |", "|---|--:|:-:|"]
        lines += [f"| {what} | {value} | {'yes' if ok else '**no**'} |" for what, value, ok in summary["checks"]]
    return "\n".join(lines)


def _cpu_count() -> int:
    return os.cpu_count() or 0
