"""Usage the coordinator counts itself, so a receipt never bills more than was relayed.

A worker's `done` frame claims usage and signs it; a dishonest worker could claim 1,000 output tokens
for five words. The coordinator counts what it relayed with the model's own tokenizer (the catalog's
`tokenizer` names where it comes from), counts images and embedding inputs itself, and bills
`min(claimed, counted)` per counter. The receipt keeps the worker's signed claim in `usage` (its
attestation must verify), and its `charge` is the rate applied to the billed counts.

Counting generated text again is not exact: the model's end token is not in the text and a tool call's
wrapper is stripped, so each choice gets one token for its end and each tool call a fixed allowance.
Where no tokenizer can be loaded the count falls back to UTF-8 bytes, an upper bound for byte-level and
WordPiece vocabularies, so an honest worker is never billed below its work by a missing tokenizer.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from tokenizers import Tokenizer

from backend.catalog import CatalogModel
from backend.protocol import receipt as rc
from backend.protocol.body import OpenAIBody
from backend.protocol.tiny_tokenizer import tiny_tokenizer

log = logging.getLogger("one.usage")

END_TOKENS_PER_CHOICE = 1  # the end-of-turn token every finished choice generated
TOOL_CALL_ALLOWANCE = 24  # the call's wrapper (<tool_call>, {"name": ..., "arguments": ...}) around name and arguments
# A claim above OVERCLAIM_FACTOR * counted + OVERCLAIM_SLACK on a billed counter lowers the worker's reliability.
OVERCLAIM_FACTOR = 2
OVERCLAIM_SLACK = 16


@dataclass
class Count:
    """What the coordinator counted, what it bills, and whether the claim was far above the count."""

    counted: dict[str, int]
    billed: dict[str, int]
    overclaimed: bool


def billed_keys(model: CatalogModel) -> tuple[str, ...]:
    """The usage counters the model's rate applies to."""
    return {
        "per_1k_output_tokens": ("output_tokens",),
        "per_1k_input_tokens": ("input_tokens",),
        "per_image": ("images",),
        "per_image_plus_output_tokens": ("images", "output_tokens"),
    }[model.billing]


@lru_cache(maxsize=32)
def tokenizer_counter(source: str | None) -> Callable[[str], int]:
    """A function counting a text's tokens with the tokenizer named by a catalog `tokenizer` entry:
    `builtin:tiny` (the dev models' byte-level BPE, built here from its corpus), `package:<module>/<file>`
    (a tokenizer.json shipped in a Python package), `file:<path>` or `hf:<repo>` (a Hugging Face repo in
    the local cache). Falls back to UTF-8 bytes when the source is missing or cannot be loaded."""
    tokenizer = _tokenizer(source)
    if tokenizer is None:
        return lambda text: len(text.encode("utf-8"))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids) if text else 0


@lru_cache(maxsize=32)
def _tokenizer(source: str | None) -> Tokenizer | None:
    """The tokenizer a catalog entry names, loaded once (None where it cannot be)."""
    try:
        tokenizer = _load_tokenizer(source) if source else None
    except Exception as exc:  # an unreachable hub, a missing package: count bytes, never more than that
        log.warning("tokenizer %s unavailable (%s): counting UTF-8 bytes instead", source, exc)
        tokenizer = None
    if tokenizer is not None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
    if source:
        _loaded[source] = tokenizer
    return tokenizer


_loaded: dict[str, Tokenizer | None] = {}  # what _tokenizer has loaded (or failed to), by source


def ready_tokenizer(source: str | None) -> Tokenizer | None:
    """The tokenizer for a quote, which must never wait on a download: a local one (builtin, a package's or a
    file's) is loaded now; a Hugging Face repo only once billing has loaded it (at that model's first answer),
    since fetching one can take minutes or hang where the hub is unreachable."""
    if not source:
        return None
    if source.split(":", 1)[0] in ("builtin", "package", "file"):
        return _tokenizer(source)
    return _loaded.get(source)


def _load_tokenizer(source: str) -> Tokenizer:
    scheme, _, target = source.partition(":")
    if scheme == "builtin" and target == "tiny":
        return tiny_tokenizer()
    if scheme == "package":
        module, _, name = target.partition("/")
        package = importlib.import_module(module)
        root = package.get_model_path() if hasattr(package, "get_model_path") else importlib.resources.files(module)
        return Tokenizer.from_file(str(root / name))
    if scheme == "file":
        return Tokenizer.from_file(target)
    if scheme == "hf":
        return Tokenizer.from_pretrained(target)
    raise ValueError(f"unknown tokenizer source {source!r}")


def count_output(model: CatalogModel, task: str, body: dict[str, Any], output: rc.OutputAssembler) -> dict[str, int]:
    """The usage the coordinator can vouch for from the request and the relayed output."""
    tokens = tokenizer_counter(model.tokenizer)
    if task in rc.TEXT_TASKS:
        out = 0
        for choice in output.ordered_choices():
            out += tokens(choice.get("content") or "") + END_TOKENS_PER_CHOICE
            for call in choice.get("tool_calls") or []:
                function = call.get("function") or {}
                out += tokens(function.get("name") or "") + tokens(function.get("arguments") or "") + TOOL_CALL_ALLOWANCE
        return {"input_tokens": _prompt_tokens(tokens, body), "output_tokens": out, "images": len(OpenAIBody(body).image_parts())}
    if task == "embedding":
        texts = OpenAIBody(body).inputs
        special = 2  # [CLS] and [SEP] around every input
        counted = sum(min(tokens(t) + special, model.context) if isinstance(t, str) else min(len(t), model.context) for t in texts)
        return {"input_tokens": counted, "output_tokens": 0, "images": 0}
    if task == "image":
        return {"input_tokens": 0, "output_tokens": 0, "images": len(output.ordered_items())}
    return {"input_tokens": 0, "output_tokens": 0, "images": 0}


def _message_tokens(tokens: Callable[[str], int], message: Any) -> int:
    """One chat message's tokens: its text parts and tool calls plus the chat template's role markers."""
    if not isinstance(message, dict):
        return 0
    per_message = 4  # role markers of a chat template
    content = message.get("content")
    parts = [content] if isinstance(content, str) else [p.get("text") for p in content or [] if isinstance(p, dict)]
    total = per_message + sum(tokens(p) for p in parts if isinstance(p, str))
    for call in message.get("tool_calls") or []:
        total += tokens(json.dumps(call)) if isinstance(call, dict) else 0
    return total


def prompt_fit(model: CatalogModel, body: dict[str, Any]) -> dict[str, Any]:
    """How much of the model's context a chat request's prompt takes, counted with the model's own tokenizer:
    per message (so a client can drop the oldest turns that no longer fit) and in all, with the generation
    prompt that opens the answer. Empty while the tokenizer is not at hand (ready_tokenizer): a byte count would
    refuse prompts that fit, and the worker refuses what does not fit anyway, uncharged."""
    if ready_tokenizer(model.tokenizer) is None:
        return {}
    tokens = tokenizer_counter(model.tokenizer)
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    per_message = [_message_tokens(tokens, m) for m in messages]
    generation_prompt = 3  # "<|im_start|>assistant\n" and its kin
    return {"prompt_tokens": sum(per_message) + _tokens_beside_messages(tokens, body) + generation_prompt, "message_tokens": per_message,
            "context": model.context}  # fmt: skip


def _prompt_tokens(tokens: Callable[[str], int], body: dict[str, Any]) -> int:
    """Tokens of the prompt's text (messages, or a completion prompt) plus the tools it declares."""
    return sum(_message_tokens(tokens, m) for m in body.get("messages") or []) + _tokens_beside_messages(tokens, body)


def _tokens_beside_messages(tokens: Callable[[str], int], body: dict[str, Any]) -> int:
    """A completion prompt's tokens and the declared tools' (with the template's instructions around them)."""
    total = 0
    prompt = body.get("prompt")
    for text in [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []:
        total += tokens(text) if isinstance(text, str) else 0
    if body.get("tools"):
        total += tokens(json.dumps(body["tools"])) + 64  # the template's instructions around them
    return total


INLINE_COUNT_CHARS = 4096  # text up to this is counted on the event loop: a thread hop costs more than its tokenizing


def text_volume(task: str, body: dict[str, Any], output: rc.OutputAssembler) -> int:
    """About how many characters `bill` tokenizes for this job (an upper estimate: tool declarations and calls count
    whole). Decides whether counting may run on the event loop; never used for billing."""
    volume = 0
    if task in rc.TEXT_TASKS:
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                volume += len(content)
            elif isinstance(content, list):
                volume += sum(len(p.get("text") or "") if isinstance(p, dict) and isinstance(p.get("text"), str) else 0 for p in content)
            if isinstance(message, dict) and message.get("tool_calls"):
                volume += INLINE_COUNT_CHARS  # serialised to count: off the loop
        prompt = body.get("prompt")
        for text in [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []:
            volume += len(text) if isinstance(text, (str, list)) else 0
        if body.get("tools"):
            volume += INLINE_COUNT_CHARS
        for choice in output.ordered_choices():
            volume += len(choice.get("content") or "") + (INLINE_COUNT_CHARS if choice.get("tool_calls") else 0)
    elif task == "embedding":
        volume += sum(len(t) if isinstance(t, (str, list)) else 0 for t in OpenAIBody(body).inputs)
    return volume


def bill(model: CatalogModel, task: str, body: dict[str, Any], output: rc.OutputAssembler, claimed: dict[str, int]) -> Count:
    """min(claimed, counted) per counter; `overclaimed` when a billed counter's claim is far above the count."""
    counted = count_output(model, task, body, output)
    billed = {k: min(claimed.get(k, 0), counted.get(k, 0)) for k in rc.USAGE_KEYS}
    over = any(claimed.get(k, 0) > OVERCLAIM_FACTOR * counted.get(k, 0) + OVERCLAIM_SLACK for k in billed_keys(model))
    return Count(counted=counted, billed=billed, overclaimed=over)
