"""Reading a JSON request body: never more than MAX_BODY_BYTES of it held, never longer
than BODY_READ_TIMEOUT_S spent waiting for it (a body trickled in a byte at a time is cut
with 408 and its connection closed), and a big one decoded off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request

from .errors import ApiError

# From this size on a body is decoded and validated in a worker process (Runtime.offload)
# and a key that cannot pay the smallest hold is refused before it is parsed at all.
BIG_BODY_BYTES = 256 * 1024


async def read_body(request: Request, *, max_bytes: int, timeout_s: float) -> bytes:
    too_large = ApiError("request_too_large", f"Request body exceeds {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            "invalid_request",
            f"Request body not received within {timeout_s:g} seconds",
            status=408,
            headers={"Connection": "close"},
        ) from None
    return b"".join(chunks)


def decode_object(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError("invalid_request", "Request body must be valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError("invalid_request", "Request body must be a JSON object")
    return data
