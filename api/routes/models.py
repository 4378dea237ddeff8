"""GET /api/v1/models and GET /api/v1/key."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from store.money import json_credits
from store.registry import public_view

from ..deps import ReaderKey, RuntimeDep
from ..errors import ERRORS

router = APIRouter()


@router.get("/models", summary="List the enabled public models", responses=ERRORS)
async def list_models(key: ReaderKey, runtime: RuntimeDep) -> Response:
    models = await runtime.models()
    data = [public_view(m) for m in models.values() if m.enabled]
    data.sort(key=lambda m: (m["category"], m["id"]))
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


@router.get("/key", summary="Describe the calling key and its user's credit balance", responses=ERRORS)
async def describe_key(key: ReaderKey, runtime: RuntimeDep) -> Response:
    balance = await runtime.balance(key.user_id)
    body = {
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "rate_limit_per_minute": key.rate_limit_per_minute,
        "credit_balance": json_credits(balance),
    }
    return Response(orjson.dumps(body), media_type="application/json")
