"""Admin → Users: search by email, sort, 25 a page; each user's balance, role, API access
and key limit, their own page, and the actions (components/user_actions.py); below them
the sign-up invites and redemption codes (admin_invites.py)."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import admin_usage
from store.errors import StoreError

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import sentence
from ..components.layout import admin_only, page_shell
from ..components.tables import data_table, numeric, truncated
from ..components.user_actions import UserActions, action_buttons, grant_dialog, key_limit_button, key_limit_dialog
from ..state import SessionState, admin_required, viewer_required
from ..views import UserRow, user_row
from .admin_invites import InvitesAdminState, invites_and_codes, issue_buttons, shown_once_panels

# value -> (label, store sort, descending)
SORTS = {
    "created_desc": ("Newest first", "created", True),
    "created_asc": ("Oldest first", "created", False),
    "email_asc": ("Email A–Z", "email", False),
    "email_desc": ("Email Z–A", "email", True),
    "balance_desc": ("Balance, highest first", "balance", True),
    "balance_asc": ("Balance, lowest first", "balance", False),
}
DEFAULT_SORT = "created_desc"


def _page(
    session: Session, *, viewer_id: int, search: str, sort: str, page: int
) -> tuple[list[UserRow], int, int, int]:
    _label, key, descending = SORTS[sort]
    found = admin_usage.users_page(session, search=search, sort=key, descending=descending, page=page)
    rows = [user_row(u, viewer_id, default_ceiling=backend.settings().max_key_rpm) for u in found.users]
    return rows, found.total, found.page, found.pages


class UsersAdminState(UserActions, SessionState):
    users: list[UserRow] = []
    search: str = ""  # as applied (the field may hold more)
    sort: str = DEFAULT_SORT
    page: int = 1
    pages: int = 1
    total: int = 0

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        if viewer.is_admin:  # a plain user sees the notice; nothing of the list loads
            await self._reload(viewer)

    async def _reload(self, viewer: Viewer) -> None:
        self.users, self.total, self.page, self.pages = await backend.run(
            _page, viewer_id=viewer.id, search=self.search, sort=self.sort, page=self.page
        )

    def _shown(self, user_id: int) -> UserRow | None:
        return next((u for u in self.users if u.id == user_id), None)

    @rx.event
    @admin_required
    async def search_users(self, viewer: Viewer, form_data: dict):
        """The first page of users whose email contains what was typed."""
        search = str(form_data.get("search", "") or "").strip()
        if len(search) > admin_usage.MAX_SEARCH:
            return rx.toast.error(sentence(f"a search is at most {admin_usage.MAX_SEARCH} characters"))
        self.search, self.page = search, 1
        try:
            await self._reload(viewer)
        except StoreError as exc:
            return rx.toast.error(sentence(str(exc)))

    @rx.event
    @admin_required
    async def set_sort(self, viewer: Viewer, value: str):
        if value not in SORTS:
            return rx.toast.error("Choose a sort order from the list.")
        self.sort, self.page = value, 1
        await self._reload(viewer)

    @rx.event
    @admin_required
    async def next_page(self, viewer: Viewer):
        if self.page < self.pages:
            self.page += 1
            await self._reload(viewer)

    @rx.event
    @admin_required
    async def previous_page(self, viewer: Viewer):
        if self.page > 1:
            self.page -= 1
            await self._reload(viewer)


def user_link(u: rx.Var) -> rx.Component:
    return rx.link(truncated(u.email, "16rem"), href="/admin/users/" + u.id.to_string(), size="2")


def _row(u: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(user_link(u), rx.cond(u.you, rx.badge("you", variant="outline", size="1")), align="center")
        ),
        numeric(u.balance),
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
        rx.table.cell(key_limit_button(UsersAdminState, u)),
        rx.table.cell(u.created, white_space="nowrap"),
        rx.table.cell(action_buttons(UsersAdminState, u)),
    )


def _controls() -> rx.Component:
    return rx.flex(
        rx.form(
            rx.flex(
                rx.input(
                    name="search",
                    type="search",
                    placeholder="Search by email",
                    aria_label="Search by email",
                    default_value=UsersAdminState.search,
                    min_width="12rem",
                    flex="1",
                ),
                rx.button("Search", type="submit", variant="soft"),
                spacing="2",
                width="100%",
            ),
            on_submit=UsersAdminState.search_users,
            reset_on_submit=False,
            flex="1",
            min_width="16rem",
            max_width="28rem",
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Sort"),
            rx.select.content(*[rx.select.item(label, value=v) for v, (label, _k, _d) in SORTS.items()]),
            value=UsersAdminState.sort,
            on_change=UsersAdminState.set_sort,
        ),
        spacing="3",
        wrap="wrap",
        align="center",
        width="100%",
    )


def _pager() -> rx.Component:
    s = UsersAdminState
    return rx.flex(
        rx.button("Previous", on_click=s.previous_page, disabled=s.page <= 1, variant="soft"),
        rx.text(
            "Page ",
            s.page,
            " of ",
            s.pages,
            " · ",
            s.total,
            rx.cond(s.total == 1, " user", " users"),
            size="2",
            id="users-page",
        ),
        rx.button("Next", on_click=s.next_page, disabled=s.page >= s.pages, variant="soft"),
        spacing="3",
        align="center",
        wrap="wrap",
    )


USER_HEADERS = ["Email", ("Balance", {"text_align": "right"}), "Role", "API access", "Key limit", "Created (UTC)", ""]


def admin_users_page() -> rx.Component:
    return page_shell(
        "Users",
        admin_only(
            shown_once_panels(),
            _controls(),
            rx.cond(
                UsersAdminState.users.length() > 0,
                data_table(
                    USER_HEADERS,
                    UsersAdminState.users,
                    _row,
                ),
                rx.callout("No users match.", icon="info"),
            ),
            _pager(),
            grant_dialog(UsersAdminState),
            key_limit_dialog(UsersAdminState),
            invites_and_codes(),
        ),
        actions=rx.cond(SessionState.is_admin, issue_buttons()),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(
        admin_users_page,
        route=routes.ADMIN_USERS,
        title="Users",
        on_load=[UsersAdminState.load, InvitesAdminState.load],
    )
