"""GET /api/v1/models, GET /api/v1/models/{id} and GET /api/v1/key."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from store import keys, usage
from store.money import json_credits
from store.registry import public_view

from ..deps import ContextDep, ReaderKey, RuntimeDep
from ..errors import ERRORS, ApiError

router = APIRouter()
# OpenRouter's `rate_limit.interval` for the platform's per-minute limit.
RATE_LIMIT_INTERVAL = "1m"


def _json(body: dict) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/models", summary="List the enabled public models", responses=ERRORS)
async def list_models(key: ReaderKey, runtime: RuntimeDep) -> Response:
    models = await runtime.models()
    data = [public_view(m) for m in models.values() if m.enabled and key.allows(m.id)]
    data.sort(key=lambda m: (m["category"], m["id"]))
    return _json({"object": "list", "data": data})


# `:path`: model ids contain a slash (`openai/gpt-5`).
@router.get("/models/{model_id:path}", summary="One enabled public model, as the list shows it", responses=ERRORS)
async def retrieve_model(model_id: str, key: ReaderKey, runtime: RuntimeDep, ctx: ContextDep) -> Response:
    entry = (await runtime.models()).get(model_id)
    if entry is None or not entry.enabled or not key.allows(model_id):
        raise ApiError("model_not_available")
    ctx.model = entry.id
    return _json(public_view(entry))


@router.get("/key", summary="Describe the calling key and its user's credit balance", responses=ERRORS)
async def describe_key(key: ReaderKey, runtime: RuntimeDep) -> Response:
    """The key and its user's balance; `data` carries OpenRouter's fields of `GET /key`, so
    tools written for OpenRouter read the balance. Credits belong to the user, not the key:
    `usage` is what the user's requests cost (net of settlements and refunds, every key),
    `limit_remaining` the balance, and `limit` their sum (all the credits ever granted).
    A key with a budget reports its own, as OpenRouter does: `limit` the budget,
    `limit_remaining` what is left of it this period, `limit_reset` daily, weekly, monthly
    or null (a budget for the key's whole life)."""
    totals = await runtime.db(usage.credit_totals, user_id=key.user_id)
    budget = await runtime.db(keys.budget_status, key_id=key.key_id)
    rpm = key.rate_limit_per_minute
    data = {
        "label": key.name,
        "usage": json_credits(totals.used),
        "limit": json_credits(totals.used + totals.balance),
        "limit_remaining": json_credits(totals.balance),
        "is_free_tier": False,
        # the platform's 0 (unlimited) as -1, so no tool reads it as "no requests allowed"
        "rate_limit": {"requests": rpm if rpm > 0 else -1, "interval": RATE_LIMIT_INTERVAL},
    }
    if budget is not None:
        data.update(
            limit=json_credits(budget.budget),
            limit_remaining=json_credits(budget.remaining),
            limit_reset=budget.reset_word,
        )
    return _json(
        {
            "object": "api_key",
            "name": key.name,
            "prefix": key.prefix,
            "rate_limit_per_minute": rpm,
            "credit_balance": json_credits(totals.balance),
            "data": data,
        }
    )
