"""Admin → Models: the whole registry; Edit and Add model open one form; every change is audited.

The form edits the pricing (SPEC, "Metering") with decimals as a person writes them, the
bounds (SPEC, "Bounds": context length, a flat price's max prompt tokens), and previews
what a typical call would cost at the prices typed (store.pricing.typical_cost).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import reflex as rx
from sqlmodel import Session

from store import audit, pricing, registry
from store.errors import Conflict, InvalidInput, NotFound, StoreError
from store.models import CLEAR, ModelEntry
from store.money import format_credits, parse_credits

from .. import backend, routes
from ..auth import Viewer
from ..components.forms import dialog_actions, error_callout, field, sentence
from ..components.layout import admin_only, page_shell
from ..components.tables import data_table, numeric, truncated, wrapping
from ..state import SessionState, admin_required, viewer_required
from ..views import AuditRow, ModelRow, audit_row, credits_text, field_words, model_row

AUDIT_ROWS = 20


def _rows(session: Session) -> tuple[list[ModelRow], list[AuditRow]]:
    models = [model_row(m) for m in registry.list_models(session)]
    changes = [audit_row(r, audit.changed_fields(r)) for r in audit.recent_changes(session, limit=AUDIT_ROWS)]
    return models, changes


def _save(
    session: Session, *, actor: Viewer, adding: bool, model_id: str, fields: dict
) -> tuple[list[ModelRow], list[AuditRow]]:
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


_MONEY = {
    "credit_cost": "credit cost",
    "prompt_price": "prompt price",
    "completion_price": "completion price",
    "markup": "markup",
}
# Prices that may be left empty: the prompt price applies (store.pricing).
_CACHE_PRICES = {"cache_read_price": "cache read price", "cache_write_price": "cache write price"}
# Whole numbers of tokens, with the registry's bounds (store.registry checks them again);
# max prompt tokens may be left empty: a flat price then covers any prompt.
_TOKENS = {
    "max_output_tokens": ("max output tokens", registry.MAX_OUTPUT_TOKENS),
    "context_length": ("context length", registry.MAX_CONTEXT_LENGTH),
    "max_prompt_tokens": ("max prompt tokens", registry.MAX_CONTEXT_LENGTH),
}
# What the preview reads as it is typed.
PRICE_FIELDS = ("pricing", *_MONEY, *_CACHE_PRICES, "max_prompt_tokens")


def _decimal(text: str, name: str) -> int:
    """Decimal text as micro-credits (markup as millionths)."""
    if not text.strip():
        raise InvalidInput(f"{_MONEY[name]} must be a number such as 2.5")
    return parse_credits(text, what=_MONEY[name])


def _money(form_data: dict, name: str) -> int | None:
    """A decimal field of the form; None when the form has no such field (left unchanged)."""
    return None if name not in form_data else _decimal(str(form_data.get(name) or ""), name)


def _cache_price(text: str, name: str) -> int | object:
    """A cache price's text as micro-credits; CLEAR when empty (the prompt price applies)."""
    return CLEAR if not text.strip() else parse_credits(text, what=_CACHE_PRICES[name])


def _tokens(text: str, name: str) -> int | object:
    """A whole number of tokens (`8,000` too); CLEAR when an optional one is empty."""
    text = text.strip().replace(",", "")
    if not text and name == "max_prompt_tokens":
        return CLEAR
    what, most = _TOKENS[name]
    # (a bound on its length first: int() of thousands of digits raises ValueError)
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise InvalidInput(f"{what} must be a whole number from 1 to {most:,}")
    return int(text)


def _field(form_data: dict, name: str, parse) -> object:
    """A field of the form through `parse`; None when the form has no such field (left unchanged)."""
    return None if name not in form_data else parse(str(form_data.get(name) or ""), name)


def parse_model_form(form_data: dict) -> dict:
    """The registry fields from the form's text; raises StoreError with a message to show.
    Money is decimal credits (`2.5`, at most 6 places); prices are per 1M tokens. An empty
    cache price or max prompt tokens is unset (store.models.CLEAR)."""

    def text(name: str) -> str:
        return str(form_data.get(name, "") or "").strip()

    return {
        "display_name": text("display_name"),
        "category": text("category"),
        "capabilities": [c.strip() for c in text("capabilities").split(",") if c.strip()],
        "pricing": text("pricing") or None,
        **{name: _money(form_data, name) for name in _MONEY},
        **{name: _field(form_data, name, _cache_price) for name in _CACHE_PRICES},
        **{name: _field(form_data, name, _tokens) for name in _TOKENS},
        "enabled": str(form_data.get("enabled", "")).lower() in ("on", "true", "1", "yes"),
        "provider": text("provider"),
        "upstream_id": text("upstream_id"),
    }


@dataclass(frozen=True, slots=True)
class _Prices:
    """The prices typed into the form, as store.pricing reads an entry."""

    pricing: str
    credit_cost: int
    prompt_price: int
    completion_price: int
    markup: int
    cache_read_price: int | None = None  # a typical call reads nothing from a cache
    cache_write_price: int | None = None


def _in_range(name: str, value: int) -> None:
    """The registry's bounds (store.registry), checked before a preview shows a price that
    saving would refuse (a negative cost)."""
    if name == "markup":
        if not 0 < value <= registry.MAX_MARKUP:
            raise InvalidInput(f"markup must be above 0 and at most {format_credits(registry.MAX_MARKUP)}")
    elif name in _TOKENS:
        what, most = _TOKENS[name]
        if not 1 <= value <= most:
            raise InvalidInput(f"{what} must be a whole number from 1 to {most:,}")
    elif not 0 <= value <= registry.MAX_COST:
        words = _MONEY.get(name) or _CACHE_PRICES[name]
        raise InvalidInput(f"{words} must be from 0 to {format_credits(registry.MAX_COST)} credits")


def _optional(value: int | object) -> int | None:
    return value if isinstance(value, int) else None


def typical_call(draft: dict[str, str]) -> str:
    """What a typical call costs at the prices typed, in words (or what to fix first).
    Every field the preview reads is checked as saving checks it, shown or hidden (a hidden
    field is saved as it is), so it never shows a price that saving would refuse."""
    mode = draft.get("pricing", pricing.PER_REQUEST)
    try:
        values = [_decimal(draft.get(name, ""), name) for name in _MONEY]
        cache = [_optional(_cache_price(draft.get(name, ""), name)) for name in _CACHE_PRICES]
        bound = _optional(_tokens(draft.get("max_prompt_tokens", ""), "max_prompt_tokens"))
        checked = [*zip(_MONEY, values, strict=True), *zip(_CACHE_PRICES, cache, strict=True)]
        for name, value in [*checked, ("max_prompt_tokens", bound)]:
            if value is not None:
                _in_range(name, value)
    except InvalidInput as exc:
        return f"No preview: {exc}."
    # A typical call reads and writes nothing of a prompt cache: the cache prices do not move it.
    cost = credits_text(format_credits(pricing.typical_cost(_Prices(mode, *values, *cache))))
    if mode == pricing.PER_REQUEST:
        every = f"Every call costs {cost} (× n when a call asks for n images or choices)"
        if bound is None:
            return every + "."
        return f"{every}; it covers prompts of up to {bound:,} tokens, and a longer one is refused."
    tokens = "1,000 prompt + 500 completion tokens"
    if mode == pricing.PER_TOKEN:
        return f"A typical call ({tokens}) costs {cost}."
    return (
        f"A typical call ({tokens}) costs about {cost} at the reference prices × markup; "
        "the charge follows the upstream's reported cost × markup."
    )


# The registry names a field in its messages as it is spelled in code ("display_name must
# be …"); the form shows the words on its labels.
_FIELD_NAMES = re.compile(
    r"\b(" + "|".join(sorted((n for n in ModelEntry.model_fields if "_" in n), key=len, reverse=True)) + r")\b"
)


def form_message(error: StoreError) -> str:
    """A store error about the model form, as the sentence the form shows."""
    return sentence(_FIELD_NAMES.sub(lambda m: field_words(m.group(1)), str(error)))


class ModelsAdminState(SessionState):
    models: list[ModelRow] = []
    changes: list[AuditRow] = []
    # The Edit / Add model form.
    form_open: bool = False
    adding: bool = False
    form: ModelRow = ModelRow()
    form_version: int = 0  # remounts the form's uncontrolled fields when another model is opened
    error: str = ""
    # The pricing fields as typed, for the live preview (the form itself submits its own values).
    draft: dict[str, str] = {}
    preview: str = ""

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        if viewer.is_admin:  # a plain user sees the notice; nothing of the registry loads
            self.models, self.changes = await backend.run(_rows)

    @rx.event
    @admin_required
    async def start_edit(self, viewer: Viewer, model_id: str):
        found = [m for m in self.models if m.id == model_id]
        if not found:
            return rx.toast.error("That model is gone; reload the page.")
        self._open(found[0], adding=False)

    @rx.event
    @admin_required
    async def start_add(self, viewer: Viewer):
        # Disabled until the admin has priced it and turns it on: a new entry is never public
        # at the form's default cost of 0.
        self._open(ModelRow(category="chat", provider="openrouter", capabilities="chat", enabled=False), adding=True)

    def _open(self, row: ModelRow, *, adding: bool) -> None:
        self.form, self.adding, self.error = row, adding, ""
        self.draft = {name: getattr(row, name) for name in PRICE_FIELDS}
        self.preview = typical_call(self.draft)
        self.form_version += 1
        self.form_open = True

    @rx.event
    def set_draft(self, name: str, value: str):
        """A pricing field changed: recompute the preview. Reads and writes nothing stored
        (saving goes through `save_model`, which checks the session and role)."""
        if name in PRICE_FIELDS:
            self.draft = {**self.draft, name: str(value)[:40]}
            self.preview = typical_call(self.draft)

    @rx.event
    def set_form_open(self, value: bool):
        self.form_open = value

    @rx.event
    @admin_required
    async def save_model(self, viewer: Viewer, form_data: dict):
        """Create (`mode` "add") or edit a registry entry; admins only; bad input changes nothing."""
        try:
            fields = parse_model_form(form_data)
            self.models, self.changes = await backend.run(
                _save,
                actor=viewer,
                adding=form_data.get("mode") == "add",
                model_id=str(form_data.get("id", "") or ""),
                fields=fields,
            )
        except StoreError as exc:
            self.error = form_message(exc)
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
                        field(
                            "Model id",
                            "model-id",
                            rx.input(id="model-id", name="id", required=True, placeholder="vendor/model"),
                        ),
                        rx.el.input(type="hidden", name="id", value=f.id),
                    ),
                    field(
                        "Display name",
                        "display-name",
                        rx.input(id="display-name", name="display_name", default_value=f.display_name, required=True),
                    ),
                    rx.flex(
                        rx.box(
                            field(
                                "Category",
                                "category",
                                rx.select.root(
                                    rx.select.trigger(id="category", width="100%"),
                                    rx.select.content(*[rx.select.item(c, value=c) for c in registry.CATEGORIES]),
                                    name="category",
                                    default_value=f.category,
                                ),
                            ),
                            flex="1",
                        ),
                        rx.box(
                            field(
                                "Provider",
                                "provider",
                                rx.select.root(
                                    rx.select.trigger(id="provider", width="100%"),
                                    rx.select.content(*[rx.select.item(p, value=p) for p in registry.PROVIDERS]),
                                    name="provider",
                                    default_value=f.provider,
                                ),
                            ),
                            flex="1",
                        ),
                        spacing="3",
                        width="100%",
                    ),
                    _pricing_fields(),
                    field(
                        "Capabilities",
                        "capabilities",
                        rx.input(id="capabilities", name="capabilities", default_value=f.capabilities),
                        hint="Comma-separated, e.g. chat, reasoning",
                    ),
                    field(
                        "Upstream id",
                        "upstream-id",
                        rx.input(id="upstream-id", name="upstream_id", default_value=f.upstream_id, required=True),
                        hint="The provider's own id for this model.",
                    ),
                    rx.el.label(
                        rx.hstack(
                            rx.checkbox(name="enabled", default_checked=f.enabled, id="enabled"),
                            rx.text("Enabled (listed and callable through the API)", size="2"),
                            align="center",
                        ),
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
            max_width="44rem",
        ),
        open=ModelsAdminState.form_open,
        on_open_change=ModelsAdminState.set_form_open,
    )


def _text_input(
    label: str,
    control_id: str,
    name: str,
    value: rx.Var,
    *,
    hint: str,
    numeric: bool = False,
    previewed: bool = True,
    shown: rx.Var | bool = True,
    required: bool = False,
) -> rx.Component:
    """A field as text (so `2.5`, `0.000001` and `8,000` arrive as typed); a `previewed` one
    feeds the preview. A field the mode does not use is hidden, not removed: its value is
    still saved as it is."""
    extra = {"on_change": lambda v: ModelsAdminState.set_draft(name, v)} if previewed else {}
    return rx.box(
        field(
            label,
            control_id,
            rx.input(
                id=control_id,
                name=name,
                default_value=value,
                input_mode="numeric" if numeric else "decimal",
                required=required,
                **extra,
            ),
            hint=hint,
        ),
        flex="1",
        min_width="9rem",
        display=rx.cond(shown, "block", "none"),
    )


def _row_of(*children: rx.Component) -> rx.Component:
    return rx.flex(*children, spacing="3", width="100%", wrap="wrap")


def _pricing_fields() -> rx.Component:
    f, mode = ModelsAdminState.form, ModelsAdminState.draft["pricing"]
    flat, metered = mode == pricing.PER_REQUEST, mode != pricing.PER_REQUEST
    return rx.vstack(
        _row_of(
            rx.box(
                field(
                    "Pricing",
                    "pricing",
                    rx.select.root(
                        rx.select.trigger(id="pricing", width="100%"),
                        rx.select.content(*[rx.select.item(m, value=m) for m in pricing.MODES]),
                        name="pricing",
                        default_value=f.pricing,
                        on_change=lambda v: ModelsAdminState.set_draft("pricing", v),
                    ),
                ),
                flex="1",
                min_width="9rem",
            ),
            _text_input(
                "Credit cost",
                "credit-cost",
                "credit_cost",
                f.credit_cost,
                hint="Credits per request (with token pricing: a fee, may be 0)",
            ),
            _text_input(
                "Max prompt tokens",
                "max-prompt-tokens",
                "max_prompt_tokens",
                f.max_prompt_tokens,
                hint="The largest prompt the flat price covers; a larger one is refused. Empty: any",
                numeric=True,
                shown=flat,
            ),
        ),
        _row_of(
            _text_input(
                "Prompt price",
                "prompt-price",
                "prompt_price",
                f.prompt_price,
                hint="Credits per 1M prompt tokens",
                shown=metered,
            ),
            _text_input(
                "Completion price",
                "completion-price",
                "completion_price",
                f.completion_price,
                hint="Credits per 1M completion tokens",
                shown=metered,
            ),
            _text_input(
                "Markup",
                "markup",
                "markup",
                f.markup,
                hint="× the upstream's cost, e.g. 1.2",
                shown=mode == pricing.UPSTREAM_COST,
            ),
        ),
        _row_of(
            _text_input(
                "Cache read price",
                "cache-read-price",
                "cache_read_price",
                f.cache_read_price,
                hint="Credits per 1M prompt tokens read from the cache. Empty: the prompt price",
                shown=metered,
            ),
            _text_input(
                "Cache write price",
                "cache-write-price",
                "cache_write_price",
                f.cache_write_price,
                hint="Credits per 1M prompt tokens written to it. Empty: the prompt price",
                shown=metered,
            ),
        ),
        _row_of(
            _text_input(
                "Max output tokens",
                "max-output-tokens",
                "max_output_tokens",
                f.max_output_tokens,
                hint="Cap on max_tokens sent upstream",
                numeric=True,
                previewed=False,
                required=True,
            ),
            _text_input(
                "Context length",
                "context-length",
                "context_length",
                f.context_length,
                hint="The longest prompt it takes, in tokens: the bound on what cannot be measured "
                "(remote files, audio, PDFs)",
                numeric=True,
                previewed=False,
                required=True,
            ),
        ),
        rx.callout(
            ModelsAdminState.preview,
            icon="calculator",
            color_scheme="gray",
            size="1",
            width="100%",
            id="price-preview",
            role="status",
        ),
        spacing="3",
        width="100%",
    )


def _row(m: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                truncated(m.id, "10.5rem", code=True),
                truncated(m.display_name, "10.5rem"),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(m.category, size="1"),
                truncated(m.capabilities, "7rem"),
                spacing="1",
            )
        ),
        numeric(m.credit_cost),
        wrapping(
            rx.vstack(
                rx.text(m.pricing, size="1", weight="medium"),
                rx.text(m.price, size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        numeric(m.typical),
        numeric(m.context),
        rx.table.cell(
            rx.badge(
                rx.cond(m.enabled, "enabled", "disabled"),
                variant="soft",
                color_scheme=rx.cond(m.enabled, "green", "gray"),
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(m.provider, size="1"),
                truncated(m.upstream_id, "8.5rem", code=True),
                spacing="1",
            )
        ),
        rx.table.cell(rx.button("Edit", size="1", variant="soft", on_click=ModelsAdminState.start_edit(m.id))),
    )


def _audit(a: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(a.time, white_space="nowrap"),
        rx.table.cell(truncated(a.actor, "12rem")),
        rx.table.cell(truncated(a.model_id, "14rem", code=True)),
        wrapping(a.change),
    )


MODEL_HEADERS = [
    "Model",
    "Category",
    ("Credit cost", {"text_align": "right"}),
    "Pricing",
    ("Typical call", {"text_align": "right"}),
    ("Context", {"text_align": "right"}),
    "Status",
    "Upstream",
    ("", {}),
]


def admin_models_page() -> rx.Component:
    return page_shell(
        "Models",
        admin_only(
            rx.flex(
                rx.text(
                    "The public model registry: what each model costs and how it is reached. "
                    "A typical call is 1,000 prompt and 500 completion tokens; the context is "
                    "the longest prompt a model takes, in tokens.",
                    size="2",
                    color_scheme="gray",
                    flex="1",
                    min_width="14rem",
                ),
                rx.button(rx.icon("plus", size=16), "Add model", on_click=ModelsAdminState.start_add),
                spacing="3",
                wrap="wrap",
                width="100%",
                align="center",
            ),
            data_table(MODEL_HEADERS, ModelsAdminState.models, _row),
            rx.heading("Recent changes", size="4", as_="h2"),
            rx.cond(
                ModelsAdminState.changes.length() > 0,
                data_table(["Time (UTC)", "Who", "Model", "Change"], ModelsAdminState.changes, _audit),
                rx.text("No changes recorded yet.", size="2", color_scheme="gray"),
            ),
            _form(),
        ),
    )


def add_pages(app: rx.App) -> None:
    app.add_page(admin_models_page, route=routes.ADMIN_MODELS, title="Models", on_load=ModelsAdminState.load)
