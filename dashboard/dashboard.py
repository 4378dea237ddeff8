"""The Reflex app: dashboard pages plus the `/api/v1` FastAPI app, on one server.

This module only assembles `rx.App`; pages live in `dashboard.pages`.
"""

import reflex as rx
from fastapi import FastAPI

from api.app import NO_TELEMETRY, create_app
from dashboard import auth_routes
from dashboard.pages import add_all_pages
from dashboard.tab_guard import TabOwnerGuard

# The OpenAI-compatible API, mounted into Reflex's backend (same port as the
# dashboard). FastAPI's own lifespan does not run when mounted, so the API's
# runtime (shared HTTP clients, background workers) runs as a Reflex lifespan task.
api_app = create_app()
# Sign-in, sign-out and the CSV export are plain backend routes, on an app of their own
# that Reflex mounts itself behind as the catch-all; the API's app comes first, so an
# `/api/v1` request is routed there without passing this app's layers.
web = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, telemetry=NO_TELEMETRY)
web.include_router(auth_routes.build_router())

# The shell's layout below 768 px and the table cell helpers (assets/dashboard.css); the
# sign-up form's script, which signs a new person in (assets/signup.js).
app = rx.App(
    api_transformer=[web, api_app],
    stylesheets=["/dashboard.css"],
    head_components=[rx.el.script(src="/signup.js", defer=True)],
)
app.register_lifespan_task(api_app.state.runtime.running)
# Before anything else sees an event: a tab's state only for its owner's cookie.
app.add_middleware(TabOwnerGuard(), index=0)

add_all_pages(app)
