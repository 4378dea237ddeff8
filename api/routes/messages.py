"""POST /api/v1/messages: Anthropic's Messages API, translated to chat completions
(api/translate/anthropic.py) and run as any chat request (api/chat_core.py). The key may
come as `x-api-key` (api.deps); `anthropic-version` and `anthropic-beta` are ignored."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from .. import chat_core
from ..body import read_json_object
from ..deps import CallerKey, ContextDep, RuntimeDep
from ..errors import ERRORS
from ..schemas import MessagesRequest, parse, request_body
from ..translate import anthropic as translate

router = APIRouter()


async def messages_body(request: Request, runtime: RuntimeDep) -> MessagesRequest:
    return parse(MessagesRequest, await read_json_object(request, runtime.settings.max_body_bytes))


MessagesBody = Annotated[MessagesRequest, Depends(messages_body)]


@router.post(
    "/messages",
    summary="Create a message (Anthropic Messages API, text; `stream: true` for its events)",
    openapi_extra=request_body(MessagesRequest),
    responses=ERRORS,
)
async def create_message(key: CallerKey, request: MessagesBody, runtime: RuntimeDep, ctx: ContextDep) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once."""
    call = await chat_core.admit(runtime, ctx, translate.chat_body(request.model_dump(exclude_unset=True)))
    message_id = f"msg_{ctx.request_id}"
    if not call.stream:
        return await chat_core.complete(call, lambda data: orjson.dumps(translate.message(data, message_id=message_id)))
    return await chat_core.stream(call, translate.MessageEvents(message_id=message_id, model_id=call.model_id))
