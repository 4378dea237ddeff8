"""Settings → API Keys: create (the full key shown once) with optional controls (a budget
with its period, a model allow-list, an expiry), list, edit, disable / enable, revoke.

The full key never enters this page's Reflex state (which the state manager writes to
`.states/` or Redis, and a hydrate sends to whoever holds the tab's token): the page's
script posts the form to `POST /auth/keys` (the session cookie authenticates it), writes
the answer's key into the `#new-key` element, and tells the state only the key's name.
"""

from __future__ import annotations

import json

import reflex as rx
from sqlmodel import Session

from store import keys
from store.errors import InvalidInput, NotFound, StoreError

from .. import backend, routes
from ..auth import Viewer
from ..auth_routes import RATE_LIMIT_ERROR, parse_rate_limit
from ..components.forms import dialog_actions, error_callout, field, sentence
from ..components.layout import page_shell
from ..components.tables import data_table, split_time_cell, truncated, wrapping
from ..state import SessionState, viewer_required
from ..views import KeyRow, key_row

NEW_KEY_ID = "new-key"
KEY_NAME_ID = "key-name"


def _rows(session: Session, *, user_id: int) -> list[KeyRow]:
    return [key_row(k) for k in keys.list_keys(session, user_id=user_id)]


def _set_enabled(session: Session, *, user_id: int, key_id: int, enabled: bool) -> list[KeyRow]:
    keys.set_key_enabled(session, key_id=key_id, enabled=enabled, user_id=user_id)
    return _rows(session, user_id=user_id)


def _revoke(session: Session, *, user_id: int, key_id: int) -> list[KeyRow]:
    keys.revoke_key(session, key_id=key_id, user_id=user_id)
    return _rows(session, user_id=user_id)


def _edit(session: Session, *, user_id: int, key_id: int, form: dict, ceiling: int) -> list[KeyRow]:
    """Save the Edit form through `keys.edit_key` (which checks everything again). A field
    left as the form showed it is not touched: a key whose expiry has passed can still be
    renamed, a model since removed from the registry does not block it, and a rate limit
    over a ceiling lowered since stays as it is."""
    current = next((k for k in keys.list_keys(session, user_id=user_id) if k.id == key_id), None)
    if current is None:
        raise NotFound("no such key")
    shown = key_row(current)

    def text(name: str) -> str:
        return str(form.get(name, "") or "").strip()

    rpm: int | None = None
    if text("rate_limit") != shown.rpm_value:
        rpm = parse_rate_limit(text("rate_limit"))
        if rpm is None:
            raise InvalidInput(RATE_LIMIT_ERROR)
    models = keys.parse_models(text("models"))
    expires = keys.parse_expiry(text("expires"))
    keys.edit_key(
        session,
        key_id=key_id,
        user_id=user_id,
        name=text("name"),
        rate_limit_per_minute=rpm,
        budget=keys.parse_budget(text("budget")),
        budget_period=keys.parse_period(text("budget_period")),
        models=None if models == keys.models_of(current) else models,
        expires_at=None if text("expires") == shown.expires_value else expires,
        self_service_ceiling=ceiling,
    )
    return _rows(session, user_id=user_id)


CREATE_FIELDS = ("name", "rate_limit", "budget", "budget_period", "models", "expires")


def create_script(form_data: dict) -> str:
    """Page script: post the form to the key route, put the key into #new-key, and
    resolve to what the state may know ({"name"} or {"error"}), never the key."""
    body = json.dumps({name: str(form_data.get(name, "") or "") for name in CREATE_FIELDS})
    return f"""(async () => {{
  const shown = document.getElementById({json.dumps(NEW_KEY_ID)});
  shown.textContent = "";
  try {{
    const answer = await fetch({json.dumps(routes.AUTH_KEYS)}, {{method: "POST", credentials: "same-origin",
      cache: "no-store", body: new URLSearchParams({body})}});
    const data = await answer.json().catch(() => ({{}}));
    if (!answer.ok || !data.key) return {{error: data.error || "The key could not be created. Try again."}};
    shown.textContent = data.key;
    return {{name: data.name}};
  }} catch (e) {{
    return {{error: "The key could not be created. Try again."}};
  }}
}})()"""


CLEAR_SCRIPT = f"document.getElementById({json.dumps(NEW_KEY_ID)}).textContent = ''"
COPY_SCRIPT = f"navigator.clipboard.writeText(document.getElementById({json.dumps(NEW_KEY_ID)}).textContent)"


def prefilled_rate_limit(default: int, ceiling: int) -> int:
    """The create form's rate limit: the platform's default, within the account's ceiling
    (0: none), and never unlimited under one."""
    if not ceiling:
        return default
    return min(default, ceiling) if default else ceiling


def rate_limit_hint(ceiling: int) -> str:
    if not ceiling:
        return "Requests per minute; 0 means unlimited."
    return f"At most {ceiling:,} requests per minute for this account."


class KeysState(SessionState):
    keys: list[KeyRow] = []
    error: str = ""
    default_rate_limit: str = "60"
    rate_limit_hint: str = rate_limit_hint(0)
    # The name of the key just created; its full text is only in the page (see above).
    new_key_name: str = ""
    revoke_id: int = 0
    revoke_name: str = ""
    # The Edit dialog: the key as it was when opened, and why a save was refused.
    editing: KeyRow = KeyRow()
    edit_open: bool = False
    edit_error: str = ""

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        # The ceiling is shown, not enforced, here: POST /auth/keys refuses a rate limit over it.
        ceiling = viewer.key_rpm_ceiling
        self.default_rate_limit = str(prefilled_rate_limit(backend.settings().default_rate_limit_per_minute, ceiling))
        self.rate_limit_hint = rate_limit_hint(ceiling)
        self.keys = await backend.run(_rows, user_id=viewer.id)

    @rx.event
    @viewer_required
    async def create_key(self, viewer: Viewer, form_data: dict):
        self.new_key_name = ""
        return rx.call_script(create_script(form_data), callback=KeysState.key_created)

    @rx.event
    @viewer_required
    async def key_created(self, viewer: Viewer, outcome: dict):
        """What the page script reports: the new key's name, or why there is none."""
        outcome = outcome if isinstance(outcome, dict) else {}
        self.keys = await backend.run(_rows, user_id=viewer.id)
        if "name" not in outcome:
            self.error = str(outcome.get("error") or "The key could not be created. Try again.")[:300]
            return
        self.new_key_name, self.error = str(outcome["name"])[:100], ""
        return rx.set_value(KEY_NAME_ID, "")

    @rx.event
    def dismiss_new_key(self):
        self.new_key_name = ""
        return rx.call_script(CLEAR_SCRIPT)

    @rx.event
    @viewer_required
    async def set_enabled(self, viewer: Viewer, key_id: int, enabled: bool):
        try:
            self.keys = await backend.run(_set_enabled, user_id=viewer.id, key_id=int(key_id), enabled=bool(enabled))
        except StoreError as exc:
            self.error = str(exc).capitalize() + "."

    @rx.event
    @viewer_required
    async def start_edit(self, viewer: Viewer, key_id: int):
        self.keys = await backend.run(_rows, user_id=viewer.id)
        found = next((k for k in self.keys if k.id == int(key_id) and k.status != "revoked"), None)
        if found is not None:
            self.editing, self.edit_open, self.edit_error = found, True, ""

    @rx.event
    def set_edit_open(self, value: bool):
        self.edit_open = value

    @rx.event
    @viewer_required
    async def save_key(self, viewer: Viewer, form_data: dict):
        """Name, rate limit (within the account's ceiling), budget and period, models and
        expiry, checked on the server by store.keys; bad input changes nothing."""
        try:
            self.keys = await backend.run(
                _edit,
                user_id=viewer.id,
                key_id=int(form_data.get("key_id", 0)),
                form=form_data,
                ceiling=backend.settings().max_key_rpm,
            )
        except (StoreError, ValueError) as exc:
            self.edit_error = sentence(str(exc)) if isinstance(exc, StoreError) else "No such key."
            return
        self.edit_open, self.edit_error = False, ""
        return rx.toast.success("Key saved")

    @rx.event
    def ask_revoke(self, key_id: int, name: str):
        self.revoke_id, self.revoke_name = int(key_id), name

    @rx.event
    def cancel_revoke(self):
        self.revoke_id, self.revoke_name = 0, ""

    @rx.event
    @viewer_required
    async def revoke_key(self, viewer: Viewer, key_id: int):
        self.revoke_id, self.revoke_name = 0, ""
        try:
            self.keys = await backend.run(_revoke, user_id=viewer.id, key_id=int(key_id))
        except StoreError as exc:
            self.error = str(exc).capitalize() + "."


PERIODS = (("none", "No reset"), ("day", "Each day"), ("week", "Each week"), ("month", "Each month"))


def _box(child: rx.Component, grow: str, min_width: str) -> rx.Component:
    return rx.box(child, flex=grow, min_width=min_width)


def _rate_limit_field(control_id: str, value: rx.Var | str) -> rx.Component:
    return field(
        "Rate limit",
        control_id,
        rx.input(
            id=control_id,
            name="rate_limit",
            type="number",
            # Not the account's ceiling: the server refuses a value over it and says
            # why, where the browser would only balk.
            min=0,
            max=keys.MAX_RATE_LIMIT,
            default_value=value,
            key=value,
        ),
        hint=KeysState.rate_limit_hint,
    )


def _control_fields(prefix: str, k: rx.Var | None = None) -> list[rx.Component]:
    """Budget, its period, the model allow-list and the expiry; empty means none. `k`: the
    key whose values the Edit form starts from."""
    return [
        _box(
            field(
                "Budget",
                f"{prefix}-budget",
                rx.input(
                    id=f"{prefix}-budget",
                    name="budget",
                    input_mode="decimal",
                    placeholder="none",
                    default_value=k.budget_value if k is not None else "",
                ),
                hint="Credits the key may spend; empty: no budget.",
            ),
            "1",
            "9rem",
        ),
        _box(
            field(
                "Period",
                f"{prefix}-period",
                rx.select.root(
                    rx.select.trigger(id=f"{prefix}-period", width="100%"),
                    rx.select.content(*[rx.select.item(label, value=value) for value, label in PERIODS]),
                    name="budget_period",
                    default_value=k.period_value if k is not None else "none",
                ),
                hint="When the budget starts again (00:00 UTC).",
            ),
            "1",
            "9rem",
        ),
        _box(
            field(
                "Models",
                f"{prefix}-models",
                rx.input(
                    id=f"{prefix}-models",
                    name="models",
                    placeholder="any model",
                    default_value=k.models_value if k is not None else "",
                ),
                hint="Model ids, comma-separated; empty: any model.",
            ),
            "2",
            "14rem",
        ),
        _box(
            field(
                "Expires (UTC)",
                f"{prefix}-expires",
                rx.input(
                    id=f"{prefix}-expires",
                    name="expires",
                    type="datetime-local",
                    default_value=k.expires_value if k is not None else "",
                ),
                hint="Empty: never.",
            ),
            "1",
            "12rem",
        ),
    ]


def _create_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Create a key", size="3", as_="h2"),
                rx.flex(
                    _box(
                        field(
                            "Name",
                            KEY_NAME_ID,
                            rx.input(
                                id=KEY_NAME_ID,
                                name="name",
                                required=True,
                                max_length=100,
                                placeholder="e.g. production server",
                            ),
                        ),
                        "2",
                        "14rem",
                    ),
                    _box(_rate_limit_field("rate-limit", KeysState.default_rate_limit), "1", "10rem"),
                    spacing="3",
                    wrap="wrap",
                    width="100%",
                ),
                rx.flex(*_control_fields("key"), spacing="3", wrap="wrap", width="100%"),
                rx.button("Create key", type="submit"),
                error_callout(KeysState.error),
                spacing="3",
                width="100%",
            ),
            on_submit=KeysState.create_key,
            reset_on_submit=False,
            width="100%",
        ),
        width="100%",
    )


def _edit_dialog() -> rx.Component:
    k = KeysState.editing
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Edit “", k.name, "”", style={"overflow_wrap": "anywhere"}),
            rx.dialog.description(
                rx.code(k.display, variant="ghost"), ". Changes apply from the key's next call.", size="2"
            ),
            rx.form(
                rx.vstack(
                    rx.el.input(type="hidden", name="key_id", value=k.id.to_string()),
                    field(
                        "Name",
                        "edit-name",
                        rx.input(id="edit-name", name="name", required=True, max_length=100, default_value=k.name),
                    ),
                    _rate_limit_field("edit-rate-limit", k.rpm_value),
                    rx.flex(*_control_fields("edit", k), spacing="3", wrap="wrap", width="100%"),
                    error_callout(KeysState.edit_error),
                    dialog_actions("Save"),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=KeysState.save_key,
                reset_on_submit=False,
                # A fresh form (its default values) for each key and each save.
                key=k.id.to_string() + k.budget_value + k.period_value + k.models_value + k.expires_value,
            ),
            max_width="36rem",
        ),
        open=KeysState.edit_open,
        on_open_change=KeysState.set_edit_open,
    )


def _new_key_panel() -> rx.Component:
    # Always mounted (hidden while there is no new key): #new-key's text is the page
    # script's, and React must not drop it by remounting the panel.
    return rx.box(
        rx.callout.root(
            rx.callout.icon(rx.icon("triangle_alert")),
            rx.vstack(
                rx.text(
                    rx.text.strong("Copy your new key “", KeysState.new_key_name, "” now."),
                    " It is shown only this once: the platform keeps only a hash of it, so it cannot show "
                    "it again. If you lose it, revoke it and create another.",
                ),
                rx.flex(
                    rx.code(size="3", id=NEW_KEY_ID, class_name="break-anywhere", max_width="100%"),
                    rx.button(
                        rx.icon("copy", size=16),
                        "Copy",
                        size="2",
                        on_click=[rx.call_script(COPY_SCRIPT), rx.toast.success("Key copied")],
                    ),
                    spacing="3",
                    align="center",
                    wrap="wrap",
                    min_width="0",
                    max_width="100%",
                ),
                rx.button("I have saved it", size="1", variant="soft", on_click=KeysState.dismiss_new_key),
                spacing="2",
                min_width="0",
                class_name="break-anywhere-words",
            ),
            color_scheme="amber",
            role="alert",
            width="100%",
        ),
        display=rx.cond(KeysState.new_key_name != "", "block", "none"),
        width="100%",
    )


def status_badge(status: rx.Var) -> rx.Component:
    return rx.badge(
        status,
        color_scheme=rx.match(status, ("active", "green"), ("disabled", "gray"), ("expired", "orange"), "red"),
        variant="soft",
    )


def _key_row(k: rx.Var) -> rx.Component:
    live = k.status != "revoked"
    return rx.table.row(
        rx.table.cell(
            truncated(k.name, "8.5rem"),
            rx.code(k.display, variant="ghost", size="1", white_space="nowrap"),
        ),
        split_time_cell(k.created, ""),
        split_time_cell(k.last_used, "never"),
        rx.table.cell(k.rate_limit, white_space="nowrap"),
        wrapping(k.budget, min_width="7.5rem"),
        rx.table.cell(rx.text(k.models, as_="span", class_name="cell-clamp", title=k.models)),
        split_time_cell(k.expires, "never"),
        rx.table.cell(status_badge(k.status)),
        rx.table.cell(
            rx.cond(
                live,
                rx.flex(
                    rx.button("Edit", size="1", variant="soft", on_click=KeysState.start_edit(k.id)),
                    rx.cond(
                        k.enabled,
                        rx.button(
                            "Disable",
                            size="1",
                            variant="soft",
                            color_scheme="gray",
                            on_click=KeysState.set_enabled(k.id, False),
                        ),
                        rx.button("Enable", size="1", variant="soft", on_click=KeysState.set_enabled(k.id, True)),
                    ),
                    rx.button(
                        "Revoke",
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        on_click=KeysState.ask_revoke(k.id, k.name),
                    ),
                    spacing="1",
                    direction="column",
                    align="start",
                ),
            )
        ),
    )


def _revoke_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Revoke this key?"),
            rx.alert_dialog.description(
                "“", KeysState.revoke_name, "” stops working at once, for good. Programs using it get invalid_api_key."
            ),
            rx.flex(
                rx.alert_dialog.cancel(
                    rx.button("Cancel", variant="soft", color_scheme="gray", on_click=KeysState.cancel_revoke)
                ),
                rx.alert_dialog.action(
                    rx.button("Revoke key", color_scheme="red", on_click=KeysState.revoke_key(KeysState.revoke_id))
                ),
                spacing="3",
                justify="end",
                margin_top="1em",
            ),
        ),
        open=KeysState.revoke_id != 0,
    )


def api_keys_page() -> rx.Component:
    return page_shell(
        "API Keys",
        rx.text(
            "Send a key as a bearer token: ",
            rx.code("Authorization: Bearer sk_live_…"),
            ", with any OpenAI SDK pointed at this site's /api/v1.",
            size="2",
            color_scheme="gray",
        ),
        _new_key_panel(),
        _create_form(),
        rx.cond(
            KeysState.keys.length() > 0,
            data_table(
                ["Key", "Created (UTC)", "Last used", "Rate limit", "Budget", "Models", "Expires", "Status", ""],
                KeysState.keys,
                _key_row,
            ),
            rx.callout("No keys yet. Create one above.", icon="info"),
        ),
        _revoke_dialog(),
        _edit_dialog(),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(api_keys_page, route=routes.API_KEYS, title="API Keys", on_load=KeysState.load)
