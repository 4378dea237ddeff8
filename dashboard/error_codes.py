"""What each `/api/v1` error code means, in words for the Logs page (SPEC, "The /api/v1
contract"). The request log keeps the code, not the message the caller got."""

from __future__ import annotations

MEANINGS = {
    "invalid_api_key": "The key was missing, unknown, revoked or expired.",
    "api_disabled": "The key is disabled, or an admin turned off API access for its user.",
    "rate_limit_exceeded": "The key's requests per minute, or the calls one user may have open at once, were used up.",
    "invalid_request": "The request was malformed, or a field had the wrong type or range.",
    "model_required": "The request named no model.",
    "model_not_available": "The model is unknown, disabled, not allowed for this key, or not for this endpoint.",
    "messages_required": "A chat request needs a non-empty messages list.",
    "prompt_required": "An image request needs a non-empty prompt.",
    "insufficient_credits": "The balance was below what the request could cost; the provider was not called.",
    "key_budget_exceeded": "The key's own budget for its period is spent.",
    "provider_not_configured": "The model's provider has no credentials on this server.",
    "provider_error": "The upstream provider failed or timed out; the credits were refunded.",
    "not_found": "No such path under /api/v1.",
    "method_not_allowed": "That method is not allowed on this path.",
    "task_not_found": "The image task is unknown or not this user's.",
    "invalid_signature": "The media URL's signature was wrong or had expired.",
    "request_too_large": "The request body was over the size limit.",
    "service_unavailable": "The service was briefly unavailable (for instance its rate-limit store); retrying works.",
    "internal_error": "The platform failed; the credits were refunded.",
}


def meaning(code: str) -> str:
    return MEANINGS.get(code, "")
