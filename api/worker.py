"""The image pipeline worker: claims due tasks, drives them upstream, stores the images.

One `PipelineWorker` runs inside the server by default (started by the API runtime,
`RUN_PIPELINE_IN_PROCESS=true`) and any number run alone for scale-out:

    python -m api.worker        # same settings as the server; Ctrl-C / SIGTERM to stop

Each pass claims up to `WORKER_CONCURRENCY` due tasks (see `store.tasks`: leases,
`SKIP LOCKED` on PostgreSQL) and moves each one step: submit if it has no provider
task yet, else poll; store every output under `MEDIA_DIR/<task id>/` once it
succeeded; fail and refund it on an upstream failure, a cancel, or past its deadline.
A task still running upstream is released with its next poll backed off (x1.5, up to
`TASK_POLL_MAX_INTERVAL_S`). On shutdown the worker gives its claims back, so a
restarted (or another) worker resumes the task at once; a crashed worker's claims
lapse after `TASK_LEASE_S`. Finished tasks with a `webhook_url` are delivered here too, and
the operator's alerts (store.alerts) to `ALERT_WEBHOOK_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import orjson
from sqlalchemy.engine import Engine

from store import alerts, signing, tasks
from store.db import get_engine
from store.models import Alert, ImageTask, utcnow
from store.offloop import run_store
from store.settings import Settings, get_settings

from . import webhooks
from .providers import UpstreamError
from .providers.images import CANCELED, FAILED, RUNNING, ImageJob, ImageProvider
from .providers.openrouter_images import OpenRouterImages
from .providers.replicate import ReplicateImages
from .reconciler import Reconciler

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SUBMIT_ATTEMPTS = 3  # a submission failing with a retryable error is tried this often
SWEEP_INTERVAL_S = 60.0  # how often interrupted refunds are looked for
RECONCILE_INTERVAL_S = 1.0  # how often pending settlements are looked for
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


def build_providers(http: httpx.AsyncClient, settings: Settings) -> dict[str, ImageProvider]:
    """The image providers by registry name, sharing one HTTP client."""
    timeout_s, max_image_bytes = settings.upstream_timeout_s, settings.max_image_bytes
    return {
        "replicate": ReplicateImages(
            http,
            base_url=settings.replicate_base_url,
            api_token=settings.replicate_api_token,
            timeout_s=timeout_s,
            max_image_bytes=max_image_bytes,
        ),
        "openrouter": OpenRouterImages(
            http,
            base_url=settings.openrouter_base_url,
            api_key=settings.openrouter_api_key,
            timeout_s=timeout_s,
            max_image_bytes=max_image_bytes,
        ),
    }


def image_extension(data: bytes) -> str | None:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def store_images(media_dir: Path, task_id: str, images: list[bytes]) -> list[str]:
    """Write the images as MEDIA_DIR/<task id>/<i>.<ext>; returns their relative paths."""
    folder = media_dir / task_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, data in enumerate(images):
        ext = image_extension(data)
        if ext is None:
            raise ValueError("the provider returned a file that is not an image")
        target = folder / f"{index}.{ext}"
        tmp = folder / f".{index}.{secrets.token_hex(4)}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, target)  # readers see the whole file or none
        paths.append(f"{task_id}/{index}.{ext}")
    return paths


class PipelineWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient,
        providers: dict[str, ImageProvider] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.providers = providers if providers is not None else build_providers(http, settings)
        self.engine = engine or get_engine(
            settings.database_url, settings.db_pool_size, settings.db_max_overflow, settings.sqlite_busy_timeout_s
        )
        self._inflight: set[str] = set()
        self._next_sweep = 0.0
        # Requests whose usage never arrived are settled here too (api.reconciler).
        self.reconciler = Reconciler(settings, http, self.db)
        self._next_reconcile = 0.0

    async def db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        return await run_store(self.engine, fn, **kwargs)

    # ------------------------------------------------------------ the loop

    @contextlib.asynccontextmanager
    async def running(self):
        """Run `serve()` in the background for the duration of the block.

        A plain asyncio task rather than a task group: lifespans (and test fixtures)
        may leave the block from another task than the one that entered it.
        """
        runner = asyncio.get_running_loop().create_task(self.serve(), name="image-pipeline-worker")
        try:
            yield self
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def serve(self) -> None:
        """Claim and run due work until cancelled; steps in flight give their claims back."""
        async with anyio.create_task_group() as group:
            while True:
                started = 0
                try:
                    await self._sweep()
                    started = await self._dispatch(group)
                except Exception:  # the database may be briefly unreachable: keep going
                    log.exception("image pipeline pass failed")
                if not started:
                    await anyio.sleep(self.settings.worker_idle_s)

    async def run_once(self) -> int:
        """One pass, waiting for every step it started (tests and tools). Returns the count."""
        async with anyio.create_task_group() as group:
            await self._sweep()
            started = await self._dispatch(group)
        return started

    async def _dispatch(self, group) -> int:
        free = self.settings.worker_concurrency - len(self._inflight)
        if free <= 0:
            return 0
        lease = self.settings.task_lease_s
        # Shielded: a claim committed in the store's thread while shutdown cancels this pass
        # must still reach its step, whose cancellation hands it back at once; unshielded,
        # the claim would hold the task until its lease ran out.
        with anyio.CancelScope(shield=True):
            claimed = await self.db(tasks.claim_due_tasks, limit=free, lease_s=lease)
        for task in claimed:
            self._inflight.add(task.id)
            group.start_soon(self._step, task)
        due_hooks = await self.db(tasks.claim_due_webhooks, limit=free, lease_s=self.settings.webhook_timeout_s * 3)
        for task in due_hooks:
            group.start_soon(self._deliver, task)
        due_alerts: list[Alert] = []
        if self.settings.alert_webhook_url:
            due_alerts = await self.db(alerts.claim_due, limit=free, lease_s=self.settings.webhook_timeout_s * 3)
            for alert in due_alerts:
                group.start_soon(self._deliver_alert, alert)
        return len(claimed) + len(due_hooks) + len(due_alerts)

    async def _sweep(self) -> None:
        if time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + RECONCILE_INTERVAL_S
            await self.reconciler.run_once()
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
            repaired = await self.db(tasks.refund_failed_tasks)
            if repaired:
                log.warning("refunded %d failed image tasks whose refund was interrupted", repaired)

    # ------------------------------------------------------------ one task, one step

    async def _step(self, task: ImageTask) -> None:
        token = task.attempts
        try:
            await self._advance(task, token)
        except Exception:
            log.exception("image task %s: step failed; will retry", task.id)
            await self._release_quietly(task, token, self._backoff(task))
        except BaseException:  # cancelled (shutdown): hand the task back to be resumed at once
            with anyio.CancelScope(shield=True):
                await self._release_quietly(task, token, 0.0)
            raise
        finally:
            self._inflight.discard(task.id)

    async def _release_quietly(self, task: ImageTask, token: int, delay_s: float) -> None:
        try:
            await self._release(task, token, delay_s)
        except Exception:  # the claim lapses after TASK_LEASE_S instead
            log.exception("image task %s: could not release the claim", task.id)

    async def _advance(self, task: ImageTask, token: int) -> None:
        provider = self.providers.get(task.provider)
        if tasks.aware(task.deadline_at) <= utcnow():
            if provider is not None and task.provider_task_id:
                await provider.cancel(task.provider_task_id)
            seconds = (tasks.aware(task.deadline_at) - tasks.aware(task.created_at)).total_seconds()
            await self._fail(task, token, f"Image generation timed out after {round(seconds, 1):g} s", timed_out=True)
            return
        if provider is None or not provider.configured:
            log.warning("image task %s: provider %r is not configured here", task.id, task.provider)
            await self._release(task, token, self.settings.task_poll_max_interval_s)
            return
        if task.provider_task_id is None:
            outputs = await self._submit(task, token, provider)
        else:
            outputs = await self._poll(task, token, provider, task.provider_task_id)
        if outputs is None:
            return
        try:
            images = [await provider.fetch(output) for output in outputs]
            paths = await anyio.to_thread.run_sync(store_images, self.settings.media_dir, task.id, images)
        except UpstreamError as exc:
            if exc.retryable and not provider.synchronous:
                await self._release(task, token, self._backoff(task))
            else:
                await self._fail(task, token, str(exc))
            return
        except ValueError as exc:
            await self._fail(task, token, str(exc))
            return
        finished = await self.db(tasks.complete_task, task_id=task.id, token=token, outputs=paths)
        if finished is None:
            log.warning("image task %s: claim lost before completion", task.id)

    async def _submit(self, task: ImageTask, token: int, provider: ImageProvider) -> list[str] | None:
        """Start the task upstream; returns the outputs of a synchronous provider."""
        job = ImageJob(upstream_id=task.upstream_id, prompt=task.prompt, size=task.size, n=task.n)
        try:
            submission = await provider.submit(job)
        except UpstreamError as exc:
            if exc.retryable and task.attempts < MAX_SUBMIT_ATTEMPTS:
                await self._release(task, token, self._backoff(task))
            else:
                await self._fail(task, token, str(exc), timed_out=exc.timeout)
            return None
        if submission.provider_task_id is not None:
            await self.db(
                tasks.record_provider_task, task_id=task.id, token=token, provider_task_id=submission.provider_task_id
            )
        if submission.outputs is None:
            await self._release(task, token, self.settings.task_poll_interval_s)
        return submission.outputs

    async def _poll(
        self, task: ImageTask, token: int, provider: ImageProvider, provider_task_id: str
    ) -> list[str] | None:
        try:
            progress = await provider.poll(provider_task_id)
        except UpstreamError as exc:  # transient until the deadline says otherwise
            log.info("image task %s: poll failed (%s); will retry", task.id, exc)
            await self._release(task, token, self._backoff(task))
            return None
        if progress.status in (FAILED, CANCELED):
            await self._fail(task, token, progress.error or "Image generation failed upstream")
            return None
        if progress.status == RUNNING:
            await self._release(task, token, self._backoff(task))
            return None
        return progress.outputs

    def _backoff(self, task: ImageTask) -> float:
        interval = self.settings.task_poll_interval_s * 1.5 ** max(0, task.attempts - 1)
        return min(interval, self.settings.task_poll_max_interval_s)

    async def _release(self, task: ImageTask, token: int, delay_s: float) -> None:
        at = min(utcnow() + timedelta(seconds=delay_s), tasks.aware(task.deadline_at))
        await self.db(tasks.release_task, task_id=task.id, token=token, next_poll_at=at)

    async def _fail(self, task: ImageTask, token: int, reason: str, *, timed_out: bool = False) -> None:
        if await self.db(tasks.fail_task, task_id=task.id, token=token, reason=reason, timed_out=timed_out):
            log.info("image task %s failed and was refunded: %s", task.id, reason)

    # ------------------------------------------------------------ webhooks

    async def _deliver(self, task: ImageTask) -> None:
        try:
            await self._deliver_once(task)
        except Exception:  # the delivery's lease lapses and it is tried again
            log.exception("image task %s: webhook delivery failed", task.id)

    async def _deliver_once(self, task: ImageTask) -> None:
        s = self.settings
        urls = tasks.output_urls(
            task, secret_key=s.secret_key, ttl_s=s.media_url_ttl_s, base=(s.public_base_url or "").rstrip("/")
        )
        body = orjson.dumps(tasks.public_view(task, urls=urls))
        ok = False
        try:
            ok = await webhooks.deliver(
                url=task.webhook_url or "",
                body=body,
                event_id=task.id,
                secret=signing.webhook_secret(s.secret_key, task.user_id),
                timeout_s=s.webhook_timeout_s,
                allow_private=s.webhook_allow_private,
            )
        finally:
            retry_at: datetime | None = None
            if not ok and task.webhook_attempts < s.webhook_max_attempts:
                retry_at = utcnow() + timedelta(
                    seconds=webhooks.retry_delay(task.webhook_attempts, s.webhook_backoff_s)
                )
            with anyio.CancelScope(shield=True):
                await self.db(tasks.webhook_result, task_id=task.id, delivered=ok, retry_at=retry_at)

    # ------------------------------------------------------------ operator alerts

    async def _deliver_alert(self, alert: Alert) -> None:
        """POST one alert to ALERT_WEBHOOK_URL with the image webhooks' safety (api.webhooks:
        addresses checked, connection pinned, one deadline), retried with their backoff."""
        s = self.settings
        ok = False
        try:
            ok = await webhooks.deliver(
                url=s.alert_webhook_url or "",
                body=alerts.body(alert),
                event_id=f"alert-{alert.id}",
                secret=s.alert_webhook_secret,
                timeout_s=s.webhook_timeout_s,
                allow_private=s.webhook_allow_private,
            )
        except Exception:  # the claim lapses and the alert is tried again
            log.exception("alert %s: delivery failed", alert.id)
        finally:
            retry_at: datetime | None = None
            if not ok and alert.attempts < s.webhook_max_attempts:
                retry_at = utcnow() + timedelta(seconds=webhooks.retry_delay(alert.attempts, s.webhook_backoff_s))
            with anyio.CancelScope(shield=True):
                await self.db(alerts.delivery_result, alert_id=alert.id, delivered=ok, retry_at=retry_at)


async def main() -> None:
    """`python -m api.worker`: one standalone pipeline worker until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    timeout = httpx.Timeout(settings.upstream_timeout_s, connect=min(10.0, settings.upstream_timeout_s))
    async with httpx.AsyncClient(timeout=timeout) as http:
        worker = PipelineWorker(settings, http=http)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                log.info("image pipeline worker started")
                async for _ in signals:
                    log.info("stopping: in-flight tasks are handed back")
                    group.cancel_scope.cancel()
                    break


if __name__ == "__main__":
    anyio.run(main)
