"""Credits: the balance and the ledger, newest first, keyset-paged: one line per request
(its hold and its settlement together), grant and refund (store.usage.ledger_lines).

Also buying credits (Stripe Checkout: each pack a plain form posted to /billing/checkout,
shown only while Stripe is configured), redeeming a code (a form posted to /billing/redeem),
the person's payments, and their low-balance alert threshold. The billing routes answer
with a redirect back here, `?checkout=success|cancelled`, `?redeemed=<credits>` or
`?error=<code>`, which `load` turns into a message.
"""

from __future__ import annotations

from collections.abc import Mapping

import reflex as rx
from sqlmodel import Session

from store import credits, payments, usage, users
from store.errors import StoreError
from store.models import CLEAR
from store.money import format_credits, parse_credits

from .. import backend, routes
from ..auth import Viewer
from ..billing_routes import CHECKOUT, REDEEM, billing_message
from ..components.forms import error_callout, field, post_form, sentence
from ..components.layout import page_shell
from ..components.tables import data_table, numeric, time_cell, wrapping
from ..paging import KeysetPaging
from ..state import SessionState, viewer_required
from ..views import LedgerRow, PaymentRow, credits_text, ledger_row, payment_row

PAGE_SIZE = 25
PAID = "Payment received: your credits arrive in a moment."
CANCELLED = "Checkout cancelled: nothing was charged."
THRESHOLD_SAVED = "Alert threshold saved."


def _page(session: Session, *, user_id: int, before_id: int | None) -> tuple[str, list[LedgerRow], bool]:
    lines = usage.ledger_lines(session, user_id=user_id, limit=PAGE_SIZE + 1, before_id=before_id)
    return (
        format_credits(credits.balance(session, user_id=user_id)),
        [ledger_row(e) for e in lines[:PAGE_SIZE]],
        len(lines) > PAGE_SIZE,
    )


def _payments(session: Session, *, user_id: int) -> list[PaymentRow]:
    return [payment_row(p) for p in payments.payments_of(session, user_id=user_id)]


def _set_threshold(session: Session, *, user_id: int, threshold: object) -> tuple[int, int | None, bool]:
    user = users.set_low_balance_threshold(session, user_id=user_id, threshold=threshold)
    return user.balance, user.low_balance_threshold, users.balance_is_low(user)


def parse_threshold(text: str) -> int | object:
    """The threshold typed in the form: credits, or CLEAR for nothing or `none`; the range
    is the store's (store.users.validate_threshold)."""
    text = (text or "").strip()
    if text.lower() in ("", "none"):
        return CLEAR
    return users.validate_threshold(parse_credits(text, what="the threshold"))


def outcome(params: Mapping[str, str]) -> tuple[str, bool]:
    """The message for what a billing route sent back (text, good news), or ("", True)."""
    if params.get("error"):
        return billing_message(params["error"]), False
    if params.get("checkout") == "success":
        return PAID, True
    if params.get("checkout") == "cancelled":
        return CANCELLED, True
    if params.get("redeemed"):
        try:
            amount = parse_credits(params["redeemed"])
        except StoreError:
            return "", True  # not the route's: say nothing rather than echo it
        if amount > 0:
            return f"Code redeemed: {credits_text(format_credits(amount))} added to your balance.", True
    return "", True


class CreditsState(KeysetPaging, SessionState):
    balance: str = "0"
    entries: list[LedgerRow] = []
    _rows_var: str = "entries"
    message: str = ""  # what a billing route sent back
    message_ok: bool = True
    # Buying: the packs on sale while Stripe is configured (id, label, price).
    packs: list[dict[str, str]] = []
    currency: str = ""
    payments: list[PaymentRow] = []
    threshold: str = ""  # the low-balance alert threshold, as the form edits it; empty: none
    threshold_error: str = ""

    @rx.event
    @viewer_required
    async def load(self, viewer: Viewer):
        self.reset()
        self.message, self.message_ok = outcome(self.router.url.query_parameters)
        settings = backend.settings()
        if settings.stripe_configured:
            self.currency = settings.stripe_currency.upper()
            self.packs = [{"id": p.id, "label": p.label, "price": p.price_text} for p in settings.packs]
        threshold = viewer.low_balance_threshold
        self.threshold = "" if threshold is None else format_credits(threshold)
        self.payments = await backend.run(_payments, user_id=viewer.id)
        await self._fetch(viewer.id)

    async def _load_page(self, user_id: int, before_id: int | None) -> None:
        self.balance, self.entries, self.has_next = await backend.run(_page, user_id=user_id, before_id=before_id)

    @rx.event
    @viewer_required
    async def set_threshold(self, viewer: Viewer, form_data: dict):
        """The balance below which the person sees the banner (and the operator is alerted)."""
        try:
            threshold = parse_threshold(str(form_data.get("threshold", "") or ""))
            balance, saved, low = await backend.run(_set_threshold, user_id=viewer.id, threshold=threshold)
        except StoreError as exc:
            self.threshold_error = sentence(str(exc))
            return
        self.threshold, self.threshold_error = ("" if saved is None else format_credits(saved)), ""
        (await self.get_state(SessionState))._show_balance(balance, saved, low=low)
        return rx.toast.success(THRESHOLD_SAVED)


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


def _message() -> rx.Component:
    s = CreditsState
    good = rx.callout(
        s.message, icon="circle_check", color_scheme="green", role="status", id="credits-message", width="100%"
    )
    bad = rx.callout(
        s.message, icon="triangle_alert", color_scheme="red", role="alert", id="credits-message", width="100%"
    )
    return rx.cond(s.message != "", rx.cond(s.message_ok, good, bad))


def _pack(pack: rx.Var) -> rx.Component:
    return post_form(
        rx.card(
            rx.vstack(
                rx.heading(pack["label"], size="4", as_="h3"),
                rx.text(pack["price"], " ", CreditsState.currency, size="2", color_scheme="gray"),
                rx.el.input(type="hidden", name="pack", value=pack["id"]),
                rx.button("Buy", type="submit", aria_label="Buy " + pack["label"].to(str)),
                spacing="2",
                align="start",
            ),
        ),
        action=CHECKOUT,
        method="post",
    )


def _buy() -> rx.Component:
    return rx.cond(
        CreditsState.packs.length() > 0,
        rx.card(
            rx.vstack(
                rx.heading("Buy credits", size="3", as_="h2"),
                rx.text(
                    "Payment is by Stripe Checkout; the credits arrive once Stripe confirms the payment.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.flex(rx.foreach(CreditsState.packs, _pack), spacing="3", wrap="wrap"),
                spacing="3",
                width="100%",
            ),
            width="100%",
            id="buy-credits",
        ),
    )


def _redeem() -> rx.Component:
    return rx.card(
        post_form(
            rx.vstack(
                rx.heading("Redeem a code", size="3", as_="h2"),
                field(
                    "Code",
                    "redeem-code",
                    rx.input(
                        id="redeem-code",
                        name="code",
                        required=True,
                        max_length=64,
                        auto_complete="off",
                        placeholder="XXXXX-XXXXX-XXXXX-XXXXX",
                    ),
                    hint="A code from an admin; each works once.",
                ),
                rx.button("Redeem", type="submit"),
                spacing="3",
                width="100%",
            ),
            action=REDEEM,
            method="post",
            width="100%",
        ),
        flex="1",
        min_width="16rem",
    )


def _threshold() -> rx.Component:
    s = CreditsState
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Low-balance alert", size="3", as_="h2"),
                field(
                    "Alert threshold",
                    "alert-threshold",
                    rx.input(
                        id="alert-threshold",
                        name="threshold",
                        input_mode="decimal",
                        placeholder="none",
                        default_value=s.threshold,
                        key=s.threshold,
                    ),
                    hint="Credits. Below it, every page says so. Empty: no alert.",
                ),
                error_callout(s.threshold_error),
                rx.button("Save", type="submit", variant="soft"),
                spacing="3",
                width="100%",
            ),
            on_submit=s.set_threshold,
            reset_on_submit=False,
            width="100%",
        ),
        flex="1",
        min_width="16rem",
    )


def _payment(p: rx.Var) -> rx.Component:
    return rx.table.row(
        rx.table.cell(p.time, white_space="nowrap"),
        numeric(p.credits),
        numeric(p.price),
        rx.table.cell(
            rx.badge(
                p.status,
                variant="soft",
                color_scheme=rx.match(p.status, ("paid", "green"), ("pending", "gray"), "orange"),
            )
        ),
        wrapping(p.note),
    )


def _payments_section() -> rx.Component:
    s = CreditsState
    return rx.cond(
        s.payments.length() > 0,
        rx.vstack(
            rx.heading("Payments", size="4", as_="h2"),
            data_table(
                [
                    "Started (UTC)",
                    ("Credits", {"text_align": "right"}),
                    ("Price", {"text_align": "right"}),
                    "Status",
                    "Details",
                ],
                s.payments,
                _payment,
                id="payments",
            ),
            spacing="3",
            width="100%",
        ),
    )


def credits_page() -> rx.Component:
    return page_shell(
        "Credits",
        _message(),
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
                    "rest comes back; a failed call is refunded.",
                    size="1",
                    color_scheme="gray",
                ),
                spacing="1",
            ),
        ),
        _buy(),
        rx.flex(_redeem(), _threshold(), spacing="4", wrap="wrap", width="100%"),
        _payments_section(),
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
