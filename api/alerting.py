"""The operator's alert for a spike of upstream errors, counted in one process.

Every `provider_error` answer (the upstream failed, timed out or refused) is counted in a
sliding window of `ALERT_ERROR_WINDOW_S`; when `ALERT_ERROR_SPIKE` of them fall inside it,
one `upstream_errors` alert is queued (store.alerts), and no other until a window has gone
by: a long outage reports once a window, not once a request. Counted per process (no
shared state, no write per request); N processes each report their own spike.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

PROVIDER_ERROR = "provider_error"


class ErrorSpike:
    def __init__(self, threshold: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold  # 0: never
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._quiet_until = float("-inf")

    def observe(self, error_code: str | None) -> int | None:
        """Count one answer; the number of provider errors in the window when an alert is due."""
        if not self.threshold or error_code != PROVIDER_ERROR:
            return None
        now = self._clock()
        self._times.append(now)
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) >= self.threshold and now >= self._quiet_until:
            self._quiet_until = now + self.window_s
            return len(self._times)
        return None
