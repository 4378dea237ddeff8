"""The bench's bars (issue 17's ratios) computed from rows of a run: exact verdicts."""

from __future__ import annotations

from bench import report, stream_report


def _wrk(target: str, connections: int, rps: float, p50: float, cpu: float | None = 1.0) -> dict:
    return {
        "target": target,
        "label": target,
        "connections": connections,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p50 * 3,
        "responses": 1000,
        "non2xx": 0,
        "socket_errors": 0,
        "log_rows": 1000 if target in ("api", "baseline_api") else None,
        "cpu_ms_per_req": cpu,
    }


def test_the_wrk_bars_are_ratios_to_portkey_litellm_and_the_baseline_of_the_same_run():
    results = [
        _wrk("direct", 1, 10000, 0.10),
        _wrk("direct", 16, 30000, 0.40),
        _wrk("api", 1, 1000, 1.10, cpu=0.9),
        _wrk("api", 16, 1200, 13.0, cpu=0.8),
        _wrk("baseline_api", 1, 1250, 0.70, cpu=0.6),
        _wrk("baseline_api", 16, 1500, 10.0, cpu=0.5),
        _wrk("portkey", 1, 300, 3.10),
        _wrk("portkey", 16, 500, 30.0),
        _wrk("litellm", 16, 100, 100.0),
    ]
    summary = report.summarize(results, None, baseline_ref="0216049")
    checks = {what: (value, ok) for what, value, ok in summary["checks"]}
    assert checks["api: req/s at 16 connections ≥ 1.5× Portkey's"] == ("1200 req/s, 2.40×", True)
    assert checks["api: req/s at 16 connections ≥ 10× LiteLLM's"] == ("1200 req/s, 12.00×", True)
    assert checks["api: req/s at 16 connections ≥ 1× the baseline 0216049's (baseline_api)"] == (
        "1200 req/s, 0.80×",
        False,
    )
    # added p50: +1.00 ms against Portkey's +3.00 ms
    assert checks["api: added p50 at 1 connection ≤ 0.7× Portkey's"] == ("+1.00 ms vs +3.00 ms, 0.33×", True)
    assert checks["platform targets: lost log rows = 0"] == ("0", True)
    assert summary["baseline"]["api"][1]["rps"] == 0.8
    assert summary["baseline"]["api"][16]["cpu"] == 1.6
    assert "platform" not in summary["ratios"]


def _stream(target: str, level: str, *, cpu: float, p99: float, fmt: str = "chat", errors: int = 0) -> dict:
    concurrency = int(level.split("@")[0])
    return {
        "target": target,
        "label": target,
        "format": fmt,
        "level": level,
        "concurrency": concurrency,
        "interval_ms": float(level.split("@")[1]),
        "streams": 500,
        "completed": 500 - errors,
        "peak_open": concurrency,
        "ttft_p50_ms": 1.0,
        "ttft_p99_ms": p99,
        "errors": {"status": errors, "broken": 0, "short": 0, "no_done": 0},
        "cpu_us_per_chunk": cpu,
        "kb_per_open_stream": 50.0,
        "log_rows": 500 if target.startswith("api") else None,
    }


def test_the_stream_bars_are_ratios_to_portkey_and_to_a_chat_stream():
    results = [
        _stream("direct", "200@25", cpu=30, p99=2.0),
        _stream("direct", "1000@250", cpu=30, p99=3.0),
        _stream("direct_messages", "200@25", cpu=30, p99=2.0, fmt="messages"),
        _stream("api", "200@25", cpu=80, p99=22.0),
        _stream("api", "1000@250", cpu=90, p99=50.0, errors=2),
        _stream("api_messages", "200@25", cpu=88, p99=12.0, fmt="messages"),
        _stream("portkey", "200@25", cpu=200, p99=102.0),
    ]
    summary = stream_report.summarize(results)
    checks = {what: (value, ok) for what, value, ok in summary["checks"]}
    assert checks["api: server CPU per relayed chunk at C = 200 (25 ms apart) ≤ 0.8× Portkey's"] == (
        "80 µs vs 200 µs, 0.40×",
        True,
    )
    # added TTFT p99: +20 ms against Portkey's +100 ms
    assert checks["api: added TTFT p99 at C = 200 ≤ 0.2× Portkey's"] == ("+20.0 ms vs +100.0 ms, 0.20×", True)
    assert checks["api: C = 1000 streams (250 ms apart) on one worker with no errors"] == (
        "498/500 streams, peak 1000 open, 2 errors",
        False,
    )
    assert checks["api_messages: server CPU per relayed event at C = 200 ≤ 1× a chat stream's"] == (
        "88 µs vs 80 µs, 1.10×",
        False,
    )
    assert checks["platform targets: non-200, broken streams, missing terminal event = 0"] == ("2", False)
    assert summary["added"]["api_messages 200@25"]["ttft_p99_ms"] == 10.0
