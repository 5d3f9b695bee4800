"""diffusers engine: text-to-image; the `n` images of a request are one batched pipeline call (an image grid)."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path
from typing import Any

from gpu_worker.engines import EngineError, Images

DEFAULT_STEPS = 4
MAX_IMAGES = 16


class DiffusersImageEngine:
    """Serves the pipeline's native square size only: other sizes would be off-distribution for the UNet."""

    tasks = ["image"]

    def __init__(self, model_id: str, path: str | Path, device: str = "cpu", steps: int = DEFAULT_STEPS):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from diffusers import DiffusionPipeline

        self.model_id = model_id
        self.device = device
        self.steps = steps
        self.pipe = DiffusionPipeline.from_pretrained(str(path), dtype=torch.float32, local_files_only=True).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.max_context = int(getattr(self.pipe.tokenizer, "model_max_length", 77))
        native = int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)
        self.sizes = {f"{native}x{native}"}
        self._lock = threading.Lock()  # one pipeline call at a time: it is not re-entrant

    async def images(self, body: dict[str, Any], cancel: threading.Event) -> Images:
        prompt, n = body.get("prompt"), body.get("n", 1)
        if not isinstance(prompt, str) or not prompt.strip():
            raise EngineError("invalid_request", "prompt must be a non-empty string")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
            raise EngineError("invalid_request", f"n must be between 1 and {MAX_IMAGES}")
        size = body.get("size") or next(iter(self.sizes))
        if size not in self.sizes:
            raise EngineError("invalid_request", f"{self.model_id} makes images of size {', '.join(sorted(self.sizes))}")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64):
            raise EngineError("invalid_request", "seed must be an integer between 0 and 2**64 - 1")
        width, height = (int(x) for x in size.split("x"))
        return await asyncio.to_thread(self._generate, prompt, n, width, height, seed, cancel)

    def _generate(self, prompt: str, n: int, width: int, height: int, seed: int | None, cancel: threading.Event) -> Images:
        """One batched call for all n images; a cancel stops it at the next step end and raises `cancelled`."""
        import torch

        def stop_when_cancelled(pipe, step, timestep, kwargs):
            if cancel.is_set():
                pipe._interrupt = True
            return kwargs

        # A CPU generator gives the same latents, hence the same PNGs, for a seed on any device.
        generator = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
        with self._lock:
            if cancel.is_set():  # cancelled while queued behind another request: skip the work entirely
                raise EngineError("cancelled", "the request was cancelled")
            result = self.pipe(
                prompt, num_images_per_prompt=n, num_inference_steps=self.steps, width=width, height=height,
                generator=generator, output_type="pil", callback_on_step_end=stop_when_cancelled,
            )  # fmt: skip
        if cancel.is_set():
            raise EngineError("cancelled", "the request was cancelled")
        pngs = []
        for image in result.images:
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            pngs.append(buf.getvalue())
        return Images(pngs=pngs)
