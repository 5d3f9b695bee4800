"""Engine kinds a worker can run, by the name used in `one worker --engine KIND:MODEL_ID=TARGET`.

Each factory takes (model_id, target, device); engines import their heavy stack (torch, transformers,
diffusers) when built, so a worker only loads what it serves and a worker installed without the ML extra
still runs the HTTP engines. TARGET is a local model folder, or a URL for engines that talk HTTP.
"""

from __future__ import annotations

import atexit
from typing import Callable

from gpu_worker.engines import Engine
from gpu_worker.engines.diffusers_engine import DiffusersImageEngine
from gpu_worker.engines.embeddings import SentenceTransformersEngine
from gpu_worker.engines.openai_http import OpenAIHTTPEngine, VLLMProcess
from gpu_worker.engines.transformers_engine import TransformersTextEngine


def _transformers(model_id: str, target: str, device: str) -> Engine:
    return TransformersTextEngine(model_id, target, device=device)


def _sentence_transformers(model_id: str, target: str, device: str) -> Engine:
    return SentenceTransformersEngine(model_id, target, device=device)


def _diffusers(model_id: str, target: str, device: str) -> Engine:
    return DiffusersImageEngine(model_id, target, device=device)


def _openai(model_id: str, target: str, device: str) -> Engine:
    """TARGET = base URL, optionally `#upstream-model` (the fragment never goes on the wire)."""
    base_url, _, upstream = target.partition("#")
    return OpenAIHTTPEngine(model_id, base_url, upstream_model=upstream or None, tasks=["chat", "completion", "embedding"])


def _vllm(model_id: str, target: str, device: str) -> Engine:
    """TARGET = a model path or name for `vllm serve`; the server lives as long as this worker."""
    server = VLLMProcess(target, served_name=model_id)
    base_url = server.__enter__()
    atexit.register(server.__exit__)
    return OpenAIHTTPEngine(model_id, base_url, upstream_model=model_id)


FACTORIES: dict[str, Callable[[str, str, str], Engine]] = {
    "transformers": _transformers,
    "sentence-transformers": _sentence_transformers,
    "diffusers": _diffusers,
    "openai": _openai,
    "vllm": _vllm,
}


def parse_engine_spec(spec: str) -> tuple[str, str, str]:
    """'KIND:MODEL_ID=TARGET' -> (kind, model_id, target)."""
    kind, sep, rest = spec.partition(":")
    model_id, sep2, target = rest.partition("=")
    if not sep or not sep2 or not kind or not model_id or not target:
        raise ValueError(f"expected KIND:MODEL_ID=TARGET, got {spec!r}")
    if kind not in FACTORIES:
        raise ValueError(f"unknown engine kind {kind!r}; known: {', '.join(sorted(FACTORIES))}")
    return kind, model_id, target


def build_engine(spec: str, device: str = "cpu") -> Engine:
    kind, model_id, target = parse_engine_spec(spec)
    return FACTORIES[kind](model_id, target, device)
