"""The signed-in page shell: navigation on the left, the page on the right."""

from __future__ import annotations

import reflex as rx

from .. import routes
from ..state import SessionState
from .forms import post_form

TITLE = "LLM API Platform"


def _nav_link(label: str, href: str, icon: str) -> rx.Component:
    path = SessionState.router.url.path
    active = (path == href) | (path == href + "/") if href != routes.HOME else path == href
    return rx.link(
        rx.hstack(rx.icon(icon, size=16, aria_hidden="true"), rx.text(label, size="2"), spacing="2", align="center"),
        href=href,
        underline="none",
        aria_current=rx.cond(active, "page", "false"),
        style={
            "display": "block",
            "width": "100%",
            "padding": "0.45em 0.75em",
            "border_radius": "var(--radius-2)",
            "color": rx.cond(active, "var(--accent-11)", "var(--gray-12)"),
            "font_weight": rx.cond(active, "600", "400"),
            "background": rx.cond(active, "var(--accent-a3)", "transparent"),
            "_hover": {"background": rx.cond(active, "var(--accent-a4)", "var(--gray-a3)")},
        },
    )


def sign_out_button() -> rx.Component:
    return post_form(
        rx.button("Sign out", type="submit", variant="soft", color_scheme="gray", size="2", width="100%"),
        action=routes.AUTH_LOGOUT,
        method="post",
        width="100%",
    )


def sidebar() -> rx.Component:
    return rx.el.nav(
        rx.vstack(
            rx.link(
                rx.heading(TITLE, size="4"), href=routes.HOME, underline="none", color_scheme="gray", high_contrast=True
            ),
            rx.vstack(
                _nav_link("Overview", routes.HOME, "layout_dashboard"),
                _nav_link("API Keys", routes.API_KEYS, "key_round"),
                _nav_link("Credits", routes.CREDITS, "coins"),
                _nav_link("Logs", routes.LOGS, "scroll_text"),
                _nav_link("Images", routes.IMAGES, "image"),
                _nav_link("Account", routes.ACCOUNT, "circle_user"),
                spacing="1",
                width="100%",
            ),
            rx.cond(
                SessionState.is_admin,
                rx.vstack(
                    rx.text("Admin", size="1", weight="bold", color_scheme="gray", padding_x="0.75em"),
                    _nav_link("Models", routes.ADMIN_MODELS, "boxes"),
                    _nav_link("Users", routes.ADMIN_USERS, "users"),
                    _nav_link("Margin", routes.ADMIN_MARGIN, "chart_line"),
                    spacing="1",
                    width="100%",
                ),
            ),
            rx.spacer(),
            rx.link("API docs", href=routes.API_DOCS, reload_document=True, size="2", padding_x="0.75em"),
            rx.text(
                SessionState.email,
                size="1",
                color_scheme="gray",
                padding_x="0.75em",
                trim="both",
                style={"overflow_wrap": "anywhere"},
            ),
            sign_out_button(),
            spacing="4",
            height="100%",
            width="100%",
        ),
        aria_label="Main",
        style={
            "width": "15rem",
            "flex_shrink": "0",
            "padding": "1.25rem 0.75rem",
            "border_right": "1px solid var(--gray-a5)",
            "background": "var(--gray-a2)",
            "min_height": "100vh",
            "position": "sticky",
            "top": "0",
            "height": "100vh",
        },
    )


def page_shell(title: str, *content: rx.Component, actions: rx.Component | None = None) -> rx.Component:
    """A signed-in page. Until the session is known (or while redirecting), a spinner."""
    header = rx.hstack(
        rx.heading(title, size="6", as_="h1"), rx.spacer(), actions or rx.fragment(), align="center", width="100%"
    )
    return rx.cond(
        SessionState.signed_in,
        rx.flex(
            sidebar(),
            rx.el.main(
                rx.vstack(header, *content, spacing="5", width="100%", max_width="72rem"),
                style={"flex": "1", "padding": "2rem", "min_width": "0"},
            ),
            width="100%",
        ),
        rx.center(rx.spinner(size="3"), height="100vh"),
    )


def admin_only(*content: rx.Component) -> rx.Component:
    """Admin controls render only for admins (the handlers check again on the server)."""
    return rx.cond(
        SessionState.is_admin,
        rx.fragment(*content),
        rx.callout("This page is for admins.", icon="lock", color_scheme="amber", role="status"),
    )
