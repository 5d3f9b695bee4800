"""Images referenced by chat `image_url` parts: data: URLs decoded, http(s) URLs fetched through the checked fetch
(backend.protocol.safe_fetch: public addresses only, pinned, no redirects), at most max_image_bytes either way."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from backend.config import get_settings
from backend.protocol.safe_fetch import FetchError, fetch
from gpu_worker.engines import EngineError

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
    """A PIL image from a data: URL or an http(s) URL (at most max_image_bytes, FETCH_TIMEOUT_S). The limit is the
    coordinator's setting of the same name (ONE_MAX_IMAGE_BYTES), which a worker reads from its own environment."""
    from PIL import Image, UnidentifiedImageError

    max_bytes = get_settings().max_image_bytes
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
        try:
            raw = await fetch(url, max_bytes=max_bytes, timeout_s=FETCH_TIMEOUT_S)
        except FetchError as exc:
            raise EngineError("invalid_request", f"fetching the image failed: {exc}") from None
    else:
        raise EngineError("invalid_request", "image_url.url must be a data: or http(s) URL")
    if len(raw) > max_bytes:
        raise EngineError("invalid_request", f"image is larger than {max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise EngineError("invalid_request", "image_url does not hold a readable image") from None
    return image.convert("RGB")
