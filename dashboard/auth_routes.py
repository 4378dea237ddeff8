"""Backend routes of the dashboard, mounted on the API's FastAPI app (same port as Reflex).

    POST /auth/register   email, password[, invite]    -> 303 to /login?registered=1, for a new email and
                          a taken one alike (no session: the answer must not tell them apart)
    POST /auth/login      email, password[, next]     -> session cookie, 303 to next or /
    POST /auth/logout     [everywhere=1]               -> cookie and session(s) gone, 303 to /
    POST /auth/password   current_password, new_password
                          -> every session of the user ended, a fresh cookie, 303 to the account page
    POST /auth/keys       name, rate_limit[, budget, budget_period, models, expires]
                          -> 201 {"key", "name", "id"}: a new API key, in full this once (the API
                          Keys page's script shows it; it never enters Reflex state); 400 {"error"}
    GET  /export/logs.csv ?key&model&status&since&until -> the signed-in user's filtered logs
    /billing/…            buying credits and redeeming codes (billing_routes, included here)

The sign-in pages post plain HTML forms here, so the session token travels only in
an HttpOnly, SameSite=Strict cookie that page script cannot read. A failed attempt
redirects back with `?error=<code>` (and `&wait=<minutes>` when limited); the page
shows `error_message(code, wait)`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from limits.errors import StorageError

from store import accounts, invites, keys, sessions, usage, users
from store.db import read_engine
from store.errors import Conflict, InvalidInput, SignupRefused, StoreError, WrongPassword
from store.models import CLEAR
from store.money import parse_credits

from . import backend, routes
from .auth import COOKIE_NAME, token_from_cookie_header, viewer_from_cookie
from .client_address import client_address, parse_trusted

AUTH_ERRORS = {
    # The same words for an unknown email and a wrong password.
    "credentials": "Wrong email or password.",
    "limited": "Too many attempts. Wait a few minutes, then try again.",
    "current": "The current password is wrong.",
    "same": "The new password must differ from the current one.",
    "email": "Enter a valid email address.",
    "taken": "An account with this email already exists. Sign in instead.",  # no longer sent (non-disclosure)
    "closed": "Sign-up is closed on this platform.",
    "invite": "Signing up needs a valid invite link; this one is missing, used or expired.",
    "password_short": f"The password must be at least {users.MIN_PASSWORD_LEN} characters.",
    "password_long": f"The password must be at most {users.MAX_PASSWORD_BYTES} bytes (bcrypt ignores anything longer).",
}


NOTICES = {
    # After sign-up, whether or not the email was new (the answer must not tell).
    "registered": "Thanks. If you are new here, your account is ready: sign in with the email and password you chose.",
}


def notice_message(params: Mapping[str, str]) -> str:
    """The text for a page's `?registered=1` (empty when there is none)."""
    return next((text for code, text in NOTICES.items() if params.get(code) == "1"), "")


def error_message(code: str, wait_minutes: str | None = None) -> str:
    """The text for `?error=code` (empty for an unknown code); a refusal says how long to wait."""
    if code == "limited" and wait_minutes and wait_minutes.isdigit() and 0 < int(wait_minutes) <= 60:
        n = int(wait_minutes)
        return f"Too many attempts. Try again in {n} minute{'s' if n != 1 else ''}."
    return AUTH_ERRORS.get(code, "")


log = logging.getLogger(__name__)


def _limited(route: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A route whose attempt limiter cannot be reached (Redis down or hung) refuses with 503
    and Retry-After: never skips the limit, which would open the door to password guessing."""

    @functools.wraps(route)
    async def guarded(request: Request) -> Response:
        try:
            return await route(request)
        except StorageError as exc:
            log.warning("sign-in limiter unavailable: %s", type(exc).__name__)
            return PlainTextResponse(
                "Sign-in is briefly unavailable; try again in a moment.", status_code=503, headers={"Retry-After": "1"}
            )

    return guarded


def _client(request: Request) -> str:
    """The address the sign-in limits count (the socket peer, or behind a trusted proxy
    the address it saw: see `client_address`)."""
    return client_address(request.scope, parse_trusted(backend.settings().trusted_proxies))


def cross_site(request: Request) -> bool:
    """A form posted from another site (the cookie is SameSite, this is belt and braces)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


def safe_next(target: str | None) -> str:
    """Only a path on this site; anything else (//evil.example, https://…) goes to /."""
    target = (target or "").strip()
    if (
        not target.startswith("/") or target.startswith(("//", "/auth/")) or "\\" in target or not target.isprintable()
    ):  # browsers drop tabs and newlines: "/\t/evil.example"
        return routes.HOME
    return target


def _back(
    page: str,
    error: str,
    next_: str | None = None,
    refusal: accounts.Refusal | None = None,
    invite: str | None = None,
) -> RedirectResponse:
    query = {"error": error}
    if refusal is not None:
        query["wait"] = str(math.ceil(refusal.retry_after_s / 60))
    if next_ and safe_next(next_) != routes.HOME:
        query["next"] = safe_next(next_)
    if invite and len(invite) <= invites.MAX_TOKEN_LEN and invite.isascii() and invite.isprintable():
        query["invite"] = invite  # the sign-up form keeps its invite for the next try
    return RedirectResponse(f"{page}?{urlencode(query)}", status_code=303)


def _signed_in(request: Request, token: str, target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(sessions.SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    return response


RATE_LIMIT_ERROR = f"Rate limit must be a whole number from 0 to {keys.MAX_RATE_LIMIT} (0 = unlimited)."


def parse_rate_limit(text: str) -> int | None:
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or int(text) > keys.MAX_RATE_LIMIT:
        return None
    return int(text)


def key_controls(form: Mapping[str, Any]) -> keys.KeyControls:
    """The optional controls of a new key from its form (`budget` in credits, `budget_period`
    day/week/month, `models` comma-separated ids, `expires` an ISO date or time); an empty
    field sets none. InvalidInput for a bad one."""

    def given(name: str, parse: Callable[[str], object]) -> Any:
        value = parse(str(form.get(name, "") or ""))
        return None if value is CLEAR else value

    budget, period = given("budget", keys.parse_budget), given("budget_period", keys.parse_period)
    if period is not None and budget is None:
        raise InvalidInput("a budget period needs a budget")
    return keys.KeyControls(
        budget=budget,
        budget_period=period,
        models=given("models", keys.parse_models),
        expires_at=given("expires", keys.parse_expiry),
    )


def _password_error(password: str) -> str | None:
    try:
        users.validate_password(password)
    except InvalidInput:
        return "password_short" if len(password) < users.MIN_PASSWORD_LEN else "password_long"
    return None


def build_router(
    limiter: accounts.LoginLimiter | None = None, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
) -> APIRouter:
    """The routes, with their own attempt limiter (in Redis when REDIS_URL is set).

    `sleep` waits out `accounts.failure_delay` (tests pass one that records the delays).
    """
    limiter = limiter or accounts.LoginLimiter(backend.settings().redis_url)
    parse_trusted(backend.settings().trusted_proxies)  # a bad TRUSTED_PROXIES fails at start
    router = APIRouter()
    refused = PlainTextResponse("cross-site form submission refused", status_code=403)

    async def slow_down(client: str, email: str) -> None:
        """After a few recent failures, wait before the password is checked (not after:
        an attacker who drops the connection early must not learn the answer sooner)."""
        delay = accounts.failure_delay(await limiter.recent_failures(client=client, email=email))
        if delay > 0:
            await sleep(delay)

    @router.post(routes.AUTH_REGISTER, include_in_schema=False)
    @_limited
    async def register(request: Request) -> Response:
        """Create a plain user (as SIGNUP_POLICY allows, consuming an invite if one is
        given) with the sign-up credits, then send them to sign in.

        A taken email gets exactly the answer a new one does (no session for either; the
        password is hashed either way first), so the answer never tells whether an email
        has an account. The newcomer signs in next with what they just typed.
        """
        if cross_site(request):
            return refused
        form = await request.form()
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        invite = str(form.get("invite", "") or "").strip() or None
        if (refusal := await limiter.attempt(client=_client(request))) is not None:
            return _back(routes.REGISTER, "limited", refusal=refusal, invite=invite)
        settings = backend.settings()
        if settings.signup_policy == accounts.CLOSED:
            return _back(routes.REGISTER, "closed")
        try:
            email = users.normalize_email(email)
        except InvalidInput:
            return _back(routes.REGISTER, "email", invite=invite)
        if (problem := _password_error(password)) is not None:
            return _back(routes.REGISTER, problem, invite=invite)
        try:
            await backend.run(
                accounts.register,
                email=email,
                password=password,
                signup_credits=parse_credits(settings.signup_credits),  # credits -> micro
                policy=settings.signup_policy,
                invite_token=invite,
                secret_key=settings.secret_key,
            )
        except SignupRefused as exc:
            return _back(routes.REGISTER, exc.reason)
        except Conflict:
            pass  # the same answer as for a new account
        except InvalidInput:
            return _back(routes.REGISTER, "email", invite=invite)
        return RedirectResponse(f"{routes.LOGIN}?{urlencode({'registered': '1'})}", status_code=303)

    @router.post(routes.AUTH_LOGIN, include_in_schema=False)
    @_limited
    async def login(request: Request) -> Response:
        """Check the password (bcrypt, in a worker thread) and start a session."""
        if cross_site(request):
            return refused
        form = await request.form()
        email, password = str(form.get("email", "")).strip().lower(), str(form.get("password", ""))
        next_, client = str(form.get("next", "")), _client(request)
        # An unknown email goes through exactly the same counting, waiting and answers.
        if (refusal := await limiter.attempt(client=client, email=email)) is not None:
            return _back(routes.LOGIN, "limited", next_, refusal)
        await slow_down(client, email)
        user = await backend.run(accounts.authenticate, email=email, password=password)
        if user is None:
            await limiter.failed(email=email, client=client)
            return _back(routes.LOGIN, "credentials", next_)
        await limiter.succeeded(email=email, client=client)
        settings = backend.settings()
        token = await backend.run(sessions.create_session, secret_key=settings.secret_key, user_id=user.id)
        return _signed_in(request, token, safe_next(next_))

    @router.post(routes.AUTH_LOGOUT, include_in_schema=False)
    async def logout(request: Request) -> Response:
        """End this session (the row is deleted, not just the cookie), or with `everywhere`
        every session of its user."""
        if cross_site(request):
            return refused
        form = await request.form()
        cookie = request.headers.get("cookie")
        viewer = await viewer_from_cookie(cookie) if form.get("everywhere") else None
        if viewer is not None:
            await backend.run(sessions.end_user_sessions, user_id=viewer.id)
        else:
            await backend.run(
                sessions.end_session, secret_key=backend.settings().secret_key, token=token_from_cookie_header(cookie)
            )
        response = RedirectResponse(routes.HOME, status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @router.post(routes.AUTH_PASSWORD, include_in_schema=False)
    @_limited
    async def change_password(request: Request) -> Response:
        """Change the signed-in user's password; every session of theirs ends and this
        browser gets a fresh one. A wrong current password counts as a failed sign-in."""
        if cross_site(request):
            return refused
        viewer = await viewer_from_cookie(request.headers.get("cookie"))
        if viewer is None:
            return RedirectResponse(f"{routes.LOGIN}?{urlencode({'next': routes.ACCOUNT})}", status_code=303)
        form = await request.form()
        current, new = str(form.get("current_password", "")), str(form.get("new_password", ""))
        client = _client(request)
        if (refusal := await limiter.attempt(client=client, email=viewer.email)) is not None:
            return _back(routes.ACCOUNT, "limited", refusal=refusal)
        await slow_down(client, viewer.email)
        try:
            await backend.run(accounts.change_password, user_id=viewer.id, current_password=current, new_password=new)
        except WrongPassword:
            await limiter.failed(email=viewer.email, client=client)
            return _back(routes.ACCOUNT, "current")
        except InvalidInput:
            return _back(routes.ACCOUNT, _password_error(new) or "same")
        await limiter.succeeded(email=viewer.email, client=client)
        token = await backend.run(sessions.create_session, secret_key=backend.settings().secret_key, user_id=viewer.id)
        return _signed_in(request, token, f"{routes.ACCOUNT}?changed=1")

    @router.post(routes.AUTH_KEYS, include_in_schema=False)
    async def create_key(request: Request) -> Response:
        """Issue an API key to the signed-in user and answer it in full, this once.

        Called by the API Keys page's script (fetch, same origin, the session cookie).
        The key goes from this answer to the page and nowhere else: not into Reflex
        state, so not into `.states/`, Redis or a hydrate.
        """
        if cross_site(request):
            return JSONResponse({"error": "Cross-site request refused."}, status_code=403)
        viewer = await viewer_from_cookie(request.headers.get("cookie"))
        if viewer is None:
            return JSONResponse({"error": "Sign in first."}, status_code=401)
        form = await request.form()
        name = str(form.get("name", "") or "").strip()
        rpm = parse_rate_limit(str(form.get("rate_limit", "") or ""))
        if rpm is None:
            return JSONResponse({"error": RATE_LIMIT_ERROR}, status_code=400)
        try:
            controls = key_controls(form)
            issued = await backend.run(
                keys.issue_key,
                secret_key=backend.settings().secret_key,
                user_id=viewer.id,
                name=name,
                rate_limit_per_minute=rpm,
                self_service_ceiling=backend.settings().max_key_rpm,
                controls=controls,
            )
        except StoreError as exc:
            message = str(exc)  # upper-cased at its start only: model ids keep their case
            return JSONResponse({"error": message[:1].upper() + message[1:] + "."}, status_code=400)
        return JSONResponse(
            {"key": issued.secret, "name": name, "id": issued.key.id},
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    from . import billing_routes  # it uses `cross_site` from here

    router.include_router(billing_routes.build_router())

    @router.get(routes.EXPORT_LOGS, include_in_schema=False)
    async def export_logs(request: Request) -> Response:
        """The signed-in user's request logs under the Logs page's filters, as CSV."""
        viewer = await viewer_from_cookie(request.headers.get("cookie"))
        if viewer is None:
            return PlainTextResponse("sign in first", status_code=401)
        q = request.query_params
        try:
            filters = usage.LogFilter.parse(
                key=q.get("key", ""),
                model=q.get("model", ""),
                status=q.get("status", ""),
                since=q.get("since", ""),
                until=q.get("until", ""),
            )
        except StoreError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        # A sync generator: Starlette iterates it in a worker thread, batch by batch.
        body = usage.export_csv(read_engine(backend.engine()), user_id=viewer.id, filters=filters)
        return StreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="request-logs.csv"',
                "Cache-Control": "no-store",
            },
        )

    return router
