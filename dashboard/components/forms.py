"""Form parts with visible labels (screen readers and the browser tests find fields by them)."""

from __future__ import annotations

import reflex as rx
from reflex_components_core.el.elements.forms import Form


class PostForm(Form):
    """A plain HTML form that the browser submits itself, to a backend route.

    `rx.el.form` adds a submit handler that prevents the browser's own submission;
    the sign-in forms need exactly that submission, so the cookie comes back from the
    server in the response and page script never holds the token.
    """

    @classmethod
    def create(cls, *children, **props) -> rx.Component:
        return super(Form, cls).create(*children, **props)


post_form = PostForm.create

LABEL_STYLE = {"font_size": "var(--font-size-2)", "font_weight": "500"}


def field(label: str, control_id: str, control: rx.Component, *, hint: str | rx.Var | None = None) -> rx.Component:
    """A visible label above its control (`control_id` is the control's `id`); the hint
    under it may be a state var."""
    children = [rx.el.label(label, html_for=control_id, style=LABEL_STYLE), control]
    if hint is not None:
        children.append(rx.text(hint, size="1", color_scheme="gray"))
    return rx.vstack(*children, spacing="1", width="100%", align="stretch")


def sentence(message: str) -> str:
    """A store message (`"the 'from' date is after the 'to' date"`) as a sentence to show."""
    message = message.strip()
    if not message:
        return message
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "?", "!")) else ".")


def error_callout(message: rx.Var) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(message, icon="triangle_alert", color_scheme="red", role="alert", width="100%"),
        rx.fragment(),
    )


def dialog_actions(submit_label: str) -> rx.Component:
    """A form dialog's footer: Cancel (closes it) and the submit button, at the right."""
    return rx.flex(
        rx.dialog.close(rx.button("Cancel", type="button", variant="soft", color_scheme="gray")),
        rx.button(submit_label, type="submit"),
        spacing="3",
        justify="end",
        width="100%",
    )


# The periods an admin report (Usage, Margin) shows, in days.
DAY_CHOICES = ("7", "30", "90")


def report_intro(*text: str | rx.Var, days: rx.Var, on_change: rx.EventHandler) -> rx.Component:
    """An admin report's first line: what it shows, and the choice of the last 7, 30 or 90 days."""
    return rx.flex(
        rx.text(*text, size="2", color_scheme="gray", flex="1", min_width="14rem"),
        rx.select.root(
            rx.select.trigger(aria_label="Days"),
            rx.select.content(*[rx.select.item(f"Last {d} days", value=d) for d in DAY_CHOICES]),
            value=days,
            on_change=on_change,
        ),
        spacing="3",
        wrap="wrap",
        align="center",
        width="100%",
    )
