"""POST /api/v1/messages: Anthropic's Messages API, translated to chat completions
(api/translate/anthropic.py) and run as any chat request (api/chat_core.py). The key may
come as `x-api-key` (api.deps); `anthropic-version` and `anthropic-beta` are ignored."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from .. import chat_core
from ..deps import CallerKey, ChatRaw, ContextDep, RuntimeDep
from ..errors import ERRORS
from ..prepare import MESSAGES
from ..schemas import MessagesRequest, request_body
from ..translate import anthropic as translate

router = APIRouter()


@router.post(
    "/messages",
    summary="Create a message (Anthropic Messages API, text; `stream: true` for its events)",
    openapi_extra=request_body(MessagesRequest),
    responses=ERRORS,
)
async def create_message(key: CallerKey, raw: ChatRaw, runtime: RuntimeDep, ctx: ContextDep) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once."""
    call = await chat_core.admit(runtime, ctx, MESSAGES, raw)
    message_id = f"msg_{ctx.request_id}"
    if not call.stream:
        return await chat_core.complete(call, lambda data: orjson.dumps(translate.message(data, message_id=message_id)))
    return await chat_core.stream(call, translate.MessageEvents(message_id=message_id, model_id=call.model_id))
