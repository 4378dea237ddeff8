"""Dashboard pages; each module has `add_pages(app)` and keeps its state beside its page."""

import reflex as rx

from . import (
    account,
    admin_margin,
    admin_models,
    admin_usage,
    admin_user,
    admin_users,
    api_keys,
    auth,
    credits,
    home,
    images,
    logs,
)

# admin_user's dynamic route (/admin/users/[user_id]) goes before /admin/users.
PAGES = (
    home,
    auth,
    api_keys,
    credits,
    logs,
    images,
    account,
    admin_usage,
    admin_models,
    admin_user,
    admin_users,
    admin_margin,
)


def add_all_pages(app: rx.App) -> None:
    for module in PAGES:
        module.add_pages(app)
