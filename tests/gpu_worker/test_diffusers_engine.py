"""The tiny Stable Diffusion pipeline (built from configs) through the diffusers engine."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from gpu_worker.engines import EngineError
from gpu_worker.engines.diffusers_engine import DiffusersImageEngine


@pytest.fixture(scope="module")
def engine(tiny_models):
    return DiffusersImageEngine("tiny-sd", tiny_models / "tiny-sd")


async def test_n_images_in_one_batch_are_distinct_pngs_and_seeded(engine):
    result = await engine.images({"prompt": "a red fox", "n": 4, "seed": 7}, threading.Event())
    assert len(result.pngs) == 4 and len(set(result.pngs)) == 4
    for png in result.pngs:
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == (64, 64)
    again = await engine.images({"prompt": "a red fox", "n": 4, "seed": 7}, threading.Event())
    assert again.pngs == result.pngs
    other = await engine.images({"prompt": "a red fox", "n": 1, "seed": 8}, threading.Event())
    assert other.pngs[0] not in result.pngs


BAD_REQUESTS = [
    {"prompt": "x", "n": 0},
    {"prompt": "x", "n": 17},
    {"prompt": "x", "size": "1024x1024"},
    {"prompt": ""},
    {"prompt": "x", "seed": "7"},
    {"prompt": "x", "seed": -1},
]


@pytest.mark.parametrize("body", BAD_REQUESTS)
async def test_bad_requests_are_refused(engine, body):
    with pytest.raises(EngineError) as err:
        await engine.images(body, threading.Event())
    assert err.value.code == "invalid_request"


class _CancelAfter(threading.Event):
    """Reads as set from the `after`-th look on: a client going away while the pipeline runs."""

    def __init__(self, after: int):
        super().__init__()
        self.looks, self.after = 0, after

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > self.after


@pytest.fixture
def unet_calls(engine):
    calls = []
    hook = engine.pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    yield calls
    hook.remove()


@pytest.mark.parametrize("after, steps_run", [(0, 0), (1, 1)])
async def test_cancel_stops_the_pipeline_and_raises_cancelled(engine, unet_calls, after, steps_run):
    """Cancelled before the run: no step runs. Cancelled during it: the next step end interrupts the rest."""
    assert engine.steps > 1
    with pytest.raises(EngineError) as err:
        await engine.images({"prompt": "x", "n": 2}, _CancelAfter(after))
    assert err.value.code == "cancelled" and len(unet_calls) == steps_run
