"""Key budgets: the periods they reset on, and what a key has spent in the current one.

A period starts at 00:00 UTC: each day, each Monday (`week`), each 1st of the month. A
key's `budget_spent` counts from its `budget_period_start`; once that start lies before
the current period's, the spend is 0 again. The debit (store.credits) rolls a key over in
the same conditional statement that checks and adds its hold, using the period starts of
`period_starts(now)`; everything that only reads (GET /key, the API Keys page) uses
`spent_now`. Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY, WEEK, MONTH = "day", "week", "month"
PERIODS = (DAY, WEEK, MONTH)
# OpenRouter's `limit_reset` words for GET /key.
RESET_WORDS = {DAY: "daily", WEEK: "weekly", MONTH: "monthly"}
ALERT_LEVELS = (80, 100)  # percent of a budget whose crossing is reported once a period


def aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def period_starts(now: datetime) -> dict[str, datetime]:
    """The start of the day, week and month `now` falls in (UTC)."""
    now = aware(now).astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return {DAY: day, WEEK: day - timedelta(days=day.weekday()), MONTH: day.replace(day=1)}


def next_start(period: str, now: datetime) -> datetime:
    """When the current `period` ends (the next one starts)."""
    start = period_starts(now)[period]
    if period == DAY:
        return start + timedelta(days=1)
    if period == WEEK:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def spent_now(*, spent: int, period: str | None, period_start: datetime | None, now: datetime) -> int:
    """What counts against the budget now: the stored spend, unless its period is over."""
    if period is None:
        return spent
    if period_start is None or aware(period_start) < period_starts(now)[period]:
        return 0
    return spent


def alert_level(*, spent: int, budget: int) -> int:
    """The highest of ALERT_LEVELS that `spent` has reached (0: none)."""
    reached = [level for level in ALERT_LEVELS if spent * 100 >= budget * level]
    return max(reached, default=0)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A key's budget as a person or GET /key reads it (micro-credits)."""

    budget: int
    spent: int  # this period, holds of calls in flight included
    period: str | None
    resets_at: datetime | None  # None: the budget never resets

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.spent)

    @property
    def reset_word(self) -> str | None:
        return RESET_WORDS.get(self.period or "")


def status(
    *, budget: int | None, spent: int, period: str | None, period_start: datetime | None, now: datetime
) -> BudgetStatus | None:
    """The budget of a key with these columns, or None when it has none."""
    if budget is None:
        return None
    return BudgetStatus(
        budget=budget,
        spent=spent_now(spent=spent, period=period, period_start=period_start, now=now),
        period=period,
        resets_at=next_start(period, now) if period else None,
    )
