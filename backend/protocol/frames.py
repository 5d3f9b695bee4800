"""Worker protocol v1: JSON text frames over the `/worker/ws` WebSocket.

One function per frame builds it; `parse_frame` checks an incoming frame has the fields its type
needs. Stdlib only: the browser worker imports this module inside Pyodide.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

PROTOCOL_VERSION = 1
WORKER_PATH = "/worker/ws"
PING_INTERVAL_S = 5.0
SILENCE_LIMIT_S = 15.0
# The largest frame either end accepts (characters of JSON text): a job carries a request the coordinator's
# body cap already bounds (8 MiB by default), a delta a slice of an answer. Bigger frames close the socket.
MAX_FRAME_BYTES = 16 * 2**20
MAX_HELLO_MODELS = 256  # models one worker may offer; the coordinator looks each up (private models) before admitting it
TASKS = ("chat", "completion", "embedding", "image", "vision", "score")  # score: re-score an answer for an audit
WORKER_KINDS = ("node", "browser")


class ProtocolError(ValueError):
    """A frame that does not follow protocol v1."""


class ModelOffer(TypedDict):
    """One entry of a hello's `models`: a model the worker serves, its context and its tasks (a subset of TASKS)."""

    id: str
    max_context: int
    tasks: list[str]


# Required top-level fields and their types, per frame type.
_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "challenge": {"nonce": str, "coordinator": str},
    "hello": {
        "protocol": int,
        "kind": str,
        "pubkey": str,
        "payout_address": str,
        "models": list,
        "slots": int,
        "sig": str,
    },
    "welcome": {"worker_id": str},
    "refused": {"reason": str},
    "job": {
        "job_id": str,
        "task": str,
        "model": str,
        "body": dict,
        "request_salt": str,
        "request_digest": str,
        "deadline_ms": int,
    },
    "delta": {"job_id": str, "n": int, "data": (list, dict)},
    "done": {"job_id": str, "usage": dict, "output_digest": str, "attestation_sig": str},
    "error": {"job_id": str, "code": str, "message": str},
    "cancel": {"job_id": str},
    "ping": {"t": (int, float)},
    "pong": {"t": (int, float), "load": (int, float), "queue": int},
}


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def parse_frame(text: str | bytes) -> dict[str, Any]:
    """Decode and validate one frame; raises ProtocolError with a reason a peer can act on."""
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame is larger than {MAX_FRAME_BYTES} bytes")
    try:
        frame = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ProtocolError("frame must be a JSON object")
    ftype = frame.get("type")
    schema = _SCHEMA.get(ftype) if isinstance(ftype, str) else None
    if schema is None:
        raise ProtocolError(f"unknown frame type {ftype!r}")
    for field, typ in schema.items():
        if field not in frame:
            raise ProtocolError(f"{ftype} frame lacks {field!r}")
        value = frame[field]
        allowed = typ if isinstance(typ, tuple) else (typ,)
        # bool is an int in Python; JSON true must not pass for a number.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ProtocolError(f"{ftype}.{field} has the wrong type")
    if ftype == "hello":
        _check_hello(frame)
    return frame


def _check_hello(frame: dict[str, Any]) -> None:
    if frame["protocol"] != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol {frame['protocol']} not supported (want {PROTOCOL_VERSION})")
    if frame["kind"] not in WORKER_KINDS:
        raise ProtocolError(f"hello.kind must be one of {WORKER_KINDS}")
    if frame["slots"] < 1:
        raise ProtocolError("hello.slots must be >= 1")
    if len(frame["models"]) > MAX_HELLO_MODELS:
        raise ProtocolError(f"hello.models lists {len(frame['models'])} models; a worker offers at most {MAX_HELLO_MODELS}")
    cluster = frame.get("cluster")
    if cluster is not None and not (isinstance(cluster, str) and re.fullmatch(r"0x[0-9a-f]{40}", cluster)):
        raise ProtocolError("hello.cluster must be the Cluster's account address (0x and 40 lowercase hex digits)")
    for model in frame["models"]:
        if not isinstance(model, dict) or not isinstance(model.get("id"), str):
            raise ProtocolError("hello.models entries need a string 'id'")
        if not isinstance(model.get("max_context"), int) or isinstance(model.get("max_context"), bool):
            raise ProtocolError(f"model {model['id']!r} needs an integer max_context")
        tasks = model.get("tasks")
        if not isinstance(tasks, list) or not tasks or any(t not in TASKS for t in tasks):
            raise ProtocolError(f"model {model['id']!r} tasks must be a non-empty subset of {TASKS}")


def challenge(nonce: str, coordinator: str) -> dict[str, Any]:
    return {"type": "challenge", "nonce": nonce, "coordinator": coordinator}


def hello(
    *,
    kind: str,
    pubkey: str,
    payout_address: str,
    models: list[ModelOffer],
    slots: int,
    hardware: dict[str, Any],
    version: str,
    sig: str,
    cluster: str | None = None,
) -> dict[str, Any]:
    """`cluster`: the Cluster (its account address) this node is dedicated to; the coordinator admits it only with
    that Cluster's consent, and then routes only that Cluster's jobs to it."""
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "kind": kind,
        "pubkey": pubkey,
        "payout_address": payout_address,
        "models": models,
        "slots": slots,
        "hardware": hardware,
        "version": version,
        "sig": sig,
        **({"cluster": cluster} if cluster else {}),
    }


def welcome(worker_id: str) -> dict[str, Any]:
    """`delta_batches`: this coordinator takes a delta frame whose `data` is `{"chunks": [data, ...]}` (see delta_batch);
    a worker batches only when welcomed so, and a coordinator that does not say it never gets a batch."""
    return {"type": "welcome", "worker_id": worker_id, "delta_batches": True}


def refused(reason: str) -> dict[str, Any]:
    return {"type": "refused", "reason": reason}


def job(
    *,
    job_id: str,
    task: str,
    model: str,
    body: dict[str, Any],
    request_salt: str,
    request_digest: str,
    deadline_ms: int,
    sampling_seed: str | None = None,
) -> dict[str, Any]:
    """A job for a worker. Audit re-runs use this same frame: a worker must not be able to tell it is audited.
    A text job carries the `sampling_seed` its worker samples with (backend.protocol.sampler) and commits to."""
    return {
        "type": "job",
        "job_id": job_id,
        "task": task,
        "model": model,
        "body": body,
        "request_salt": request_salt,
        "request_digest": request_digest,
        "deadline_ms": deadline_ms,
        **({"sampling_seed": sampling_seed} if sampling_seed else {}),
    }


def delta(job_id: str, n: int, data: Any) -> dict[str, Any]:
    return {"type": "delta", "job_id": job_id, "n": n, "data": data}


def delta_batch(job_id: str, n: int, chunks: list[Any]) -> dict[str, Any]:
    """Several deltas in one frame, in order: what a worker sends for the deltas that piled up while it was sending
    (a fast stream otherwise costs both ends one WebSocket message, and the coordinator a thread wake-up, per token)."""
    return delta(job_id, n, chunks[0]) if len(chunks) == 1 else delta(job_id, n, {"chunks": chunks})


def delta_chunks(frame: dict[str, Any]) -> list[Any]:
    """The data of each delta a delta frame carries, in order (one, or a batch's); ProtocolError on a malformed batch."""
    data = frame["data"]
    if not isinstance(data, dict):
        return [data]
    chunks = data.get("chunks")
    if not isinstance(chunks, list) or not chunks or len(data) != 1:
        raise ProtocolError('a batched delta\'s data must be {"chunks": [data, ...]} with at least one chunk')
    return chunks


def done(
    job_id: str, usage: dict[str, int], output_digest: str, attestation_sig: str, logprobs_digest: str | None = None,
    tokens: list[list[int]] | None = None,
) -> dict[str, Any]:
    """`tokens`: a text job's token ids per choice, which its attestation commits to (for re-scoring audits)."""
    frame: dict[str, Any] = {
        "type": "done",
        "job_id": job_id,
        "usage": usage,
        "output_digest": output_digest,
        "attestation_sig": attestation_sig,
    }
    if logprobs_digest is not None:
        frame["logprobs_digest"] = logprobs_digest
    if tokens is not None:
        frame["tokens"] = tokens
    return frame


def error(job_id: str, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "job_id": job_id, "code": code, "message": message}


def cancel(job_id: str) -> dict[str, Any]:
    return {"type": "cancel", "job_id": job_id}


def ping(t: float) -> dict[str, Any]:
    return {"type": "ping", "t": t}


def pong(t: float, load: float, queue: int) -> dict[str, Any]:
    return {"type": "pong", "t": t, "load": load, "queue": queue}
