"""A streaming response that always notices when the client goes away.

Starlette, under ASGI 2.4 servers, stops watching for `http.disconnect` and waits for
`send` to fail instead; some servers drop writes to a closed socket silently, so a
relay would go on pulling from the upstream for nobody. This response always listens
for the disconnect beside the stream and closes the body iterator either way, so the
upstream call ends as soon as the client does.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class RelayResponse(StreamingResponse):
    """`on_close` (if given) is awaited last, whatever happened: also when the client left
    before the body iterator ever started, when its own `finally` never runs."""

    def __init__(self, *args, on_close: Callable[[], Awaitable[None]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:  # the client is gone
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                body = self.body_iterator
                assert isinstance(body, AsyncGenerator)  # what a relay is given (Starlette types it AsyncIterable)
                await body.aclose()
                if self.on_close is not None:
                    await self.on_close()
