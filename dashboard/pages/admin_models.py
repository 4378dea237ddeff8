"""Admin → Models: the whole registry; Edit and Add model open one form; every change is audited."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from store import audit, registry
from store.errors import Conflict, NotFound, StoreError

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import dialog_actions, error_callout, field
from ..components.layout import admin_only, page_shell
from ..state import SessionState
from ..views import AuditRow, ModelRow, audit_row, model_row

AUDIT_ROWS = 20


def _rows(session: Session) -> tuple[list[ModelRow], list[AuditRow]]:
    models = [model_row(m) for m in registry.list_models(session)]
    changes = [audit_row(r, audit.changed_fields(r)) for r in audit.recent_changes(session, limit=AUDIT_ROWS)]
    return models, changes


def _save(session: Session, *, actor: Viewer, adding: bool, model_id: str,
          fields: dict) -> tuple[list[ModelRow], list[AuditRow]]:
    model_id = registry.validate_model_id(model_id)
    try:
        registry.get_model(session, model_id=model_id)
        exists = True
    except NotFound:
        exists = False
    session.rollback()
    if adding and exists:
        raise Conflict(f"a model with id {model_id!r} exists already; edit it instead")
    if not adding and not exists:
        raise NotFound(f"no model {model_id!r}")
    registry.set_model(session, actor=actor.email, actor_user_id=actor.id, model_id=model_id, **fields)
    return _rows(session)


def parse_model_form(form_data: dict) -> dict:
    """The registry fields from the form's text; raises StoreError with a message to show."""
    def text(name: str) -> str:
        return str(form_data.get(name, "") or "").strip()

    cost = text("credit_cost")
    if not cost.isdigit():
        raise StoreError(f"credit cost must be a whole number from 0 to {registry.MAX_COST}")
    return {
        "display_name": text("display_name"),
        "category": text("category"),
        "capabilities": [c.strip() for c in text("capabilities").split(",") if c.strip()],
        "credit_cost": int(cost),
        "enabled": str(form_data.get("enabled", "")).lower() in ("on", "true", "1", "yes"),
        "provider": text("provider"),
        "upstream_id": text("upstream_id"),
    }


class ModelsAdminState(SessionState):
    models: list[ModelRow] = []
    changes: list[AuditRow] = []
    # The Edit / Add model form.
    form_open: bool = False
    adding: bool = False
    form: ModelRow = ModelRow()
    form_version: int = 0  # remounts the form's uncontrolled fields when another model is opened
    error: str = ""

    @rx.event
    async def load(self):
        self.reset()
        viewer = await self._viewer()
        if viewer is None:
            return self._refusal(viewer)
        if viewer.is_admin:  # a plain user sees the notice; nothing of the registry loads
            self.models, self.changes = await backend.run(_rows)

    @rx.event
    async def start_edit(self, model_id: str):
        viewer = await self._viewer()
        if (refusal := self._refusal(viewer, admin=True)) is not None:
            return refusal
        found = [m for m in self.models if m.id == model_id]
        if not found:
            return rx.toast.error("That model is gone; reload the page.")
        self._open(found[0], adding=False)

    @rx.event
    async def start_add(self):
        viewer = await self._viewer()
        if (refusal := self._refusal(viewer, admin=True)) is not None:
            return refusal
        self._open(ModelRow(category="chat", provider="openrouter", capabilities="chat", enabled=True), adding=True)

    def _open(self, row: ModelRow, *, adding: bool) -> None:
        self.form, self.adding, self.error = row, adding, ""
        self.form_version += 1
        self.form_open = True

    @rx.event
    def set_form_open(self, value: bool):
        self.form_open = value

    @rx.event
    async def save_model(self, form_data: dict):
        """Create (`mode` "add") or edit a registry entry; admins only; bad input changes nothing."""
        viewer = await self._viewer()
        if (refusal := self._refusal(viewer, admin=True)) is not None:
            return refusal
        try:
            fields = parse_model_form(form_data)
            self.models, self.changes = await backend.run(
                _save, actor=viewer, adding=form_data.get("mode") == "add",
                model_id=str(form_data.get("id", "") or ""), fields=fields)
        except StoreError as exc:
            self.error = str(exc)[:1].upper() + str(exc)[1:] + "."
            return
        self.form_open, self.error = False, ""
        return rx.toast.success("Saved")


def _form() -> rx.Component:
    f = ModelsAdminState.form
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(ModelsAdminState.adding, "Add model", "Edit " + f.id)),
            rx.form(
                rx.vstack(
                    rx.el.input(type="hidden", name="mode", value=rx.cond(ModelsAdminState.adding, "add", "edit")),
                    rx.cond(
                        ModelsAdminState.adding,
                        field("Model id", "model-id", rx.input(id="model-id", name="id", required=True,
                                                               placeholder="vendor/model")),
                        rx.el.input(type="hidden", name="id", value=f.id),
                    ),
                    field("Display name", "display-name",
                          rx.input(id="display-name", name="display_name", default_value=f.display_name,
                                   required=True)),
                    rx.flex(
                        rx.box(field("Category", "category", rx.select.root(
                            rx.select.trigger(id="category", width="100%"),
                            rx.select.content(*[rx.select.item(c, value=c) for c in registry.CATEGORIES]),
                            name="category", default_value=f.category)), flex="1"),
                        rx.box(field("Provider", "provider", rx.select.root(
                            rx.select.trigger(id="provider", width="100%"),
                            rx.select.content(*[rx.select.item(p, value=p) for p in registry.PROVIDERS]),
                            name="provider", default_value=f.provider)), flex="1"),
                        rx.box(field("Credit cost", "credit-cost",
                                     rx.input(id="credit-cost", name="credit_cost", type="number", min=0,
                                              max=registry.MAX_COST, default_value=f.credit_cost.to_string(),
                                              required=True)), flex="1"),
                        spacing="3",
                        width="100%",
                    ),
                    field("Capabilities", "capabilities",
                          rx.input(id="capabilities", name="capabilities", default_value=f.capabilities),
                          hint="Comma-separated, e.g. chat, reasoning"),
                    field("Upstream id", "upstream-id",
                          rx.input(id="upstream-id", name="upstream_id", default_value=f.upstream_id, required=True),
                          hint="The provider's own id for this model."),
                    rx.el.label(
                        rx.hstack(rx.checkbox(name="enabled", default_checked=f.enabled, id="enabled"),
                                  rx.text("Enabled (listed and callable through the API)", size="2"),
                                  align="center"),
                        html_for="enabled",
                    ),
                    error_callout(ModelsAdminState.error),
                    dialog_actions("Save"),
                    spacing="3",
                    width="100%",
                ),
                on_submit=ModelsAdminState.save_model,
                reset_on_submit=False,
                key=ModelsAdminState.form_version,
            ),
            max_width="40rem",
        ),
        open=ModelsAdminState.form_open,
        on_open_change=ModelsAdminState.set_form_open,
    )


def _row(m: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(m.id, variant="ghost")),
        rx.table.cell(m.display_name),
        rx.table.cell(m.category),
        rx.table.cell(m.credit_cost, text_align="right"),
        rx.table.cell(rx.badge(rx.cond(m.enabled, "enabled", "disabled"), variant="soft",
                               color_scheme=rx.cond(m.enabled, "green", "gray"))),
        rx.table.cell(m.provider),
        rx.table.cell(rx.code(m.upstream_id, variant="ghost", size="1")),
        rx.table.cell(m.capabilities),
        rx.table.cell(rx.button("Edit", size="1", variant="soft", on_click=ModelsAdminState.start_edit(m.id))),
    )


def _audit(a: rx.Var) -> rx.Component:
    return rx.table.row(rx.table.cell(a.time, white_space="nowrap"), rx.table.cell(a.actor),
                        rx.table.cell(rx.code(a.model_id, variant="ghost")), rx.table.cell(a.change))


def admin_models_page() -> rx.Component:
    return page_shell(
        "Models",
        admin_only(
            rx.hstack(rx.text("The public model registry: what each model costs and how it is reached.",
                              size="2", color_scheme="gray"), rx.spacer(),
                      rx.button(rx.icon("plus", size=16), "Add model", on_click=ModelsAdminState.start_add),
                      width="100%", align="center"),
            rx.table.root(
                rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in (
                    "Model id", "Display name", "Category", "Credit cost", "Status", "Provider", "Upstream id",
                    "Capabilities", "")])),
                rx.table.body(rx.foreach(ModelsAdminState.models, _row)),
                variant="surface",
                size="1",
                width="100%",
            ),
            rx.heading("Recent changes", size="4", as_="h2"),
            rx.cond(
                ModelsAdminState.changes.length() > 0,
                rx.table.root(
                    rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in (
                        "Time (UTC)", "Who", "Model", "Change")])),
                    rx.table.body(rx.foreach(ModelsAdminState.changes, _audit)),
                    variant="surface",
                    size="1",
                    width="100%",
                ),
                rx.text("No changes recorded yet.", size="2", color_scheme="gray"),
            ),
            _form(),
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(admin_models_page, route=routes.ADMIN_MODELS, title="Models", on_load=ModelsAdminState.load)
