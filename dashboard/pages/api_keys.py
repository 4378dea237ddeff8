"""Settings → API Keys: create (the full key shown once), list, disable / enable, revoke.

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
from store.errors import StoreError

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import error_callout, field
from ..components.layout import page_shell
from ..components.tables import data_table, truncated
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


def create_script(form_data: dict) -> str:
    """Page script: post the form to the key route, put the key into #new-key, and
    resolve to what the state may know ({"name"} or {"error"}), never the key."""
    body = json.dumps(
        {"name": str(form_data.get("name", "") or ""), "rate_limit": str(form_data.get("rate_limit", "") or "")}
    )
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


def _create_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Create a key", size="3", as_="h2"),
                rx.flex(
                    rx.box(
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
                        flex="2",
                        min_width="14rem",
                    ),
                    rx.box(
                        field(
                            "Rate limit",
                            "rate-limit",
                            rx.input(
                                id="rate-limit",
                                name="rate_limit",
                                type="number",
                                # Not the account's ceiling: POST /auth/keys refuses a value
                                # over it and says why, where the browser would only balk.
                                min=0,
                                max=keys.MAX_RATE_LIMIT,
                                default_value=KeysState.default_rate_limit,
                                key=KeysState.default_rate_limit,
                            ),
                            hint=KeysState.rate_limit_hint,
                        ),
                        flex="1",
                        min_width="10rem",
                    ),
                    rx.box(rx.button("Create key", type="submit"), padding_top="1.5em"),
                    spacing="3",
                    wrap="wrap",
                    width="100%",
                ),
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
                    gap="3",
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
        status, color_scheme=rx.match(status, ("active", "green"), ("disabled", "gray"), "red"), variant="soft"
    )


def _key_row(k: rx.Var) -> rx.Component:
    live = k.status != "revoked"
    return rx.table.row(
        rx.table.cell(truncated(k.name, "14rem")),
        rx.table.cell(rx.code(k.display, variant="ghost", size="1"), white_space="nowrap"),
        rx.table.cell(k.created, white_space="nowrap"),
        rx.table.cell(k.last_used, white_space="nowrap"),
        rx.table.cell(k.rate_limit, white_space="nowrap"),
        rx.table.cell(status_badge(k.status)),
        rx.table.cell(
            rx.cond(
                live,
                rx.hstack(
                    rx.cond(
                        k.status == "active",
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
                ["Name", "Key", "Created (UTC)", "Last used", "Rate limit", "Status", ""], KeysState.keys, _key_row
            ),
            rx.callout("No keys yet. Create one above.", icon="info"),
        ),
        _revoke_dialog(),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(api_keys_page, route=routes.API_KEYS, title="API Keys", on_load=KeysState.load)
