"""Engines behind one async interface.

A text engine (chat, completion, vision) streams `Piece`s and ends each choice with an `End`;
the worker's shared layer (`gpu_worker.structured`) turns raw text into tool calls and enforces JSON
constraints, so every engine behaves alike. An embedding engine returns vectors; an image engine
returns PNG bytes. Engines never see the protocol: `gpu_worker.client` drives them from the worker session
(backend.protocol.session), which frames and signs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol

from backend.protocol.jobs import JobRefused
from backend.protocol.sampler import ScoreJob


@dataclass
class Piece:
    """A bit of generated text for choice `index`, in order (optionally with its token logprobs)."""

    text: str
    index: int = 0
    logprobs: list[dict[str, Any]] | None = None  # OpenAI `logprobs.content` entries for these tokens


@dataclass
class End:
    """Choice `index` is complete. Token counts are per request: the worker sums End.output_tokens."""

    finish_reason: str
    input_tokens: int
    output_tokens: int
    index: int = 0
    tokens: list[int] | None = None  # the choice's token ids (EOS included) when the engine knows them: audits re-score them


@dataclass
class Embeddings:
    vectors: list[list[float]]
    input_tokens: int


@dataclass
class Images:
    pngs: list[bytes]
    output_tokens: int = 0


class TextEngine(Protocol):
    model_id: str
    tasks: list[str]  # subset of chat, completion, vision
    max_context: int

    def generate(self, task: str, body: dict[str, Any], cancel: threading.Event, sampling_seed: str | None = None) -> AsyncIterator[Piece | End]:
        """Stream every choice of a chat/completion/vision request, picking tokens with the ONE sampler under
        `sampling_seed` (backend.protocol.sampler); stop early when `cancel` is set."""
        ...


class EmbeddingEngine(Protocol):
    model_id: str
    tasks: list[str]  # ["embedding"]
    max_context: int

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        """Vectors for `body["input"]` (a string or a list of strings), in input order."""
        ...


class ImageEngine(Protocol):
    model_id: str
    tasks: list[str]  # ["image"]
    max_context: int

    async def images(self, body: dict[str, Any], cancel: threading.Event) -> Images:
        """`body["n"]` PNGs for `body["prompt"]` (OpenAI images.generate body), generated in parallel."""
        ...


Engine = TextEngine | EmbeddingEngine | ImageEngine


class EngineError(JobRefused):
    """A request the engine cannot serve; `code` goes into the error frame (e.g. context_length_exceeded)."""


def score_job(body: dict[str, Any], tasks: tuple[str, ...]) -> ScoreJob:
    """A `score` job's body, parsed the one way every scoring engine reads it; invalid_request when malformed."""
    try:
        return ScoreJob.parse(body, tasks)
    except ValueError as exc:
        raise EngineError("invalid_request", str(exc)) from None
