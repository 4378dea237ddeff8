"""Admin → Users: balance and role; grant or remove credits with a note; API access; admin role."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import credits, users
from store.errors import StoreError
from store.money import parse_credits

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import dialog_actions, error_callout, field
from ..components.layout import admin_only, page_shell
from ..state import SessionState, admin_required, viewer_required
from ..views import UserRow, user_row

MAX_NOTE = 500


def _rows(session: Session) -> list[UserRow]:
    return [user_row(u) for u in users.list_users(session)]


def _grant(session: Session, *, actor_id: int, user_id: int, amount: int, note: str) -> list[UserRow]:
    credits.grant(session, user_id=user_id, amount=amount, note=note, actor_user_id=actor_id)
    return _rows(session)


def _set_flags(session: Session, *, user_id: int, **flags: bool) -> list[UserRow]:
    users.set_user_flags(session, user_id=user_id, **flags)
    return _rows(session)


def parse_grant(form_data: dict) -> tuple[int, str]:
    """(amount in micro-credits, note) from the grant form; raises StoreError with a message to show."""
    text = str(form_data.get("amount", "") or "").strip()
    if not text:
        raise StoreError("amount must be a number of credits such as 100 or 2.5; negative removes credits")
    amount = parse_credits(text)  # InvalidInput (a StoreError) says what is wrong with it
    if amount == 0 or abs(amount) > credits.MAX_BALANCE:
        raise StoreError("amount must be a number other than 0 (at most a billion either way)")
    note = str(form_data.get("note", "") or "").strip()
    if not note or len(note) > MAX_NOTE:
        raise StoreError(f"add a note of 1 to {MAX_NOTE} characters saying why")
    return amount, note


class UsersAdminState(SessionState):
    users: list[UserRow] = []
    grant_user: UserRow = UserRow()
    grant_open: bool = False
    error: str = ""

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        if viewer.is_admin:
            self.users = await backend.run(_rows)

    @rx.event
    @admin_required
    async def start_grant(self, viewer: Viewer, user_id: int):
        found = [u for u in self.users if u.id == int(user_id)]
        if found:
            self.grant_user, self.grant_open, self.error = found[0], True, ""

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
            self.users = await backend.run(_grant, actor_id=viewer.id, user_id=user_id, amount=amount, note=note)
        except (StoreError, ValueError) as exc:
            message = str(exc) if isinstance(exc, StoreError) else "no such user"
            self.error = message[:1].upper() + message[1:] + "."
            return
        self.grant_open, self.error = False, ""
        return rx.toast.success("Credits updated")

    @rx.event
    @admin_required
    async def set_api_enabled(self, viewer: Viewer, user_id: int, enabled: bool):
        try:
            self.users = await backend.run(_set_flags, user_id=int(user_id), api_enabled=bool(enabled))
        except StoreError as exc:
            return rx.toast.error(str(exc))

    @rx.event
    @admin_required
    async def set_admin(self, viewer: Viewer, user_id: int, is_admin: bool):
        if int(user_id) == viewer.id and not is_admin:
            return rx.toast.error("You cannot remove your own admin role; ask another admin.")
        try:
            self.users = await backend.run(_set_flags, user_id=int(user_id), is_admin=bool(is_admin))
        except StoreError as exc:
            return rx.toast.error(str(exc))


def _row(u: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(u.email),
        rx.table.cell(u.balance, text_align="right"),
        rx.table.cell(
            rx.badge(
                rx.cond(u.is_admin, "admin", "user"), variant="soft", color_scheme=rx.cond(u.is_admin, "purple", "gray")
            )
        ),
        rx.table.cell(
            rx.badge(
                rx.cond(u.api_enabled, "enabled", "disabled"),
                variant="soft",
                color_scheme=rx.cond(u.api_enabled, "green", "red"),
            )
        ),
        rx.table.cell(u.created, white_space="nowrap"),
        rx.table.cell(
            rx.hstack(
                rx.button("Credits…", size="1", variant="soft", on_click=UsersAdminState.start_grant(u.id)),
                rx.cond(
                    u.api_enabled,
                    rx.button(
                        "Disable API",
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        on_click=UsersAdminState.set_api_enabled(u.id, False),
                    ),
                    rx.button(
                        "Enable API",
                        size="1",
                        variant="soft",
                        color_scheme="green",
                        on_click=UsersAdminState.set_api_enabled(u.id, True),
                    ),
                ),
                rx.cond(
                    u.is_admin,
                    rx.button(
                        "Remove admin",
                        size="1",
                        variant="soft",
                        color_scheme="gray",
                        on_click=UsersAdminState.set_admin(u.id, False),
                    ),
                    rx.button(
                        "Make admin",
                        size="1",
                        variant="soft",
                        color_scheme="purple",
                        on_click=UsersAdminState.set_admin(u.id, True),
                    ),
                ),
                spacing="2",
            )
        ),
    )


def _grant_dialog() -> rx.Component:
    u = UsersAdminState.grant_user
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Credits for ", u.email),
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
                        rx.input(
                            id="grant-note",
                            name="note",
                            required=True,
                            max_length=MAX_NOTE,
                            placeholder="why, for the ledger",
                        ),
                    ),
                    error_callout(UsersAdminState.error),
                    dialog_actions("Apply"),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=UsersAdminState.grant_credits,
                reset_on_submit=False,
                key=u.id,
            ),
            max_width="28rem",
        ),
        open=UsersAdminState.grant_open,
        on_open_change=UsersAdminState.set_grant_open,
    )


def admin_users_page() -> rx.Component:
    return page_shell(
        "Users",
        admin_only(
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in ("Email", "Balance", "Role", "API access", "Created (UTC)", "")
                        ]
                    )
                ),
                rx.table.body(rx.foreach(UsersAdminState.users, _row)),
                variant="surface",
                size="1",
                width="100%",
            ),
            _grant_dialog(),
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(admin_users_page, route=routes.ADMIN_USERS, title="Users", on_load=UsersAdminState.load)
