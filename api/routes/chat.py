"""POST /api/v1/chat/completions: checked in the spec's order, charged once, relayed."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from .. import chat_core
from ..deps import ChatModelCall
from ..errors import ERRORS, error_body
from ..prepare import CHAT
from ..schemas import ChatCompletionRequest, request_body

router = APIRouter()


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible; `stream: true` for server-sent events)",
    openapi_extra=request_body(ChatCompletionRequest),
    responses=ERRORS,
)
async def chat_completions(request: ChatModelCall) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once, relayed."""
    call = await chat_core.admit(request, CHAT)
    if not call.stream:
        return await chat_core.complete(call, orjson.dumps)
    return await chat_core.stream(call, ChatEvents(call.model_id, call.prepared.client_wants_usage))


class ChatEvents:
    """The upstream's own events, with the public model id; the usage chunk the platform
    asked for reaches only a caller who asked for it too."""

    __slots__ = ("model_id", "wants_usage")

    def __init__(self, model_id: str, wants_usage: bool) -> None:
        self.model_id, self.wants_usage = model_id, wants_usage

    def start(self) -> bytes:
        return b""

    def chunk(self, data: dict[str, Any]) -> bytes | None:
        if "model" in data:
            data["model"] = self.model_id
        if not self.wants_usage and isinstance(data.get("usage"), dict):
            if not data.get("choices"):
                return None  # the usage chunk the caller did not ask for
            del data["usage"]
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def other(self, lines: list[bytes]) -> bytes | None:
        return b"\n".join(lines) + b"\n\n"

    def end(self, done: bool) -> bytes:
        return b"" if done else b"data: [DONE]\n\n"

    def error(self, code: str, message: str) -> bytes:
        return b"data: " + error_body(code, message) + b"\n\n"
