"""What an admin does to a user, on the users list and on the user's own page: grant or
remove credits with a note (through the ledger), set the ceiling on their own keys' rate
limits, turn API access off and on, make or unmake an admin (never oneself)."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import credits, users
from store.errors import StoreError
from store.models import CLEAR
from store.money import parse_credits

from .. import backend
from ..auth import Viewer
from ..state import admin_required
from ..views import UserRow
from .forms import dialog_actions, error_callout, field, sentence

OWN_ADMIN_ROLE = "You cannot remove your own admin role; ask another admin."


def parse_grant(form_data: dict) -> tuple[int, str]:
    """(amount in micro-credits, note) from the grant form; raises StoreError with a message
    to show. The note's length is the ledger's rule (store.credits.grant refuses a long one)."""
    text = str(form_data.get("amount", "") or "").strip()
    if not text:
        raise StoreError("amount must be a number of credits such as 100 or 2.5; negative removes credits")
    amount = parse_credits(text)  # InvalidInput (a StoreError) says what is wrong with it
    if amount == 0 or abs(amount) > credits.MAX_BALANCE:
        raise StoreError("amount must be a number other than 0 (at most a billion either way)")
    note = str(form_data.get("note", "") or "").strip()
    if not note:
        raise StoreError("add a note saying why, for the ledger")
    return amount, note


def key_limit_error() -> str:
    return (
        f"the key limit must be a whole number of requests per minute from 0 to {users.MAX_KEY_RPM:,} "
        "(0: any), or empty for the platform's default"
    )


def parse_key_limit(form_data: dict) -> int | object:
    """The ceiling typed into the Key limit form: a number, or CLEAR (empty: the platform's
    MAX_KEY_RPM); raises StoreError with a message to show. The range is the store's
    (store.users.set_user_flags checks it again)."""
    text = str(form_data.get("max_key_rpm", "") or "").strip().replace(",", "")
    if not text:
        return CLEAR
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) > users.MAX_KEY_RPM:
        raise StoreError(key_limit_error())
    return int(text)


def _grant(session: Session, *, actor_id: int, user_id: int, amount: int, note: str) -> None:
    credits.grant(session, user_id=user_id, amount=amount, note=note, actor_user_id=actor_id)


def _set_flags(session: Session, *, user_id: int, **flags: object) -> None:
    users.set_user_flags(session, user_id=user_id, **flags)


class UserActions(rx.State, mixin=True):
    """Mixed into a page state that shows users; it reloads them in `_reload(viewer)` and
    finds one it shows in `_shown(user_id)`."""

    grant_user: UserRow = UserRow()
    grant_open: bool = False
    error: str = ""
    # The Key limit dialog.
    limit_user: UserRow = UserRow()
    limit_open: bool = False
    limit_error: str = ""
    limit_hint: str = ""  # names the platform's MAX_KEY_RPM, read when the dialog opens

    async def _reload(self, viewer: Viewer) -> None:
        raise NotImplementedError

    def _shown(self, user_id: int) -> UserRow | None:
        raise NotImplementedError

    @rx.event
    @admin_required
    async def start_grant(self, viewer: Viewer, user_id: int):
        found = self._shown(int(user_id))
        if found is not None:
            self.grant_user, self.grant_open, self.error = found, True, ""

    @rx.event
    def set_grant_open(self, value: bool):
        self.grant_open = value

    @rx.event
    @admin_required
    async def grant_credits(self, viewer: Viewer, form_data: dict):
        """Add or remove credits through the ledger, with the admin as actor and a note."""
        try:
            user_id = int(form_data.get("user_id", 0))
            amount, note = parse_grant(form_data)
            await backend.run(_grant, actor_id=viewer.id, user_id=user_id, amount=amount, note=note)
        except (StoreError, ValueError) as exc:
            self.error = sentence(str(exc) if isinstance(exc, StoreError) else "no such user")
            return
        self.grant_open, self.error = False, ""
        await self._reload(viewer)
        return rx.toast.success("Credits updated")

    @rx.event
    @admin_required
    async def start_key_limit(self, viewer: Viewer, user_id: int):
        found = self._shown(int(user_id))
        if found is not None:
            default = backend.settings().max_key_rpm
            self.limit_hint = (
                "0 = any, unlimited included; empty = the platform's default "
                f"({f'{default:,}/min' if default else 'any'})."
            )
            self.limit_user, self.limit_open, self.limit_error = found, True, ""

    @rx.event
    def set_limit_open(self, value: bool):
        self.limit_open = value

    @rx.event
    @admin_required
    async def set_key_limit(self, viewer: Viewer, form_data: dict):
        """The most a rate limit the user may give their own keys (their keys already
        issued keep theirs); bad input changes nothing."""
        try:
            user_id = int(form_data.get("user_id", 0))
            ceiling = parse_key_limit(form_data)
            await backend.run(_set_flags, user_id=user_id, max_key_rpm=ceiling)
        except (StoreError, ValueError) as exc:
            self.limit_error = sentence(str(exc) if isinstance(exc, StoreError) else "no such user")
            return
        self.limit_open, self.limit_error = False, ""
        await self._reload(viewer)
        return rx.toast.success("Key limit saved")

    @rx.event
    @admin_required
    async def set_api_enabled(self, viewer: Viewer, user_id: int, enabled: bool):
        try:
            await backend.run(_set_flags, user_id=int(user_id), api_enabled=bool(enabled))
        except StoreError as exc:
            return rx.toast.error(sentence(str(exc)))
        await self._reload(viewer)

    @rx.event
    @admin_required
    async def set_admin(self, viewer: Viewer, user_id: int, is_admin: bool):
        if int(user_id) == viewer.id and not is_admin:
            return rx.toast.error(OWN_ADMIN_ROLE)
        try:
            await backend.run(_set_flags, user_id=int(user_id), is_admin=bool(is_admin))
        except StoreError as exc:
            return rx.toast.error(sentence(str(exc)))
        await self._reload(viewer)


def action_buttons(state: type[UserActions], u: rx.Var) -> rx.Component:
    """Credits…, Disable / Enable API, Make / Remove admin (no Remove admin on your own row)."""
    return rx.flex(
        rx.button("Credits…", size="1", variant="soft", on_click=state.start_grant(u.id)),
        rx.cond(
            u.api_enabled,
            rx.button(
                "Disable API", size="1", variant="soft", color_scheme="red", on_click=state.set_api_enabled(u.id, False)
            ),
            rx.button(
                "Enable API", size="1", variant="soft", color_scheme="green", on_click=state.set_api_enabled(u.id, True)
            ),
        ),
        rx.cond(
            u.is_admin,
            rx.cond(
                u.you,
                rx.fragment(),
                rx.button(
                    "Remove admin", size="1", variant="soft", color_scheme="gray", on_click=state.set_admin(u.id, False)
                ),
            ),
            rx.button(
                "Make admin", size="1", variant="soft", color_scheme="purple", on_click=state.set_admin(u.id, True)
            ),
        ),
        spacing="2",
        wrap="wrap",
    )


def key_limit_button(state: type[UserActions], u: rx.Var) -> rx.Component:
    """The user's key limit as it applies ("600/min (default)"); a click opens the form that changes it."""
    return rx.button(
        rx.icon("pencil", size=12, aria_hidden="true"),
        u.key_limit,
        size="1",
        variant="ghost",
        white_space="nowrap",
        aria_label="Key limit: " + u.key_limit.to(str) + ". Change…",
        title="Change the most a rate limit this user may give their own keys",
        on_click=state.start_key_limit(u.id),
    )


def grant_dialog(state: type[UserActions]) -> rx.Component:
    u = state.grant_user
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Credits for ", u.email, style={"overflow_wrap": "anywhere"}),
            rx.dialog.description(
                "Balance now: ",
                u.balance,
                " credits. A negative amount removes credits; the balance cannot go below zero.",
                size="2",
            ),
            rx.form(
                rx.vstack(
                    rx.el.input(type="hidden", name="user_id", value=u.id.to_string()),
                    field(
                        "Amount",
                        "grant-amount",
                        rx.input(
                            id="grant-amount",
                            name="amount",
                            input_mode="decimal",
                            required=True,
                            placeholder="e.g. 100, 2.5 or -20",
                        ),
                        hint="Credits, up to 6 decimal places.",
                    ),
                    field(
                        "Note",
                        "grant-note",
                        # No maxlength: the browser would cut a long note without a word;
                        # the ledger refuses it instead, and the message says why.
                        rx.text_area(id="grant-note", name="note", required=True, placeholder="why, for the ledger"),
                        hint=f"Shown in the user's ledger; at most {credits.MAX_NOTE} characters.",
                    ),
                    error_callout(state.error),
                    dialog_actions("Apply"),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=state.grant_credits,
                reset_on_submit=False,
                key=u.id,
            ),
            max_width="28rem",
        ),
        open=state.grant_open,
        on_open_change=state.set_grant_open,
    )


def key_limit_dialog(state: type[UserActions]) -> rx.Component:
    u = state.limit_user
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Key limit for ", u.email, style={"overflow_wrap": "anywhere"}),
            rx.dialog.description(
                "The highest rate limit they may give their own API keys. Now: ",
                rx.text(u.key_limit, as_="span", weight="medium"),
                ". Keys they already have keep theirs.",
                size="2",
            ),
            rx.form(
                rx.vstack(
                    rx.el.input(type="hidden", name="user_id", value=u.id.to_string()),
                    field(
                        "Requests per minute",
                        "key-limit",
                        rx.input(
                            id="key-limit",
                            name="max_key_rpm",
                            input_mode="numeric",
                            default_value=u.max_key_rpm,
                            placeholder="default",
                        ),
                        hint=state.limit_hint,
                    ),
                    error_callout(state.limit_error),
                    dialog_actions("Save"),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=state.set_key_limit,
                reset_on_submit=False,
                key=u.id.to_string() + ":" + u.max_key_rpm,
            ),
            max_width="28rem",
        ),
        open=state.limit_open,
        on_open_change=state.set_limit_open,
    )
