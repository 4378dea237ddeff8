"""Upstream provider clients. They raise UpstreamError; routes decide refunds."""

from ..errors import ApiError


class UpstreamError(Exception):
    """The upstream failed. `timeout` selects 504 over 502; `retryable` allows one more try."""

    def __init__(self, message: str, *, timeout: bool = False, retryable: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.retryable = retryable

    def as_api_error(self) -> ApiError:
        """What the caller sees: `provider_error`, 504 when the upstream timed out, else 502."""
        return ApiError("provider_error", str(self), status=504 if self.timeout else 502)
