"""`/`: what the platform is when signed out; the Overview when signed in."""

import reflex as rx

from .. import routes
from ..components.layout import TITLE
from ..state import SessionState
from .overview import OverviewState, overview


def landing() -> rx.Component:
    return rx.container(
        rx.vstack(
            rx.heading(TITLE, size="8", as_="h1"),
            rx.text(
                "A self-hosted, OpenAI-compatible API for large language models. "
                "Create API keys, call the models from any OpenAI SDK, watch your "
                "credits and read the log of every request you make.",
                size="4",
            ),
            rx.hstack(
                rx.link("Sign in", href=routes.LOGIN, size="4", weight="medium"),
                rx.link("Sign up", href=routes.REGISTER, size="4", weight="medium"),
                # Served by the mounted FastAPI app, not by a Reflex page: a full
                # document load instead of client-side routing.
                rx.link("API docs", href=routes.API_DOCS, reload_document=True, size="4"),
                spacing="5",
            ),
            spacing="5",
            padding_y="4em",
        ),
        size="2",
    )


def index() -> rx.Component:
    return rx.cond(SessionState.signed_in, overview(), landing())


def add_pages(app: rx.App) -> None:
    app.add_page(index, route=routes.HOME, title=TITLE, on_load=OverviewState.load)
