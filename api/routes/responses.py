"""POST /api/v1/responses: OpenAI's Responses API. Forwarded as it is to a provider that
serves it (api/native.py), else translated to chat completions (api/translate/responses.py)
and run as any chat request (api/chat_core.py)."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from .. import chat_core, native
from ..deps import ChatModelCall
from ..errors import ERRORS
from ..prepare import RESPONSES
from ..schemas import ResponsesRequest, request_body
from ..translate import responses as translate

router = APIRouter()


@router.post(
    "/responses",
    summary="Create a model response (OpenAI Responses API; `stream: true` for typed events)",
    openapi_extra=request_body(ResponsesRequest),
    responses=ERRORS,
)
async def create_response(request: ChatModelCall) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once."""
    call = await chat_core.admit(request, RESPONSES)
    if call.prepared.native:
        headers = native.forwarded_headers(request.request)
        return await (native.stream(call, headers) if call.stream else native.complete(call, headers))
    assert call.prepared.echo is not None  # api.prepare made it, and checked it renders
    base = {**call.prepared.echo, "id": f"resp_{call.ctx.request_id}", "created_at": int(time.time())}
    if not call.stream:
        return await chat_core.complete(call, lambda data: orjson.dumps(translate.response(base, data)))
    return await chat_core.stream(call, translate.ResponseEvents(base))
