"""The `/api/v1` application.

`create_app()` builds a Starlette app with the versioned API (FastAPI) mounted at
`/api/v1`; the dashboard passes it to Reflex as an `api_transformer`, and `api.app:app` serves it alone
(`uvicorn api.app:app`) for scale-out. The mounted sub-app answers every path under
`/api/v1`, unknown ones and wrong methods included, in the error shape (`PrintablePath`
keeps paths with control characters inside the mount).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from store.settings import Settings, get_settings

from .errors import ApiError, error_response
from .metrics import metrics_endpoint
from .middleware import ApiMiddleware, PrintablePath
from .routes import chat, embeddings, images, messages, models, responses
from .runtime import Runtime

# FastAPI's own OpenTelemetry spans and metrics: off (the platform has /metrics and its
# access log); FastAPI otherwise asks on every request whether a provider is configured.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
# Swagger UI's files, from the swagger-ui-dist npm package that `make run` installs into
# .tools/ (as it does bun), so the docs page works without reaching a CDN. Without them
# (the API run alone, never set up by make) the page loads them from FastAPI's CDN.
SWAGGER_UI_DIR = Path(__file__).resolve().parents[1] / ".tools" / "swagger-ui" / "node_modules" / "swagger-ui-dist"
SWAGGER_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"


def _add_docs(v1: FastAPI, assets: Path = SWAGGER_UI_DIR) -> None:
    """`/docs`: Swagger UI over `/openapi.json`, its script and styles served from `/docs/assets`."""
    local = (assets / "swagger-ui-bundle.js").is_file()
    if local:
        v1.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @v1.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        base = f"{root}/docs/assets" if local else SWAGGER_CDN
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{v1.title} - Swagger UI",
            swagger_js_url=f"{base}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}/swagger-ui.css",
            swagger_favicon_url=f"{base}/favicon-32x32.png",
        )


def create_v1(runtime: Runtime) -> FastAPI:
    """The versioned API: every route is declared by its decorator in `api/routes/`."""
    v1 = FastAPI(
        title="LLM API platform",
        version="1.0",
        summary="OpenAI-compatible chat and image generation, billed in platform credits.",
        openapi_url="/openapi.json",
        docs_url=None,  # _add_docs: Swagger UI with its files served from here
        redoc_url=None,
        redirect_slashes=False,
        telemetry=NO_TELEMETRY,
    )
    v1.state.runtime = runtime
    # The routes go on the app's own router, the model calls first. (FastAPI's
    # include_router keeps each router apart and, on every request, walks each one and
    # re-counts its routes to find the route: ~50 µs a request, measured.)
    for module in (chat, responses, messages, embeddings, images, models):
        v1.router.routes.extend(module.router.routes)
    _add_docs(v1)

    @v1.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError):
        ctx = request.scope["state"]["ctx"]
        ctx.error_code = exc.code
        if exc.model is not None and ctx.model is None:
            ctx.model = exc.model
        return error_response(exc)

    @v1.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "invalid_request")
        return await on_api_error(request, ApiError(code, status=exc.status_code, headers=dict(exc.headers or {})))

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

    def openapi() -> dict:
        if v1.openapi_schema is None:
            schema = get_openapi(title=v1.title, version=v1.version, summary=v1.summary, routes=v1.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "sk_live_… API key"}
            }
            schema["security"] = [{"bearerAuth": []}]
            v1.openapi_schema = schema
        return v1.openapi_schema

    # FastAPI's documented way to extend the schema is to replace the method, which mypy
    # refuses for any method: not a mistake here.
    v1.openapi = openapi  # type: ignore[method-assign]
    return v1


def create_app(settings: Settings | None = None) -> Starlette:
    """A fresh app with its own Runtime (`app.state.runtime`; `runtime.running()` is its
    lifespan): `/metrics` and the versioned API at `/api/v1`. A plain Starlette app around
    the FastAPI one: it only routes, so a request pays for one framework's layers, not two."""
    runtime = Runtime(settings or get_settings())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        async with runtime.running():
            yield

    v1 = create_v1(runtime)
    app = Starlette(
        routes=[
            Route("/metrics", metrics_endpoint(runtime.metrics, runtime.settings.metrics_token), methods=["GET"]),
            Mount("/api/v1", app=ApiMiddleware(v1, runtime)),
        ],
        middleware=[Middleware(PrintablePath)],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.v1 = v1
    return app


def __getattr__(name: str):
    # `uvicorn api.app:app` builds the standalone app on first access, so importing this
    # module (as the dashboard does) does not read settings or open an engine.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
