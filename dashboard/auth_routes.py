"""Backend routes of the dashboard, mounted on the API's FastAPI app (same port as Reflex).

    POST /auth/register   email, password             -> session cookie, 303 to /
    POST /auth/login      email, password[, next]     -> session cookie, 303 to next or /
    POST /auth/logout                                  -> cookie and session gone, 303 to /
    GET  /export/logs.csv ?key&model&status&since&until -> the signed-in user's filtered logs

The sign-in pages post plain HTML forms here, so the session token travels only in
an HttpOnly, SameSite=Strict cookie that page script cannot read. A failed attempt
redirects back with `?error=<code>`; the page shows `AUTH_ERRORS[code]`.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse

from store import accounts, sessions, usage, users
from store.errors import Conflict, InvalidInput, StoreError

from . import backend, routes
from .auth import COOKIE_NAME, token_from_cookie_header, viewer_from_cookie

AUTH_ERRORS = {
    "credentials": "Wrong email or password.",
    "limited": "Too many attempts. Wait a few minutes, then try again.",
    "email": "Enter a valid email address.",
    "taken": "An account with this email already exists. Sign in instead.",
    "password_short": f"The password must be at least {users.MIN_PASSWORD_LEN} characters.",
    "password_long": f"The password must be at most {users.MAX_PASSWORD_BYTES} bytes "
                     "(bcrypt ignores anything longer).",
}


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _cross_site(request: Request) -> bool:
    """A form posted from another site (the cookie is SameSite, this is belt and braces)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


def safe_next(target: str | None) -> str:
    """Only a path on this site; anything else (//evil.example, https://…) goes to /."""
    target = (target or "").strip()
    if (not target.startswith("/") or target.startswith(("//", "/auth/")) or "\\" in target
            or not target.isprintable()):  # browsers drop tabs and newlines: "/\t/evil.example"
        return routes.HOME
    return target


def _back(page: str, error: str, next_: str | None = None) -> RedirectResponse:
    query = {"error": error}
    if next_ and safe_next(next_) != routes.HOME:
        query["next"] = safe_next(next_)
    return RedirectResponse(f"{page}?{urlencode(query)}", status_code=303)


def _signed_in(request: Request, token: str, target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(COOKIE_NAME, token, max_age=int(sessions.SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="strict", secure=secure)
    return response


def _password_error(password: str) -> str | None:
    try:
        users.validate_password(password)
    except InvalidInput:
        return "password_short" if len(password) < users.MIN_PASSWORD_LEN else "password_long"
    return None


def build_router(limiter: accounts.LoginLimiter | None = None) -> APIRouter:
    """The routes, with their own attempt limiter (in Redis when REDIS_URL is set)."""
    limiter = limiter or accounts.LoginLimiter(backend.settings().redis_url)
    router = APIRouter()
    refused = PlainTextResponse("cross-site form submission refused", status_code=403)

    @router.post(routes.AUTH_REGISTER, include_in_schema=False)
    async def register(request: Request) -> Response:
        """Create a plain user, grant the sign-up credits, and sign them in."""
        if _cross_site(request):
            return refused
        form = await request.form()
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        if await limiter.attempt(client=_client(request)) is not None:
            return _back(routes.REGISTER, "limited")
        try:
            email = users.normalize_email(email)
        except InvalidInput:
            return _back(routes.REGISTER, "email")
        if (problem := _password_error(password)) is not None:
            return _back(routes.REGISTER, problem)
        settings = backend.settings()
        try:
            user = await backend.run(accounts.register, email=email, password=password,
                                     signup_credits=settings.signup_credits)
        except Conflict:
            return _back(routes.REGISTER, "taken")
        except InvalidInput:
            return _back(routes.REGISTER, "email")
        token = await backend.run(sessions.create_session, secret_key=settings.secret_key, user_id=user.id)
        return _signed_in(request, token, routes.HOME)

    @router.post(routes.AUTH_LOGIN, include_in_schema=False)
    async def login(request: Request) -> Response:
        """Check the password (bcrypt, in a worker thread) and start a session."""
        if _cross_site(request):
            return refused
        form = await request.form()
        email, password = str(form.get("email", "")).strip().lower(), str(form.get("password", ""))
        next_ = str(form.get("next", ""))
        if await limiter.attempt(client=_client(request), email=email) is not None:
            return _back(routes.LOGIN, "limited", next_)
        user = await backend.run(accounts.authenticate, email=email, password=password)
        if user is None:
            await limiter.failed(email=email)
            return _back(routes.LOGIN, "credentials", next_)
        await limiter.succeeded(email=email)
        settings = backend.settings()
        token = await backend.run(sessions.create_session, secret_key=settings.secret_key, user_id=user.id)
        return _signed_in(request, token, safe_next(next_))

    @router.post(routes.AUTH_LOGOUT, include_in_schema=False)
    async def logout(request: Request) -> Response:
        """End this session (the row is deleted, not just the cookie)."""
        if _cross_site(request):
            return refused
        token = token_from_cookie_header(request.headers.get("cookie"))
        await backend.run(sessions.end_session, secret_key=backend.settings().secret_key, token=token)
        response = RedirectResponse(routes.HOME, status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @router.get(routes.EXPORT_LOGS, include_in_schema=False)
    async def export_logs(request: Request) -> Response:
        """The signed-in user's request logs under the Logs page's filters, as CSV."""
        viewer = await viewer_from_cookie(request.headers.get("cookie"))
        if viewer is None:
            return PlainTextResponse("sign in first", status_code=401)
        q = request.query_params
        try:
            filters = usage.LogFilter.parse(key=q.get("key", ""), model=q.get("model", ""),
                                            status=q.get("status", ""), since=q.get("since", ""),
                                            until=q.get("until", ""))
        except StoreError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        # A sync generator: Starlette iterates it in a worker thread, batch by batch.
        body = usage.export_csv(backend.engine(), user_id=viewer.id, filters=filters)
        return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="request-logs.csv"',
            "Cache-Control": "no-store",
        })

    return router
