"""Model calls open at once per user in this process (`MAX_IN_FLIGHT_PER_USER`): one
caller cannot hold the whole upstream connection pool. Counted from admission to the end
of the response (a stream's last byte); past the limit a call is refused with 429."""

from __future__ import annotations

from .errors import ApiError


class InFlight:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[int, int] = {}

    def enter(self, user_id: int) -> None:
        """Count one more open call of `user_id`, or refuse it (nothing counted)."""
        count = self._counts.get(user_id, 0)
        if count >= self.limit:
            raise ApiError(
                "rate_limit_exceeded",
                f"Too many requests in flight for this account (at most {self.limit} at once)",
                headers={"Retry-After": "1"},
            )
        self._counts[user_id] = count + 1

    def leave(self, user_id: int) -> None:
        count = self._counts.get(user_id, 0) - 1
        if count > 0:
            self._counts[user_id] = count
        else:
            self._counts.pop(user_id, None)

    def count(self, user_id: int) -> int:
        return self._counts.get(user_id, 0)
