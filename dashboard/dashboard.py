"""The Reflex app: dashboard pages plus the `/api/v1` FastAPI app, on one server.

This module only assembles `rx.App`; pages live in `dashboard.pages`.
"""

import reflex as rx

from api.app import create_app
from dashboard.pages import home

# The OpenAI-compatible API, mounted into Reflex's backend (same port as the
# dashboard). FastAPI's own lifespan does not run when mounted, so the API's
# runtime (shared HTTP clients, background workers) runs as a Reflex lifespan task.
api_app = create_app()

app = rx.App(api_transformer=api_app)
app.register_lifespan_task(api_app.state.runtime.running)

home.add_pages(app)
