"""ASGI middleware of the API.

`ApiMiddleware` wraps the `/api/v1` app: gives each request its context and id, adds the
id and the rate-limit headers to every response, turns any escaped exception into the
error shape, and queues exactly one log row per request when it ends (streams included).

`PrintablePath` sits on the top-level app: a path with a control character (`/api/v1/x%0Ay`
decodes to a newline) would not match Starlette's mount pattern, which stops at a
newline, and would fall through to the dashboard outside the error shape. It percent-
encodes such characters again, so the path is routed like any other and answered by
the API (a 404 in the error shape, logged).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import RequestContext
from .errors import ApiError, error_response
from .runtime import Runtime

log = logging.getLogger(__name__)


class ApiMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = RequestContext(method=scope["method"], endpoint=scope["path"])
        client = scope.get("client")
        ctx.client = client[0] if client else None
        scope.setdefault("state", {})["ctx"] = ctx
        scope.pop("route", None)  # the outer router's Mount: only the v1 router's route names this request

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", ctx.request_id.encode()),
                    (b"x-ratelimit-limit-requests", str(ctx.rate_limit).encode()),
                    (b"x-ratelimit-remaining-requests", str(ctx.rate_remaining).encode()),
                    (b"x-ratelimit-reset-requests", f"{ctx.rate_reset_s}s".encode()),
                ]
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
                route = scope.get("route")  # set by the v1 app's router when a route matched
                root = scope.get("root_path", "")
                ctx.route = root + route.path if route is not None and hasattr(route, "path") else None
        except Exception as exc:
            if exc is ctx.unhandled:  # answered in the error shape by the v1 app's handler
                log.error("request %s failed", ctx.request_id, exc_info=exc)
            elif ctx.status:  # the response had begun (a stream): nothing more can be said
                if not isinstance(exc, OSError):
                    log.error("request %s failed after its response began: %s", ctx.request_id, type(exc).__name__)
            else:
                log.exception("request %s failed", ctx.request_id)
                ctx.error_code = "internal_error"
                await error_response(ApiError("internal_error"))(scope, receive, send_with_headers)
        finally:
            if ctx.in_flight_user is not None:
                self.runtime.inflight.leave(ctx.in_flight_user)
            if ctx.held and not ctx.finished:
                # Held, then neither billed nor refunded (a fault between the two): every
                # hold ends in one or the other, so it is refunded here, once.
                log.error("request %s ended with its hold open; refunding it", ctx.request_id)
                await self.runtime.refund(ctx, "the request ended before it was billed")
            self.runtime.record(ctx)


class PrintablePath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].isprintable():
            path = "".join(c if c.isprintable() else quote(c) for c in scope["path"])
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)
