"""Receipt format v1: canonical bytes, digests and hashes.

Everything a third party needs to recompute a receipt's hash lives here, so the coordinator,
the node worker, the browser worker and `one verify` all agree byte for byte. Signing is left to
the caller (PyNaCl on servers, WebCrypto in the browser): this module only says *which* bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import struct
from typing import Any, Iterable, Mapping

import rfc8785

RECEIPT_VERSION = 1
GENESIS_PREV = "0" * 64
RECEIPT_KINDS = ("chat", "completion", "embedding", "image", "vision", "tool", "audit")
LANES = ("included", "dedicated")
CHARGE_UNITS = ("credit", "usdc")
USAGE_KEYS = ("input_tokens", "output_tokens", "images")

# Keys of a stored receipt that are not part of the hashed body.
ENVELOPE_KEYS = ("hash", "sig")


_SAFE_INT = 2**53 - 1  # RFC 8785 numbers are IEEE doubles: larger integers are out of its domain
_canonical_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")).encode


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes.

    Receipts, attestations and request bodies are almost always strings, integers, plain decimals, null, booleans,
    lists and ASCII-keyed objects; for those the stdlib's C encoder writes exactly the JCS bytes (same escapes,
    lowercase `\\u00xx`, raw UTF-8, keys in code-point order, which is UTF-16 order for ASCII keys) about 20x faster
    than `rfc8785`, the reference this falls back to for anything else (exponents, whole floats, huge integers, other
    keys, bad text).
    """
    if _plain(value):
        try:
            return _canonical_json(value).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: let rfc8785 reject it in its own words
            pass
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """Is `value` made only of what the stdlib encodes byte for byte as JCS does? (A container checks its string,
    null, boolean and integer members in its own loop: a call per member made receipt hashing a fifth slower.)"""
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str or not key.isascii():
                return False
        members = value.values()
    elif kind is list:
        members = value
    elif kind is str or value is None or kind is bool:
        return True
    elif kind is int:
        return -_SAFE_INT <= value <= _SAFE_INT
    elif kind is float:  # rfc8785 writes Python's shortest digits too; only its exponent and "1.0" -> "1" forms differ
        text = repr(value)
        return math.isfinite(value) and "e" not in text and not text.endswith(".0")
    else:
        return False
    for member in members:
        kind = type(member)
        if kind is str or member is None or kind is bool or (kind is int and -_SAFE_INT <= member <= _SAFE_INT):
            continue
        if not _plain(member):
            return False
    return True


def sha256hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def account_digest(account_id: str, secret: bytes) -> str:
    """Receipts name accounts by HMAC-SHA256 under a coordinator secret: a plain hash of a known wallet
    address could be recomputed by anyone to list that wallet's activity in the public log."""
    if len(secret) < 16:
        raise ValueError("the account secret must be at least 16 bytes")
    return hmac.new(secret, account_id.encode("utf-8"), hashlib.sha256).hexdigest()


def request_digest(body: Mapping[str, Any], salt_hex: str) -> str:
    """sha256hex(salt || JCS(body)); the salt keeps guessed prompts from being matched."""
    return sha256hex(bytes.fromhex(salt_hex) + jcs(body))


def chat_output_digest(choices: Iterable[Mapping[str, Any]]) -> str:
    """Digest of chat/completion/vision output: content and tool calls per choice, in index order."""
    ordered = sorted(choices, key=lambda c: c.get("index", 0))
    return sha256hex(
        jcs({"choices": [{"content": c.get("content"), "tool_calls": c.get("tool_calls")} for c in ordered]})
    )


def answer_of(choice: Mapping[str, Any]) -> dict[str, Any]:
    """One choice of an API reply (a chat `message`, or a completion's `text`) as the output digest reads it."""
    message = choice.get("message")
    if isinstance(message, dict):
        return {"index": choice.get("index", 0), "content": message.get("content"), "tool_calls": message.get("tool_calls")}
    return {"index": choice.get("index", 0), "content": choice.get("text"), "tool_calls": None}


def logprobs_digest(choices: Iterable[Mapping[str, Any]]) -> str | None:
    """Digest of the chosen tokens' log-probabilities a worker reported for chat output (`logprobs.content`:
    each token's bytes and logprob, per choice, in index order); None when none were reported. The worker
    commits to them in its attestation, so an audit can re-score the same tokens with the claimed model."""
    ordered = sorted(choices, key=lambda c: c.get("index", 0))
    lists = [[{"bytes": e.get("bytes"), "logprob": e.get("logprob")} for e in ((c.get("logprobs") or {}).get("content") or [])] for c in ordered]
    return sha256hex(jcs(lists)) if any(lists) else None


def tokens_digest(tokens: list[list[int]]) -> str:
    """Digest of the token ids of a text answer, one list per choice in index order (EOS included): with the
    sampling seed, what an audit re-scores in one teacher-forced pass (backend.protocol.sampler)."""
    return sha256hex(jcs(tokens))


def valid_tokens(tokens: Any, choices: int, output_tokens: int, limit: int = 2**20) -> bool:
    """A done frame's `tokens`: one list of token ids per choice, as many ids in all as the usage claims."""
    if not isinstance(tokens, list) or len(tokens) != choices or not all(isinstance(ids, list) for ids in tokens):
        return False
    if sum(len(ids) for ids in tokens) != output_tokens or output_tokens > limit:
        return False
    return all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**31 for ids in tokens for t in ids)


def accumulate_choice(assembled: dict[int, dict[str, Any]], choice: Mapping[str, Any]) -> None:
    """Fold one streamed choice (chat `delta` or completion `text`) into per-index output.

    Tool calls follow OpenAI stream semantics (the first delta of a call index brings id, type and
    name; later ones append to `arguments`). Worker and coordinator both assemble with this, so
    both hash the same output.
    """
    index = choice.get("index", 0)
    slot = assembled.setdefault(index, {"index": index, "content": None, "tool_calls": None, "finish_reason": None, "logprobs": None})
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    if isinstance(text, str):
        slot["content"] = (slot["content"] or "") + text
    for call in (delta.get("tool_calls") if isinstance(delta, dict) else None) or []:
        calls = slot["tool_calls"] = slot["tool_calls"] or []
        position = call.get("index", len(calls))
        while len(calls) <= position:
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        target, function = calls[position], call.get("function") or {}
        if call.get("id"):
            target["id"] = call["id"]
        target["function"]["name"] += function.get("name") or ""
        target["function"]["arguments"] += function.get("arguments") or ""
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        slot["logprobs"] = _merge_logprobs(slot["logprobs"], logprobs)
    if choice.get("finish_reason"):
        slot["finish_reason"] = choice["finish_reason"]


def _merge_logprobs(have: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """Concatenate the list fields of OpenAI logprobs objects (chat `content`, completion token lists)."""
    merged = dict(have or {})
    for key, value in more.items():
        merged[key] = (merged.get(key) or []) + value if isinstance(value, list) else value
    return merged


TEXT_TASKS = ("chat", "completion", "vision")


class OutputAssembler:
    """Folds the `data` of delta frames into the output a receipt commits to, for any task."""

    def __init__(self, task: str):
        self.task = task
        self.choices: dict[int, dict[str, Any]] = {}
        self.items: list[dict[str, Any]] = []  # embedding / image `data` entries

    def add(self, data: Any) -> None:
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ValueError("delta data must be a list of objects")
        if self.task in TEXT_TASKS:
            for choice in data:
                accumulate_choice(self.choices, choice)
        else:
            self.items.extend(data)

    def ordered_choices(self) -> list[dict[str, Any]]:
        return [self.choices[i] for i in sorted(self.choices)]

    def ordered_items(self) -> list[dict[str, Any]]:
        return sorted(self.items, key=lambda item: item.get("index", 0))

    def digest(self) -> str:
        if self.task in TEXT_TASKS:
            return chat_output_digest(self.ordered_choices())
        ordered = self.ordered_items()
        if self.task == "embedding":
            return embedding_output_digest(item["embedding"] for item in ordered)
        if self.task == "image":
            return image_output_digest(base64.b64decode(item["b64_json"]) for item in ordered)
        if self.task == "score":  # an audit's per-token margins (backend.protocol.sampler)
            return sha256hex(jcs(ordered))
        raise ValueError(f"no output digest for task {self.task!r}")


def embedding_output_digest(vectors: Iterable[Iterable[float]]) -> str:
    """Digest of embeddings: concatenated float32 little-endian vectors."""
    h = hashlib.sha256()
    for vec in vectors:
        vec = list(vec)
        h.update(struct.pack(f"<{len(vec)}f", *vec))
    return h.hexdigest()


def image_output_digest(pngs: Iterable[bytes]) -> str:
    """Digest of generated images: JCS list of per-PNG sha256 hex."""
    return sha256hex(jcs([sha256hex(png) for png in pngs]))


def normalize_usage(usage: Mapping[str, Any]) -> dict[str, int]:
    """Usage in receipt form: the three integer counters, nothing else."""
    out = {}
    for key in USAGE_KEYS:
        value = usage.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"usage.{key} must be a non-negative integer")
        out[key] = value
    return out


def optional_commitments(logprobs_digest: str | None, sampling_seed: str | None, tokens_digest: str | None) -> list[tuple[str, str]]:
    """The optional keys an attestation may commit to, and so its receipt restates (same key, same value)."""
    named = (("logprobs_digest", logprobs_digest), ("sampling_seed", sampling_seed), ("tokens_digest", tokens_digest))
    return [(key, value) for key, value in named if value is not None]


def attestation(
    job: str,
    model: str,
    request_digest: str,
    output_digest: str,
    usage: Mapping[str, Any],
    logprobs_digest: str | None = None,
    sampling_seed: str | None = None,
    tokens_digest: str | None = None,
) -> dict[str, Any]:
    """The statement a worker signs: what it ran, on what, producing what. A text job's attestation also commits
    to the sampling seed it was given and the token ids it produced, so the answer can be re-scored (audits)."""
    att: dict[str, Any] = {
        "v": RECEIPT_VERSION,
        "job": job,
        "model": model,
        "request_digest": request_digest,
        "output_digest": output_digest,
        "usage": normalize_usage(usage),
    }
    for key, value in optional_commitments(logprobs_digest, sampling_seed, tokens_digest):
        att[key] = value
    return att


def attestation_of_receipt(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the worker's attestation from a receipt, so its signature can be checked."""
    return attestation(
        job=receipt["job"],
        model=receipt["model"],
        request_digest=receipt["request_digest"],
        output_digest=receipt["output_digest"],
        usage=receipt["usage"],
        logprobs_digest=receipt.get("logprobs_digest"),
        sampling_seed=receipt.get("sampling_seed"),
        tokens_digest=receipt.get("tokens_digest"),
    )


def receipt_body(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed part of a stored receipt (drops `hash` and `sig`)."""
    return {k: v for k, v in stored.items() if k not in ENVELOPE_KEYS}


def receipt_hash(receipt: Mapping[str, Any]) -> str:
    """sha256hex(JCS(receipt)); accepts a stored receipt too (envelope keys ignored)."""
    return sha256hex(jcs(receipt_body(receipt)))


def build_receipt(
    *,
    seq: int,
    prev: str,
    ts: str,
    job: str,
    kind: str,
    lane: str,
    account: str,
    model: str,
    request_digest: str,
    output_digest: str,
    usage: Mapping[str, Any],
    charge_unit: str,
    charge_amount: int,
    worker_id: str,
    worker_sig: str,
    parent: str | None,
    coordinator: str,
    logprobs_digest: str | None = None,
    sampling_seed: str | None = None,
    tokens_digest: str | None = None,
) -> dict[str, Any]:
    """Assemble an unsigned receipt in the exact v1 shape."""
    if kind not in RECEIPT_KINDS:
        raise ValueError(f"unknown receipt kind {kind!r}")
    if lane not in LANES:
        raise ValueError(f"unknown lane {lane!r}")
    if charge_unit not in CHARGE_UNITS:
        raise ValueError(f"unknown charge unit {charge_unit!r}")
    if not isinstance(charge_amount, int) or isinstance(charge_amount, bool) or charge_amount < 0:
        raise ValueError("charge amount must be a non-negative integer (micro-units)")
    receipt: dict[str, Any] = {
        "v": RECEIPT_VERSION,
        "seq": seq,
        "prev": prev,
        "ts": ts,
        "job": job,
        "kind": kind,
        "lane": lane,
        "account": account,
        "model": model,
        "request_digest": request_digest,
        "output_digest": output_digest,
        "usage": normalize_usage(usage),
        "charge": {"unit": charge_unit, "amount": charge_amount},
        "worker": {"id": worker_id, "sig": worker_sig},
        "parent": parent,
        "coordinator": coordinator,
    }
    for key, value in optional_commitments(logprobs_digest, sampling_seed, tokens_digest):
        receipt[key] = value
    return receipt
