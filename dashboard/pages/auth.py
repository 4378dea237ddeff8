"""/login and /register: plain forms posted to the backend routes in `auth_routes`.

The routes check everything and answer with a redirect: home with a session cookie,
or back here with `?error=<code>`, which `AuthPageState.load` turns into a message.
"""

from __future__ import annotations

import reflex as rx

from store.users import MAX_PASSWORD_BYTES, MIN_PASSWORD_LEN

from .. import routes
from ..auth_routes import error_message, safe_next
from ..components.forms import error_callout, field, post_form
from ..components.layout import TITLE
from ..state import SessionState


class AuthPageState(SessionState):
    error: str = ""
    next: str = ""

    @rx.event
    async def load(self):
        self.reset()
        if await self._viewer() is not None:
            return rx.redirect(routes.HOME)
        params = self.router.url.query_parameters
        self.error = error_message(params.get("error", ""), params.get("wait"))
        target = safe_next(params.get("next"))
        self.next = "" if target == routes.HOME else target


def _email_field() -> rx.Component:
    return field(
        "Email",
        "email",
        rx.input(id="email", name="email", type="email", required=True, auto_complete="email", size="3"),
    )


def _card(title: str, *children: rx.Component) -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.link(
                    rx.text(TITLE, size="2", weight="bold"), href=routes.HOME, underline="none", color_scheme="gray"
                ),
                rx.heading(title, size="6", as_="h1"),
                error_callout(AuthPageState.error),
                *children,
                spacing="4",
                width="100%",
            ),
            size="4",
            width="100%",
            max_width="26rem",
        ),
        min_height="100vh",
        padding="1em",
    )


def login_page() -> rx.Component:
    return _card(
        "Sign in",
        post_form(
            rx.vstack(
                _email_field(),
                field(
                    "Password",
                    "password",
                    rx.input(
                        id="password",
                        name="password",
                        type="password",
                        required=True,
                        auto_complete="current-password",
                        size="3",
                    ),
                ),
                rx.el.input(type="hidden", name="next", value=AuthPageState.next),
                rx.button("Sign in", type="submit", size="3", width="100%"),
                spacing="4",
                width="100%",
            ),
            action=routes.AUTH_LOGIN,
            method="post",
            width="100%",
        ),
        rx.text("No account yet? ", rx.link("Sign up", href=routes.REGISTER), size="2"),
    )


def register_page() -> rx.Component:
    return _card(
        "Create your account",
        post_form(
            rx.vstack(
                _email_field(),
                field(
                    "Password",
                    "password",
                    rx.input(
                        id="password",
                        name="password",
                        type="password",
                        required=True,
                        min_length=MIN_PASSWORD_LEN,
                        auto_complete="new-password",
                        size="3",
                    ),
                    hint=f"{MIN_PASSWORD_LEN} to {MAX_PASSWORD_BYTES} characters.",
                ),
                rx.button("Sign up", type="submit", size="3", width="100%"),
                spacing="4",
                width="100%",
            ),
            action=routes.AUTH_REGISTER,
            method="post",
            width="100%",
        ),
        rx.text("Have an account? ", rx.link("Sign in", href=routes.LOGIN), size="2"),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(login_page, route=routes.LOGIN, title=f"Sign in · {TITLE}", on_load=AuthPageState.load)
    app.add_page(register_page, route=routes.REGISTER, title=f"Sign up · {TITLE}", on_load=AuthPageState.load)
