"""Reading a JSON request body without ever holding more than MAX_BODY_BYTES of it."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from .errors import ApiError


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    too_large = ApiError("request_too_large", f"Request body exceeds {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    try:
        data = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ApiError("invalid_request", "Request body must be valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError("invalid_request", "Request body must be a JSON object")
    return data


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise ApiError("model_required")
    if not isinstance(model, str) or len(model) > 200:
        raise ApiError("invalid_request", "`model` must be a string of at most 200 characters")
    return model


def check_types(body: dict[str, Any], rules: dict[str, tuple[type | tuple[type, ...], float | None, float | None]]) -> None:
    """Reject present fields of the wrong type or out of range (booleans are not numbers)."""
    for name, (types, low, high) in rules.items():
        if name not in body or body[name] is None:
            continue
        value = body[name]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ApiError("invalid_request", f"`{name}` has the wrong type")
        if not isinstance(value, types):
            raise ApiError("invalid_request", f"`{name}` has the wrong type")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ApiError("invalid_request", f"`{name}` must be between {low} and {high}")
