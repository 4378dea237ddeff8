"""The base state and its guard: who is signed in, resolved from the session cookie on the server.

Every page state inherits `SessionState`; every handler that reads or changes account
data is decorated `@viewer_required` or `@admin_required`, which resolve the person
afresh for each event and hand them to the handler. Nothing about the person is
trusted from the browser: the vars below are only for display.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlencode

import reflex as rx

from store.money import format_credits
from store.settings import get_settings

from . import routes
from .auth import Viewer, viewer_from_cookie

NOT_ADMIN = "Only admins can do that."

S = TypeVar("S", bound="SessionState")
P = ParamSpec("P")


class SessionState(rx.State):
    """The signed-in person as the pages show them."""

    signed_in: bool = False
    email: str = ""
    is_admin: bool = False
    # For an admin: no upstream provider is configured (OPENROUTER_API_KEY unset), so
    # every chat call fails with provider_not_configured; each admin page says so.
    upstream_missing: bool = False
    # The low-balance banner of every signed-in page: the balance is below the threshold
    # the person set (Credits page); both as decimal text for its sentence.
    balance_low: bool = False
    balance_text: str = ""
    threshold_text: str = ""
    _user_id: int = 0

    async def _viewer(self) -> Viewer | None:
        """Resolve the session cookie of this event's connection, and refresh the display vars.

        When the person differs from the last one this tab saw (signed out, or someone
        else signed in), everything the pages hold is reset first.
        """
        viewer = await viewer_from_cookie(self.router.headers.cookie)
        base = await self.get_state(SessionState)
        user_id = viewer.id if viewer else 0
        if base._user_id != user_id:
            base.reset()
            base._user_id = user_id
        base.signed_in = viewer is not None
        base.email = viewer.email if viewer else ""
        base.is_admin = bool(viewer and viewer.is_admin)
        base.upstream_missing = base.is_admin and not get_settings().openrouter_api_key
        if viewer is None:
            base._show_balance(0, None, low=False)
        else:
            base._show_balance(viewer.balance, viewer.low_balance_threshold, low=viewer.balance_low)
        return viewer

    def _show_balance(self, balance: int, threshold: int | None, *, low: bool) -> None:
        """What the low-balance banner says (`low`: store.users.balance_is_low)."""
        self.balance_low = low
        self.balance_text = format_credits(balance)
        self.threshold_text = "" if threshold is None else format_credits(threshold)


def viewer_required(
    handler: Callable[Concatenate[S, Viewer, P], Awaitable[Any]],
) -> Callable[Concatenate[S, P], Awaitable[Any]]:
    """An event handler for a signed-in person, who is passed to it as `viewer`.

    Signed out (or the session ended), the handler does not run: the browser is sent to
    sign in and back, and the tab has already forgotten what it held (`_viewer`).
    """
    return _guard(handler, admin=False)


def admin_required(
    handler: Callable[Concatenate[S, Viewer, P], Awaitable[Any]],
) -> Callable[Concatenate[S, P], Awaitable[Any]]:
    """As `viewer_required`, and a signed-in person who is not an admin gets `NOT_ADMIN`."""
    return _guard(handler, admin=True)


def _guard(
    handler: Callable[Concatenate[S, Viewer, P], Awaitable[Any]], *, admin: bool
) -> Callable[Concatenate[S, P], Awaitable[Any]]:
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler.__qualname__}: a guarded handler must be `async def`")
    signature = inspect.signature(handler)
    self_param, viewer_param, *params = signature.parameters.values()
    if viewer_param.name != "viewer":
        raise TypeError(f"{handler.__qualname__}: a guarded handler takes `viewer` after `self`")

    @functools.wraps(handler)
    async def guarded(self: S, *args: P.args, **kwargs: P.kwargs) -> Any:
        viewer = await self._viewer()
        if viewer is None:
            return rx.redirect(login_url(self.router.url.path))
        if admin and not viewer.is_admin:
            return rx.toast.error(NOT_ADMIN)
        return await handler(self, viewer, *args, **kwargs)

    # Reflex reads the parameters and their types of a handler to call it with the
    # event's payload: those of `handler`, less `viewer`, which comes from the cookie.
    guarded.__signature__ = signature.replace(parameters=[self_param, *params])  # type: ignore[attr-defined]
    guarded.__annotations__ = {k: v for k, v in handler.__annotations__.items() if k != "viewer"}
    return guarded


def login_url(back_to: str | None) -> str:
    """The sign-in page, coming back to `back_to` afterwards."""
    back_to = (back_to or "").rstrip("/")  # the exported site serves /logs as /logs/
    if back_to.startswith("/") and back_to != routes.LOGIN:
        return f"{routes.LOGIN}?{urlencode({'next': back_to})}"
    return routes.LOGIN
