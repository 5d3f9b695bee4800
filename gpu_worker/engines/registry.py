"""Engine kinds a worker can run, by the name used in `one worker --engine KIND:MODEL_ID=TARGET`.

Each factory takes (EngineSpec, device); engines import their heavy stack (torch, transformers,
diffusers) when built, so a worker only loads what it serves and a worker installed without the ML extra
still runs the HTTP engines. TARGET is a local model folder or repo, or a URL for engines that talk HTTP; left out, the coordinator's
catalog names it (`one worker --engine vllm:chat-large`).
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Any, Callable

from gpu_worker.engines import Engine
from gpu_worker.engines.diffusers_engine import DiffusersImageEngine
from gpu_worker.engines.embeddings import SentenceTransformersEngine
from gpu_worker.engines.openai_http import OpenAIHTTPEngine, VLLMProcess
from gpu_worker.engines.transformers_engine import TransformersTextEngine


@dataclass(frozen=True)
class EngineSpec:
    """One `--engine KIND:MODEL_ID[=TARGET]`: TARGET left out is taken from the coordinator's catalog (`serve`)."""

    kind: str
    model_id: str
    target: str = ""
    args: tuple[str, ...] = ()  # extra engine arguments the catalog names (vllm serve flags)
    context: int | None = None  # the catalog's context limit (vllm --max-model-len)


def _transformers(spec: EngineSpec, device: str) -> Engine:
    return TransformersTextEngine(spec.model_id, spec.target, device=device)


def _sentence_transformers(spec: EngineSpec, device: str) -> Engine:
    return SentenceTransformersEngine(spec.model_id, spec.target, device=device)


def _diffusers(spec: EngineSpec, device: str) -> Engine:
    return DiffusersImageEngine(spec.model_id, spec.target, device=device)


def _openai(spec: EngineSpec, device: str) -> Engine:
    """TARGET = base URL, optionally `#upstream-model` (the fragment never goes on the wire)."""
    base_url, _, upstream = spec.target.partition("#")
    return OpenAIHTTPEngine(spec.model_id, base_url, upstream_model=upstream or None, tasks=["chat", "completion", "embedding"])


def _vllm(spec: EngineSpec, device: str) -> Engine:
    """TARGET = a model path or repo for `vllm serve`; the server lives as long as this worker. We start it with the
    ONE sampler's logits processor, so the engine picks every token with it and reports token ids (`one_sampler`)."""
    server = VLLMProcess(spec.target, served_name=spec.model_id, max_model_len=spec.context, extra=spec.args)
    base_url = server.__enter__()
    atexit.register(server.__exit__)
    return OpenAIHTTPEngine(spec.model_id, base_url, upstream_model=spec.model_id, max_context=spec.context, one_sampler=True)


FACTORIES: dict[str, Callable[[EngineSpec, str], Engine]] = {
    "transformers": _transformers,
    "sentence-transformers": _sentence_transformers,
    "diffusers": _diffusers,
    "openai": _openai,
    "vllm": _vllm,
}


def parse_engine_spec(spec: str) -> EngineSpec:
    """'KIND:MODEL_ID=TARGET' or 'KIND:MODEL_ID' (TARGET from the catalog, see `complete_from_catalog`)."""
    kind, sep, rest = spec.partition(":")
    model_id, _, target = rest.partition("=")
    if not sep or not kind or not model_id:
        raise ValueError(f"expected KIND:MODEL_ID[=TARGET], got {spec!r}")
    if kind not in FACTORIES:
        raise ValueError(f"unknown engine kind {kind!r}; known: {', '.join(sorted(FACTORIES))}")
    return EngineSpec(kind, model_id, target)


def complete_from_catalog(specs: list[EngineSpec], cards: list[dict[str, Any]]) -> list[EngineSpec]:
    """Fill each spec without a TARGET from the coordinator's catalog card of its model (`serve.repo`, `serve.args`,
    `context_length`); a model the catalog does not know, or names no repo for, needs its TARGET given."""
    by_id = {card.get("id"): card for card in cards}
    done = []
    for spec in specs:
        if spec.target:
            done.append(spec)
            continue
        card = by_id.get(spec.model_id)
        if card is None:
            raise ValueError(f"the coordinator's catalog has no model {spec.model_id!r}: give it as {spec.kind}:{spec.model_id}=TARGET")
        serve = card.get("serve") or {}
        if not isinstance(serve.get("repo"), str) or not serve["repo"]:
            raise ValueError(f"the catalog names no repo for {spec.model_id!r}: give it as {spec.kind}:{spec.model_id}=TARGET")
        args = serve.get("args") or []
        if not all(isinstance(a, str) for a in args):
            raise ValueError(f"the catalog's engine arguments for {spec.model_id!r} are not strings")
        context = card.get("context_length")
        done.append(EngineSpec(spec.kind, spec.model_id, serve["repo"], tuple(args) if spec.kind == serve.get("engine") else (),
                               context if isinstance(context, int) and context > 0 else None))  # fmt: skip
    return done


def build_engine(spec: EngineSpec, device: str = "cpu") -> Engine:
    if not spec.target:
        raise ValueError(f"{spec.kind}:{spec.model_id} has no TARGET (complete it from the catalog first)")
    return FACTORIES[spec.kind](spec, device)
