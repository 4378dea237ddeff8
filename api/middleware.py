"""Wraps the `/api/v1` app: gives each request its context and id, adds the id and the
rate-limit headers to every response, turns any escaped exception into the error shape,
and queues exactly one log row per request when it ends (streams included).

The hot endpoints (`direct`: chat completions, models, key) are called straight from
here. Each takes only the `Request` and returns a `Response`, so FastAPI's routing,
dependency and exception-middleware layers add nothing for them but cost about a fifth
of the hop's CPU (py-spy, see docs/production.md); every other path, a wrong method or
a trailing slash included, goes through the FastAPI app as before.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import RequestContext
from .errors import ApiError, error_response
from .runtime import Runtime

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime, direct: Mapping[tuple[str, str], Endpoint] | None = None) -> None:
        self.app = app
        self.runtime = runtime
        self.direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = RequestContext(method=scope["method"], endpoint=scope["path"])
        client = scope.get("client")
        ctx.client = client[0] if client else None
        scope.setdefault("state", {})["ctx"] = ctx

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

        root = scope.get("root_path", "")
        endpoint = self.direct.get((scope["method"], scope["path"][len(root):])) if scope["path"].startswith(root) else None
        try:
            if endpoint is None:
                try:
                    await self.app(scope, receive, send_with_headers)
                finally:
                    route = scope.get("route")  # set by the v1 app's router when a route matched
                    ctx.route = root + route.path if route is not None and hasattr(route, "path") else None
            else:
                ctx.route = scope["path"]
                await self._call_direct(endpoint, ctx, scope, receive, send_with_headers)
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
            self.runtime.record(ctx)

    async def _call_direct(self, endpoint: Endpoint, ctx: RequestContext, scope: Scope, receive: Receive,
                           send: Send) -> None:
        """What the FastAPI app does for these routes: call, map an ApiError to its response."""
        scope["app"] = self.app
        try:
            response = await endpoint(Request(scope, receive))
        except ApiError as exc:
            ctx.error_code = exc.code
            response = error_response(exc)
        await response(scope, receive, send)
