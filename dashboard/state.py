"""The base state: who is signed in, resolved from the session cookie on the server.

Every page state inherits `SessionState`; every handler that reads or changes account
data starts with `viewer = await self._viewer()` and `_refusal(viewer, …)`. Nothing
about the person is trusted from the browser: the vars below are only for display.
"""

from __future__ import annotations

from urllib.parse import urlencode

import reflex as rx

from . import routes
from .auth import Viewer, viewer_from_cookie

NOT_ADMIN = "Only admins can do that."


class SessionState(rx.State):
    """The signed-in person as the pages show them."""

    signed_in: bool = False
    email: str = ""
    is_admin: bool = False
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
        return viewer

    def _refusal(self, viewer: Viewer | None, *, admin: bool = False):
        """The event that answers a refused call (None when the call may go ahead)."""
        if viewer is None:
            return rx.redirect(login_url(self.router.url.path))
        if admin and not viewer.is_admin:
            return rx.toast.error(NOT_ADMIN)
        return None


def login_url(back_to: str | None) -> str:
    """The sign-in page, coming back to `back_to` afterwards."""
    back_to = (back_to or "").rstrip("/")  # the exported site serves /logs as /logs/
    if back_to.startswith("/") and back_to != routes.LOGIN:
        return f"{routes.LOGIN}?{urlencode({'next': back_to})}"
    return routes.LOGIN
