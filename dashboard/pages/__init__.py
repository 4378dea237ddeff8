"""Dashboard pages; each module has `add_pages(app)` and keeps its state beside its page."""

import reflex as rx

from . import account, admin_margin, admin_models, admin_users, api_keys, auth, credits, home, images, logs


def add_all_pages(app: rx.App) -> None:
    for module in (home, auth, api_keys, credits, logs, images, account, admin_models, admin_users, admin_margin):
        module.add_pages(app)
