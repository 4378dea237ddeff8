"""POST /api/v1/embeddings: OpenAI's embeddings, checked in the spec's order and billed
per prompt token through the one billing path (hold, bill, finish; refund on failure).

The upstream is asked in the same format (`POST {OPENROUTER_BASE_URL}/embeddings`) and
always for floats, its default, which every OpenAI-compatible server (OpenRouter, OpenAI,
vLLM, Ollama) answers; a caller who asked for `base64` (the openai SDKs do by default)
gets the vectors as little-endian float32, base64-encoded, as OpenAI sends them.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from .. import billing
from ..deps import EmbeddingModelCall
from ..errors import ERRORS, ApiError
from ..prepare import EMBEDDINGS, prepare
from ..providers import UpstreamError
from ..schemas import EmbeddingRequest, request_body

router = APIRouter()


@router.post(
    "/embeddings",
    summary="Create embeddings (OpenAI-compatible), billed per prompt token",
    openapi_extra=request_body(EmbeddingRequest),
    responses=ERRORS,
)
async def create_embeddings(request: EmbeddingModelCall) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once."""
    runtime, ctx = request.runtime, request.ctx
    prepared = await runtime.offload(ctx, prepare, EMBEDDINGS, request.raw, await runtime.entry_views())
    ctx.model = prepared.model_id
    entry = await runtime.model_for(prepared.model_id, "embedding", request.key)
    upstream = runtime.chat
    if entry.provider != "openrouter" or upstream is None or not upstream.configured:
        raise ApiError("provider_not_configured")
    await billing.hold(runtime, ctx, entry, prompt_bound=prepared.prompt_bound, max_tokens=0)
    try:
        data = await upstream.embed(prepared.content)
        items = vectors(data.get("data"), prepared.options["encoding_format"])
        ctx.upstream_id = data.get("id")
        usage = data.get("usage")
        if isinstance(usage, dict) and "completion_tokens" not in usage and "prompt_tokens" in usage:
            usage["completion_tokens"] = 0  # an embedding generates nothing: priced on its prompt alone
        billing.bill(runtime, ctx, entry, usage, prompt_bytes=len(prepared.content))
        answer: dict[str, Any] = {"object": "list", "data": items, "model": prepared.model_id}
        if usage is not None:
            answer["usage"] = usage
        response = Response(orjson.dumps(answer), media_type="application/json")
        billing.finish(runtime, ctx)
        return response
    except BaseException as exc:  # an upstream's error, a platform fault or the caller gone after the debit
        await billing.refund(runtime, ctx, exc)


def vectors(items: Any, encoding_format: str) -> list[dict[str, Any]]:
    """The upstream's `data` in the caller's format (float lists, or base64 of float32)."""
    if not isinstance(items, list) or not items:
        raise UpstreamError("Upstream provider answered without embeddings")
    out = []
    for position, item in enumerate(items):
        vector = item.get("embedding") if isinstance(item, dict) else None
        index = item.get("index", position) if isinstance(item, dict) else position
        try:
            if encoding_format == "base64":
                vector = vector if isinstance(vector, str) else to_base64(vector)
            elif isinstance(vector, str):
                vector = from_base64(vector)
            elif not isinstance(vector, list):
                raise TypeError
        except (TypeError, ValueError, OverflowError):
            raise UpstreamError("Upstream provider answered a malformed embedding") from None
        out.append({"object": "embedding", "index": index, "embedding": vector})
    return out


def to_base64(vector: Any) -> str:
    """Floats as OpenAI's base64 encoding: little-endian float32."""
    if not isinstance(vector, list) or any(isinstance(v, bool) for v in vector):
        raise TypeError("not a list of numbers")
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def from_base64(text: str) -> list[float]:
    packed = array("f")
    packed.frombytes(base64.b64decode(text, validate=True))
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tolist()
