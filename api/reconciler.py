"""Settles the requests whose usage never arrived (store.settlements), from the upstream's
own generation record where it has one, else from the estimate of what was relayed.

OpenRouter keeps a record of every generation (`GET {base}/generation?id=<its id>`),
with token counts and its USD cost; it appears a few seconds after the generation ends
(404 until then). Each pending request is asked for with backoff (doubling from
`RECONCILE_BACKOFF_S`, at most a minute) until `RECONCILE_DEADLINE_S` after it ended;
then the estimate stands. Never above the hold, never twice (store.settlements).

Each pass first takes the holds whose process died mid-call (store.holds: their lease ran
out) into the list as interrupted: settled the same way from the generation record when
their upstream id was noted, else refunded, never from an estimate of unknown work.

It runs with the image pipeline worker (in the server by default, or `python -m api.worker`),
and its state is in the database, so it picks up where it left off after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx

from store import holds, pricing, registry, settlements
from store.models import PendingSettlement, utcnow
from store.settings import Settings
from store.tasks import aware

log = logging.getLogger(__name__)

BATCH = 20
MAX_BACKOFF_S = 60.0
LEASE_S = 30.0  # a claimed row is skipped by other reconcilers this long


class Reconciler:
    def __init__(self, settings: Settings, http: httpx.AsyncClient, db: Callable[..., Awaitable[Any]]) -> None:
        self.settings = settings
        self.http = http
        self.db = db
        self._base = settings.openrouter_base_url
        self._headers = {"Authorization": f"Bearer {settings.openrouter_api_key}"}

    async def run_once(self) -> int:
        """Settle (or put off) every pending request that is due; returns how many were settled."""
        reaped = await self.db(holds.reap_orphans, deadline_s=self.settings.reconcile_deadline_s)
        if reaped:
            log.warning("%d holds of a process that died mid-call are being settled or refunded", reaped)
        rows = await self.db(settlements.claim_due, limit=BATCH, lease_s=LEASE_S)
        settled = 0
        for row in rows:
            try:
                settled += await self._one(row)
            except Exception:
                log.exception("reconciling request %s failed; will retry", row.ref)
        return settled

    async def _one(self, row: PendingSettlement) -> bool:
        usage = await self._generation(row.upstream_id) if row.upstream_id else None
        if usage is not None:
            entry = (await self.db(registry.get_model, model_id=row.model)) if row.model else None
            cost = pricing.charge(entry, usage, credits_per_usd=self.settings.credits_per_usd) if entry else None
            if entry is not None and not pricing.needs_usage(entry):
                cost = None  # a flat price: the record says it was delivered, so the whole hold stands
            if entry is not None:
                final = await self.db(
                    settlements.settle_pending,
                    ref=row.ref,
                    cost=cost,
                    usage=usage,
                    note=f"settled from the upstream's generation record {row.upstream_id}"[:500],
                )
                log.info("request %s settled from the generation record at %s", row.ref, final)
                return True
        if utcnow() >= aware(row.deadline_at) and row.interrupted:
            await self.db(
                settlements.refund_pending,
                ref=row.ref,
                note="refunded: the serving process stopped mid-call and no generation record was found",
            )
            log.info("interrupted request %s refunded", row.ref)
            return True
        if utcnow() >= aware(row.deadline_at):
            await self.db(
                settlements.settle_pending,
                ref=row.ref,
                cost=row.estimate,
                note="settled from an estimate of what was relayed (no usage reported)",
            )
            log.info("request %s settled from the estimate", row.ref)
            return True
        wait = min(MAX_BACKOFF_S, self.settings.reconcile_backoff_s * 2 ** max(0, row.attempts - 1))
        await self.db(settlements.retry_later, ref=row.ref, at=utcnow() + timedelta(seconds=wait))
        return False

    async def _generation(self, upstream_id: str) -> pricing.Usage | None:
        """The generation record's usage, or None while the upstream has none (yet)."""
        if not self.settings.openrouter_api_key:
            return None
        try:
            response = await self.http.get(
                f"{self._base}/generation", params={"id": upstream_id}, headers=self._headers, timeout=10.0
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            data = response.json().get("data")
        except (ValueError, AttributeError):
            return None
        if not isinstance(data, dict):
            return None
        return pricing.usage_from(
            {
                "prompt_tokens": data.get("tokens_prompt"),
                "completion_tokens": data.get("tokens_completion"),
                "cost": data.get("total_cost"),
            }
        )
