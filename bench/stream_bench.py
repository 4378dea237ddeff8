"""The stream table of `make bench`: C streams held open through each target, chunks paced by the upstream.

Per target and level it runs the load generator (bench/streams.py, its own process) and
reads, from /proc, the server's CPU and resident memory (sampled every 0.2 s) and the
stream upstream's CPU, which with the upstream's count of produced chunks gives the
baseline cost of a chunk in the same run.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import httpx

from .procs import Server
from .streams import run_streams, stream_seconds
from .targets import ROOT, Target

SLOW_FROM = 1000  # a bare level this high streams at the slow pace: one worker cannot relay 40,000 chunks/s


@dataclass(frozen=True)
class Level:
    concurrency: int
    interval_ms: float
    chunks: int

    @property
    def name(self) -> str:
        return f"{self.concurrency}@{self.interval_ms:g}"


def parse_levels(spec: str, *, chunks: int, interval_ms: float, slow_interval_ms: float) -> list[Level]:
    """ "50,200,1000" or "50@25,1000@250": C streams, optionally @ the ms between chunks."""
    levels = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        count, _, pace = part.partition("@")
        concurrency = int(count)
        default = slow_interval_ms if concurrency >= SLOW_FROM else interval_ms
        levels.append(Level(concurrency, float(pace) if pace else default, chunks))
    return levels


class RssPeak:
    """The highest resident memory of a server's process tree while the block runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self.server.rss_mb())
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.server.rss_mb())


def upstream_chunks(upstream: Server) -> int:
    return httpx.get(upstream.ready_url.rstrip("/") + "/stats", timeout=10).json()["chunks"]


FORMAT_LABELS = {"messages": "Anthropic Messages stream (/messages)", "responses": "Responses stream (/responses)"}


def row_name(target: Target, fmt: str) -> str:
    """A row's target name: chat rows keep the target's, the other formats add theirs (api_messages)."""
    return target.name if fmt == "chat" else f"{target.name}_{fmt}"


def warm_up(target: Target, fmt: str = "chat") -> None:
    run_streams(
        target.stream_url(fmt),
        key=target.new_key(),
        concurrency=10,
        seconds=target.warmup_s,
        chunks=5,
        interval_ms=10,
        cwd=ROOT,
        fmt=fmt,
        headers=target.headers,
    )


def measure_level(
    target: Target, upstream: Server, level: Level, seconds: float, *, idle_rss_mb: float, fmt: str = "chat"
) -> dict:
    """One level: the load's own figures, the server's CPU and memory, the upstream's CPU per chunk."""
    server = target.server or upstream  # direct: the upstream is the server
    key = target.new_key()
    load = os.getloadavg()[0]
    cpu_before, upstream_cpu_before = server.cpu_seconds(), upstream.cpu_seconds()
    produced_before = upstream_chunks(upstream)
    with RssPeak(server) as rss:
        seen = run_streams(
            target.stream_url(fmt),
            key=key,
            concurrency=level.concurrency,
            seconds=seconds,
            chunks=level.chunks,
            interval_ms=level.interval_ms,
            cwd=ROOT,
            fmt=fmt,
            headers=target.headers,
        )
    cpu = server.cpu_seconds() - cpu_before
    upstream_cpu = upstream.cpu_seconds() - upstream_cpu_before
    produced = upstream_chunks(upstream) - produced_before
    return {
        "target": row_name(target, fmt),
        "label": target.label if fmt == "chat" else f"{target.label}: {FORMAT_LABELS[fmt]}",
        "format": fmt,
        "level": level.name,
        "concurrency": level.concurrency,
        "interval_ms": level.interval_ms,
        "chunks_per_stream": level.chunks,
        "stream_s": stream_seconds(level.chunks, level.interval_ms),
        "load_before": load,
        **seen,
        "server_cpu_s": cpu,
        "cpu_ms_per_stream": cpu / seen["streams"] * 1000 if seen["streams"] else None,
        # every data event the client got but chat's [DONE] (chat: the content chunks, the finish
        # chunk, the usage chunk; the other formats: every event of theirs)
        "cpu_us_per_chunk": cpu / seen["events"] * 1e6 if seen["events"] else None,
        "upstream_cpu_us_per_chunk": upstream_cpu / produced * 1e6 if produced else None,
        "rss_idle_mb": idle_rss_mb,
        "rss_peak_mb": rss.peak_mb,
        "kb_per_open_stream": (rss.peak_mb - idle_rss_mb) * 1024 / seen["peak_open"] if seen["peak_open"] else None,
        "log_rows": target.rows_for(key, seen["streams"]),
    }


def measure_streams(
    target: Target, upstream: Server, levels: list[Level], seconds: float, fmt: str = "chat"
) -> list[dict]:
    from .stream_report import progress_line

    warm_up(target, fmt)
    idle_rss_mb = (target.server or upstream).rss_mb()
    rows = []
    for level in levels:
        row = measure_level(target, upstream, level, seconds, idle_rss_mb=idle_rss_mb, fmt=fmt)
        rows.append(row)
        print(progress_line(row), flush=True)
    return rows
