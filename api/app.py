"""The `/api/v1` application.

`create_app()` builds a FastAPI app with the versioned API mounted at `/api/v1`; the
dashboard passes it to Reflex as `api_transformer`, and `api.app:app` serves it alone
(`uvicorn api.app:app`) for scale-out. The mounted sub-app answers every path under
`/api/v1`, unknown ones and wrong methods included, in the error shape.
"""

from __future__ import annotations

import contextlib
import re

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import Match, Mount
from starlette.types import Receive, Scope, Send

from store.settings import Settings, get_settings

from .errors import ApiError, error_response
from .metrics import metrics_endpoint
from .middleware import ApiMiddleware
from .routes import chat, images, models
from .runtime import Runtime

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
# Served by ApiMiddleware without FastAPI's routing layers (they are also routes of the
# v1 app, for its OpenAPI document and for any other method on these paths).
DIRECT_ROUTES = {
    ("POST", "/chat/completions"): chat.chat_completions,
    ("GET", "/models"): models.list_models,
    ("GET", "/key"): models.describe_key,
}


def create_v1(runtime: Runtime) -> FastAPI:
    v1 = FastAPI(
        title="LLM API platform",
        version="1.0",
        summary="OpenAI-compatible chat and image generation, billed in platform credits.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        redirect_slashes=False,
    )
    v1.state.runtime = runtime
    v1.include_router(models.router)
    v1.include_router(chat.router)
    v1.include_router(images.router)

    @v1.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError):
        request.scope["state"]["ctx"].error_code = exc.code
        return error_response(exc)

    @v1.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "invalid_request")
        return await on_api_error(request, ApiError(code, status=exc.status_code, headers=exc.headers))

    @v1.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        return await on_api_error(request, ApiError("invalid_request"))

    # Starlette's ServerErrorMiddleware answers an unhandled exception in plain text unless
    # given a handler for Exception: this one answers in the error shape (and the exception
    # still reaches ApiMiddleware, which logs it).
    @v1.exception_handler(Exception)
    async def on_unhandled(request: Request, exc: Exception):
        ctx = request.scope["state"]["ctx"]
        ctx.error_code, ctx.unhandled = "internal_error", exc
        return error_response(ApiError("internal_error"))

    _document_bearer_auth(v1)
    return v1


def _document_bearer_auth(v1: FastAPI) -> None:
    original = v1.openapi

    def openapi():
        if v1.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "sk_live_… API key"}
            }
            schema["security"] = [{"bearerAuth": []}]
            v1.openapi_schema = schema
        return v1.openapi_schema

    v1.openapi = openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fresh app with its own Runtime (`app.state.runtime`; `runtime.running()` is its lifespan)."""
    runtime = Runtime(settings or get_settings())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        async with runtime.running():
            yield

    app = PlatformApp(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.runtime = runtime
    app.add_route("/metrics", metrics_endpoint(runtime.metrics, runtime.settings.metrics_token),
                  methods=["GET"], include_in_schema=False)
    app.mount("/api/v1", ApiMiddleware(create_v1(runtime), runtime, direct=DIRECT_ROUTES))
    # Starlette's mount pattern stops at a newline ("." without DOTALL), so a path such as
    # /api/v1/x%0Ay would fall through to the outer app and answer outside the error shape.
    app.router.routes[-1].path_regex = re.compile(r"^/api/v1/(?P<path>.*)$", re.DOTALL)
    app.api_mount = app.router.routes[-1]
    return app


class PlatformApp(FastAPI):
    """The top-level app: `/metrics`, the `/api/v1` mount, and whatever the dashboard adds.

    A request the `/api/v1` mount would take goes to the mount at once, as the mount
    would pass it, when this app's own layers would do nothing for it: its error,
    exception and routing layers never do (ApiMiddleware answers every error itself),
    and the only middleware Reflex adds, CORS, acts only on requests with an `Origin`
    header (browsers; SDKs and servers send none) - short of adding `Vary: Origin`,
    which Reflex's own outer CORS layer adds anyway. Those layers cost ~7% of the hop's
    CPU (py-spy). Any other middleware added, or an `Origin`: the normal path.
    """

    api_mount: Mount | None = None

    def _layers_idle_for(self, scope: Scope) -> bool:
        if not self.user_middleware:
            return True
        if any(m.cls is not CORSMiddleware for m in self.user_middleware):
            return False
        return not any(name == b"origin" for name, _ in scope["headers"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.api_mount is not None and self._layers_idle_for(scope):
            match, child = self.api_mount.matches(scope)
            if match is Match.FULL:
                scope["app"] = self
                scope.update(child)
                await self.api_mount.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def __getattr__(name: str):
    # `uvicorn api.app:app` builds the standalone app on first access, so importing this
    # module (as the dashboard does) does not read settings or open an engine.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
