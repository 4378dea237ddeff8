"""The hot-account table (Markdown, like bench/report.py's) and its checks."""

from __future__ import annotations

HOT_BAR = 3.0  # issue 17: calls/s on one balance, over main's before the hold changed, same two workers


def progress_line(row: dict) -> str:
    return (
        f"   C={row['concurrency']:<4} {row['rps']:8.0f} calls/s  p50 {row['p50_ms']:6.2f} ms  "
        f"p99 {row['p99_ms']:7.2f} ms  402 {row['status_402']}  other non-2xx {row['other_non2xx']}  "
        f"socket errors {row['socket_errors']}  log rows {row['log_rows']}/{row['responses']}  "
        f"(load {row['load_before']:.2f})"
    )


def _find(results: list[dict], target: str, concurrency: int) -> dict | None:
    for result in results:
        if result["target"] == target:
            return next((r for r in result["rows"] if r["concurrency"] == concurrency), None)
    return None


def _pricing(results: list[dict], target: str) -> str | None:
    return next((r["pricing"] for r in results if r["target"] == target), None)


def summarize(results: list[dict], *, baseline_ref: str | None = None) -> dict:
    """Ratios between the targets at each level, the hot bar (when the baseline is priced as
    this tree's API is), and every target's overspend checks."""
    out: dict = {"ratios": [], "checks": []}
    levels = sorted({r["concurrency"] for result in results for r in result["rows"]})
    pairs = [
        ("api", "api_per_request", "per-token (hold + settle) over per-request (hold only), this tree"),
        ("api", "baseline_api", f"this tree over the baseline {baseline_ref or ''}".rstrip()),
        ("api_per_request", "baseline_api", f"this tree per request over the baseline {baseline_ref or ''}".rstrip()),
    ]
    for mine, theirs, what in pairs:
        if _pricing(results, mine) is None or _pricing(results, theirs) is None:
            continue
        if mine == "api" and theirs == "baseline_api" and _pricing(results, mine) != _pricing(results, theirs):
            continue  # not alike: the per-request row compares with it instead
        if mine == "api_per_request" and _pricing(results, theirs) != _pricing(results, mine):
            continue
        ratios = {}
        for c in levels:
            a, b = _find(results, mine, c), _find(results, theirs, c)
            if a and b and b["rps"]:
                ratios[c] = a["rps"] / b["rps"]
        if ratios:
            out["ratios"].append((what, ratios))
            if mine == "api" and theirs == "baseline_api":
                top = max(ratios)
                out["checks"].append(
                    (
                        f"api: calls/s on one balance at C = {top} ≥ {HOT_BAR:g}× the baseline {baseline_ref}'s "
                        "(same two workers, same pricing)",
                        f"{ratios[top]:.2f}×",
                        ratios[top] >= HOT_BAR,
                    )
                )
    for result in results:
        out["checks"].extend(result["checks"])
        errors = sum(r["other_non2xx"] + r["socket_errors"] + r["status_402"] for r in result["rows"])
        out["checks"].append((f"{result['target']}: errors while the balance lasted = 0", str(errors), errors == 0))
    return out


def render(results: list[dict], summary: dict, *, seconds: float, elapsed: float, loadavg: tuple) -> str:
    lines = [
        f"Hot account: one user, one key, {seconds:.0f}s per level, C callers spread over two API workers "
        "(two wrk processes, C/2 connections each), PostgreSQL + Redis, the zero-delay fake upstream; "
        "p50/p99 are the slower worker's; CPU is both workers'. Then the drain: the balance cut to a few "
        "holds' worth and the top level calling until less than one hold is left.",
        "",
        "| target | pricing | callers | calls/s | p50 ms | p99 ms | errors | CPU ms/call | log rows / calls |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for result in results:
        for row in result["rows"]:
            errors = row["other_non2xx"] + row["socket_errors"] + row["status_402"]
            cpu = "–" if row["cpu_ms_per_call"] is None else f"{row['cpu_ms_per_call']:.2f}"
            lines.append(
                f"| {result['label']} | {result['pricing']} | {row['concurrency']} | {row['rps']:.0f} | "
                f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {errors} | {cpu} | {row['log_rows']}/{row['responses']} |"
            )
    for result in results:
        drained = result.get("drain")
        if drained:
            lines += [
                "",
                f"Drain of {result['target']}: {drained['responses']} calls at C = {drained['concurrency']} in "
                f"{drained['seconds']:.1f}s, {drained['status_402']} answered 402, "
                f"{drained['other_non2xx'] + drained['socket_errors']} other errors; "
                f"balance {result['final']['balance']} left "
                f"(one hold: {result['final']['max_hold']}; budget {drained['budget']}, ~{drained['per_call']} a call, "
                "in the database's units).",
            ]
    for what, ratios in summary["ratios"]:
        lines += ["", f"Calls/s, {what}: " + ", ".join(f"C={c}: {r:.2f}×" for c, r in ratios.items())]
    if summary["checks"]:
        lines += ["", "| check | measured | met |", "|---|--:|:-:|"]
        lines += [f"| {what} | {value} | {'yes' if ok else '**no**'} |" for what, value, ok in summary["checks"]]
    lines += [
        "",
        f"Hot-account table: {elapsed:.0f}s; load average at the end " + " / ".join(f"{x:.2f}" for x in loadavg) + ".",
    ]
    return "\n".join(lines)
