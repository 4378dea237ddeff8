"""OpenRouter images, for users who hold only an OpenRouter key. Synchronous.

The dedicated Image API, `POST {base}/images` with `{"model", "prompt", "n",
"aspect_ratio", "resolution", "output_format"}`, answers `{"data": [{"b64_json"}]}`.
Models it does not list (`GET {base}/images/models`) answer images only through chat
with `modalities: ["image", "text"]`, as data URLs in `choices[0].message.images`;
one call per image. Either way the whole generation happens in `submit`, which the
pipeline worker runs, so the caller still gets a task at once.

The provider task id is the upstream's generation `id` where it sends one, else None.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from . import UpstreamError
from .images import ImageJob, Progress, Submission, aspect_and_resolution, download, transport_error, upstream_error

MODELS_TTL_S = 3600.0


class OpenRouterImages:
    name = "openrouter"
    synchronous = True

    def __init__(
        self, client: httpx.AsyncClient, *, base_url: str, api_key: str | None, timeout_s: float, max_image_bytes: int
    ) -> None:
        self._client = client
        self._base = base_url
        self._key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout_s = timeout_s
        self._max_bytes = max_image_bytes
        self._image_models: set[str] | None = None
        self._models_expire = 0.0

    @property
    def configured(self) -> bool:
        return bool(self._key)

    async def submit(self, job: ImageJob) -> Submission:
        if await self._has_image_api(job.upstream_id):
            return await self._image_api(job)
        return await self._chat(job)

    async def _has_image_api(self, model: str) -> bool:
        """Whether the Image API lists `model`; if the list cannot be read, assume it does."""
        if self._image_models is None or time.monotonic() > self._models_expire:
            try:
                data = await self._call("GET", "/images/models", None)
                self._image_models = {m["id"] for m in data.get("data", []) if isinstance(m, dict) and "id" in m}
            except (UpstreamError, TypeError):
                self._image_models = None
                return True
            self._models_expire = time.monotonic() + MODELS_TTL_S
        return model in self._image_models

    async def _image_api(self, job: ImageJob) -> Submission:
        aspect_ratio, resolution = aspect_and_resolution(job.size)
        data = await self._call(
            "POST",
            "/images",
            {
                "model": job.upstream_id,
                "prompt": job.prompt,
                "n": job.n,
                "aspect_ratio": aspect_ratio,
                "resolution": resolution,
                "output_format": "png",
            },
        )
        items = data.get("data")
        if not isinstance(items, list):
            raise UpstreamError("OpenRouter answered without images")
        outputs = [
            f"data:image/png;base64,{item['b64_json']}"
            for item in items
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str)
        ]
        if len(outputs) != job.n:
            raise UpstreamError(f"OpenRouter returned {len(outputs)} of {job.n} images")
        return Submission(provider_task_id=_id(data), outputs=outputs)

    async def _chat(self, job: ImageJob) -> Submission:
        aspect_ratio, _ = aspect_and_resolution(job.size)
        body = {
            "model": job.upstream_id,
            "messages": [{"role": "user", "content": job.prompt}],
            "modalities": ["image", "text"],
            "image_config": {"aspect_ratio": aspect_ratio},
        }
        answers = await asyncio.gather(*(self._call("POST", "/chat/completions", body) for _ in range(job.n)))
        outputs = []
        for answer in answers:
            try:
                outputs.append(answer["choices"][0]["message"]["images"][0]["image_url"]["url"])
            except (KeyError, IndexError, TypeError):
                raise UpstreamError("OpenRouter chat answered without an image") from None
        return Submission(provider_task_id=_id(answers[0]), outputs=outputs)

    async def poll(self, provider_task_id: str) -> Progress:
        raise UpstreamError("OpenRouter images are synchronous; there is nothing to poll")

    async def cancel(self, provider_task_id: str) -> None:
        return None

    async def fetch(self, output: str) -> bytes:
        return await download(self._client, output, max_bytes=self._max_bytes, timeout_s=self._timeout_s)

    async def _call(self, method: str, path: str, body: dict | None) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.request(
                    method,
                    self._base + path,
                    headers=self._headers,
                    content=orjson.dumps(body) if body is not None else None,
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            raise transport_error(exc, "OpenRouter") from None
        if response.status_code != 200:
            raise upstream_error(response, "OpenRouter")
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError("OpenRouter returned a malformed body") from None
        if not isinstance(data, dict):
            raise UpstreamError("OpenRouter returned a malformed body")
        return data


def _id(data: dict[str, Any]) -> str | None:
    value = data.get("id")
    return value[:200] if isinstance(value, str) and value else None
