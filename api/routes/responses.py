"""POST /api/v1/responses: OpenAI's Responses API, translated to chat completions
(api/translate/responses.py) and run as any chat request (api/chat_core.py)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from .. import chat_core
from ..chat_policy import check_metadata
from ..deps import CallerKey, ContextDep, ResponsesBody, RuntimeDep
from ..errors import ERRORS
from ..schemas import ResponsesRequest, request_body
from ..translate import responses as translate

router = APIRouter()


@router.post(
    "/responses",
    summary="Create a model response (OpenAI Responses API, text; `stream: true` for typed events)",
    openapi_extra=request_body(ResponsesRequest),
    responses=ERRORS,
)
async def create_response(key: CallerKey, request: ResponsesBody, runtime: RuntimeDep, ctx: ContextDep) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once."""
    body = request.model_dump(exclude_unset=True)
    response_id, created = f"resp_{ctx.request_id}", int(time.time())

    def shell(max_tokens: int) -> dict[str, Any]:
        return translate.shell(
            body, response_id=response_id, model_id=body["model"], created=created, max_tokens=max_tokens
        )

    # What the answer echoes (metadata, text, instructions) must be echoable before anything
    # is held: a body that cannot be rendered back is refused, not refunded after the call.
    check_metadata(body.get("metadata"))
    await runtime.cpu(ctx, lambda: chat_core.serialise(shell(0)))
    call = await chat_core.admit(runtime, ctx, body, translate.chat_body)
    base = shell(call.plan.max_tokens)
    if not call.stream:
        return await chat_core.complete(call, lambda data: orjson.dumps(translate.response(base, data)))
    return await chat_core.stream(call, translate.ResponseEvents(base))
