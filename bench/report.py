"""The bench's table (Markdown, so it pastes into docs/production.md as it is) and its bars."""

from __future__ import annotations

import os
import platform as _platform
from datetime import UTC, datetime

BARS = {"added_p50_ms": 1.2, "litellm_ratio": 10.0, "rss_growth_pct": 10.0}


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


def summarize(results: list[dict], soak: dict | None) -> dict:
    """Added latency over direct at 1 connection, the LiteLLM ratio at 16, and the bars' verdicts."""
    out: dict = {"added": {}, "litellm_ratio": {}, "checks": []}
    direct1 = _find(results, "direct", 1)
    for name in ("platform", "api", "litellm"):
        one = _find(results, name, 1)
        if one and direct1:
            out["added"][name] = {
                "p50_ms": one["p50_ms"] - direct1["p50_ms"],
                "p99_ms": one["p99_ms"] - direct1["p99_ms"],
            }
    lite16 = _find(results, "litellm", 16)
    for name in ("platform", "api"):
        row = _find(results, name, 16)
        if row and lite16 and lite16["rps"]:
            out["litellm_ratio"][name] = row["rps"] / lite16["rps"]

    checks = out["checks"]
    for name, added in out["added"].items():
        if name != "litellm":
            checks.append(
                (
                    f"{name}: added p50 at 1 connection ≤ {BARS['added_p50_ms']} ms",
                    f"{added['p50_ms']:.2f} ms",
                    added["p50_ms"] <= BARS["added_p50_ms"],
                )
            )
    for name, ratio in out["litellm_ratio"].items():
        checks.append(
            (
                f"{name}: req/s at 16 connections ≥ {BARS['litellm_ratio']:.0f}× LiteLLM",
                f"{ratio:.1f}×",
                ratio >= BARS["litellm_ratio"],
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


def render(results: list[dict], summary: dict, soak: dict | None, *, loadavg: tuple, elapsed: float) -> str:
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
    if summary["litellm_ratio"]:
        lines.append("")
        lines.append(
            "Throughput at 16 connections against LiteLLM (same run, one worker each): "
            + ", ".join(f"{name} {ratio:.1f}×" for name, ratio in summary["litellm_ratio"].items())
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
