"""Image generation: submit a task, read it back, fetch its files through signed URLs.

POST answers at once with the task (`status: "pending"`); the pipeline worker
(`api.worker`) carries it to `succeeded` or `failed`. Checks run in the spec's order:
key → rate limit → body → model → provider → credits → upstream submission.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from store import signing, tasks
from store.errors import Conflict, InsufficientCredits
from store.models import ImageTask

from ..body import check_types, read_json_object, require_model
from ..errors import ApiError
from ..guard import admit, authenticate, context_of, runtime_of
from ..providers import UpstreamError
from ..providers.images import ImageJob
from ..runtime import Runtime
from ..webhooks import valid_webhook_url
from .docs import ERRORS, IMAGE_REQUEST

router = APIRouter()
TASK_ERRORS = ERRORS | {404: ERRORS[404] | {"description": "task_not_found"}}
FILE_ERRORS = {403: ERRORS[403] | {"description": "invalid_signature"}, 404: ERRORS[404] | {"description": "not_found"}}

SIZE_RE = re.compile(r"([1-9][0-9]{1,4})x([1-9][0-9]{1,4})")
MIN_SIDE, MAX_SIDE = 64, 8192
MAX_PROMPT_CHARS = 32_000
MAX_IDEMPOTENCY_KEY = 200
TASK_ID_RE = re.compile(r"img_[0-9a-f]{32}")
# Control characters other than \n \r \t: no prompt needs them, and PostgreSQL cannot store NUL.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
# How long the submitting request keeps workers off its task while it submits upstream.
SUBMIT_HOLD_MARGIN_S = 30.0


def _validate(body: dict[str, Any]) -> tuple[str, str, str | None, int, str | None]:
    model = require_model(body)
    prompt = body.get("prompt")
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise ApiError("prompt_required")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError("invalid_request", f"`prompt` must be a string of at most {MAX_PROMPT_CHARS} characters")
    if CONTROL_RE.search(prompt):
        raise ApiError("invalid_request", "`prompt` must not contain control characters other than \\n, \\r and \\t")
    check_types(body, {"n": (int, 1, 4), "size": (str, None, None), "webhook_url": (str, None, None)})
    size = body.get("size")
    if size is not None:
        match = SIZE_RE.fullmatch(size)
        if match is None or not all(MIN_SIDE <= int(side) <= MAX_SIDE for side in match.groups()):
            raise ApiError("invalid_request", f"`size` must be WIDTHxHEIGHT, each {MIN_SIDE} to {MAX_SIDE}")
    if body.get("response_format") not in (None, "url"):
        raise ApiError("invalid_request", "`response_format` must be \"url\"")
    webhook_url = body.get("webhook_url")
    if webhook_url is not None and not valid_webhook_url(webhook_url):
        raise ApiError("invalid_request", "`webhook_url` must be an http(s) URL of at most 2000 characters")
    return model, prompt, size, body.get("n") or 1, webhook_url


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError("invalid_request", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


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
    openapi_extra={"requestBody": IMAGE_REQUEST},
    responses=ERRORS,
)
async def create_image(request: Request) -> Response:
    runtime, ctx = runtime_of(request), context_of(request)
    key = await admit(request)
    body = await read_json_object(request, runtime.settings.max_body_bytes)
    model_id, prompt, size, n, webhook_url = _validate(body)
    idempotency_key = _idempotency_key(request)
    ctx.model = model_id
    entry = await runtime.model_for(model_id, "image")
    provider = runtime.image_providers.get(entry.provider)
    if provider is None or not provider.configured:
        raise ApiError("provider_not_configured")
    s = runtime.settings
    try:
        task, created = await runtime.db(
            tasks.create_task, user_id=key.user_id, api_key_id=key.key_id, request_id=ctx.request_id,
            model=model_id, provider=entry.provider, upstream_id=entry.upstream_id, prompt=prompt,
            size=size, n=n, unit_cost=entry.credit_cost, timeout_s=s.task_timeout_s,
            hold_s=0.0 if provider.synchronous else s.upstream_timeout_s + SUBMIT_HOLD_MARGIN_S,
            idempotency_key=idempotency_key, webhook_url=webhook_url,
        )
    except InsufficientCredits:
        raise ApiError("insufficient_credits") from None
    except Conflict as exc:
        raise ApiError("invalid_request", str(exc)) from None
    ctx.task_id, ctx.upstream_id = task.id, task.provider_task_id
    if not created:  # a retry with the same Idempotency-Key: the same task, no new charge
        return _answer(task, request, runtime)
    ctx.credit_cost = task.credit_cost
    if not provider.synchronous:  # synchronous providers run wholly inside the worker
        job = ImageJob(upstream_id=entry.upstream_id, prompt=prompt, size=size, n=n)
        try:
            submission = await provider.submit(job)
        except UpstreamError as exc:
            await runtime.db(tasks.fail_task, task_id=task.id, token=0, reason=str(exc),
                             timed_out=exc.timeout, notify=False, forget_idempotency_key=True)
            ctx.credit_cost = 0
            raise exc.as_api_error() from None
        task.provider_task_id = ctx.upstream_id = submission.provider_task_id
        await runtime.db(tasks.mark_submitted, task_id=task.id, provider_task_id=submission.provider_task_id,
                         poll_in_s=s.task_poll_interval_s)
    return _answer(task, request, runtime, status=tasks.PENDING)


@router.get("/images/generations/{task_id}", summary="Read an image task (the caller's own)", responses=TASK_ERRORS)
async def get_image(task_id: str, request: Request) -> Response:
    runtime, ctx = runtime_of(request), context_of(request)
    key = await authenticate(request)
    if not TASK_ID_RE.fullmatch(task_id):
        raise ApiError("task_not_found")
    task = await runtime.db(tasks.get_task_for_user, task_id=task_id, user_id=key.user_id)
    if task is None:
        raise ApiError("task_not_found")
    ctx.task_id, ctx.model, ctx.upstream_id = task.id, task.model, task.provider_task_id
    return _answer(task, request, runtime)


@router.get("/images/webhook-secret", summary="The secret that signs your webhook deliveries", responses=ERRORS)
async def webhook_secret(request: Request) -> Response:
    key = await authenticate(request)
    secret = signing.webhook_secret(runtime_of(request).settings.secret_key, key.user_id)
    return Response(orjson.dumps({"object": "webhook_secret", "secret": secret,
                                  "header": "X-Platform-Signature", "algorithm": "hmac-sha256"}),
                    media_type="application/json")


@router.get(
    "/files/{path:path}",
    summary="A generated file, through a signed URL (no bearer key)",
    responses=FILE_ERRORS,
)
async def get_file(path: str, request: Request) -> Response:
    runtime = runtime_of(request)
    expires, sig = request.query_params.get("expires"), request.query_params.get("sig")
    if not signing.verify_media(runtime.settings.secret_key, path, expires, sig):
        raise ApiError("invalid_signature")
    file = runtime.settings.media_dir / path  # the pattern checked by verify_media admits no "..", no "/"
    if not file.is_file():
        raise ApiError("not_found")
    max_age = max(0, int(expires) - int(time.time()))
    return FileResponse(file, media_type=_MEDIA_TYPES[path.rsplit(".", 1)[1]],
                        headers={"Cache-Control": f"private, max-age={max_age}",
                                 "X-Content-Type-Options": "nosniff"})
