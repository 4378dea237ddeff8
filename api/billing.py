"""The API's half of the one billing path (the store's half is store.credits):

    hold    admission debits the request's upper bound (store.pricing.reservation) in the
            one conditional statement (Runtime.debit); 402 and no upstream call if short
    bill    once the usage is known, the charge (store.pricing.charge, capped at the
            hold) is set on the request and shown to the caller as `usage.cost`; the
            difference goes back in one `settle` ledger row written after the answer,
            off its path. Without usage, the request waits for the reconciler.
    refund  a failure gives everything back, once (Runtime.refund)

Every model endpoint calls `hold` and `bill` (or `refund`); none computes a price itself.
"""

from __future__ import annotations

import logging
from typing import Any

from store import credits, pricing, settlements
from store.models import ModelEntry
from store.money import MICRO, json_credits

from .context import RequestContext
from .runtime import Runtime

log = logging.getLogger(__name__)

# The upstream's own accounting: never shown to a user.
_UPSTREAM_COST_FIELDS = ("cost", "cost_details", "is_byok")


async def hold(runtime: Runtime, ctx: RequestContext, entry: ModelEntry, *, prompt_bound: int, max_tokens: int,
               n: int = 1) -> int:
    """Debit the most this request can cost; returns it."""
    held = pricing.reservation(entry, prompt_bound=prompt_bound, max_tokens=max_tokens, n=n)
    await runtime.debit(ctx, cost=held, model=entry.id)
    ctx.held = held
    return held


def bill(runtime: Runtime, ctx: RequestContext, entry: ModelEntry, usage: Any, *, n: int = 1,
         prompt_bytes: int = 0, completion_bytes: int = 0) -> int | None:
    """Charge the request for `usage` (the upstream's `usage` object, rewritten in place to
    show the platform's charge as `cost`); returns the charge, or None when it has to wait
    for the reconciler (a metered model and no usage)."""
    counted = pricing.usage_from(usage)
    cost = pricing.charge(entry, counted, n=n, credits_per_usd=runtime.settings.credits_per_usd)
    if isinstance(usage, dict):
        ctx.usage = usage
        for name in _UPSTREAM_COST_FIELDS:
            usage.pop(name, None)
    if cost is None:
        leave_for_reconciler(runtime, ctx, entry, n=n, prompt_bytes=prompt_bytes, completion_bytes=completion_bytes)
        return None
    final = pricing.final_charge(ctx.held, cost)
    if isinstance(usage, dict):
        usage["cost"] = json_credits(final)
    ctx.upstream_cost = counted.cost_usd if counted else None
    ctx.credit_cost = final
    if final != ctx.held:
        runtime.later(_settle(runtime, ctx.request_id, final, ctx.held))
    return final


def leave_for_reconciler(runtime: Runtime, ctx: RequestContext, entry: ModelEntry, *, n: int = 1,
                         prompt_bytes: int = 0, completion_bytes: int = 0) -> None:
    """A delivered request whose usage never came: keep its hold for now and let the
    reconciler settle it (from the generation record, else from this estimate)."""
    if ctx.key is None or not pricing.needs_usage(entry):
        return
    guess = pricing.charge(entry, pricing.estimate(prompt_bytes, completion_bytes), n=n,
                           credits_per_usd=runtime.settings.credits_per_usd) or 0
    settings = runtime.settings
    runtime.later(runtime.db(
        settlements.add_pending, ref=ctx.request_id, user_id=ctx.key.user_id, model=entry.id,
        upstream_id=str(ctx.upstream_id)[:200] if ctx.upstream_id else None,
        estimate=pricing.final_charge(ctx.held, guess), first_in_s=settings.reconcile_backoff_s,
        deadline_s=settings.reconcile_deadline_s,
    ))


async def _settle(runtime: Runtime, ref: str, final: int, held: int) -> None:
    if await runtime.db(credits.settle, ref=ref, cost=final) is not None:
        runtime.metrics.credits_settled_back.inc((held - final) / MICRO)
