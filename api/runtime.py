"""Everything the API shares across requests in one process, started and stopped once.

One Runtime per app: the settings, the engine, the shared upstream HTTP client, the
rate limiter, the key and registry caches and the request-log writer. `running()` is
the lifespan: FastAPI's when the API runs alone, a Reflex lifespan task when mounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import aiohttp
import anyio
import httpx
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from store import alerts, credits, keys, logs, pricing, registry, users
from store.db import get_engine, is_locked
from store.errors import InsufficientCredits, KeyBudgetExceeded, KeyNotUsable, ModelNotAllowed, NotFound, StoreError
from store.models import ModelEntry, utcnow
from store.money import MICRO
from store.offloop import GroupCommit, run_store
from store.settings import Settings

from . import prepare
from .access_log import AccessLog
from .alerting import ErrorSpike
from .body import BIG_BODY_BYTES
from .caches import KeyCache, RegistryCache, subscribe_caches
from .context import RequestContext
from .errors import ApiError
from .holdkeeper import HoldKeeper
from .inflight import InFlight
from .metrics import Metrics
from .providers.images import ImageProvider
from .providers.openrouter import OpenRouterChat
from .providers.upstream_http import create_session
from .ratelimit import KeyRateLimiter
from .worker import PipelineWorker, build_providers

log = logging.getLogger(__name__)
T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = get_engine(
            settings.database_url, settings.db_pool_size, settings.db_max_overflow, settings.sqlite_busy_timeout_s
        )
        self.group = GroupCommit(self.engine)  # the holds and settlements, many to a transaction
        self.limiter = KeyRateLimiter(settings.redis_url, settings.rate_limit_namespace)
        self.keys = KeyCache(settings.key_cache_ttl_s)
        self.registry = RegistryCache(settings.key_cache_ttl_s)
        self.metrics = Metrics()
        self.access_log = AccessLog(settings.access_log)
        self.logs = logs.RequestLogWriter(
            self.engine,
            interval=settings.log_flush_interval_s,
            batch_size=settings.log_batch_size,
            retention_days=settings.log_retention_days,
            max_queue=settings.log_queue_max,
            on_write=self._logs_written,
            on_set_aside=self.metrics.log_rows_set_aside.inc,
            on_released=lambda refs: self.holds.closed(refs),
            on_dropped=self.metrics.log_rows_dropped.inc,
        )
        self.holds = HoldKeeper(settings.hold_lease_s, self.db)
        self.inflight = InFlight(settings.max_in_flight_per_user)
        self.native_formats = settings.native_formats  # what the chat provider is sent as it is
        self._processes: ProcessPoolExecutor | None = None  # big bodies are prepared there (`offload`)
        self._offloading = asyncio.Lock()
        self._views: tuple[object, dict[str, prepare.EntryView]] = (None, {})
        # The operator's alert for a spike of upstream errors (none without ALERT_WEBHOOK_URL).
        self.error_spike = ErrorSpike(
            settings.alert_error_spike if settings.alert_webhook_url else 0, settings.alert_error_window_s
        )
        # Requests without a valid key get a log row only this often (the rest are counted):
        # a flood of keyless calls must not fill the request log.
        self._keyless = FixedWindowRateLimiter(MemoryStorage())
        self._keyless_rows = RateLimitItemPerMinute(settings.unauthenticated_log_rows_per_minute or 1)
        self._keyless_logged = settings.unauthenticated_log_rows_per_minute > 0
        self.http: httpx.AsyncClient | None = None
        self.upstream: aiohttp.ClientSession | None = None
        self.chat: OpenRouterChat | None = None
        self.image_providers: dict[str, ImageProvider] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._later: set[asyncio.Task] = set()
        self.started = False

    @contextlib.asynccontextmanager
    async def running(self):
        """Open the shared client and the log writer; flush every log row on the way out."""
        if self.started:  # mounted twice (or a test entered it already): one start only
            yield self
            return
        self.started = True
        timeout = httpx.Timeout(self.settings.upstream_timeout_s, connect=min(10.0, self.settings.upstream_timeout_s))
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self.http = httpx.AsyncClient(timeout=timeout, limits=limits)  # images, the reconciler
        self.upstream = create_session(self.settings)  # the chat hop (aiohttp)
        self.chat = OpenRouterChat(
            self.upstream,
            base_url=self.settings.openrouter_base_url,
            api_key=self.settings.openrouter_api_key,
            timeout_s=self.settings.upstream_timeout_s,
            retries=self.settings.upstream_retries,
        )
        self.image_providers = build_providers(self.http, self.settings)
        self._unsubscribe = subscribe_caches(self.keys, self.registry)
        self.logs.start()
        if self.settings.admin_email and self.settings.admin_password:
            await self.db(users.ensure_admin, email=self.settings.admin_email, password=self.settings.admin_password)
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(self.holds.running())
                if self.settings.run_pipeline_in_process:
                    worker = PipelineWorker(
                        self.settings, http=self.http, providers=self.image_providers, engine=self.engine
                    )
                    await stack.enter_async_context(worker.running())
                yield self
        finally:
            await self.quiesce()
            await self.http.aclose()
            if self.upstream is not None:
                await self.upstream.close()
                self.upstream = None
            await anyio.to_thread.run_sync(self.logs.close)
            if self._processes is not None:
                self._processes.shutdown(cancel_futures=True)
                self._processes = None
            self._unsubscribe()
            self.access_log.flush()
            self.metrics.process_exited()
            self.started = False

    def later(self, work: Awaitable[Any]) -> None:
        """Run `work` (a settlement, a pending-settlement row) after the answer, off its path;
        shutdown waits for it (`quiesce`)."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("background billing work failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def quiesce(self) -> None:
        """Wait for every piece of background work started so far."""
        while self._later:
            await asyncio.gather(*list(self._later), return_exceptions=True)

    async def db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a store call off the event loop (store.offloop.run_store), reads and writes alike.

        A write that SQLite could not lock within its busy timeout (another process held
        the database) answers 503 with Retry-After: the caller may simply try again.
        """
        return await _busy_is_503(run_store(self.engine, fn, **kwargs))

    async def write(self, fn: Callable[..., T], /, *, savepoint: bool = True, **kwargs: Any) -> T:
        """A short write of the request path (the hold, the settlement), group-committed
        with the others in flight (store.offloop.GroupCommit); errors as `db`'s."""
        return await _busy_is_503(self.group.run(fn, savepoint=savepoint, **kwargs))

    async def verify_key(self, raw: str) -> keys.KeyRecord | None:
        if not keys.is_well_formed(raw):
            return None
        digest = keys.hash_key(self.settings.secret_key, raw)
        record = self.keys.get(digest)
        # Only a usable key is taken from the cache: one disabled a moment ago is refused by
        # the debit's own check, and one re-enabled a moment ago is read afresh here; an
        # expired one is read afresh too (and so refused).
        if record is None or not record.usable or record.expired():
            record = await self.db(keys.verify_key, secret_key=self.settings.secret_key, raw=raw)
            if record is not None:
                self.keys.put(digest, record)
        return record

    async def models(self) -> dict[str, ModelEntry]:
        cached = self.registry.fresh()
        if cached is None:
            cached = self.registry.store(await self.db(registry.list_models))
        return cached

    async def entry_views(self) -> dict[str, prepare.EntryView]:
        """The registry as api.prepare reads it (made once per registry load)."""
        models = await self.models()
        if self._views[0] is not models:
            self._views = (models, prepare.views(models))
        return self._views[1]

    async def model_for(self, model_id: str, category: str, key: keys.KeyRecord | None = None) -> ModelEntry:
        """The enabled registry entry of `model_id` in `category` that `key` may call (its
        allow-list; the debit checks the list again, as stored, so a list narrowed a moment
        ago by another process holds too), else 404."""
        entry = (await self.models()).get(model_id)
        if entry is None or not entry.enabled or entry.category != category:
            raise ApiError("model_not_available")
        if key is not None and not key.allows(model_id):
            # The cached record may predate an edit that allowed it: the stored list decides.
            allowed = await self.db(keys.allowed_models, key_id=key.key_id)
            if allowed is not None and model_id not in allowed:
                raise ApiError("model_not_available")
            self.keys.drop_user(key.user_id)
        return entry

    async def debit(self, ctx: RequestContext, *, cost: int, model: str) -> None:
        """Admit the request by charging it, with the hold's durable record (store.holds);
        402 and no change when the balance is short."""
        key = ctx.key
        assert key is not None  # the request was authenticated before anything is charged
        hold = self.holds.info(endpoint=ctx.endpoint, stream=ctx.stream, api_key_id=key.key_id, key_prefix=key.prefix)
        try:
            # A key without a budget is admitted by one conditional statement, which writes
            # nothing unless it admits: no savepoint needed around it.
            await self.write(
                credits.debit_for_request,
                savepoint=key.budget is not None,
                user_id=key.user_id,
                cost=cost,
                ref=ctx.request_id,
                model=model,
                key_id=key.key_id,
                hold=hold if cost else None,
                alerts=self.settings.alert_webhook_url is not None,
                key_budgeted=key.budget is not None,
            )
        except StoreError as exc:
            raise self.refusal(exc, key) from None
        ctx.credit_cost = ctx.held = cost
        if cost:
            self.holds.opened(ctx.request_id)
        self.metrics.credits_debited.inc(cost / MICRO)

    def refusal(self, exc: StoreError, key: keys.KeyRecord) -> Exception:
        """The caller's error for a debit the store refused (the image route's too): the
        balance (402), the key's budget (402 `key_budget_exceeded`), the key's allow-list
        (404), or the key's state (401/403; a key revoked, expired or disabled since it was
        cached is dropped from the cache). Anything else is not a refusal: as it is."""
        if isinstance(exc, InsufficientCredits):
            return ApiError("insufficient_credits")
        if isinstance(exc, KeyBudgetExceeded):
            return ApiError("key_budget_exceeded")
        if isinstance(exc, ModelNotAllowed):
            self.keys.drop_user(key.user_id)
            return ApiError("model_not_available")
        if isinstance(exc, KeyNotUsable):
            self.keys.drop_user(key.user_id)
            return ApiError("invalid_api_key" if exc.revoked else "api_disabled")
        return exc

    async def refund(self, ctx: RequestContext, note: str) -> None:
        """Give the request's charge back, at most once; finishes even while being cancelled.
        Whatever billing had noted for later is dropped: a refunded request settles nothing."""
        ctx.finished = True
        with anyio.CancelScope(shield=True):
            # Keyed on the hold, not the charge: a call priced at 0 from its usage that
            # then fails still gets its hold back (nothing is settled before `finish`).
            if ctx.held and await self.db(credits.refund, ref=ctx.request_id, note=note):
                self.metrics.credits_refunded.inc(ctx.held / MICRO)
                ctx.credit_cost = 0
            self.holds.closed(ctx.request_id)

    async def offload(self, ctx: RequestContext, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` (decoding, validating, translating, serialising a body): inline for a
        small body; for a big one in a worker process, one at a time, so that no caller's
        big body holds up the event loop for the others (the parsers hold the interpreter
        for a whole call: a thread would not help). `fn` and what it gets and gives must
        pickle (registry entries go as `entry_views`)."""
        if ctx.body_bytes < BIG_BODY_BYTES:
            return fn(*args)
        async with self._offloading:
            if self._processes is None:
                self._processes = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            return await asyncio.get_running_loop().run_in_executor(self._processes, fn, *args)

    async def refuse_unaffordable(self, ctx: RequestContext, category: str) -> None:
        """402 before a big body is parsed when the caller's balance cannot cover even the
        smallest hold any enabled model of `category` takes (store.pricing.smallest_hold)."""
        key = ctx.key
        assert key is not None  # the key is read before the body
        holds = [
            pricing.smallest_hold(m) for m in (await self.models()).values() if m.enabled and m.category == category
        ]
        if holds and await self.balance(key.user_id) < min(holds):
            raise ApiError("insufficient_credits")

    async def balance(self, user_id: int) -> int:
        try:
            return await self.db(credits.balance, user_id=user_id)
        except NotFound:
            raise ApiError("invalid_api_key") from None

    def _logs_written(self, rows: int) -> None:  # the writer thread, after each batch
        self.metrics.log_rows.inc(rows)
        self.metrics.log_queue.set(self.logs.pending)

    def record(self, ctx: RequestContext) -> None:
        """Queue the request's log row (written in a batch by the writer thread; with it, a
        flat-priced call's hold is closed), count it in the metrics and write its access-log
        line. A request without a valid key is counted, and logged only as sampled."""
        elapsed = time.perf_counter() - ctx.started
        latency_ms = int(elapsed * 1000)
        model = ctx.model
        self.metrics.observe(
            endpoint=ctx.route or "unmatched",
            model="" if not model else model if self.registry.known(model) else "other",
            status=ctx.status,
            seconds=elapsed,
            error_code=ctx.error_code,
        )
        if (errors := self.error_spike.observe(ctx.error_code)) is not None:
            self.later(
                self.db(
                    alerts.upstream_errors, errors=errors, window_s=self.error_spike.window_s, process=self.holds.owner
                )
            )
        key = ctx.key
        if key is None:
            self.metrics.unauthenticated.inc()
            if not (self._keyless_logged and self._keyless.hit(self._keyless_rows, "keyless")):
                self.metrics.unauthenticated_unlogged.inc()
                return
        self.access_log.emit(ctx, latency_ms)
        usage = ctx.usage if isinstance(ctx.usage, dict) else {}
        self.logs.submit(
            {
                "request_id": ctx.request_id,
                "user_id": key.user_id if key else None,
                "api_key_id": key.key_id if key else None,
                "key_prefix": key.prefix if key else None,
                "method": ctx.method[:10],
                "endpoint": ctx.endpoint[:200],
                "model": ctx.model[:200] if ctx.model else None,
                "status": ctx.status,
                "error_code": ctx.error_code,
                "latency_ms": latency_ms,
                "credit_cost": ctx.credit_cost,
                "stream": ctx.stream,
                "prompt_tokens": _int_or_none(usage.get("prompt_tokens")),
                "completion_tokens": _int_or_none(usage.get("completion_tokens")),
                "total_tokens": _int_or_none(usage.get("total_tokens")),
                "upstream_id": str(ctx.upstream_id)[:200] if ctx.upstream_id else None,
                "upstream_cost": ctx.upstream_cost,
                "task_id": ctx.task_id,
                "created_at": utcnow(),
                logs.RELEASE_HOLD: ctx.release_hold,
            }
        )
        self.metrics.log_queue.set(self.logs.pending)


async def _busy_is_503(call: Awaitable[T]) -> T:
    """A store call's result; SQLite's "database is locked" (another process held the lock
    past the busy timeout) as 503 with Retry-After: the caller may simply try again."""
    try:
        return await call
    except Exception as exc:
        if is_locked(exc):
            raise ApiError(
                "service_unavailable", "The database is busy; retry shortly", headers={"Retry-After": "1"}
            ) from None
        raise


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else None
