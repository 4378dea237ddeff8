"""POST /api/v1/messages: Anthropic's Messages API. Forwarded as it is to a provider that
serves it (api/native.py, with `anthropic-version` and `anthropic-beta`), else translated
to chat completions (api/translate/anthropic.py) and run as any chat request
(api/chat_core.py). The key may come as `x-api-key` (api.deps)."""

from __future__ import annotations

import logging

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from .. import chat_core, native, prepare
from ..deps import ChatModelCall, FreeModelRead
from ..errors import ERRORS
from ..prepare import MESSAGES
from ..providers import UpstreamError
from ..schemas import MessagesRequest, request_body
from ..translate import anthropic as translate

router = APIRouter()
log = logging.getLogger(__name__)


@router.post(
    "/messages",
    summary="Create a message (Anthropic Messages API; `stream: true` for its events)",
    openapi_extra=request_body(MessagesRequest),
    responses=ERRORS,
)
async def create_message(request: ChatModelCall) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once."""
    call = await chat_core.admit(request, MESSAGES)
    if call.prepared.native:
        headers = native.forwarded_headers(request.request)
        return await (native.stream(call, headers) if call.stream else native.complete(call, headers))
    message_id = f"msg_{call.ctx.request_id}"
    if not call.stream:
        return await chat_core.complete(call, lambda data: orjson.dumps(translate.message(data, message_id=message_id)))
    return await chat_core.stream(call, translate.MessageEvents(message_id=message_id, model_id=call.model_id))


@router.post(
    "/messages/count_tokens",
    summary="Count a message's input tokens (Anthropic `count_tokens`; free, does not use up the rate limit)",
    openapi_extra=request_body(MessagesRequest),
    responses=ERRORS,
)
async def count_message_tokens(request: FreeModelRead) -> Response:
    """Forwarded to a provider that serves Messages (its own count), else, or when it cannot
    count, counted here: an estimate that errs high (store.pricing.prompt_token_estimate).
    Nothing is charged."""
    runtime, ctx = request.runtime, request.ctx
    counted = await runtime.offload(ctx, prepare.count_tokens, request.raw, await runtime.entry_views())
    ctx.model = counted.model_id
    chat = runtime.chat
    if MESSAGES in runtime.native_formats and chat is not None and chat.configured:
        try:
            data = await chat.complete(
                counted.content, "/messages/count_tokens", native.forwarded_headers(request.request)
            )
        except UpstreamError as exc:  # an agent calls it dozens of times: a count it gets, either way
            log.warning("count_tokens upstream failed (%s); answered with the local estimate", exc)
            data = {}
        tokens = data.get("input_tokens")
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
            return Response(orjson.dumps({"input_tokens": tokens}), media_type="application/json")
    return Response(orjson.dumps({"input_tokens": counted.estimate}), media_type="application/json")
