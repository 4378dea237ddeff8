"""Admin → Margin: per model and UTC day, requests, tokens, credits charged, the upstream's
cost in USD and the margin (store.margin, the same report as `python -m store margin`)."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store.margin import margin_by_model_day, usd_text
from store.money import format_credits

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import DAY_CHOICES, report_intro
from ..components.layout import admin_only, page_shell
from ..components.tables import data_table, numeric, truncated
from ..state import SessionState, admin_required, viewer_required
from ..views import MarginLine, margin_line, signed

DEFAULT_DAYS = "30"


def _report(session: Session, *, days: int) -> tuple[list[MarginLine], dict[str, str]]:
    rate = backend.settings().credits_per_usd
    rows = margin_by_model_day(session, credits_per_usd=rate, days=days)
    margin = sum(r.margin for r in rows)
    totals = {
        "requests": f"{sum(r.requests for r in rows):,}",
        "charged": format_credits(sum(r.charged for r in rows)),
        "upstream_usd": usd_text(sum(r.upstream_usd for r in rows)),
        "margin": signed(margin),
        "unpriced": str(sum(r.unpriced for r in rows)),
        "rate": format_credits(int(rate * 1_000_000)),
    }
    return [margin_line(r) for r in rows], totals


class MarginAdminState(SessionState):
    rows: list[MarginLine] = []
    totals: dict[str, str] = {}
    days: str = DEFAULT_DAYS

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        if viewer.is_admin:  # a plain user sees the notice; nothing of the report loads
            self.rows, self.totals = await backend.run(_report, days=int(self.days))

    @rx.event
    @admin_required
    async def set_days(self, viewer: Viewer, value: str):
        """Show the last 7, 30 or 90 days; admins only."""
        if value not in DAY_CHOICES:
            return rx.toast.error("Choose 7, 30 or 90 days.")
        self.days = value
        self.rows, self.totals = await backend.run(_report, days=int(value))


def _row(r: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(r.day, white_space="nowrap"),
        rx.table.cell(truncated(r.model, "12rem", code=True)),
        numeric(r.requests),
        numeric(r.prompt_tokens + " / " + r.completion_tokens),
        numeric(r.charged),
        numeric(r.upstream_usd),
        numeric(rx.text(r.margin, color_scheme=rx.cond(r.negative, "red", "green"), weight="medium")),
        numeric(rx.cond(r.unpriced > 0, r.unpriced.to_string(), "")),
    )


HEADERS = [
    "Day (UTC)",
    "Model",
    *[
        (h, {"text_align": "right"})
        for h in (
            "Requests",
            "Tokens (prompt / completion)",
            "Credits charged",
            "Upstream USD",
            "Margin (credits)",
            "Unpriced",
        )
    ],
]


def _total(label: str, value: rx.Var) -> rx.Component:
    return rx.card(
        rx.vstack(rx.text(label, size="2", color_scheme="gray"), rx.heading(value, size="5"), spacing="1"),
        flex="1",
        min_width="10rem",
    )


def admin_margin_page() -> rx.Component:
    t = MarginAdminState.totals
    return page_shell(
        "Margin",
        admin_only(
            report_intro(
                "What was charged against what the upstream reported it cost. Upstream USD becomes credits at ",
                t["rate"],
                " credits per USD (CREDITS_PER_USD); requests without a "
                "reported cost count as costing 0 (column Unpriced).",
                days=MarginAdminState.days,
                on_change=MarginAdminState.set_days,
            ),
            rx.flex(
                _total("Requests", t["requests"]),
                _total("Credits charged", t["charged"]),
                _total("Upstream cost (USD)", t["upstream_usd"]),
                _total("Margin (credits)", t["margin"]),
                spacing="4",
                wrap="wrap",
                width="100%",
            ),
            rx.cond(
                MarginAdminState.rows.length() > 0,
                data_table(HEADERS, MarginAdminState.rows, _row),
                rx.callout("No charged requests in this period.", icon="info"),
            ),
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(admin_margin_page, route=routes.ADMIN_MARGIN, title="Margin", on_load=MarginAdminState.load)
