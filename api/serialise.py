"""The one way a body bound upstream (or an answer's echo) is written: orjson, with a body
it cannot write (nested deeper than it allows) refused as the caller's `invalid_request`."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import ApiError


def serialise(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise ApiError("invalid_request", "Request body cannot be encoded (nested too deeply?)") from None
