"""Dashboard fixtures: the settings the dashboard reads, sessions, and states to call handlers on.

The dashboard reads its configuration the way it does in production, from the
environment through `get_settings()`; each test points it at its own database.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import TypeVar

import bcrypt
import pytest
import reflex as rx
import sqlalchemy as sa

from store import sessions
from store.db import session_for
from store.models import UserSession, utcnow
from store.settings import get_settings

from ..conftest import TEST_SECRET
from ..factories import make_user

S = TypeVar("S", bound=rx.State)
SIGNUP_CREDITS = 25


@pytest.fixture(autouse=True)
def fast_bcrypt(request, monkeypatch):
    """bcrypt at its lowest cost for passwords hashed here: these tests are about the
    dashboard, not the hash's strength (the one about the event loop keeps the real cost)."""
    if request.node.get_closest_marker("real_bcrypt") is None:
        monkeypatch.setattr(bcrypt, "gensalt", functools.partial(bcrypt.gensalt, rounds=4))


@pytest.fixture
def dash_settings(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("SIGNUP_CREDITS", str(SIGNUP_CREDITS))
    monkeypatch.setenv("DEFAULT_RATE_LIMIT_PER_MINUTE", "60")
    monkeypatch.setenv("MAX_KEY_RPM", "600")  # the platform's ceiling on self-service keys (its default)
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    for name in ("REDIS_URL", "ADMIN_EMAIL", "ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def cookie_for(engine, user) -> str:
    """A `Cookie:` header that signs `user` in (a real session row)."""
    with session_for(engine) as s:
        token = sessions.create_session(s, secret_key=TEST_SECRET, user_id=user.id)
    return f"theme=dark; platform_session={token}"


def expire_sessions(engine, user) -> None:
    """Move every session of `user` past its expiry (as if its 7 days had gone by)."""
    with session_for(engine) as s:
        s.execute(
            sa.update(UserSession)
            .where(UserSession.user_id == user.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        s.commit()


def state_for(state_cls: type[S], cookie: str = "", path: str = "/") -> S:
    """A fresh state tree for one browser tab on `path` (may have a ?query), as if its
    websocket had sent `cookie`."""
    root = rx.State(_reflex_internal_init=True)
    set_connection(root, cookie=cookie, path=path)
    return root.get_substate(state_cls.get_full_name().split("."))


def set_connection(state: rx.State, *, cookie: str, path: str = "/") -> None:
    """What Reflex does for each event: the connection's headers and the page's URL."""
    root = state._get_root_state()
    root.router_data = root._update_router_vars(
        {"headers": {"cookie": cookie, "host": "platform.test"}, "pathname": path.split("?")[0], "asPath": path},
        root.router_data,
    )


@pytest.fixture
def user(engine, dash_settings):
    return make_user(engine, credits=100)


@pytest.fixture
def admin(engine, dash_settings):
    return make_user(engine, admin=True)


def redirect_target(event) -> str | None:
    """Where an `rx.redirect(...)` event sends the browser (None for any other event)."""
    if event is None or event.handler.fn.__qualname__ != "_redirect":
        return None
    return dict((name._js_expr, value) for name, value in event.args)["path"]._var_value


def toast_says(event, text: str) -> bool:
    return event is not None and event.handler.fn.__qualname__ == "_call_function" and text in repr(event)


def pytest_configure(config):
    config.addinivalue_line("markers", "real_bcrypt: keep bcrypt at its real cost in this test")
