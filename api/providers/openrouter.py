"""OpenRouter (or any OpenAI-compatible base URL) for chat completions and embeddings, and
the other formats it serves natively (`/messages`, `/responses`).

Bodies pass through as received except `model`, which becomes the registry's upstream
id on the way up and the public id on the way down. The route serialises the body
(before it charges anything) and hands the bytes here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from . import UpstreamError, upstream_message

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ERROR_BODY_LIMIT = 64 * 1024  # of an error answer, what is read for its message


class UpstreamStream:
    """An upstream answer being streamed: its lines as they arrive, and `aclose`."""

    __slots__ = ("response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def lines(self) -> AsyncIterator[bytes]:
        """Each line, without its end (LF or CRLF), as soon as it is whole. Any line
        length: an event carrying a whole base64 image is one line."""
        pending = b""
        async for part in self.response.content.iter_any():
            if pending:
                part = pending + part
            *whole, pending = part.split(b"\n")
            for line in whole:
                yield line[:-1] if line.endswith(b"\r") else line
        if pending:
            yield pending[:-1] if pending.endswith(b"\r") else pending

    async def aclose(self) -> None:
        """Hand the connection back when the answer was read to its end, else close it."""
        if self.response.content.at_eof():
            self.response.release()
        else:
            self.response.close()


class OpenRouterChat:
    """Chat completions (and embeddings) upstream over the process's aiohttp session
    (providers.upstream_http)."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        retries: int = 1,
        backoff_s: float = 0.25,
    ) -> None:
        self._session = session
        self._base = base_url
        self._url = f"{base_url}/chat/completions"
        self._embeddings_url = f"{base_url}/embeddings"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self.configured = bool(api_key) and session is not None

    async def complete(
        self, content: bytes, path: str | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One non-streaming completion of the serialised request `content` (at `path` under
        the base URL for another format: `/messages`, `/responses`); returns the upstream's
        parsed JSON body. A 200 whose body is an error is an UpstreamError."""
        url = self._url if path is None else self._base + path
        return _json_answer(await self._retrying(self._complete_once, content, url, headers))

    async def embed(self, content: bytes) -> dict[str, Any]:
        """One embeddings call of the serialised request `content`: `POST {base}/embeddings`
        in OpenAI's format, as OpenRouter, OpenAI, vLLM and Ollama serve it. Returns the
        parsed body; errors, retries and timeouts as for `complete`."""
        return _json_answer(await self._retrying(self._complete_once, content, self._embeddings_url, None))

    async def open_stream(
        self, content: bytes, path: str | None = None, headers: dict[str, str] | None = None
    ) -> UpstreamStream:
        """Start a streaming completion of the serialised request `content` (at `path` for
        another format); the caller must `aclose` what it gets."""
        url = self._url if path is None else self._base + path
        return await self._retrying(self._open_once, content, url, headers)

    async def _retrying(self, once, content: bytes, url: str, headers: dict[str, str] | None):
        """Retries what UPSTREAM_RETRIES allows: an upstream 429/5xx, or a connection that
        never opened; never a request that may have reached the upstream unanswered."""
        sent = self._headers if not headers else {**self._headers, **headers}
        attempt = 0
        while True:
            try:
                return await once(content, url, sent)
            except UpstreamError as exc:
                if not exc.retryable or attempt >= self._retries:
                    raise
            await asyncio.sleep(self._backoff_s * (2**attempt))
            attempt += 1

    async def _post(self, content: bytes, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        assert self._session is not None
        try:
            return await self._session.post(url, data=content, headers=headers)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamError("Upstream provider timed out", timeout=True) from None
        except aiohttp.ClientConnectorError as exc:  # nothing was sent
            raise UpstreamError(f"Upstream provider unreachable ({type(exc).__name__})", retryable=True) from None
        except aiohttp.ClientError as exc:  # sent, perhaps received: not sent again
            raise UpstreamError(f"Upstream provider failed ({type(exc).__name__})") from None

    async def _complete_once(self, content: bytes, url: str, headers: dict[str, str]) -> bytes:
        """The upstream's body, read whole under one deadline of `timeout_s`."""
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._post(content, url, headers)
                try:
                    answer = await response.read()
                finally:
                    response.release()
        except TimeoutError:
            raise UpstreamError("Upstream provider timed out", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Upstream provider failed ({type(exc).__name__})") from None
        _check_status(response, answer)
        return answer

    async def _open_once(self, content: bytes, url: str, headers: dict[str, str]) -> UpstreamStream:
        response = await self._post(content, url, headers)
        if response.status != 200:
            try:
                answer = await response.content.read(ERROR_BODY_LIMIT)
            except (TimeoutError, aiohttp.ClientError):
                answer = b""
            finally:
                response.close()
            _check_status(response, answer)
        return UpstreamStream(response)


def _json_answer(answer: bytes) -> dict[str, Any]:
    """The upstream's JSON object; a malformed body, or a 200 whose body is an error, is an UpstreamError."""
    try:
        data = orjson.loads(answer)
    except orjson.JSONDecodeError:
        raise UpstreamError("Upstream provider returned a malformed body") from None
    if not isinstance(data, dict):
        raise UpstreamError("Upstream provider returned a malformed body")
    if data.get("error") is not None:
        raise UpstreamError("Upstream provider returned an error", detail=upstream_message(answer))
    return data


def _check_status(response: aiohttp.ClientResponse, answer: bytes) -> None:
    if response.status != 200:
        raise UpstreamError.from_status(
            response.status, answer[:ERROR_BODY_LIMIT], response.headers, retry_statuses=RETRY_STATUSES
        )


async def relay_blocks(stream: UpstreamStream) -> AsyncIterator[list[bytes]]:
    """Yield each server-sent event of an upstream stream, as its lines, as soon as its
    blank line arrives. Raises UpstreamError if the upstream breaks off or stalls past the
    read timeout."""
    lines: list[bytes] = []
    try:
        async for line in stream.lines():
            if line:
                lines.append(line)
                continue
            if lines:
                yield lines
                lines = []
        if lines:
            yield lines
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise UpstreamError("Upstream provider timed out mid-stream", timeout=True) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"Upstream stream broke off ({type(exc).__name__})") from None


async def relay_events(stream: UpstreamStream) -> AsyncIterator[tuple[list[bytes], dict[str, Any] | None]]:
    """Each server-sent event (`relay_blocks`) with its JSON data object, or None for
    comments, `[DONE]` and anything not a JSON object."""
    async for lines in relay_blocks(stream):
        yield event_data(lines)


def event_data(lines: list[bytes]) -> tuple[list[bytes], dict[str, Any] | None]:
    data_lines = [line[5:].lstrip() for line in lines if line.startswith(b"data:")]
    payload = b"\n".join(data_lines)
    if not data_lines or payload == b"[DONE]":
        return lines, None
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return lines, None
    return lines, parsed if isinstance(parsed, dict) else None
