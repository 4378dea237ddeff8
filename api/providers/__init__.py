"""Upstream provider clients. They raise UpstreamError; routes decide refunds and statuses."""


class UpstreamError(Exception):
    """The upstream failed. `timeout` selects 504 over 502; `retryable` allows one more try."""

    def __init__(self, message: str, *, timeout: bool = False, retryable: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.retryable = retryable
