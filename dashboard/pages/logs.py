"""Logs: the user's request logs, filtered, keyset-paged, exported as CSV; a row opens its details."""

from __future__ import annotations

from urllib.parse import urlencode

import reflex as rx
from sqlmodel import Session

from store import keys, registry, usage
from store.errors import StoreError

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import error_callout, field, sentence
from ..components.layout import page_shell
from ..components.tables import numeric, time_cell, truncated
from ..paging import KeysetPaging
from ..state import SessionState, viewer_required
from ..views import LogRow, log_row

PAGE_SIZE = 50
STATUS_OPTIONS = [
    ("all", "Any status"),
    ("2xx", "Success (2xx)"),
    ("errors", "Errors (4xx and 5xx)"),
    ("4xx", "Client errors (4xx)"),
    ("5xx", "Server errors (5xx)"),
    ("400", "400"),
    ("401", "401"),
    ("402", "402 insufficient credits"),
    ("403", "403"),
    ("404", "404"),
    ("429", "429 rate limited"),
    ("502", "502 provider error"),
    ("503", "503"),
    ("504", "504"),
]


def _page(
    session: Session, *, user_id: int, filters: usage.LogFilter, before_id: int | None
) -> tuple[list[LogRow], bool]:
    rows = usage.logs_page(session, user_id=user_id, filters=filters, limit=PAGE_SIZE + 1, before_id=before_id)
    names = usage.key_names(session, user_id=user_id)
    return [log_row(r, names) for r in rows[:PAGE_SIZE]], len(rows) > PAGE_SIZE


def _options(session: Session, *, user_id: int) -> tuple[list[list[str]], list[str]]:
    key_options = [[str(k.id), f"{k.name} ({k.prefix}…{k.last4})"] for k in keys.list_keys(session, user_id=user_id)]
    return key_options, [m.id for m in registry.list_models(session)]


def _detail(session: Session, *, user_id: int, log_id: int) -> LogRow | None:
    row = usage.log_entry(session, user_id=user_id, log_id=log_id)
    return None if row is None else log_row(row, usage.key_names(session, user_id=user_id))


class LogsState(KeysetPaging, SessionState):
    rows: list[LogRow] = []
    error: str = ""
    # The filter form, as typed, and the filter the rows show (query-string form).
    key: str = "all"
    model: str = "all"
    status: str = "all"
    since: str = ""
    until: str = ""
    applied: dict[str, str] = {}
    key_options: list[list[str]] = []
    model_options: list[str] = []
    detail: LogRow = LogRow()
    detail_open: bool = False
    _rows_var: str = "rows"

    @rx.var
    def export_href(self) -> str:
        query = urlencode(self.applied)
        return f"{routes.EXPORT_LOGS}?{query}" if query else routes.EXPORT_LOGS

    @rx.var
    def showing(self) -> str:
        """The filter the rows are listed under, in words."""
        names = {value: label for value, label in self.key_options}
        a = self.applied
        parts = []
        if "key" in a:
            parts.append(f"key {names.get(a['key'], a['key'])}")
        if "model" in a:
            parts.append(f"model {a['model']}")
        if "status" in a:
            parts.append(f"status {a['status']}")
        if "since" in a and "until" in a:
            parts.append(f"{a['since']} to {a['until']} (UTC)")
        elif "since" in a:
            parts.append(f"from {a['since']} (UTC)")
        elif "until" in a:
            parts.append(f"up to {a['until']} (UTC)")
        return "Showing requests with " + ", ".join(parts) + "." if parts else "Showing all requests."

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        self.key_options, self.model_options = await backend.run(_options, user_id=viewer.id)
        await self._fetch(viewer.id)

    async def _load_page(self, user_id: int, before_id: int | None) -> None:
        filters = usage.LogFilter.parse(**self.applied)
        self.rows, self.has_next = await backend.run(_page, user_id=user_id, filters=filters, before_id=before_id)

    @rx.event
    @viewer_required
    async def apply_filters(self, viewer: Viewer, form_data: dict):
        """Show the first page under the form's filters; a bad filter changes nothing."""
        values = {name: str(form_data.get(name, "") or "") for name in ("key", "model", "status", "since", "until")}
        try:
            filters = usage.LogFilter.parse(**values)
        except StoreError as exc:
            self.error = sentence(str(exc)) + " The list still shows the last filter that worked."
            return
        self.error = ""
        self.applied = filters.as_query()
        self._cursors = []
        await self._fetch(viewer.id)

    @rx.event
    @viewer_required
    async def clear_filters(self, viewer: Viewer):
        self.key, self.model, self.status, self.since, self.until = "all", "all", "all", "", ""
        self.error, self.applied, self._cursors = "", {}, []
        await self._fetch(viewer.id)

    @rx.event
    @viewer_required
    async def show_detail(self, viewer: Viewer, log_id: int):
        detail = await backend.run(_detail, user_id=viewer.id, log_id=int(log_id))
        if detail is not None:
            self.detail, self.detail_open = detail, True

    @rx.event
    def set_detail_open(self, value: bool):
        self.detail_open = value

    @rx.event
    def set_key(self, value: str):
        self.key = value

    @rx.event
    def set_model(self, value: str):
        self.model = value

    @rx.event
    def set_status(self, value: str):
        self.status = value

    @rx.event
    def set_since(self, value: str):
        self.since = value

    @rx.event
    def set_until(self, value: str):
        self.until = value


def status_badge(status: rx.Var, ok: rx.Var) -> rx.Component:
    return rx.badge(status, color_scheme=rx.cond(ok, "green", "red"), variant="soft")


HEADERS = ["Time (UTC)", "Key", "Endpoint", "Model", "Status", "Latency", "Tokens", "Credits"]


def log_table(rows: rx.Var, *, details: bool = False) -> rx.Component:
    """The log rows as a table that fits 1280 px: long keys, endpoints and models are cut
    (hover shows them whole), an error's code sits under its status; with `details`, each
    row has a button that opens everything about it."""

    def row(r: rx.Var) -> rx.Component:
        cells = [
            time_cell(r.day, r.clock, r.time),
            rx.table.cell(truncated(r.key, "8rem")),
            rx.table.cell(truncated(r.endpoint, "10rem", code=True)),
            rx.table.cell(truncated(r.model, "9rem")),
            rx.table.cell(
                rx.vstack(
                    status_badge(r.status, r.ok),
                    rx.cond(
                        r.error_code != "",
                        rx.text(
                            r.error_code, size="1", color_scheme="gray", class_name="code-wrap", title=r.error_text
                        ),
                    ),
                    spacing="1",
                ),
            ),
            numeric(r.latency_ms.to_string() + " ms"),
            numeric(r.token_line, title="prompt / completion tokens"),
            numeric(r.credits),
        ]
        if details:
            cells.append(
                rx.table.cell(
                    rx.icon_button(
                        rx.icon("panel_right_open", size=16),
                        size="1",
                        variant="ghost",
                        aria_label="Details",
                        title="Details",
                        on_click=LogsState.show_detail(r.id),
                    )
                )
            )
        return rx.table.row(*cells, on_double_click=LogsState.show_detail(r.id) if details else None)

    return rx.table.root(
        rx.table.header(
            rx.table.row(
                *[rx.table.column_header_cell(h, white_space="nowrap") for h in HEADERS[:5]],
                rx.table.column_header_cell("Latency", text_align="right"),
                rx.table.column_header_cell("Tokens", text_align="right", title="prompt / completion"),
                rx.table.column_header_cell("Credits", text_align="right"),
                *(
                    [rx.table.column_header_cell(rx.el.span("Details", class_name="visually-hidden"))]
                    if details
                    else []
                ),
            )
        ),
        rx.table.body(rx.foreach(rows, row)),
        variant="surface",
        size="1",
        width="100%",
    )


def _select(label: str, name: str, value: rx.Var, on_change, *items: rx.Component) -> rx.Component:
    return rx.box(
        field(
            label,
            name,
            rx.select.root(
                rx.select.trigger(id=name, width="100%"),
                rx.select.content(*items),
                name=name,
                value=value,
                on_change=on_change,
            ),
        ),
        min_width="12rem",
    )


def _filters() -> rx.Component:
    return rx.form(
        rx.flex(
            _select(
                "Key",
                "key",
                LogsState.key,
                LogsState.set_key,
                rx.select.item("All keys", value="all"),
                rx.foreach(LogsState.key_options, lambda o: rx.select.item(o[1], value=o[0])),
            ),
            _select(
                "Model",
                "model",
                LogsState.model,
                LogsState.set_model,
                rx.select.item("All models", value="all"),
                rx.foreach(LogsState.model_options, lambda m: rx.select.item(m, value=m)),
            ),
            _select(
                "Status",
                "status",
                LogsState.status,
                LogsState.set_status,
                *[rx.select.item(text, value=v) for v, text in STATUS_OPTIONS],
            ),
            rx.box(
                field(
                    "From",
                    "since",
                    rx.input(
                        id="since", name="since", type="date", value=LogsState.since, on_change=LogsState.set_since
                    ),
                ),
                width="10rem",
            ),
            rx.box(
                field(
                    "To",
                    "until",
                    rx.input(
                        id="until", name="until", type="date", value=LogsState.until, on_change=LogsState.set_until
                    ),
                ),
                width="10rem",
            ),
            rx.hstack(
                rx.button("Apply filters", type="submit"),
                rx.button(
                    "Clear", type="button", variant="soft", color_scheme="gray", on_click=LogsState.clear_filters
                ),
                align="end",
            ),
            spacing="3",
            wrap="wrap",
            align="end",
            width="100%",
        ),
        on_submit=LogsState.apply_filters,
        width="100%",
    )


def _detail_dialog() -> rx.Component:
    d = LogsState.detail

    def item(label: str, value) -> rx.Component:
        return rx.data_list.item(rx.data_list.label(label), rx.data_list.value(value))

    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Request details"),
            rx.data_list.root(
                item("Request id", rx.code(d.request_id)),
                item("Time (UTC)", d.time),
                item("Key", d.key),
                item("Endpoint", d.endpoint),
                item("Model", d.model),
                item("Status", status_badge(d.status, d.ok)),
                rx.cond(
                    d.error_code != "",
                    item(
                        "Error",
                        rx.vstack(
                            rx.code(d.error_code, variant="ghost"),
                            rx.text(d.error_text, size="2"),
                            spacing="1",
                        ),
                    ),
                ),
                item("Latency", d.latency_ms.to_string() + " ms"),
                item("Credits charged", d.credits),
                item("Streamed", rx.cond(d.stream, "yes", "no")),
                item("Tokens", d.token_detail),
                item("Upstream id", rx.cond(d.upstream_id != "", d.upstream_id, "—")),
                rx.cond(d.task_id != "", item("Image task", rx.code(d.task_id, variant="ghost"))),
                size="2",
            ),
            rx.flex(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                justify="end",
                margin_top="1em",
            ),
            max_width="36rem",
        ),
        open=LogsState.detail_open,
        on_open_change=LogsState.set_detail_open,
    )


def logs_page() -> rx.Component:
    return page_shell(
        "Logs",
        _filters(),
        error_callout(LogsState.error),
        rx.text(LogsState.showing, size="2", color_scheme="gray", id="logs-showing"),
        rx.cond(
            LogsState.rows.length() > 0,
            log_table(LogsState.rows, details=True),
            rx.callout("No requests match.", icon="info"),
        ),
        rx.hstack(
            rx.button("Newer", on_click=LogsState.previous_page, disabled=LogsState.page <= 1, variant="soft"),
            rx.text("Page ", LogsState.page, size="2"),
            rx.button("Older", on_click=LogsState.next_page, disabled=~LogsState.has_next, variant="soft"),
            align="center",
        ),
        _detail_dialog(),
        # A document link, not the client router's (which would look for a page there and
        # show "404"): the browser fetches the backend route and saves what it answers.
        actions=rx.button(
            rx.el.a(
                rx.icon("download", size=16),
                "Export CSV",
                href=LogsState.export_href,
                download="request-logs.csv",
                reload_document=True,
            ),
            as_child=True,
            variant="soft",
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(logs_page, route=routes.LOGS, title="Logs", on_load=LogsState.load)
