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
