"""POST /api/v1/responses: OpenAI's Responses API, translated to chat completions
(api/translate/responses.py) and run as any chat request (api/chat_core.py)."""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from .. import chat_core
from ..body import read_json_object
from ..deps import CallerKey, ContextDep, RuntimeDep
from ..errors import ERRORS
from ..schemas import ResponsesRequest, parse, request_body
from ..translate import responses as translate

router = APIRouter()


async def responses_body(request: Request, runtime: RuntimeDep) -> ResponsesRequest:
    return parse(ResponsesRequest, await read_json_object(request, runtime.settings.max_body_bytes))


ResponsesBody = Annotated[ResponsesRequest, Depends(responses_body)]


@router.post(
    "/responses",
    summary="Create a model response (OpenAI Responses API, text; `stream: true` for typed events)",
    openapi_extra=request_body(ResponsesRequest),
    responses=ERRORS,
)
async def create_response(key: CallerKey, request: ResponsesBody, runtime: RuntimeDep, ctx: ContextDep) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once."""
    body = request.model_dump(exclude_unset=True)
    call = await chat_core.admit(runtime, ctx, translate.chat_body(body))
    base = translate.shell(
        body,
        response_id=f"resp_{ctx.request_id}",
        model_id=call.model_id,
        created=int(time.time()),
        max_tokens=call.plan.max_tokens,
    )
    if not call.stream:
        return await chat_core.complete(call, lambda data: orjson.dumps(translate.response(base, data)))
    return await chat_core.stream(call, translate.ResponseEvents(base))
