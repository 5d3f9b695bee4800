"""Checks every worker applies to a job's OpenAI body before running it (node and browser alike).
Stdlib only: the browser worker imports this inside Pyodide."""

from __future__ import annotations

from typing import Any

MAX_EMBEDDING_INPUTS = 2048
# The default cap on one image a chat request brings (ONE_MAX_IMAGE_BYTES, at the coordinator's door and in workers).
MAX_IMAGE_BYTES = 5 * 1024 * 1024


class JobRefused(ValueError):
    """The job's body cannot be served; `code` goes into the worker's error frame."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def embedding_inputs(body: dict[str, Any], model_id: str, dimensions: int) -> list[str]:
    """The texts of an embeddings request, or JobRefused (token arrays are not supported)."""
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise JobRefused("invalid_request", "input must be a non-empty string or a list of strings (token arrays are not supported)")
    if any(not t for t in texts):
        raise JobRefused("invalid_request", "input strings must not be empty")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise JobRefused("invalid_request", f"at most {MAX_EMBEDDING_INPUTS} inputs per request")
    # Cutting vectors short is only sound for Matryoshka-trained models, so other sizes are refused.
    if body.get("dimensions") not in (None, dimensions):
        raise JobRefused("invalid_request", f"{model_id} only makes {dimensions}-dimensional vectors")
    return texts
