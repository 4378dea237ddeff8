#!/usr/bin/env bash
# Serve the dashboard and the mounted /api/v1 on ONE port, in Reflex production
# mode, exactly as `make run` does (make run = install + migrate + this script).
#
#   PORT=3123 DATABASE_URL=sqlite:////tmp/x.db scripts/serve.sh
#
# Assumes `make .venv/.installed bun` (and `make migrate`) have run. Everything
# else comes from the environment (DATABASE_URL, REDIS_URL, SECRET_KEY,
# OPENROUTER_*, ...). Extra arguments are passed to `reflex run`.
#
# Ready when GET http://127.0.0.1:$PORT/ping answers "pong" (Reflex backend up,
# API mounted); the built frontend is served from the same process.
# Stops cleanly on SIGTERM/SIGINT to this process (it execs into reflex, which
# runs the granian server in-process and forks its workers); to be safe, start it
# in its own process group / session and signal the group.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export PORT="${PORT:-3000}"
export PATH="$root/.tools/node_modules/.bin:$PATH"
export REFLEX_USE_SYSTEM_BUN=1
export REFLEX_TELEMETRY_ENABLED=false
export REFLEX_CHECK_LATEST_VERSION=false
# The default SQLite database lives in data/.
mkdir -p data

exec "$root/.venv/bin/reflex" run --env prod --single-port \
    --frontend-port "$PORT" --backend-port "$PORT" "$@"
