"""OpenRouter (or any OpenAI-compatible base URL) for chat completions.

Bodies pass through as received except `model`, which becomes the registry's upstream
id on the way up and the public id on the way down. The route serialises the body
(before it charges anything) and hands the bytes here.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import httpx
import orjson

from . import UpstreamError, upstream_message

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
        # What httpx.Request(content=...) would add, built once: Host, then ours.
        self._raw_headers = [(b"Host", self._url.netloc), *((k.encode(), v.encode()) for k, v in self._headers.items())]
        self._extensions = {"timeout": client.timeout.as_dict()}
        # A plain completion runs under one deadline of its own (below), so its reads need none.
        self._extensions_whole = {"timeout": {**client.timeout.as_dict(), "read": None}}
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self.configured = bool(api_key)

    async def complete(self, content: bytes) -> dict[str, Any]:
        """One non-streaming completion of the serialised request `content`; returns the
        upstream's parsed JSON body. A 200 whose body is an error is an UpstreamError."""
        answer = await self._retrying(self._complete_once, content)
        try:
            data = orjson.loads(answer)
        except orjson.JSONDecodeError:
            raise UpstreamError("Upstream provider returned a malformed body") from None
        if not isinstance(data, dict):
            raise UpstreamError("Upstream provider returned a malformed body")
        if data.get("error") is not None:
            raise UpstreamError("Upstream provider returned an error", detail=upstream_message(answer))
        return data

    async def open_stream(self, content: bytes) -> httpx.Response:
        """Start a streaming completion of the serialised request `content`; the caller must
        close the returned response."""
        return await self._retrying(self._open_once, content)

    async def _retrying(self, once, content: bytes):
        attempt = 0
        while True:
            try:
                return await once(content)
            except UpstreamError as exc:
                if not exc.retryable or attempt >= self._retries:
                    raise
            await asyncio.sleep(self._backoff_s * (2**attempt))
            attempt += 1

    def _request(self, content: bytes, extensions: dict) -> httpx.Request:
        # stream= rather than content=: the headers httpx would derive are ready-made
        headers = [*self._raw_headers, (b"Content-Length", str(len(content)).encode())]
        return httpx.Request("POST", self._url, headers=headers, stream=httpx.ByteStream(content),
                             extensions=extensions)

    async def _complete_once(self, content: bytes) -> bytes:
        """The upstream's body, read whole under one deadline of `timeout_s`."""
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._transport is None:
                    response = await self._client.send(
                        self._client.build_request("POST", self._url, content=content, headers=self._headers))
                    answer = response.content
                else:
                    response = await self._transport.handle_async_request(
                        self._request(content, self._extensions_whole))
                    try:
                        if "content-encoding" in response.headers:
                            answer = await response.aread()
                        else:  # the raw stream: the body as sent, without httpx's decoder layers
                            answer = b"".join([part async for part in response.stream])
                    finally:
                        await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            raise UpstreamError("Upstream provider timed out", timeout=True) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream provider unreachable ({type(exc).__name__})", retryable=True) from None
        _check_status(response, answer)
        return answer

    async def _open_once(self, content: bytes) -> httpx.Response:
        try:
            if self._transport is None:
                response = await self._client.send(
                    self._client.build_request("POST", self._url, content=content, headers=self._headers),
                    stream=True)
            else:
                response = await self._transport.handle_async_request(self._request(content, self._extensions))
        except httpx.TimeoutException:
            raise UpstreamError("Upstream provider timed out", timeout=True) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream provider unreachable ({type(exc).__name__})", retryable=True) from None
        if response.status_code != 200:
            try:
                answer = await _read_some(response, ERROR_BODY_LIMIT)
            except httpx.HTTPError:
                answer = b""
            finally:
                await response.aclose()
            _check_status(response, answer)
        return response


ERROR_BODY_LIMIT = 64 * 1024  # of an error answer, what is read for its message


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    parts, size = [], 0
    async for part in response.aiter_raw():
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


def _check_status(response: httpx.Response, answer: bytes) -> None:
    if response.status_code != 200:
        raise UpstreamError.from_status(response.status_code, answer[:ERROR_BODY_LIMIT], response.headers,
                                        retry_statuses=RETRY_STATUSES)


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
