#!/usr/bin/env bash
# Serve the dashboard and the mounted /api/v1 on ONE port, in Reflex production
# mode, exactly as `make run` does (make run = deps + bun + migrate + this script).
#
#   PORT=3123 DATABASE_URL=sqlite:////tmp/x.db scripts/serve.sh
#
# Assumes `make deps bun` (and `make migrate` for that DATABASE_URL) have run;
# `make run` does all of it. Everything else comes from the environment
# (DATABASE_URL, REDIS_URL, SECRET_KEY, OPENROUTER_*, ...). Extra arguments go
# to `reflex run`.
#
# What it does on each start: `reflex init` if .web is missing (automatic, no
# separate step), compile the pages, `vite build` the frontend into .web/build
# (~4 s, not cached: the build embeds the port), then granian serves everything
# on 0.0.0.0:$PORT. A busy port makes it exit at once with an error.
#
# Ready when GET http://127.0.0.1:$PORT/ping answers 200 "pong" (backend up, the
# built frontend and /api/v1 answer from the same process from then on).
#
# Stopping: SIGTERM (or SIGINT) to the process group stops everything in well
# under a second; start it in its own session (subprocess start_new_session=True)
# and os.killpg(pid, SIGTERM), then SIGKILL the group if it is not gone in ~10 s.
# SIGTERM to `make run` alone also works (make forwards it to reflex).
#
# Two servers from ONE checkout clobber each other's frontend (they share .web:
# the last build's port wins, so the first server's pages talk to the wrong
# port). A test server beside a developer's `make run` should set its own
#   REFLEX_WEB_WORKDIR=/some/tmp/web REFLEX_STATES_WORKDIR=/some/tmp/states
# (a fresh web dir costs ~10 s more on the first start: init + bun install).
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
