"""A fake upstream that bills the way providers do, for the bounds tests (issue 15).

What it reports as usage for a chat-completions request (plain or streamed):

    prompt      ceil(bytes of the body's text / 4), text being every byte of the body
                but the inline images' base64, plus per part: an inline image by
                Anthropic's tiling (w x h / 750 after fitting 1568 px), 1,600 tokens per
                remote image, 1,500 per page of a PDF (a remote PDF has 500 pages), and
                50,000 per audio clip
    completion  the most any completion field it was sent allows (`max_tokens`,
                `max_completion_tokens`): the worst case a caller can cause
    cost        the USD price of those tokens at the model's reference prices (PRICES)

A prompt over the model's context length (CONTEXT) is refused with 400, as providers
refuse it. Every request body is kept in `bodies`, and each answer's usage in `billed`.
"""

from __future__ import annotations

import base64
import io
import math
import time
from decimal import Decimal

import orjson
from PIL import Image

from store import image_tokens

# USD per 1M tokens (prompt, completion): what the tests price their models at, exactly.
REFERENCE = (Decimal("1.25"), Decimal("10"))
PRICES = {"bounds/model": REFERENCE, "bounds/small": REFERENCE, "openai/gpt-5": REFERENCE}
CONTEXT = {"bounds/model": 2_000_000, "bounds/small": 400_000, "openai/gpt-5": 400_000}
PDF_PAGES = 500


def _image_tokens(url: str) -> int:
    payload = image_tokens.data_url_payload(url)
    if payload is None:
        return 1_600
    with Image.open(io.BytesIO(base64.b64decode(payload))) as image:
        width, height = image.size
    scale = min(1.0, 1568 / max(width, height))
    return math.ceil(width * scale * height * scale / 750)


def billed_prompt(body: dict) -> int:
    """The prompt tokens a provider bills for `body` (see the module's docstring)."""
    raw = orjson.dumps(body)
    media, tokens = 0, 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image_url":
                url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
                tokens += _image_tokens(url)
                media += len(url) if url.startswith("data:") else 0
            elif kind == "file":
                tokens += 1_500 * PDF_PAGES
            elif kind == "input_audio":
                tokens += 50_000
    return math.ceil((len(raw) - media) / 4) + tokens


class BillingUpstream:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.billed: list[dict] = []
        self.base_url = ""  # set by whoever serves it

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = orjson.loads(b"".join(chunks))
        self.bodies.append(body)
        model = body["model"]
        prompt = billed_prompt(body) if scope["path"].endswith("/chat/completions") else _embedding_tokens(body)
        if prompt > CONTEXT.get(model, 10_000_000):
            error = {"error": {"message": f"This model's maximum context length is {CONTEXT[model]} tokens"}}
            await _send(send, 400, orjson.dumps(error))
            return
        completion = max([body.get(name) or 0 for name in ("max_tokens", "max_completion_tokens")])
        if scope["path"].endswith("/embeddings"):
            completion = 0
        usage = _usage(model, prompt, completion)
        self.billed.append(usage)
        if scope["path"].endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
            await _send(send, 200, orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage}))
            return
        answer = {
            "id": f"gen-bill-{len(self.bodies)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
            "usage": usage,
        }
        if not body.get("stream"):
            await _send(send, 200, orjson.dumps(answer))
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        delta = {**answer, "object": "chat.completion.chunk", "usage": None}
        delta["choices"] = [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "length"}]
        last = {**delta, "choices": [], "usage": usage}
        for event in (delta, last):
            await send(
                {"type": "http.response.body", "body": b"data: " + orjson.dumps(event) + b"\n\n", "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _embedding_tokens(body: dict) -> int:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    return sum(math.ceil(len(t.encode()) / 4) if isinstance(t, str) else len(t) for t in texts)


def _usage(model: str, prompt: int, completion: int) -> dict:
    prompt_price, completion_price = PRICES.get(model, (Decimal(0), Decimal(0)))
    cost = (prompt * prompt_price + completion * completion_price) / 1_000_000
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": float(cost),
    }


async def _send(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
