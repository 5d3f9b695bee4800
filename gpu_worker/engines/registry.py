"""Engine kinds a worker can run, by the name used in `one worker --engine KIND:MODEL_ID=TARGET`.

Each factory takes (model_id, target, device) and imports its heavy stack lazily, so a worker only
loads what it serves. TARGET is a local model folder, or a URL for engines that talk HTTP.
"""

from __future__ import annotations

from typing import Any, Callable


def _transformers(model_id: str, target: str, device: str) -> Any:
    from gpu_worker.engines.transformers_engine import TransformersTextEngine

    return TransformersTextEngine(model_id, target, device=device)


def _sentence_transformers(model_id: str, target: str, device: str) -> Any:
    from gpu_worker.engines.embeddings import SentenceTransformersEngine

    return SentenceTransformersEngine(model_id, target, device=device)


def _diffusers(model_id: str, target: str, device: str) -> Any:
    from gpu_worker.engines.diffusers_engine import DiffusersImageEngine

    return DiffusersImageEngine(model_id, target, device=device)


def _openai(model_id: str, target: str, device: str) -> Any:
    """TARGET = base URL, optionally `#upstream-model` (the fragment never goes on the wire)."""
    from gpu_worker.engines.openai_http import OpenAIHTTPEngine

    base_url, _, upstream = target.partition("#")
    return OpenAIHTTPEngine(model_id, base_url, upstream_model=upstream or None, tasks=["chat", "completion", "embedding"])


def _vllm(model_id: str, target: str, device: str) -> Any:
    """TARGET = a model path or name for `vllm serve`; the server lives as long as this worker."""
    import atexit

    from gpu_worker.engines.openai_http import OpenAIHTTPEngine, VLLMProcess

    server = VLLMProcess(target, served_name=model_id)
    base_url = server.__enter__()
    atexit.register(server.__exit__)
    return OpenAIHTTPEngine(model_id, base_url, upstream_model=model_id)


FACTORIES: dict[str, Callable[[str, str, str], Any]] = {
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


def build_engine(spec: str, device: str = "cpu") -> Any:
    kind, model_id, target = parse_engine_spec(spec)
    return FACTORIES[kind](model_id, target, device)
