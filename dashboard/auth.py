"""Who is asking: the session cookie, resolved on the server for every request and event.

The cookie is set by the backend routes in `auth_routes` (HttpOnly, so page script
never sees the token). Reflex hands each event the headers of the page's websocket,
cookie included, so every event handler can resolve the person afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from store import keys, sessions, users

from . import backend

COOKIE_NAME = "platform_session"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person, as the dashboard needs them."""

    id: int
    email: str
    is_admin: bool
    api_enabled: bool
    # The most a rate limit they may give their own keys (0: any): their own ceiling, else
    # the platform's MAX_KEY_RPM (store.keys.rpm_ceiling). POST /auth/keys checks it itself.
    key_rpm_ceiling: int
    balance: int = 0  # micro-credits, as of this event
    low_balance_threshold: int | None = None  # theirs; None: no low-balance banner
    balance_low: bool = False  # the balance is below it (store.users.balance_is_low)


def token_from_cookie_header(header: str | None) -> str | None:
    """The session token in a raw `Cookie:` header, or None."""
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE_NAME and value:
            return value.strip('"')
    return None


def _lookup(session, *, token: str | None) -> Viewer | None:
    user = sessions.resolve_session(session, secret_key=backend.settings().secret_key, token=token)
    if user is None:
        return None
    return Viewer(
        id=user.id,
        email=user.email,
        is_admin=user.is_admin,
        api_enabled=user.api_enabled,
        key_rpm_ceiling=keys.rpm_ceiling(user, backend.settings().max_key_rpm),
        balance=user.balance,
        low_balance_threshold=user.low_balance_threshold,
        balance_low=users.balance_is_low(user),
    )


async def viewer_from_cookie(header: str | None) -> Viewer | None:
    token = token_from_cookie_header(header)
    if token is None:
        return None
    return await backend.run(_lookup, token=token)
