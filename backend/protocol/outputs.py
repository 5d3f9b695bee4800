"""The items a worker streams in the `data` of its delta frames, one shape per task, for every worker.

Chat, completion and vision stream OpenAI stream-chunk `choices`; embedding and image send one delta whose
`data` is the OpenAI response's `data` list. The coordinator relays these items to clients and folds them into
the output a receipt commits to (`receipt.OutputAssembler`), so node and browser workers build them here, the
same way. Stdlib only: the browser worker imports this inside Pyodide.
"""

from __future__ import annotations

import base64
from typing import Any, Iterable, Literal, NotRequired, TypedDict


class ChatChoice(TypedDict):
    """One choice of a chat (or vision) stream chunk."""

    index: int
    delta: dict[str, Any]  # role (first chunk of a choice), content, tool_calls
    finish_reason: str | None
    logprobs: NotRequired[dict[str, Any]]  # {"content": [token entries]}


class CompletionChoice(TypedDict):
    """One choice of a legacy completions stream chunk."""

    index: int
    text: str
    finish_reason: str | None
    logprobs: NotRequired[dict[str, Any]]  # tokens, token_logprobs, top_logprobs


class EmbeddingItem(TypedDict):
    object: Literal["embedding"]
    index: int
    embedding: list[float]


class ImageItem(TypedDict):
    index: int
    b64_json: str  # the PNG, base64


def chat_choice(index: int, delta: dict[str, Any], finish_reason: str | None = None,
                logprobs: list[dict[str, Any]] | None = None) -> ChatChoice:  # fmt: skip
    """`logprobs`: the OpenAI `logprobs.content` entries of the tokens this chunk carries."""
    choice: ChatChoice = {"index": index, "delta": delta, "finish_reason": finish_reason}
    if logprobs:
        choice["logprobs"] = {"content": logprobs}
    return choice


def completion_choice(index: int, text: str, finish_reason: str | None = None,
                      logprobs: list[dict[str, Any]] | None = None) -> CompletionChoice:  # fmt: skip
    """`logprobs` come chat-style (`logprobs.content` entries) and go out in the legacy completions shape."""
    choice: CompletionChoice = {"index": index, "text": text, "finish_reason": finish_reason}
    if logprobs:
        choice["logprobs"] = completion_logprobs(logprobs)
    return choice


def completion_logprobs(content: list[dict[str, Any]]) -> dict[str, Any]:
    """Chat-style logprob entries in the legacy completions shape."""
    return {
        "tokens": [e["token"] for e in content],
        "token_logprobs": [e["logprob"] for e in content],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e.get("top_logprobs", [])} for e in content],
    }


def embedding_items(vectors: Iterable[list[float]]) -> list[EmbeddingItem]:
    """The `data` list of an embeddings response, in input order."""
    return [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)]


def image_items(pngs: Iterable[bytes]) -> list[ImageItem]:
    """The `data` list of an images response: each PNG base64-encoded (the coordinator turns it into a URL if asked)."""
    return [{"index": i, "b64_json": base64.b64encode(png).decode()} for i, png in enumerate(pngs)]
