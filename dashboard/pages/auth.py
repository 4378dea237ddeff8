"""/login and /register: plain forms posted to the backend routes in `auth_routes`.

The routes check everything and answer with a redirect: home with a session cookie,
or back here with `?error=<code>`, which `AuthPageState.load` turns into a message.

The sign-up page follows SIGNUP_POLICY: under `closed` it has no form, under `invite` a
form only for a valid invite link (`?invite=<token>`, carried in a hidden field). Sign-up
answers a new email and a taken one alike (`/login?registered=1`, no session), so the
page's script (assets/signup.js) posts the form itself and then signs in with the same
email and password: a new person lands signed in, and a taken email just fails to sign
in, which tells nothing the sign-in form does not. Without script the form posts as it
is and the person signs in next. The password never passes through Reflex.
"""

from __future__ import annotations

import reflex as rx

from store import accounts, invites
from store.money import format_credits
from store.users import MAX_PASSWORD_BYTES, MIN_PASSWORD_LEN

from .. import backend, routes
from ..auth_routes import error_message, notice_message, safe_next
from ..components.forms import error_callout, field, post_form
from ..components.layout import TITLE
from ..state import SessionState

REGISTER_FORM_ID = "register-form"  # assets/signup.js acts on this form only
CLOSED = "Sign-up is closed on this platform: accounts are made by an admin."
INVITE_NEEDED = "Sign-up here is by invitation: ask an admin for an invite link."
INVITE_INVALID = "This invite link is not valid (used, expired or mistyped). Ask an admin for a new one."
INVITE_IGNORED = "This invite link is not valid (used, expired or mistyped); you can sign up without it."


def invite_note(credits: int) -> str:
    if credits:
        return f"You are signing up with an invite: it adds {format_credits(credits)} credits to your account."
    return "You are signing up with an invite."


class AuthPageState(SessionState):
    error: str = ""
    notice: str = ""  # after sign-up without script: sign in next
    next: str = ""
    # The sign-up page, as SIGNUP_POLICY and the invite in its URL allow; no form until
    # `load` has said which (none may be allowed, or it must carry the invite).
    signup_form: bool = False
    signup_closed: bool = False
    signup_note: str = ""  # why there is no form, or what the invite does
    invite: str = ""  # the invite's token, for the form's hidden field

    @rx.event
    async def load(self):
        self.reset()
        if await self._viewer() is not None:
            return rx.redirect(routes.HOME)
        params = self.router.url.query_parameters
        self.error = error_message(params.get("error", ""), params.get("wait"))
        self.notice = "" if self.error else notice_message(params)
        target = safe_next(params.get("next"))
        self.next = "" if target == routes.HOME else target
        await self._signup(str(params.get("invite", "") or "").strip())

    async def _signup(self, token: str) -> None:
        settings = backend.settings()
        policy = settings.signup_policy
        found = await backend.run(invites.check_invite, secret_key=settings.secret_key, token=token) if token else None
        self.signup_closed, self.signup_form = policy == accounts.CLOSED, True
        if policy == accounts.CLOSED:
            self.signup_form, self.signup_note = False, CLOSED
        elif found is None and policy == accounts.INVITE:
            self.signup_form, self.signup_note = False, INVITE_INVALID if token else INVITE_NEEDED
        elif found is None:
            self.signup_note = INVITE_IGNORED if token else ""
        else:
            self.invite, self.signup_note = token, invite_note(found.credits)
        if not self.signup_form and self.error in (error_message("closed"), error_message("invite")):
            self.error = ""  # the sentence above says it


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
                rx.cond(
                    AuthPageState.notice != "",
                    rx.callout(
                        AuthPageState.notice, icon="circle_check", color_scheme="green", role="status", width="100%"
                    ),
                ),
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
        rx.cond(
            AuthPageState.signup_closed,
            rx.fragment(),
            rx.text("No account yet? ", rx.link("Sign up", href=routes.REGISTER), size="2"),
        ),
    )


def _register_form() -> rx.Component:
    return post_form(
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
            rx.el.input(type="hidden", name="invite", value=AuthPageState.invite),
            rx.button("Sign up", type="submit", size="3", width="100%"),
            spacing="4",
            width="100%",
        ),
        action=routes.AUTH_REGISTER,
        method="post",
        id=REGISTER_FORM_ID,
        width="100%",
    )


def register_page() -> rx.Component:
    s = AuthPageState
    return _card(
        "Create your account",
        rx.cond(
            s.signup_note != "",
            rx.callout(
                s.signup_note,
                icon="info",
                color_scheme=rx.cond(s.signup_form, "blue", "amber"),
                role="status",
                id="signup-note",
                width="100%",
            ),
        ),
        rx.cond(s.signup_form, _register_form()),
        rx.text("Have an account? ", rx.link("Sign in", href=routes.LOGIN), size="2"),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(login_page, route=routes.LOGIN, title=f"Sign in · {TITLE}", on_load=AuthPageState.load)
    app.add_page(register_page, route=routes.REGISTER, title=f"Sign up · {TITLE}", on_load=AuthPageState.load)
