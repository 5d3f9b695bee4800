"""Images referenced by chat `image_url` parts: data: URLs decoded, http(s) URLs fetched through the checked fetch
(backend.protocol.safe_fetch: public addresses only, pinned, no redirects), at most max_image_bytes either way."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from backend.protocol.safe_fetch import FetchError, fetch
from gpu_worker.engines import EngineError
from gpu_worker.settings import worker_settings

FETCH_TIMEOUT_S = 10.0


async def load_image(url: Any):
    """A PIL image from a data: URL or an http(s) URL (at most max_image_bytes, FETCH_TIMEOUT_S). Limit and fetch
    allowlist are the worker's settings (ONE_MAX_IMAGE_BYTES, ONE_FETCH_ALLOW_NETWORKS)."""
    from PIL import Image, UnidentifiedImageError  # the ML extra's, like the vision models that need it

    settings = worker_settings()
    max_bytes = settings.max_image_bytes
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
            raw = await fetch(url, max_bytes=max_bytes, timeout_s=FETCH_TIMEOUT_S, allow_networks=settings.fetch_allow_networks)
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
