"""Admin → Usage: spend, requests, errors and latency across users, per day and by user,
key and model, for the last 7, 30 or 90 days (store.admin_usage), as charts and tables;
and the operator's recent alerts (store.alerts), whatever became of their delivery."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import admin_usage, alerts
from store.money import MICRO, format_credits

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import DAY_CHOICES, report_intro
from ..components.layout import admin_only, page_shell
from ..components.tables import data_table, numeric, time_cell, truncated, wrapping
from ..state import SessionState, admin_required, viewer_required
from ..views import AlertRow, UsageLine, alert_row, percent, usage_line

DEFAULT_DAYS = "30"
TOP = 10
RECENT_ALERTS = 20


def _alerts(session: Session) -> list[AlertRow]:
    return [alert_row(a) for a in alerts.recent(session, limit=RECENT_ALERTS)]


GROUPS = (("user", "By user"), ("key", "By key"), ("model", "By model"))


def _report(session: Session, *, days: int) -> dict:
    per_day = admin_usage.usage_by(session, by="day", days=days)
    requests = sum(d.requests for d in per_day)
    errors = sum(d.errors for d in per_day)
    latency = sum(d.latency_total_ms for d in per_day)
    report: dict = {
        "totals": {
            "spend": format_credits(sum(d.spend for d in per_day)),
            "requests": f"{requests:,}",
            "errors": f"{errors:,} ({percent(errors, requests)})",
            "latency": f"{round(latency / requests):,} ms" if requests else "—",
        },
        # Chart heights are numbers handed over for drawing (the tables carry the exact
        # decimals): each day's exact sum is converted once.
        "per_day": [
            {
                "day": d.label[5:],  # MM-DD
                "spend": d.spend / MICRO,
                "requests": d.requests,
                "errors": d.errors,
                "latency": d.mean_latency_ms if d.requests else None,  # a gap, not a fall to 0
            }
            for d in per_day
        ],
    }
    for group, _title in GROUPS:
        rows = admin_usage.usage_by(session, by=group, days=days, limit=TOP)
        report[group] = [usage_line(r) for r in rows]
        report[f"{group}_chart"] = [{"name": usage_line(r).short, "spend": r.spend / MICRO} for r in rows]
    return report


class UsageAdminState(SessionState):
    days: str = DEFAULT_DAYS
    totals: dict[str, str] = {}
    per_day: list[dict[str, str | int | float | None]] = []
    by_user: list[UsageLine] = []
    by_key: list[UsageLine] = []
    by_model: list[UsageLine] = []
    user_chart: list[dict[str, str | float]] = []
    key_chart: list[dict[str, str | float]] = []
    model_chart: list[dict[str, str | float]] = []
    alerts: list[AlertRow] = []

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        if viewer.is_admin:  # a plain user sees the notice; nothing of the report loads
            await self._fetch()
            self.alerts = await backend.run(_alerts)

    async def _fetch(self) -> None:
        report = await backend.run(_report, days=int(self.days))
        self.totals, self.per_day = report["totals"], report["per_day"]
        self.by_user, self.by_key, self.by_model = report["user"], report["key"], report["model"]
        self.user_chart, self.key_chart, self.model_chart = (
            report["user_chart"],
            report["key_chart"],
            report["model_chart"],
        )

    @rx.event
    @admin_required
    async def set_days(self, viewer: Viewer, value: str):
        """Show the last 7, 30 or 90 days; admins only."""
        if value not in DAY_CHOICES:
            return rx.toast.error("Choose 7, 30 or 90 days.")
        self.days = value
        await self._fetch()


def _stat(label: str, value: rx.Var, stat_id: str) -> rx.Component:
    return rx.card(
        rx.vstack(rx.text(label, size="2", color_scheme="gray"), rx.heading(value, size="5", id=stat_id), spacing="1"),
        flex="1",
        min_width="10rem",
    )


def _card(title: str, *children: rx.Component) -> rx.Component:
    return rx.card(
        rx.vstack(rx.text(title, size="2", weight="medium"), *children, spacing="2", width="100%"),
        flex="1",
        min_width="min(100%, 22rem)",
    )


def _axis_x(key: str) -> rx.Component:
    return rx.recharts.x_axis(data_key=key, tick_line=False, font_size=11, min_tick_gap=8)


def _per_day_charts() -> rx.Component:
    data = UsageAdminState.per_day
    return rx.flex(
        _card(
            "Credits spent per day",
            rx.recharts.bar_chart(
                rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                _axis_x("day"),
                rx.recharts.y_axis(width=52, font_size=11),
                rx.recharts.graphing_tooltip(),
                rx.recharts.bar(
                    data_key="spend",
                    fill="var(--amber-9)",
                    name="Credits",
                    radius=[3, 3, 0, 0],
                    is_animation_active=False,
                ),
                data=data,
                width="100%",
                height=200,
            ),
        ),
        _card(
            "Requests and errors per day",
            rx.recharts.bar_chart(
                rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                _axis_x("day"),
                rx.recharts.y_axis(allow_decimals=False, width=44, font_size=11),
                rx.recharts.graphing_tooltip(),
                rx.recharts.legend(),
                rx.recharts.bar(
                    data_key="requests", fill="var(--accent-9)", name="Requests", is_animation_active=False
                ),
                rx.recharts.bar(data_key="errors", fill="var(--red-9)", name="Errors", is_animation_active=False),
                data=data,
                width="100%",
                height=200,
            ),
        ),
        _card(
            "Mean latency per day (ms)",
            rx.recharts.line_chart(
                rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                _axis_x("day"),
                rx.recharts.y_axis(allow_decimals=False, width=52, font_size=11),
                rx.recharts.graphing_tooltip(),
                rx.recharts.line(
                    data_key="latency", stroke="var(--teal-9)", name="Latency (ms)", dot=True, is_animation_active=False
                ),
                data=data,
                width="100%",
                height=200,
            ),
        ),
        spacing="4",
        wrap="wrap",
        width="100%",
    )


def _line(link_users: bool):
    def row(r: rx.Var) -> rx.Component:
        name = (
            rx.link(truncated(r.label, "18rem"), href="/admin/users/" + r.ref.to_string(), size="2")
            if link_users
            else truncated(r.label, "18rem")
        )
        return rx.table.row(
            rx.table.cell(name),
            numeric(r.requests),
            numeric(rx.text(r.errors, " ", rx.text(r.error_rate, as_="span", color_scheme="gray"), as_="span")),
            numeric(r.spend),
            numeric(r.latency),
        )

    return row


def _group(group: str, title: str, rows: rx.Var, chart: rx.Var) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading(title, size="4", as_="h2"),
            rx.cond(
                rows.length() > 0,
                rx.vstack(
                    rx.recharts.bar_chart(
                        rx.recharts.cartesian_grid(stroke_dasharray="3 3", horizontal=False),
                        rx.recharts.x_axis(type_="number", font_size=11),
                        rx.recharts.y_axis(data_key="name", type_="category", width=150, font_size=11),
                        rx.recharts.graphing_tooltip(),
                        rx.recharts.bar(
                            data_key="spend", fill="var(--amber-9)", name="Credits spent", is_animation_active=False
                        ),
                        data=chart,
                        layout="vertical",
                        width="100%",
                        height=rx.cond(chart.length() > 5, 260, 160),
                    ),
                    data_table(
                        [
                            {"user": "User", "key": "Key", "model": "Model"}[group],
                            ("Requests", {"text_align": "right"}),
                            ("Errors", {"text_align": "right"}),
                            ("Credits", {"text_align": "right"}),
                            ("Mean latency", {"text_align": "right"}),
                        ],
                        rows,
                        _line(group == "user"),
                    ),
                    spacing="3",
                    width="100%",
                ),
                rx.text("No requests in this period.", size="2", color_scheme="gray"),
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id=f"usage-by-{group}",
    )


def _alert(a: rx.Var) -> rx.Component:
    return rx.table.row(
        time_cell(a.time[:10], a.time[11:], a.time),
        rx.table.cell(rx.badge(a.kind, variant="soft", color_scheme="orange"), white_space="nowrap"),
        wrapping(a.summary),
        rx.table.cell(
            rx.badge(
                a.status,
                variant="soft",
                color_scheme=rx.match(a.status, ("delivered", "green"), ("failed", "red"), "gray"),
            )
        ),
    )


def _recent_alerts() -> rx.Component:
    s = UsageAdminState
    return rx.vstack(
        rx.heading("Recent alerts", size="4", as_="h2"),
        rx.text(
            "Low balances, key budgets, upstream error spikes and payment shortfalls, as sent to "
            "ALERT_WEBHOOK_URL (nothing is queued while it is unset).",
            size="2",
            color_scheme="gray",
        ),
        rx.cond(
            s.alerts.length() > 0,
            data_table(["Time (UTC)", "Type", "What", "Delivery"], s.alerts, _alert, id="recent-alerts"),
            rx.text("No alerts yet.", size="2", color_scheme="gray"),
        ),
        spacing="2",
        width="100%",
    )


def admin_usage_page() -> rx.Component:
    s, t = UsageAdminState, UsageAdminState.totals
    return page_shell(
        "Usage",
        admin_only(
            report_intro(
                "Every user's requests through /api/v1 (requests without a valid key are left out). "
                "Credits are what was charged, less refunds; errors are requests answered 4xx or 5xx.",
                days=s.days,
                on_change=s.set_days,
            ),
            rx.flex(
                _stat("Credits spent", t["spend"], "usage-spend"),
                _stat("Requests", t["requests"], "usage-requests"),
                _stat("Errors", t["errors"], "usage-errors"),
                _stat("Mean latency", t["latency"], "usage-latency"),
                spacing="4",
                wrap="wrap",
                width="100%",
            ),
            _per_day_charts(),
            _group("user", "By user", s.by_user, s.user_chart),
            _group("key", "By key", s.by_key, s.key_chart),
            _group("model", "By model", s.by_model, s.model_chart),
            _recent_alerts(),
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(admin_usage_page, route=routes.ADMIN_USAGE, title="Usage", on_load=UsageAdminState.load)
