"""Credits: the balance and the ledger, newest first, keyset-paged: one line per request
(its hold and its settlement together), grant and refund (store.usage.ledger_lines)."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import credits, usage
from store.money import format_credits

from .. import backend, routes
from ..auth import Viewer
from ..components.layout import page_shell
from ..components.tables import data_table, numeric, time_cell, wrapping
from ..paging import KeysetPaging
from ..state import SessionState, viewer_required
from ..views import LedgerRow, ledger_row

PAGE_SIZE = 25


def _page(session: Session, *, user_id: int, before_id: int | None) -> tuple[str, list[LedgerRow], bool]:
    lines = usage.ledger_lines(session, user_id=user_id, limit=PAGE_SIZE + 1, before_id=before_id)
    return (
        format_credits(credits.balance(session, user_id=user_id)),
        [ledger_row(e) for e in lines[:PAGE_SIZE]],
        len(lines) > PAGE_SIZE,
    )


class CreditsState(KeysetPaging, SessionState):
    balance: str = "0"
    entries: list[LedgerRow] = []
    _rows_var: str = "entries"

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        await self._fetch(viewer.id)

    async def _load_page(self, user_id: int, before_id: int | None) -> None:
        self.balance, self.entries, self.has_next = await backend.run(_page, user_id=user_id, before_id=before_id)


def _row(e: rx.Var) -> rx.Component:
    return rx.table.row(
        time_cell(e.day, e.clock, e.time),
        rx.table.cell(
            rx.badge(
                e.kind,
                variant="soft",
                color_scheme=rx.match(e.kind, ("grant", "blue"), ("refunded", "green"), ("refund", "green"), "gray"),
            )
        ),
        wrapping(e.detail),
        numeric(rx.text(e.amount, color_scheme=rx.cond(e.positive, "green", "gray"), weight="medium")),
    )


def ledger_table(entries: rx.Var) -> rx.Component:
    return data_table(["Time (UTC)", "Kind", "Details", ("Amount", {"text_align": "right"})], entries, _row)


def credits_page() -> rx.Component:
    return page_shell(
        "Credits",
        rx.card(
            rx.vstack(
                rx.text("Balance", size="2", color_scheme="gray"),
                rx.heading(
                    CreditsState.balance + rx.cond(CreditsState.balance == "1", " credit", " credits"),
                    size="7",
                    id="balance",
                ),
                rx.text(
                    "A request holds the most it can cost, then is charged what its usage says and the "
                    "rest comes back; a failed call is refunded. Ask an admin for more credits.",
                    size="1",
                    color_scheme="gray",
                ),
                spacing="1",
            ),
        ),
        rx.heading("Ledger", size="4", as_="h2"),
        rx.cond(
            CreditsState.entries.length() > 0,
            ledger_table(CreditsState.entries),
            rx.callout("No credit movements yet.", icon="info"),
        ),
        rx.hstack(
            rx.button("Newer", on_click=CreditsState.previous_page, disabled=CreditsState.page <= 1, variant="soft"),
            rx.text("Page ", CreditsState.page, size="2"),
            rx.button("Older", on_click=CreditsState.next_page, disabled=~CreditsState.has_next, variant="soft"),
            align="center",
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(credits_page, route=routes.CREDITS, title="Credits", on_load=CreditsState.load)
