"""Benchmark of the dashboard's Logs page query on 1,000,000 request-log rows (not a test).

    python -m bench.logs_query                                  # SQLite in a temp dir
    python -m bench.logs_query --database-url postgresql+psycopg://postgres@127.0.0.1/bench_logs
    python -m bench.logs_query --rows 200000 --repeat 20

The database must be empty or new: it is migrated, filled with `--rows` log rows (90 %
of them one user's, spread over 60 days, 5 keys, 6 models, realistic status mix), and
each query the page runs is timed (`usage.logs_page` and friends, exactly as the page
calls them). Prints median and 95th percentile in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from store import usage
from store.db import get_engine, session_for
from store.migrate import migrate
from store.models import RequestLog, User

DAYS = 60
MODELS = [
    ("openai/gpt-5", 45),
    ("openai/gpt-5-mini", 35),
    ("anthropic/claude-sonnet-4.5", 14),
    ("google/nano-banana-pro", 5),
    ("acme/rare-model", 0.5),
    ("nope/unknown", 0.5),
]
STATUSES = [(200, 92), (402, 3), (429, 2), (502, 2), (404, 1)]
ERROR_CODES = {
    402: "insufficient_credits",
    429: "rate_limit_exceeded",
    502: "provider_error",
    404: "model_not_available",
}


def fill(engine, rows: int, *, seed: int = 7) -> tuple[int, list[int], date]:
    """Insert the users and `rows` log rows; returns (benchmarked user id, its key ids, last day)."""
    rng = random.Random(seed)
    with engine.begin() as conn:
        user_ids = [
            conn.execute(
                sa.insert(User)
                .values(
                    email=f"bench{i}@example.com",
                    password_hash="x",
                    is_admin=False,
                    api_enabled=True,
                    balance=0,
                    created_at=datetime.now(UTC),
                )
                .returning(User.id)
            ).scalar_one()
            for i in range(10)
        ]
    main = user_ids[0]
    keys = [1, 2, 3, 4, 5]
    models = rng.choices([m for m, _ in MODELS], [w for _, w in MODELS], k=rows)
    statuses = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES], k=rows)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / rows
    batch, written = [], 0
    for i in range(rows):
        owner = main if rng.random() < 0.9 else rng.choice(user_ids[1:])
        status = statuses[i]
        batch.append(
            {
                "request_id": f"bench-{i:08d}",
                "user_id": owner,
                "api_key_id": rng.choice(keys) if owner == main else 99,
                "key_prefix": "sk_live_benc",
                "method": "POST",
                "endpoint": "/api/v1/chat/completions",
                "model": models[i],
                "status": status,
                "error_code": ERROR_CODES.get(status),
                "latency_ms": rng.randint(20, 4000),
                "credit_cost": 3 if status == 200 else 0,
                "stream": rng.random() < 0.3,
                "prompt_tokens": 20,
                "completion_tokens": 200,
                "total_tokens": 220,
                "upstream_id": None,
                "task_id": None,
                "created_at": start + step * i,
            }
        )
        if len(batch) == 50_000 or i == rows - 1:
            with engine.begin() as conn:
                conn.execute(sa.insert(RequestLog), batch)
            written += len(batch)
            batch = []
            print(f"\r  inserted {written:,} rows", end="", flush=True)
    print()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE request_logs"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    return main, keys, (start + step * (rows - 1)).date()


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    fn()  # warm up
    samples, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))], result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.logs_query", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an empty database (default: SQLite in a temp dir)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-logs-')}/logs.db"
    engine = get_engine(url)
    print(f"database: {engine.url.render_as_string(hide_password=True)}")
    migrate(url)
    t = time.perf_counter()
    user_id, keys, last_day = fill(engine, args.rows)
    print(f"  filled in {time.perf_counter() - t:.1f} s")

    mid_day = last_day - timedelta(days=DAYS // 2)
    with session_for(engine) as s:
        middle_id = s.execute(
            sa.select(sa.func.max(RequestLog.id)).where(
                RequestLog.user_id == user_id,
                RequestLog.created_at < datetime.combine(mid_day, datetime.min.time(), tzinfo=UTC),
            )
        ).scalar_one()

    def page(**filters: str) -> Callable[[], object]:
        parsed = usage.LogFilter.parse(**filters)

        def run():
            with session_for(engine) as s:
                return usage.logs_page(s, user_id=user_id, filters=parsed, limit=51)

        return run

    def deep_page():
        with session_for(engine) as s:
            return usage.logs_page(s, user_id=user_id, limit=51, before_id=middle_id)

    def overview():
        with session_for(engine) as s:
            return usage.daily_usage(s, user_id=user_id, days=14)

    def export_one_day():
        return sum(
            len(chunk)
            for chunk in usage.export_csv(
                engine, user_id=user_id, filters=usage.LogFilter.parse(since=str(mid_day), until=str(mid_day))
            )
        )

    cases = [
        ("first page (50 newest)", page(), args.repeat),
        ("a page 30 days deep (keyset)", deep_page, args.repeat),
        ("filter: one key", page(key=str(keys[2])), args.repeat),
        ("filter: model (35 % of rows)", page(model="openai/gpt-5-mini"), args.repeat),
        ("filter: rare model (0.5 %)", page(model="acme/rare-model"), args.repeat),
        ("filter: status 5xx (2 %)", page(status="5xx"), args.repeat),
        ("filter: status 429 (2 %)", page(status="429"), args.repeat),
        ("filter: status 503 (no match)", page(status="503"), args.repeat),
        ("filter: one day, 30 days back", page(since=str(mid_day), until=str(mid_day)), args.repeat),
        (
            "filter: key + rare model + errors",
            page(key=str(keys[0]), model="acme/rare-model", status="errors"),
            args.repeat,
        ),
        ("overview: 14 days per day", overview, max(3, args.repeat // 5)),
        ("CSV export of one day", export_one_day, 3),
    ]
    print(f"\n{args.rows:,} rows, user {user_id} owns ~90 %; {args.repeat} runs each\n")
    print(f"{'query':<38} {'median ms':>10} {'p95 ms':>10}  result")
    for name, fn, repeat in cases:
        median, p95, result = timed(fn, repeat)
        shown = f"{len(result)} rows" if isinstance(result, list) else f"{result:,} bytes"
        print(f"{name:<38} {median:>10.1f} {p95:>10.1f}  {shown}")


if __name__ == "__main__":
    main()
