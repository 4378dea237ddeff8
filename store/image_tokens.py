"""The most any provider charges for one image of a given pixel size, in prompt tokens.

A hold must never be below the bill (SPEC, "Bounds"), so an inline image is priced by the
largest of the providers' published tilings for its real size, read from its header:

    OpenAI, tiles     fit in 2048², shortest side to 768, 85 + 170 per 512-px tile
    OpenAI, patches   32-px patches: at most 1,536 x 2.46 (the highest multiplier), and
                      10,000 x 1 at `detail: original`
    Anthropic         width x height / 750, after fitting the long edge in 2,576 px
                      (the high-resolution models; the others fit 1,568 px and cost less)
    Google            258 per tile, tiles of min(w, h) / 1.5 clamped to 256..768 px, and at
                      least 2,240 (Gemini 3's highest media resolution, a flat price)

An image is never priced above the model's context length (no prompt can exceed it).
`measure` reads the size from the encoded bytes (Pillow reads only the header); an image
it cannot read is None: the caller bounds it by the context length instead.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings

from PIL import Image, UnidentifiedImageError

# Enough of a base64 payload to hold any PNG/GIF/WebP header and a JPEG's usual markers; a
# JPEG whose frame header comes later is decoded whole.
_HEAD_CHARS = 65_536 * 4 // 3


def tokens(width: int, height: int) -> int:
    """The most any provider's tiling charges for a `width` x `height` image."""
    return max(
        _openai_tiles(width, height),
        _openai_patches(width, height),
        _anthropic(width, height),
        _google(width, height),
    )


def _fit(width: float, height: float, longest: float) -> tuple[float, float]:
    scale = min(1.0, longest / max(width, height))
    return width * scale, height * scale


def _openai_tiles(width: int, height: int) -> int:
    w, h = _fit(width, height, 2048)
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _openai_patches(width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    return max(math.ceil(min(patches, 1536) * 2.46), min(patches, 10_000))


def _anthropic(width: int, height: int) -> int:
    w, h = _fit(width, height, 2576)
    return math.ceil(w * h / 750)


def _google(width: int, height: int) -> int:
    if width <= 384 and height <= 384:
        tiles = 1
    else:
        unit = min(768, max(256, math.floor(min(width, height) / 1.5)))
        tiles = math.ceil(width / unit) * math.ceil(height / unit)
    return max(258 * tiles, 2240)


def data_url_payload(url: str) -> str | None:
    """The base64 payload of a `data:image/...;base64,...` URL, or None if it is not one."""
    if not url.startswith("data:"):
        return None
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        return None
    return payload


def measure(payload: str) -> tuple[int, int] | None:
    """(width, height) of the base64-encoded image `payload`, or None if unreadable."""
    head = payload[:_HEAD_CHARS]
    head = head[: len(head) - len(head) % 4]
    for chunk in (head, payload) if len(payload) > len(head) else (payload,):
        try:
            raw = base64.b64decode(chunk, validate=False)
        except (binascii.Error, ValueError):
            return None
        size = _size(raw)
        if size is not None:
            return size
    return None


def _size(raw: bytes) -> tuple[int, int] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (width, height) if width > 0 and height > 0 else None
