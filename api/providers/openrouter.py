"""OpenRouter (or any OpenAI-compatible base URL) for chat completions.

Bodies pass through as received except `model`, which becomes the registry's upstream
id on the way up and the public id on the way down.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import httpx
import orjson

from . import UpstreamError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class OpenRouterChat:
    """Chat completions upstream. With `transport` (the runtime's UpstreamTransport) each call
    goes straight to it, skipping AsyncClient's per-request layers; without, through `client`."""

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, api_key: str | None,
                 timeout_s: float, retries: int = 1, backoff_s: float = 0.25,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = client
        self._transport = transport
        self._url = httpx.URL(f"{base_url}/chat/completions")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._extensions = {"timeout": client.timeout.as_dict()}
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self.configured = bool(api_key)

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming completion; returns the upstream's parsed JSON body."""
        response = await self._send(body, stream=False)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError("Upstream provider returned a malformed body") from None
        if not isinstance(data, dict):
            raise UpstreamError("Upstream provider returned a malformed body")
        return data

    async def open_stream(self, body: dict[str, Any]) -> httpx.Response:
        """Start a streaming completion; the caller must close the returned response."""
        return await self._send(body, stream=True)

    async def _send(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        content = orjson.dumps(body)
        attempt = 0
        while True:
            try:
                return await self._send_once(content, stream=stream)
            except UpstreamError as exc:
                if not exc.retryable or attempt >= self._retries:
                    raise
            await asyncio.sleep(self._backoff_s * (2**attempt))
            attempt += 1

    async def _send_once(self, content: bytes, *, stream: bool) -> httpx.Response:
        try:
            if self._transport is None:
                request = self._client.build_request("POST", self._url, content=content, headers=self._headers)
                if stream:
                    response = await self._client.send(request, stream=True)
                else:
                    async with asyncio.timeout(self._timeout_s):
                        response = await self._client.send(request)
            else:
                request = httpx.Request("POST", self._url, content=content, headers=self._headers,
                                        extensions=self._extensions)
                if stream:
                    response = await self._transport.handle_async_request(request)
                else:
                    async with asyncio.timeout(self._timeout_s):
                        response = await self._transport.handle_async_request(request)
                        try:
                            await response.aread()
                        finally:
                            await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            raise UpstreamError("Upstream provider timed out", timeout=True) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream provider unreachable ({type(exc).__name__})", retryable=True) from None
        if response.status_code != 200:
            if stream:
                await response.aclose()
            raise UpstreamError(
                f"Upstream provider returned HTTP {response.status_code}",
                retryable=response.status_code in RETRY_STATUSES,
            )
        return response


async def relay_events(response: httpx.Response) -> AsyncIterator[tuple[list[str], dict[str, Any] | None]]:
    """Yield each server-sent event of an upstream stream as soon as its blank line arrives.

    Yields (the event's lines, its JSON data object or None). Comments, `[DONE]` and
    anything not a JSON object come with None. Raises UpstreamError if the upstream
    breaks off or stalls past the read timeout.
    """
    lines: list[str] = []
    try:
        async for line in response.aiter_lines():
            if line:
                lines.append(line)
                continue
            if lines:
                yield _event(lines)
                lines = []
        if lines:
            yield _event(lines)
    except httpx.TimeoutException:
        raise UpstreamError("Upstream provider timed out mid-stream", timeout=True) from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"Upstream stream broke off ({type(exc).__name__})") from None


def _event(lines: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    data_lines = [line[5:].lstrip() for line in lines if line.startswith("data:")]
    payload = "\n".join(data_lines)
    if not data_lines or payload == "[DONE]":
        return lines, None
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return lines, None
    return lines, parsed if isinstance(parsed, dict) else None
