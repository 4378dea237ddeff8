"""Placeholder: replaced by the real app (owned by the core author)."""
import contextlib

from fastapi import FastAPI


class _Runtime:
    @contextlib.asynccontextmanager
    async def running(self):
        yield


def create_app(settings=None) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = _Runtime()
    v1 = FastAPI()

    @v1.get("/models")
    async def models():
        return {"object": "list", "data": []}

    app.mount("/api/v1", v1)
    return app


app = create_app()
