"""Chat images: data: URLs decoded, http(s) URLs only through the checked fetch, both capped at max_image_bytes."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from backend.protocol.body import OpenAIBody
from gpu_worker.engines import EngineError
from gpu_worker.images import load_image


def data_url(size=(16, 12)) -> str:
    buf = io.BytesIO()
    Image.new("RGBA", size, (10, 20, 30, 255)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def max_image_bytes(monkeypatch):
    """The worker reads the coordinator's setting name from its own environment."""

    def set_to(limit: int) -> None:
        monkeypatch.setenv("ONE_MAX_IMAGE_BYTES", str(limit))

    return set_to


async def test_a_data_url_image_is_decoded_to_rgb():
    image = await load_image(data_url())
    assert image.mode == "RGB" and image.size == (16, 12)


async def test_images_over_max_image_bytes_are_refused(max_image_bytes):
    max_image_bytes(64)
    with pytest.raises(EngineError, match="larger than 64 bytes"):
        await load_image(data_url())


@pytest.mark.parametrize("url", ["ftp://example.com/cat.png", "file:///etc/passwd", "data:image/png,raw", "data:image/png;base64,@@", 7])
async def test_other_urls_are_refused_as_invalid_requests(url):
    with pytest.raises(EngineError) as err:
        await load_image(url)
    assert err.value.code == "invalid_request"


async def test_an_http_url_goes_through_the_address_check():
    with pytest.raises(EngineError, match="non-public address"):
        await load_image("http://127.0.0.1:9/cat.png")


async def test_the_fetch_allowlist_is_the_workers_own_setting(monkeypatch):
    """ONE_FETCH_ALLOW_NETWORKS lets a dev network's worker reach a private address (here: nothing listens, so the
    fetch itself fails, past the address check); a malformed value is refused, not ignored."""
    monkeypatch.setenv("ONE_FETCH_ALLOW_NETWORKS", '["127.0.0.1/32"]')
    with pytest.raises(EngineError, match="fetching the image failed") as err:
        await load_image("http://127.0.0.1:9/cat.png")
    assert "non-public" not in str(err.value)
    monkeypatch.setenv("ONE_FETCH_ALLOW_NETWORKS", "127.0.0.1/32")
    with pytest.raises(ValueError, match="JSON list"):
        await load_image("http://127.0.0.1:9/cat.png")


def test_image_urls_come_in_conversation_order():
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a"}}, {"type": "text", "text": "x"}]},
                {"role": "user", "content": "plain"}, {"role": "user", "content": [{"type": "image_url", "image_url": "b"}]}]  # fmt: skip
    assert [part.url for part in OpenAIBody({"messages": messages}).image_parts()] == ["a", "b"]
