"""Settings → Account: change the password, sign out everywhere.

Both are plain forms posted to backend routes (`auth_routes`), because both must set
or clear the HttpOnly session cookie, which an event handler on the websocket cannot.
The route answers with a redirect back here, `?changed=1` or `?error=<code>`.
"""

from __future__ import annotations

import reflex as rx

from store.users import MAX_PASSWORD_BYTES, MIN_PASSWORD_LEN

from .. import routes
from ..auth import Viewer
from ..auth_routes import error_message
from ..components.forms import error_callout, field, post_form
from ..components.layout import page_shell
from ..state import SessionState, viewer_required

CHANGED = "Password changed. Every other session of yours has been signed out; this browser stays signed in."


class AccountState(SessionState):
    error: str = ""
    notice: str = ""

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        params = self.router.url.query_parameters
        self.error = error_message(params.get("error", ""), params.get("wait"))
        self.notice = CHANGED if params.get("changed") == "1" and not self.error else ""


def _password_input(control_id: str, name: str, autocomplete: str, **props) -> rx.Component:
    return rx.input(id=control_id, name=name, type="password", required=True, auto_complete=autocomplete, **props)


def _change_password() -> rx.Component:
    return rx.card(
        post_form(
            rx.vstack(
                rx.heading("Change password", size="3", as_="h2"),
                rx.text("This signs you out on every other browser and device.", size="2", color_scheme="gray"),
                field(
                    "Current password",
                    "current-password",
                    _password_input("current-password", "current_password", "current-password"),
                ),
                field(
                    "New password",
                    "new-password",
                    _password_input("new-password", "new_password", "new-password", min_length=MIN_PASSWORD_LEN),
                    hint=f"{MIN_PASSWORD_LEN} to {MAX_PASSWORD_BYTES} characters.",
                ),
                error_callout(AccountState.error),
                rx.button("Change password", type="submit"),
                spacing="3",
                width="100%",
                max_width="26rem",
            ),
            action=routes.AUTH_PASSWORD,
            method="post",
            width="100%",
        ),
        width="100%",
    )


def _sign_out_everywhere() -> rx.Component:
    return rx.card(
        post_form(
            rx.vstack(
                rx.heading("Sessions", size="3", as_="h2"),
                rx.text(
                    "Signed in somewhere you should not be? End every session of yours, this one too.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.el.input(type="hidden", name="everywhere", value="1"),
                rx.button("Sign out everywhere", type="submit", variant="soft", color_scheme="red"),
                spacing="3",
            ),
            action=routes.AUTH_LOGOUT,
            method="post",
        ),
        width="100%",
    )


def account_page() -> rx.Component:
    return page_shell(
        "Account",
        rx.text("Signed in as ", rx.text.strong(AccountState.email), size="2"),
        rx.cond(
            AccountState.notice != "",
            rx.callout(AccountState.notice, icon="circle_check", color_scheme="green", role="status", width="100%"),
        ),
        _change_password(),
        _sign_out_everywhere(),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(account_page, route=routes.ACCOUNT, title="Account", on_load=AccountState.load)
