"""Admin → Users → one user (`/admin/users/<id>`): balance, role, API access and key limit
with the same actions as the list, their keys, their usage of the last 30 days, their recent
requests and their ledger."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import admin_usage, keys, usage
from store.errors import NotFound
from store.money import format_credits

from .. import backend, routes
from ..auth import Viewer
from ..components.layout import admin_only, page_shell
from ..components.tables import data_table, split_time_cell, truncated, wrapping
from ..components.user_actions import UserActions, action_buttons, grant_dialog, key_limit_button, key_limit_dialog
from ..state import SessionState, viewer_required
from ..views import KeyRow, LedgerRow, LogRow, UserRow, key_row, ledger_row, log_row, user_row
from .api_keys import status_badge as key_status
from .credits import ledger_table
from .logs import log_table

RECENT = 20
USAGE_DAYS = 30


def _account(session: Session, *, viewer_id: int, user_id: int) -> dict:
    user = admin_usage.user_account(session, user_id=user_id)
    names = usage.key_names(session, user_id=user_id)
    days = admin_usage.usage_for_user(session, user_id=user_id, days=USAGE_DAYS)
    return {
        "user": user_row(user, viewer_id, default_ceiling=backend.settings().max_key_rpm),
        "keys": [key_row(k) for k in keys.list_keys(session, user_id=user_id)],
        "recent": [log_row(r, names) for r in usage.logs_page(session, user_id=user_id, limit=RECENT)],
        "ledger": [ledger_row(e) for e in usage.ledger_lines(session, user_id=user_id, limit=RECENT)],
        "totals": {
            "requests": f"{days.requests:,}",
            "errors": f"{days.errors:,}",
            "spend": format_credits(days.spend),
            "latency": f"{days.mean_latency_ms:,} ms",
        },
    }


def user_id_of(path: str) -> int | None:
    """The id in `/admin/users/<id>` (None when it is not a number)."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return int(last) if last.isascii() and last.isdigit() and len(last) < 19 else None


class UserAdminState(UserActions, SessionState):
    user: UserRow = UserRow()
    loaded: bool = False
    found: bool = False
    keys: list[KeyRow] = []
    recent: list[LogRow] = []
    ledger: list[LedgerRow] = []
    totals: dict[str, str] = {}

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        if viewer.is_admin:  # a plain user sees the notice; nothing of the account loads
            await self._reload(viewer)

    async def _reload(self, viewer: Viewer) -> None:
        user_id = user_id_of(self.router.url.path)
        try:
            if user_id is None:
                raise NotFound("no such user")
            data = await backend.run(_account, viewer_id=viewer.id, user_id=user_id)
        except NotFound:
            self.found, self.loaded = False, True
            return
        self.found, self.loaded = True, True
        self.user, self.keys, self.recent = data["user"], data["keys"], data["recent"]
        self.ledger, self.totals = data["ledger"], data["totals"]

    def _shown(self, user_id: int) -> UserRow | None:
        return self.user if self.found and self.user.id == user_id else None


def _fact(label: str, value) -> rx.Component:
    return rx.data_list.item(rx.data_list.label(label), rx.data_list.value(value))


def _stat(label: str, value: rx.Var) -> rx.Component:
    return rx.card(
        rx.vstack(rx.text(label, size="2", color_scheme="gray"), rx.heading(value, size="5"), spacing="1"),
        flex="1",
        min_width="9rem",
    )


def _key(k: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(truncated(k.name, "12rem")),
        rx.table.cell(rx.code(k.display, variant="ghost", size="1"), white_space="nowrap"),
        split_time_cell(k.created, ""),
        split_time_cell(k.last_used, "never"),
        rx.table.cell(k.rate_limit, white_space="nowrap"),
        wrapping(k.budget, min_width="8rem"),
        split_time_cell(k.expires, "never"),
        rx.table.cell(key_status(k.status)),
    )


def _account_view() -> rx.Component:
    s, u, t = UserAdminState, UserAdminState.user, UserAdminState.totals
    return rx.vstack(
        rx.card(
            rx.flex(
                rx.data_list.root(
                    _fact("Email", rx.text(u.email, style={"overflow_wrap": "anywhere"})),
                    _fact("Balance", rx.text(u.balance, " credits", id="user-balance")),
                    _fact("Role", rx.cond(u.is_admin, "admin", "user")),
                    _fact("API access", rx.cond(u.api_enabled, "enabled", "disabled")),
                    _fact("Key limit", rx.box(key_limit_button(s, u), id="user-key-limit")),
                    _fact("Created (UTC)", u.created),
                    size="2",
                ),
                action_buttons(s, u),
                spacing="4",
                wrap="wrap",
                justify="between",
                width="100%",
            ),
            width="100%",
        ),
        rx.heading(f"Usage, last {USAGE_DAYS} days", size="4", as_="h2"),
        rx.flex(
            _stat("Requests", t["requests"]),
            _stat("Errors", t["errors"]),
            _stat("Credits spent", t["spend"]),
            _stat("Mean latency", t["latency"]),
            spacing="3",
            wrap="wrap",
            width="100%",
        ),
        rx.heading("API keys", size="4", as_="h2"),
        rx.cond(
            s.keys.length() > 0,
            data_table(
                ["Name", "Key", "Created (UTC)", "Last used", "Rate limit", "Budget", "Expires", "Status"],
                s.keys,
                _key,
                id="user-keys",
            ),
            rx.text("No keys.", size="2", color_scheme="gray"),
        ),
        rx.heading("Recent requests", size="4", as_="h2"),
        rx.cond(
            s.recent.length() > 0,
            rx.box(log_table(s.recent), id="user-requests", width="100%"),
            rx.text("No requests yet.", size="2", color_scheme="gray"),
        ),
        rx.heading("Ledger", size="4", as_="h2"),
        rx.cond(
            s.ledger.length() > 0,
            rx.box(ledger_table(s.ledger), id="user-ledger", width="100%"),
            rx.text("No credit movements.", size="2", color_scheme="gray"),
        ),
        grant_dialog(s),
        key_limit_dialog(s),
        spacing="4",
        width="100%",
    )


def admin_user_page() -> rx.Component:
    return page_shell(
        "User",
        admin_only(
            rx.link(
                rx.hstack(
                    rx.icon("arrow_left", size=14, aria_hidden="true"),
                    rx.text("All users"),
                    spacing="1",
                    align="center",
                ),
                href=routes.ADMIN_USERS,
                size="2",
            ),
            rx.cond(
                UserAdminState.found,
                _account_view(),
                rx.cond(
                    UserAdminState.loaded,
                    rx.callout("No such user.", icon="info", role="status"),
                    rx.spinner(size="3"),
                ),
            ),
        ),
    )


def add_pages(app: rx.App) -> None:
    # Before /admin/users itself (Reflex matches dynamic routes in the order they are added).
    app.add_page(admin_user_page, route=routes.ADMIN_USER, title="User", on_load=UserAdminState.load)
