"""The API's half of the one billing path (the store's half is store.credits):

    hold    admission debits the request's upper bound (store.pricing.reservation) in the
            one conditional statement (Runtime.debit); 402 and no upstream call if short
    bill    once the usage is known, the charge (store.pricing.charge, capped at the
            hold) is set on the request and shown to the caller as `usage.cost`; the
            difference goes back in one `settle` ledger row written after the answer,
            off its path. Without usage, the request waits for the reconciler.
    refund  a failure gives everything back, once (Runtime.refund)

Every model endpoint calls `hold`, then `bill` and `finish` (or `refund`); none computes a
price itself.
"""

from __future__ import annotations

from typing import Any, NoReturn

from store import credits, pricing, settlements
from store.models import ModelEntry
from store.money import MICRO, json_credits

from .context import RequestContext
from .errors import ApiError
from .providers import UpstreamError
from .runtime import Runtime

# The upstream's own accounting: never shown to a user.
_UPSTREAM_COST_FIELDS = ("cost", "cost_details", "is_byok")


async def hold(
    runtime: Runtime,
    ctx: RequestContext,
    entry: ModelEntry,
    *,
    prompt_bound: int,
    max_tokens: int,
    n: int = 1,
    extra_completion: int = 0,
) -> int:
    """Debit the most this request can cost (Runtime.debit notes it as `ctx.held`); returns it.
    A flat price covers prompts up to the entry's `max_prompt_tokens`: a larger bound is
    refused before anything is charged."""
    if entry.pricing == pricing.PER_REQUEST and entry.max_prompt_tokens and prompt_bound > entry.max_prompt_tokens:
        raise ApiError(
            "invalid_request",
            f"The prompt may be up to {prompt_bound:,} tokens; this model's flat price covers at most "
            f"{entry.max_prompt_tokens:,}",
        )
    held = pricing.reservation(
        entry, prompt_bound=prompt_bound, max_tokens=max_tokens, n=n, extra_completion=extra_completion
    )
    await runtime.debit(ctx, cost=held, model=entry.id)
    return held


def bill(
    runtime: Runtime,
    ctx: RequestContext,
    entry: ModelEntry,
    usage: Any,
    *,
    n: int = 1,
    prompt_bytes: int = 0,
    completion_bytes: int = 0,
) -> int | None:
    """Price the request from `usage` (the upstream's `usage` object, rewritten in place to
    show the platform's charge as `cost`) and note what is left to write; returns the
    charge, or None when the reconciler will settle it (a metered model and no usage).
    Nothing is written until `finish`, so a fault before the answer is out refunds the
    hold alone."""
    counted = pricing.plausible(
        pricing.usage_from(usage), held=ctx.held, credits_per_usd=runtime.settings.credits_per_usd
    )
    cost = pricing.charge(entry, counted, n=n, credits_per_usd=runtime.settings.credits_per_usd)
    if isinstance(usage, dict):
        ctx.usage = usage
        for name in _UPSTREAM_COST_FIELDS:
            usage.pop(name, None)
    if cost is None:
        if ctx.key is not None and pricing.needs_usage(entry):
            guess = (
                pricing.charge(
                    entry,
                    pricing.estimate(prompt_bytes, completion_bytes),
                    n=n,
                    credits_per_usd=runtime.settings.credits_per_usd,
                )
                or 0
            )
            ctx.unsettled = (entry.id, pricing.final_charge(ctx.held, guess))
        return None
    final = pricing.final_charge(ctx.held, cost)
    if isinstance(usage, dict):
        usage["cost"] = json_credits(final)
    ctx.upstream_cost = counted.cost_usd if counted else None
    ctx.credit_cost = final
    ctx.unsettled = None
    return final


async def refund(runtime: Runtime, ctx: RequestContext, exc: BaseException) -> NoReturn:
    """Give a request that failed after its hold everything back (Runtime.refund), and
    raise: an upstream's error as the caller's ApiError, anything else (a platform fault,
    the caller gone) as it is."""
    if isinstance(exc, UpstreamError):
        await runtime.refund(ctx, str(exc))
        raise exc.as_api_error() from None
    await runtime.refund(ctx, f"platform error: {type(exc).__name__}")
    raise exc


def finish(runtime: Runtime, ctx: RequestContext) -> None:
    """After the answer is out: write what `bill` left (the settlement, or the request's
    place in the reconciler's list), off the answer's path. At most once."""
    if ctx.key is None or ctx.finished or not ctx.held:
        return
    ctx.finished = True
    if ctx.unsettled is not None:
        runtime.later(_hand_to_reconciler(runtime, ctx, user_id=ctx.key.user_id))
    elif ctx.credit_cost != ctx.held:
        runtime.later(_settle(runtime, ctx, user_id=ctx.key.user_id))
    else:  # the hold is the charge: nothing to write but the hold's closing, with the log row
        ctx.release_hold = True


async def _hand_to_reconciler(runtime: Runtime, ctx: RequestContext, *, user_id: int) -> None:
    assert ctx.unsettled is not None
    model, estimate = ctx.unsettled
    settings = runtime.settings
    try:
        await runtime.db(
            settlements.add_pending,
            ref=ctx.request_id,
            user_id=user_id,
            model=model,
            upstream_id=str(ctx.upstream_id)[:200] if ctx.upstream_id else None,
            estimate=estimate,
            first_in_s=settings.reconcile_backoff_s,
            deadline_s=settings.reconcile_deadline_s,
        )
    finally:
        runtime.holds.closed(ctx.request_id)


async def _settle(runtime: Runtime, ctx: RequestContext, *, user_id: int) -> None:
    back = ctx.held - ctx.credit_cost
    try:
        settled = await runtime.write(
            credits.settle_hold,
            savepoint=False,  # it writes only once it found the hold's record
            user_id=user_id,
            ref=ctx.request_id,
            held=ctx.held,
            cost=ctx.credit_cost,
            model=ctx.model,
            key_budgeted=ctx.key is None or ctx.key.budget is not None,  # no key budget: nothing to give back
        )
    finally:
        runtime.holds.closed(ctx.request_id)  # settled, or in the reconciler's hands: no lease to renew
    if settled is not None:
        runtime.metrics.credits_settled_back.inc(back / MICRO)
