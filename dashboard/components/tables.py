"""Tables that keep every column on screen at 1280 px and scroll inside themselves on a
phone (Radix's Table.Root is its own scroll area; the page never scrolls sideways).

Long values are cut to a width with their whole text in the title (`truncated`); free text
wraps anywhere above a minimum width (`wrapping`); see assets/dashboard.css.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import reflex as rx


def truncated(value, max_width: str, *, code: bool = False) -> rx.Component:
    """The start of `value`, at most `max_width` wide; hovering shows all of it."""
    inner = rx.code(value, variant="ghost", size="1") if code else value
    return rx.text(inner, as_="span", class_name="cell-truncate", max_width=max_width, title=value)


def wrapping(*children, **props) -> rx.Component:
    """A cell of free text (a note, a change): it wraps instead of widening the table."""
    return rx.table.cell(*children, class_name="cell-wrap", **props)


def header(*names: str | tuple[str, dict]) -> rx.Component:
    """A header row; a name may come with the header cell's props (`("Amount", {"text_align": "right"})`)."""
    cells = []
    for name in names:
        label, props = name if isinstance(name, tuple) else (name, {})
        cells.append(rx.table.column_header_cell(label, **props))
    return rx.table.header(rx.table.row(*cells))


def data_table(
    headers: Sequence[str | tuple[str, dict]], rows: rx.Var, row: Callable[[rx.Var], rx.Component], **props
) -> rx.Component:
    return rx.table.root(
        header(*headers),
        rx.table.body(rx.foreach(rows, row)),
        variant="surface",
        size="1",
        width="100%",
        **props,
    )


def time_cell(day, clock, full) -> rx.Component:
    """A UTC time on two lines (the date small above the clock): a narrow column."""
    return rx.table.cell(
        rx.text(day, as_="span", size="1", color_scheme="gray", display="block"),
        rx.text(clock, as_="span", display="block"),
        white_space="nowrap",
        title=full,
    )


def split_time_cell(text: rx.Var, fallback: str) -> rx.Component:
    """A `YYYY-MM-DD HH:MM` time on two lines (`time_cell`), or a word such as "never"."""
    return rx.cond(text.length() > 10, time_cell(text[:10], text[11:], text + " UTC"), rx.table.cell(fallback))


def numeric(value, **props) -> rx.Component:
    """A right-aligned number that never breaks."""
    return rx.table.cell(value, text_align="right", white_space="nowrap", **props)
