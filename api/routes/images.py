"""Image generation: submit a task, read it back, fetch its files through signed URLs.

POST answers at once with the task (`status: "pending"`); the pipeline worker
(`api.worker`) carries it to `succeeded` or `failed`. Checks run in the spec's order:
key → rate limit → body → model → provider → credits → upstream submission.

With `Prefer: wait=N` (N ≤ 60 seconds, as Replicate takes it) the submission waits for
the task: succeeded, it answers with `data` filled (`url`s, or `b64_json` when asked),
as OpenAI's SDKs expect; failed, a `provider_error` (the task was refunded, as always);
still running at the deadline, the task answer.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from store import pricing, signing, tasks
from store.errors import Conflict, InsufficientCredits, KeyBudgetExceeded, KeyNotUsable, ModelNotAllowed
from store.models import ImageTask

from ..deps import CallerKey, ContextDep, ImageBody, ReaderKey, RuntimeDep
from ..errors import ERRORS, ApiError
from ..providers import UpstreamError
from ..providers.images import ImageJob
from ..runtime import Runtime
from ..schemas import ImageGenerationRequest, request_body
from ..webhooks import valid_webhook_url

router = APIRouter()
TASK_ERRORS = ERRORS | {404: ERRORS[404] | {"description": "task_not_found"}}
FILE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: ERRORS[403] | {"description": "invalid_signature"},
    404: ERRORS[404] | {"description": "not_found"},
}

MAX_IDEMPOTENCY_KEY = 200
TASK_ID_RE = re.compile(r"img_[0-9a-f]{32}")
_MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
# How long the submitting request keeps workers off its task while it submits upstream.
SUBMIT_HOLD_MARGIN_S = 30.0
MAX_WAIT_S = 60  # `Prefer: wait=N`, as Replicate takes it
# While waiting, the task is read this often (growing by half each time, to the most).
WAIT_POLL_FIRST_S, WAIT_POLL_MOST_S = 0.05, 1.0


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError("invalid_request", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def _wait_s(request: Request) -> int | None:
    """The seconds of `Prefer: wait=N` (bare `wait`: the most), or None without it."""
    for part in re.split(r"[,;]", ", ".join(request.headers.getlist("prefer"))):
        name, has_value, value = part.partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not has_value:
            return MAX_WAIT_S
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_WAIT_S):
            raise ApiError("invalid_request", f"`Prefer: wait=N` takes N from 1 to {MAX_WAIT_S} seconds")
        return int(value)
    return None


async def _waited_task(runtime: Runtime, task: ImageTask, wait_s: float) -> ImageTask:
    """The task once it succeeded or failed, or as it is when `wait_s` ran out."""
    deadline = time.monotonic() + wait_s
    pause = WAIT_POLL_FIRST_S
    while True:
        latest: ImageTask | None = await runtime.db(tasks.get_task, task_id=task.id)
        task = latest or task
        left = deadline - time.monotonic()
        if task.status not in tasks.ACTIVE or left <= 0:
            return task
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 1.5, WAIT_POLL_MOST_S)


async def _waited_answer(
    task: ImageTask, response_format: str | None, request: Request, runtime: Runtime, wait_s: int
) -> Response:
    """A finished task as OpenAI answers: `data` filled, or the task's failure as an error."""
    if task.status == tasks.FAILED:
        raise ApiError("provider_error", f"Image generation failed: {task.error or 'no reason given'}")
    if response_format == "b64_json":
        files = [runtime.settings.media_dir / path for path in task.outputs]
        images = await anyio.to_thread.run_sync(lambda: [file.read_bytes() for file in files])
        view = tasks.public_view(task, urls=[])
        view["data"] = [{"b64_json": base64.b64encode(image).decode("ascii")} for image in images]
        answer = Response(orjson.dumps(view), media_type="application/json")
    else:
        answer = _answer(task, request, runtime)
    answer.headers["Preference-Applied"] = f"wait={wait_s}"
    return answer


def _origin(request: Request, runtime: Runtime) -> str:
    configured = runtime.settings.public_base_url
    return configured.rstrip("/") if configured else f"{request.url.scheme}://{request.url.netloc}"


def _answer(task: ImageTask, request: Request, runtime: Runtime, status: str | None = None) -> Response:
    s = runtime.settings
    urls = tasks.output_urls(task, secret_key=s.secret_key, ttl_s=s.media_url_ttl_s, base=_origin(request, runtime))
    view = tasks.public_view(task, urls=urls)
    if status is not None:
        view["status"] = status
    return Response(orjson.dumps(view), media_type="application/json")


@router.post(
    "/images/generations",
    summary="Start an image generation task; answers at once with the task",
    openapi_extra=request_body(ImageGenerationRequest),
    responses=ERRORS,
)
async def create_image(
    key: CallerKey, body: ImageBody, request: Request, runtime: RuntimeDep, ctx: ContextDep
) -> Response:
    model_id, prompt, size, n, webhook_url = body.model, body.prompt, body.size, body.n, body.webhook_url
    assert model_id is not None and prompt is not None  # the body's validators require both
    if webhook_url is not None and not valid_webhook_url(webhook_url):
        raise ApiError("invalid_request", "`webhook_url` must be an http(s) URL of at most 2000 characters")
    idempotency_key = _idempotency_key(request)
    wait_s = _wait_s(request)
    ctx.model = model_id
    entry = await runtime.model_for(model_id, "image", key)
    provider = runtime.image_providers.get(entry.provider)
    if provider is None or not provider.configured:
        raise ApiError("provider_not_configured")
    s = runtime.settings
    try:
        task, created = await runtime.db(
            tasks.create_task,
            user_id=key.user_id,
            api_key_id=key.key_id,
            request_id=ctx.request_id,
            model=model_id,
            provider=entry.provider,
            upstream_id=entry.upstream_id,
            prompt=prompt,
            size=size,
            n=n,
            unit_cost=pricing.image_unit_cost(entry, size),
            timeout_s=s.task_timeout_s,
            hold_s=0.0 if provider.synchronous else s.upstream_timeout_s + SUBMIT_HOLD_MARGIN_S,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
            alerts=s.alert_webhook_url is not None,
        )
    except (InsufficientCredits, KeyBudgetExceeded, KeyNotUsable, ModelNotAllowed) as exc:
        raise runtime.refusal(exc, key) from None
    except Conflict as exc:
        raise ApiError("invalid_request", str(exc)) from None
    ctx.task_id, ctx.upstream_id = task.id, task.provider_task_id
    if not created:  # a retry with the same Idempotency-Key: the same task, no new charge
        return await _settled_answer(task, body.response_format, request, runtime, wait_s)
    ctx.credit_cost = task.credit_cost
    if not provider.synchronous:  # synchronous providers run wholly inside the worker
        job = ImageJob(upstream_id=entry.upstream_id, prompt=prompt, size=size, n=n)
        try:
            submission = await provider.submit(job)
        except UpstreamError as exc:
            await runtime.db(
                tasks.fail_task,
                task_id=task.id,
                token=0,
                reason=str(exc),
                timed_out=exc.timeout,
                notify=False,
                forget_idempotency_key=True,
            )
            ctx.credit_cost = 0
            raise exc.as_api_error() from None
        task.provider_task_id = ctx.upstream_id = submission.provider_task_id
        await runtime.db(
            tasks.mark_submitted,
            task_id=task.id,
            provider_task_id=submission.provider_task_id,
            poll_in_s=s.task_poll_interval_s,
        )
    return await _settled_answer(task, body.response_format, request, runtime, wait_s)


async def _settled_answer(
    task: ImageTask, response_format: str | None, request: Request, runtime: Runtime, wait_s: int | None
) -> Response:
    """The task answer, or with `Prefer: wait` the finished task's (see the module docstring)."""
    if wait_s is not None:
        task = await _waited_task(runtime, task, wait_s)
        if task.status not in tasks.ACTIVE:
            return await _waited_answer(task, response_format, request, runtime, wait_s)
    return _answer(task, request, runtime)


@router.get("/images/generations/{task_id}", summary="Read an image task (the caller's own)", responses=TASK_ERRORS)
async def get_image(task_id: str, key: ReaderKey, request: Request, runtime: RuntimeDep, ctx: ContextDep) -> Response:
    if not TASK_ID_RE.fullmatch(task_id):
        raise ApiError("task_not_found")
    task = await runtime.db(tasks.get_task_for_user, task_id=task_id, user_id=key.user_id)
    if task is None:
        raise ApiError("task_not_found")
    ctx.task_id, ctx.model, ctx.upstream_id = task.id, task.model, task.provider_task_id
    return _answer(task, request, runtime)


@router.get("/images/webhook-secret", summary="The secret that signs your webhook deliveries", responses=ERRORS)
async def webhook_secret(key: ReaderKey, runtime: RuntimeDep) -> Response:
    secret = signing.webhook_secret(runtime.settings.secret_key, key.user_id)
    return Response(
        orjson.dumps(
            {"object": "webhook_secret", "secret": secret, "header": "X-Platform-Signature", "algorithm": "hmac-sha256"}
        ),
        media_type="application/json",
    )


@router.get(
    "/files/{path:path}",
    summary="A generated file, through a signed URL (no bearer key)",
    responses=FILE_ERRORS,
)
async def get_file(path: str, request: Request, runtime: RuntimeDep) -> Response:
    expires, sig = request.query_params.get("expires"), request.query_params.get("sig")
    if expires is None or not signing.verify_media(runtime.settings.secret_key, path, expires, sig):
        raise ApiError("invalid_signature")
    file = runtime.settings.media_dir / path  # the pattern checked by verify_media admits no "..", no "/"
    if not file.is_file():
        raise ApiError("not_found")
    max_age = max(0, int(expires) - int(time.time()))
    return FileResponse(
        file,
        media_type=_MEDIA_TYPES[path.rsplit(".", 1)[1]],
        headers={"Cache-Control": f"private, max-age={max_age}", "X-Content-Type-Options": "nosniff"},
    )
