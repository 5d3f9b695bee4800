"""Images referenced by chat `image_url` parts: data: URLs decoded, http(s) URLs fetched with limits."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import httpx

from gpu_worker.engines import EngineError

MAX_IMAGE_BYTES = 20 * 2**20
FETCH_TIMEOUT_S = 10.0


def image_urls(messages: list[dict[str, Any]]) -> list[str]:
    """The image URLs of a conversation, in the order the chat template renders them."""
    urls = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    image_url = part.get("image_url")
                    urls.append(image_url.get("url") if isinstance(image_url, dict) else image_url)
    return urls


async def load_image(url: Any):
    """A PIL image from a data: URL or an http(s) URL (at most MAX_IMAGE_BYTES, FETCH_TIMEOUT_S)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(url, str):
        raise EngineError("invalid_request", "image_url.url must be a string")
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise EngineError("invalid_request", "data: image URLs must be base64-encoded")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise EngineError("invalid_request", "data: image URL is not valid base64") from None
    elif url.startswith(("http://", "https://")):
        raw = await _fetch(url)
    else:
        raise EngineError("invalid_request", "image_url.url must be a data: or http(s) URL")
    if len(raw) > MAX_IMAGE_BYTES:
        raise EngineError("invalid_request", f"image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise EngineError("invalid_request", "image_url does not hold a readable image") from None
    return image.convert("RGB")


async def _fetch(url: str) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=True, max_redirects=3) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise EngineError("invalid_request", f"fetching the image failed with HTTP {response.status_code}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        raise EngineError("invalid_request", f"image is larger than {MAX_IMAGE_BYTES} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise EngineError("invalid_request", f"fetching the image failed: {type(exc).__name__}") from None
