"""Replicate: asynchronous predictions, one per image.

`POST {base}/models/{owner}/{name}/predictions` with `{"input": {...}}` starts one
(`owner/name:version` upstream ids go to `POST {base}/predictions` with `version`);
`GET {base}/predictions/{id}` tells its `status` (`starting`, `processing`,
`succeeded`, `failed`, `canceled`) and, once succeeded, `output`: a URL or a list of
URLs. Models such as nano-banana make one image per prediction, so a task of `n`
images starts `n` predictions; its provider task id lists their ids, comma-separated.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from . import UpstreamError
from .images import (
    CANCELED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    ImageJob,
    Progress,
    Submission,
    aspect_and_resolution,
    download,
    transport_error,
    upstream_error,
)

_STATUS = {
    "starting": RUNNING,
    "processing": RUNNING,
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "canceled": CANCELED,
    "aborted": CANCELED,
}


class ReplicateImages:
    name = "replicate"
    synchronous = False

    def __init__(
        self, client: httpx.AsyncClient, *, base_url: str, api_token: str | None, timeout_s: float, max_image_bytes: int
    ) -> None:
        self._client = client
        self._base = base_url
        self._headers = {"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"}
        self._timeout_s = timeout_s
        self._max_bytes = max_image_bytes
        self._token = api_token

    @property
    def configured(self) -> bool:
        return bool(self._token)

    async def submit(self, job: ImageJob) -> Submission:
        """Start `n` predictions; if any fails to start, cancel the others and raise."""
        results = await asyncio.gather(*(self._start(job) for _ in range(job.n)), return_exceptions=True)
        ids = [r for r in results if isinstance(r, str)]
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await asyncio.gather(*(self.cancel(i) for i in ids), return_exceptions=True)
            raise failure
        return Submission(provider_task_id=",".join(ids))

    async def _start(self, job: ImageJob) -> str:
        aspect_ratio, resolution = aspect_and_resolution(job.size)
        body: dict[str, Any] = {
            "input": {
                "prompt": job.prompt,
                "aspect_ratio": aspect_ratio,
                "resolution": resolution,
                "output_format": "png",
            }
        }
        model, _, version = job.upstream_id.partition(":")
        if version:
            url = f"{self._base}/predictions"
            body["version"] = version
        else:
            url = f"{self._base}/models/{model}/predictions"
        data = await self._call("POST", url, body, ok=(200, 201, 202))
        prediction_id = data.get("id")
        if not isinstance(prediction_id, str) or not prediction_id or "," in prediction_id:
            raise UpstreamError("Replicate answered without a prediction id")
        return prediction_id

    async def poll(self, provider_task_id: str) -> Progress:
        """All predictions succeeded: their outputs in order; any failed: that failure."""
        states = await asyncio.gather(*(self._poll_one(i) for i in provider_task_id.split(",")))
        for state in states:
            if state.status in (FAILED, CANCELED):
                return state
        if all(state.status == SUCCEEDED for state in states):
            return Progress(SUCCEEDED, [url for state in states for url in state.outputs])
        return Progress(RUNNING)

    async def _poll_one(self, prediction_id: str) -> Progress:
        data = await self._call("GET", f"{self._base}/predictions/{prediction_id}", None, ok=(200,))
        status = _STATUS.get(str(data.get("status")), RUNNING)
        if status == SUCCEEDED:
            output = data.get("output")
            outputs = [output] if isinstance(output, str) else output
            if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
                return Progress(FAILED, error="Replicate prediction succeeded without an output")
            return Progress(SUCCEEDED, outputs)
        if status in (FAILED, CANCELED):
            error = data.get("error")
            reason = "canceled upstream" if status == CANCELED else f"failed upstream: {error or 'no reason given'}"
            return Progress(status, error=f"Replicate prediction {reason}")
        return Progress(RUNNING)

    async def cancel(self, provider_task_id: str) -> None:
        for prediction_id in provider_task_id.split(","):
            try:
                await self._call("POST", f"{self._base}/predictions/{prediction_id}/cancel", None, ok=(200, 201, 202))
            except UpstreamError:
                pass  # best effort: the task is failed and refunded either way

    async def fetch(self, output: str) -> bytes:
        return await download(self._client, output, max_bytes=self._max_bytes, timeout_s=self._timeout_s)

    async def _call(self, method: str, url: str, body: dict | None, *, ok: tuple[int, ...]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.request(
                    method, url, headers=self._headers, content=orjson.dumps(body) if body is not None else None
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            raise transport_error(exc, "Replicate") from None
        if response.status_code not in ok:
            raise upstream_error(response, "Replicate")
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError("Replicate returned a malformed body") from None
        if not isinstance(data, dict):
            raise UpstreamError("Replicate returned a malformed body")
        return data
