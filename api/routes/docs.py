"""OpenAPI fragments for routes that read their bodies by hand (for speed and exact errors)."""

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"}},
        }
    },
}

_error = {"content": {"application/json": {"schema": ERROR_SCHEMA}}}
ERRORS = {
    400: {"description": "invalid_request, model_required, messages_required, prompt_required", **_error},
    401: {"description": "invalid_api_key", **_error},
    402: {"description": "insufficient_credits", **_error},
    403: {"description": "api_disabled", **_error},
    404: {"description": "model_not_available, not_found", **_error},
    413: {"description": "request_too_large", **_error},
    429: {"description": "rate_limit_exceeded", **_error},
    502: {"description": "provider_error", **_error},
    503: {"description": "provider_not_configured", **_error},
    504: {"description": "provider_error (upstream timeout)", **_error},
}

CHAT_REQUEST = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": {"type": "string", "example": "openai/gpt-5"},
                    "messages": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["role", "content"],
                            "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
                        },
                    },
                    "stream": {"type": "boolean"},
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "max_tokens": {"type": "integer", "minimum": 1},
                },
            }
        }
    },
}

IMAGE_REQUEST = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model", "prompt"],
                "properties": {
                    "model": {"type": "string", "example": "google/nano-banana-pro"},
                    "prompt": {"type": "string", "example": "A cinematic photo of a robot reading API docs"},
                    "size": {"type": "string", "pattern": "^[0-9]+x[0-9]+$", "example": "1024x1024"},
                    "n": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
                    "webhook_url": {"type": "string", "format": "uri",
                                    "description": "receives a signed POST when the task ends"},
                },
            }
        }
    },
}
