"""The one small interface every image provider offers the pipeline.

    submit(job)        -> Submission   start the work; a synchronous provider finishes it here
    poll(task_id)      -> Progress     where an asynchronous provider's work stands
    cancel(task_id)                    best effort, after a timeout
    fetch(output)      -> bytes        download one output (a URL or a data: URI)

Providers raise UpstreamError; the route and the worker decide what it means for a task.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from store.pricing import resolution_of

from . import UpstreamError

# Task progress as the pipeline sees it.
RUNNING, SUCCEEDED, FAILED, CANCELED = "running", "succeeded", "failed", "canceled"
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ImageJob:
    upstream_id: str
    prompt: str
    size: str | None  # "WxH", validated
    n: int


@dataclass(frozen=True, slots=True)
class Submission:
    provider_task_id: str | None
    outputs: list[str] | None = None  # set when the provider answered synchronously


@dataclass(frozen=True, slots=True)
class Progress:
    status: str  # RUNNING | SUCCEEDED | FAILED | CANCELED
    outputs: list[str] = field(default_factory=list)
    error: str | None = None


class ImageProvider(Protocol):
    name: str
    synchronous: bool  # True: submit() does the whole generation (run it in the worker)

    @property
    def configured(self) -> bool: ...

    async def submit(self, job: ImageJob) -> Submission: ...

    async def poll(self, provider_task_id: str) -> Progress: ...

    async def cancel(self, provider_task_id: str) -> None: ...

    async def fetch(self, output: str) -> bytes: ...


def aspect_and_resolution(size: str | None) -> tuple[str, str]:
    """`"1024x1024"` -> `("1:1", "1K")`: the ratio in lowest terms, the long side in K."""
    if not size:
        return "1:1", "1K"
    width, height = (int(v) for v in size.lower().split("x"))
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}", resolution_of(size)


def upstream_error(response: httpx.Response, what: str) -> UpstreamError:
    try:
        body = response.content
    except httpx.ResponseNotRead:
        body = b""
    return UpstreamError.from_status(
        response.status_code, body, response.headers, what=what, retry_statuses=RETRY_STATUSES
    )


def transport_error(exc: Exception, what: str) -> UpstreamError:
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return UpstreamError(f"{what} timed out", timeout=True, retryable=True)
    return UpstreamError(f"{what} unreachable ({type(exc).__name__})", retryable=True)


def decode_data_uri(output: str) -> bytes:
    header, _, payload = output.partition(",")
    if not header.endswith(";base64"):
        raise UpstreamError("provider returned an image that is not base64")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UpstreamError("provider returned malformed base64 image data") from None


async def download(client: httpx.AsyncClient, output: str, *, max_bytes: int, timeout_s: float) -> bytes:
    """The bytes of one output, never holding more than `max_bytes` of it."""
    if output.startswith("data:"):
        data = decode_data_uri(output)
        if len(data) > max_bytes:
            raise UpstreamError("provider returned an image over the size limit")
        return data
    if not output.startswith(("https://", "http://")):
        raise UpstreamError("provider returned an output that is not a URL")
    chunks: list[bytes] = []
    size = 0
    try:
        async with client.stream("GET", output, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code != 200:
                raise upstream_error(response, "image download")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise UpstreamError("provider returned an image over the size limit")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise transport_error(exc, "image download") from None
    return b"".join(chunks)
