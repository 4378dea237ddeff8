"""Overview (`/` when signed in): balance, requests and credits per day for 14 days, last 10 requests."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import credits, usage
from store.money import MICRO, format_credits

from .. import backend, routes
from ..components.layout import page_shell
from ..state import SessionState
from ..views import LogRow, log_row
from .logs import log_table

DAYS = 14


def _overview(session: Session, *, user_id: int) -> tuple[int, list[usage.DayUsage], list[LogRow]]:
    names = usage.key_names(session, user_id=user_id)
    recent = [log_row(r, names) for r in usage.logs_page(session, user_id=user_id, limit=10)]
    return credits.balance(session, user_id=user_id), usage.daily_usage(session, user_id=user_id, days=DAYS), recent


class OverviewState(SessionState):
    balance: str = "0"
    chart: list[dict[str, str | int | float]] = []
    requests_total: int = 0
    credits_total: str = "0"
    recent: list[LogRow] = []

    @rx.event
    async def load(self):
        """on_load of `/`: signed out, the landing page shows and nothing loads."""
        self.reset()
        viewer = await self._viewer()
        if viewer is None:
            return
        balance, days, self.recent = await backend.run(_overview, user_id=viewer.id)
        self.balance = format_credits(balance)
        # The chart's bar heights are the one place a number is handed over for drawing, not
        # for reading: each day's exact sum is converted once (the tooltip shows that day's
        # decimal, 6 places at most, which a float carries exactly as text).
        self.chart = [
            {"day": d.day.strftime("%b %d"), "requests": d.requests, "credits": d.credits / MICRO} for d in days
        ]
        self.requests_total = sum(d.requests for d in days)
        self.credits_total = format_credits(sum(d.credits for d in days))


def _stat(label: str, value: rx.Var, note: str = "") -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color_scheme="gray"),
            rx.heading(value, size="7"),
            rx.text(note, size="1", color_scheme="gray"),
            spacing="1",
        ),
        flex="1",
        min_width="12rem",
    )


def _chart(title: str, key: str, color: str, *, decimals: bool = False) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(title, size="2", weight="medium"),
            rx.recharts.bar_chart(
                rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                rx.recharts.x_axis(data_key="day", tick_line=False, font_size=11),
                rx.recharts.y_axis(allow_decimals=decimals, width=48, font_size=11),
                rx.recharts.graphing_tooltip(),
                rx.recharts.bar(data_key=key, fill=color, radius=[3, 3, 0, 0], name=title, is_animation_active=False),
                data=OverviewState.chart,
                width="100%",
                height=220,
            ),
            spacing="2",
            width="100%",
        ),
        flex="1",
        min_width="20rem",
    )


def overview() -> rx.Component:
    return page_shell(
        "Overview",
        rx.flex(
            _stat(
                "Balance",
                OverviewState.balance + rx.cond(OverviewState.balance == "1", " credit", " credits"),
                "Each request is charged for its usage.",
            ),
            _stat(f"Requests, last {DAYS} days", OverviewState.requests_total.to_string()),
            _stat(f"Credits spent, last {DAYS} days", OverviewState.credits_total),
            spacing="4",
            wrap="wrap",
            width="100%",
        ),
        rx.flex(
            _chart("Requests per day", "requests", "var(--accent-9)"),
            _chart("Credits spent per day", "credits", "var(--amber-9)", decimals=True),
            spacing="4",
            wrap="wrap",
            width="100%",
        ),
        rx.hstack(
            rx.heading("Recent requests", size="4", as_="h2"),
            rx.spacer(),
            rx.link("All logs", href=routes.LOGS, size="2"),
            width="100%",
            align="center",
        ),
        rx.cond(
            OverviewState.recent.length() > 0,
            log_table(OverviewState.recent),
            rx.callout(
                rx.text(
                    "No requests yet. ",
                    rx.link("Create an API key", href=routes.API_KEYS),
                    " and call the API with any OpenAI SDK.",
                ),
                icon="info",
            ),
        ),
    )
