"""The wire format of every `/api/v1` error: `{"error": {"message", "type", "code"}}`.

One ApiError per failure a caller can see; `error_response` is the only place that
turns one into bytes, so the shape cannot drift between routes and middleware.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

# code -> (HTTP status, default message)
CODES: dict[str, tuple[int, str]] = {
    "invalid_api_key": (401, "Invalid API key"),
    "api_disabled": (403, "API access is disabled for this key"),
    "rate_limit_exceeded": (429, "Rate limit exceeded"),
    "invalid_request": (400, "Invalid request"),
    "model_required": (400, "Model is required"),
    "model_not_available": (404, "Model is not available"),
    "messages_required": (400, "Messages are required"),
    "prompt_required": (400, "Prompt is required"),
    "insufficient_credits": (402, "Insufficient credits"),
    "provider_not_configured": (503, "Provider is not configured"),
    "provider_error": (502, "Upstream provider error"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "task_not_found": (404, "Task not found"),
    "invalid_signature": (403, "Invalid or expired signature"),
    "request_too_large": (413, "Request body too large"),
    "key_budget_exceeded": (402, "This key's budget for its period is spent"),
    "service_unavailable": (503, "Service temporarily unavailable; retry shortly"),
    "internal_error": (500, "Internal error"),
}


class ApiError(Exception):
    def __init__(
        self, code: str, message: str | None = None, *, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.message = message or default_message
        self.status = status or default_status
        self.headers = headers or {}
        self.model: str | None = None  # the model the refused request named, for its log row
        super().__init__(self.message)

    def __reduce__(self):  # crosses from a worker process (api.prepare) whole
        state = {"status": self.status, "headers": self.headers, "model": self.model}
        return (ApiError, (self.code, self.message), state)


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": code, "code": code}})


def error_response(exc: ApiError) -> Response:
    return Response(
        error_body(exc.code, exc.message), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str


class ErrorBody(BaseModel):
    """Every error's body (the OpenAPI document's responses are generated from it and CODES)."""

    error: ErrorDetail


def _responses() -> dict[int | str, dict[str, Any]]:
    codes: dict[int, list[str]] = defaultdict(list)
    for code, (status, _) in CODES.items():
        codes[status].append(code)
    codes[504].append("provider_error (upstream timeout)")
    return {status: {"model": ErrorBody, "description": ", ".join(names)} for status, names in sorted(codes.items())}


ERRORS = _responses()  # `responses=` of every route
