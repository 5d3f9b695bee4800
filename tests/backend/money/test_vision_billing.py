"""Vision is billed per image read plus output tokens (the catalog's vision family), in the quote held before
the job and in the charge after it: images counted from the request itself, never above the worker's claim."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.catalog import CatalogModel, load_catalog
from backend.config import Settings
from backend.money.lanes import quote
from backend.protocol import receipt as rc
from backend.serving.usage import bill

PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def vision_body(images: int, max_tokens: int = 10) -> dict:
    parts = [{"type": "text", "text": "what is this?"}] + [{"type": "image_url", "image_url": {"url": PIXEL}}] * images
    return {"model": "tiny-vision", "messages": [{"role": "user", "content": parts}], "max_tokens": max_tokens}


@pytest.fixture
def vision() -> CatalogModel:
    model = load_catalog(*Settings().catalog_files).get("tiny-vision")
    assert model.billing == "per_image_plus_output_tokens" and model.image_rate > 0
    return model


def test_the_quote_holds_each_image_and_the_most_output(vision):
    for images in (0, 1, 3):
        assert quote(vision, vision_body(images), "vision") == images * vision.image_rate + 10 * vision.rate // 1000
    assert quote(vision, {**vision_body(2), "n": 2}, "vision") == 2 * vision.image_rate + 20 * vision.rate // 1000


def test_the_charge_is_images_read_plus_output_tokens(vision):
    assert vision.charge({"input_tokens": 50, "output_tokens": 1000, "images": 2}) == 2 * vision.image_rate + vision.rate
    assert vision.charge({"input_tokens": 50, "output_tokens": 1, "images": 0}) == 3  # a partial 1K is never free


def test_billed_images_are_the_requests_own_never_above_the_claim(vision):
    out = rc.OutputAssembler("vision")
    out.add([{"index": 0, "delta": {"role": "assistant", "content": "a cat"}, "finish_reason": "stop"}])
    inflated = bill(vision, "vision", vision_body(2), out, {"input_tokens": 9, "output_tokens": 3, "images": 40})
    assert inflated.counted["images"] == 2 and inflated.billed["images"] == 2 and inflated.overclaimed
    honest = bill(vision, "vision", vision_body(2), out, {"input_tokens": 9, "output_tokens": 3, "images": 2})
    assert honest.billed["images"] == 2 and not honest.overclaimed


def test_an_image_priced_model_must_name_its_image_rate():
    with pytest.raises(ValidationError, match="image_rate"):
        CatalogModel(id="v", tasks=["vision"], billing="per_image_plus_output_tokens", rate=3000, context=2048)
