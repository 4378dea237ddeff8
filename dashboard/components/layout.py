"""The signed-in page shell: navigation on the left, the page on the right; on a phone a
top bar whose "Menu" button opens the same navigation (layout in assets/dashboard.css)."""

from __future__ import annotations

import reflex as rx

from .. import routes
from ..state import SessionState
from .forms import post_form

TITLE = "LLM API Platform"

NAV = [
    ("Overview", routes.HOME, "layout_dashboard"),
    ("API Keys", routes.API_KEYS, "key_round"),
    ("Credits", routes.CREDITS, "coins"),
    ("Logs", routes.LOGS, "scroll_text"),
    ("Images", routes.IMAGES, "image"),
    ("Account", routes.ACCOUNT, "circle_user"),
]
ADMIN_NAV = [
    ("Usage", routes.ADMIN_USAGE, "chart_column"),
    ("Models", routes.ADMIN_MODELS, "boxes"),
    ("Users", routes.ADMIN_USERS, "users"),
    ("Margin", routes.ADMIN_MARGIN, "chart_line"),
]


def _nav_link(label: str, href: str, icon: str) -> rx.Component:
    path = SessionState.router.url.path
    if href == routes.HOME:
        active = path == href
    else:  # a page below it (a user's own page under Users) counts as that page
        active = (path == href) | (path == href + "/") | path.startswith(href + "/")
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


def _navigation(*, with_title: bool) -> rx.Component:
    """The links, the admin's links, API docs, who is signed in and Sign out."""
    return rx.vstack(
        rx.link(
            rx.heading(TITLE, size="4"), href=routes.HOME, underline="none", color_scheme="gray", high_contrast=True
        )
        if with_title
        else rx.fragment(),
        rx.vstack(*[_nav_link(*item) for item in NAV], spacing="1", width="100%"),
        rx.cond(
            SessionState.is_admin,
            rx.vstack(
                rx.text("Admin", size="1", weight="bold", color_scheme="gray", padding_x="0.75em"),
                *[_nav_link(*item) for item in ADMIN_NAV],
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
    )


def sidebar() -> rx.Component:
    return rx.el.nav(_navigation(with_title=True), aria_label="Main", class_name="shell-sidebar")


def top_bar() -> rx.Component:
    """Below 768 px: the site's name and the Menu button, which opens the navigation
    (a Radix popover: Enter or Space opens it, Escape closes it, focus moves into it)."""
    return rx.el.header(
        rx.link(
            rx.heading(TITLE, size="3"), href=routes.HOME, underline="none", color_scheme="gray", high_contrast=True
        ),
        rx.popover.root(
            rx.popover.trigger(
                rx.button(rx.icon("menu", size=16, aria_hidden="true"), "Menu", variant="soft", size="2"),
            ),
            rx.popover.content(
                rx.el.nav(_navigation(with_title=False), aria_label="Main"),
                side="bottom",
                align="end",
                width="16rem",
                class_name="shell-menu",
            ),
        ),
        class_name="shell-topbar",
    )


def upstream_banner() -> rx.Component:
    """For an admin while no upstream provider is configured: what to set, and where."""
    return rx.cond(
        SessionState.upstream_missing,
        rx.callout.root(
            rx.callout.icon(rx.icon("plug_zap")),
            rx.callout.text(
                rx.text.strong("No upstream provider is configured"),
                ": every chat call fails with 503 provider_not_configured. Set ",
                rx.code("OPENROUTER_API_KEY"),
                " (and ",
                rx.code("OPENROUTER_BASE_URL"),
                " for another OpenAI-compatible provider) in the ",
                rx.code(".env"),
                " file in the directory the server starts in, or in the server's environment, then restart it.",
            ),
            color_scheme="amber",
            role="status",
            id="upstream-banner",
            width="100%",
        ),
    )


def balance_banner() -> rx.Component:
    """For a signed-in person whose balance is below the alert threshold they set."""
    s = SessionState
    return rx.cond(
        s.balance_low,
        rx.callout.root(
            rx.callout.icon(rx.icon("coins")),
            rx.callout.text(
                "Your balance is ",
                rx.text.strong(s.balance_text, rx.cond(s.balance_text == "1", " credit", " credits")),
                ", below your alert threshold of ",
                s.threshold_text,
                ". ",
                rx.link("Add credits", href=routes.CREDITS),
                " or change the threshold on the Credits page.",
            ),
            color_scheme="orange",
            role="status",
            id="low-balance-banner",
            width="100%",
        ),
    )


def page_shell(title: str, *content: rx.Component, actions: rx.Component | None = None) -> rx.Component:
    """A signed-in page. Until the session is known (or while redirecting), a spinner."""
    header = rx.flex(
        rx.heading(title, size="6", as_="h1"),
        rx.spacer(),
        actions or rx.fragment(),
        align="center",
        spacing="3",
        wrap="wrap",
        width="100%",
    )
    return rx.cond(
        SessionState.signed_in,
        rx.box(
            top_bar(),
            rx.box(
                sidebar(),
                rx.el.main(
                    rx.vstack(
                        header,
                        upstream_banner(),
                        balance_banner(),
                        *content,
                        spacing="5",
                        width="100%",
                        max_width="72rem",
                    ),
                    class_name="shell-main",
                ),
                class_name="shell",
            ),
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
