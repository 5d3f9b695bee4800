"""Check ONE receipts with nothing but their bytes: RFC 8785 canonical JSON, SHA-256, Ed25519 and RFC 9162 Merkle
proofs. The same checks as the network's own `one verify`, written again here so this package stands alone
(the shared vectors in sdk/vectors keep the two in step).

A receipt's `hash` is sha256 of the JCS form of the receipt without `hash` and `sig`; the coordinator signs that
hash; the worker signs the JCS form of its attestation, which the receipt restates; each receipt's `prev` is the
hash of the one before it (seq runs on), the first links to 64 zeros."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import rfc8785
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

RECEIPT_VERSION = 1  # the version of the receipt and attestation forms this package checks
GENESIS_PREV = "0" * 64
ENVELOPE_KEYS = ("hash", "sig")
USAGE_KEYS = ("input_tokens", "output_tokens", "images")
OPTIONAL_COMMITMENTS = ("logprobs_digest", "sampling_seed", "tokens_digest")
TEXT_KINDS = ("chat", "completion", "vision")
REQUIRED = ("v", "seq", "prev", "ts", "job", "kind", "lane", "account", "model", "request_digest",
            "output_digest", "usage", "charge", "worker", "parent", "coordinator", "hash", "sig")  # fmt: skip


class ReceiptError(Exception):
    """A reply whose receipt does not check out (verify-every-reply mode raises it)."""

    def __init__(self, message: str, verdict: "Verdict | None" = None):
        super().__init__(message)
        self.verdict = verdict


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value."""
    return rfc8785.dumps(value)


def sha256hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def receipt_hash(receipt: Mapping[str, Any]) -> str:
    """sha256hex(JCS(receipt without `hash` and `sig`)): also an epoch head's hash."""
    return sha256hex(canonical({k: v for k, v in receipt.items() if k not in ENVELOPE_KEYS}))


def attestation_of(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The statement the worker signed, rebuilt from the receipt that restates it."""
    att = {"v": RECEIPT_VERSION, "job": receipt["job"], "model": receipt["model"], "request_digest": receipt["request_digest"],
           "output_digest": receipt["output_digest"], "usage": {k: receipt["usage"].get(k, 0) for k in USAGE_KEYS}}  # fmt: skip
    for key in OPTIONAL_COMMITMENTS:
        if receipt.get(key) is not None:
            att[key] = receipt[key]
    return att


def ed25519_ok(public_hex: str, message: bytes, signature_hex: str) -> bool:
    try:
        VerifyKey(bytes.fromhex(public_hex)).verify(message, bytes.fromhex(signature_hex))
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False


def request_digest(body: Mapping[str, Any], request_salt: str) -> str:
    """What a receipt's request_digest must be for the request you sent: sha256hex(salt || JCS(body))."""
    return sha256hex(bytes.fromhex(request_salt) + canonical(body))


def chat_output_digest(choices: Iterable[Mapping[str, Any]]) -> str:
    """Text answers (chat, completion, vision): content and tool calls per choice, in index order."""
    ordered = sorted(choices, key=lambda c: c.get("index", 0))
    return sha256hex(canonical({"choices": [{"content": c.get("content"), "tool_calls": c.get("tool_calls")} for c in ordered]}))


def answer_of(choice: Mapping[str, Any]) -> dict[str, Any]:
    """One choice of a reply's JSON (a chat `message`, or a completion's `text`) as the output digest reads it."""
    message = choice.get("message")
    if isinstance(message, dict):
        return {"index": choice.get("index", 0), "content": message.get("content"), "tool_calls": message.get("tool_calls")}
    return {"index": choice.get("index", 0), "content": choice.get("text"), "tool_calls": None}


def embedding_output_digest(vectors: Iterable[Iterable[float]]) -> str:
    """Embeddings: the vectors as float32 little-endian, concatenated."""
    h = hashlib.sha256()
    for vector in vectors:
        vector = list(vector)
        h.update(struct.pack(f"<{len(vector)}f", *vector))
    return h.hexdigest()


def image_output_digest(pngs: Iterable[bytes]) -> str:
    """Images: JCS list of each PNG's sha256 hex."""
    return sha256hex(canonical([sha256hex(png) for png in pngs]))


@dataclass
class Verdict:
    """One receipt's checks (name -> passed) and what failed, in words."""

    seq: Any
    hash: str
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(self.checks.values()) and not self.problems

    def fail(self, check: str, problem: str | None = None) -> None:
        self.checks[check] = False
        self.problems.append(problem or f"{check} check failed")


def verify_receipt(receipt: Mapping[str, Any], coordinator: str | None = None) -> Verdict:
    """Hash and both signatures of one receipt (and the coordinator key, when pinned)."""
    verdict = Verdict(seq=receipt.get("seq"), hash=str(receipt.get("hash", "")))
    missing = [k for k in REQUIRED if k not in receipt]
    if missing:
        verdict.fail("shape", f"missing fields: {', '.join(missing)}")
        return verdict
    try:
        verdict.checks["hash"] = receipt_hash(receipt) == receipt["hash"]
        verdict.checks["coordinator_sig"] = ed25519_ok(receipt["coordinator"], bytes.fromhex(receipt["hash"]), receipt["sig"])
        verdict.checks["worker_sig"] = ed25519_ok(receipt["worker"]["id"], canonical(attestation_of(receipt)), receipt["worker"]["sig"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        verdict.fail("shape", f"malformed receipt: {exc}")
        return verdict
    if coordinator is not None:
        verdict.checks["coordinator_key"] = receipt["coordinator"] == coordinator
    verdict.problems += [f"{name} check failed" for name, passed in verdict.checks.items() if not passed]
    return verdict


def _seq(receipt: Mapping[str, Any]) -> int | None:
    seq = receipt.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def verify_chain(receipts: Iterable[Mapping[str, Any]], coordinator: str | None = None) -> list[Verdict]:
    """Each receipt, then the link from each to the one before it (in seq order); one coordinator key signs them
    all: the pinned one, else the first receipt's."""
    ordered = sorted(receipts, key=lambda r: -1 if _seq(r) is None else _seq(r))
    pinned = coordinator or (ordered[0].get("coordinator") if ordered else None)
    verdicts: list[Verdict] = []
    previous: Mapping[str, Any] | None = None
    for receipt in ordered:
        verdict = verify_receipt(receipt, pinned)
        if previous is not None:
            seq, before = _seq(receipt), _seq(previous)
            linked = seq is not None and before is not None and seq == before + 1 and receipt.get("prev") == previous.get("hash")
            verdict.checks["chain_link"] = linked
            if not linked:
                verdict.problems.append(f"does not link to receipt seq {previous.get('seq')}")
        elif receipt.get("seq") == 0:
            verdict.checks["chain_link"] = receipt.get("prev") == GENESIS_PREV
            if not verdict.checks["chain_link"]:
                verdict.problems.append("first receipt must link to the genesis value")
        verdicts.append(verdict)
        previous = receipt
    return verdicts


def parse_receipts(text: str) -> list[dict[str, Any]]:
    """Receipts from text: a JSON list, one receipt, {"receipts": [...]}, JSON lines, or API replies carrying one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = data.get("receipts", [data])
        if isinstance(data, dict):
            data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError("expected receipts as a JSON object, list, or JSON lines")
    return [r["receipt"] if isinstance(r.get("receipt"), dict) else r for r in data]


# ---- inclusion in a settlement epoch (RFC 9162) ----


def _leaf(receipt_hash_bytes: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + receipt_hash_bytes).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does `leaf` (a receipt hash) sit at `index` of the tree of `size` leaves with `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, _leaf(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_proof(proof: Mapping[str, Any], coordinator: str | None = None, anchored_root: str | None = None) -> dict[str, bool]:
    """A receipt's proof (GET /one/receipts/{hash}/proof): the signed epoch head, and the audit path to its root;
    with `anchored_root` (read from the EpochAnchor contract), that the root is the one anchored on chain."""
    head = proof["head"]
    checks = {
        "head_hash": receipt_hash(head) == head.get("hash"),
        "head_sig": ed25519_ok(head["coordinator"], bytes.fromhex(head["hash"]), head["sig"]),
        "inclusion": proof["tree_size"] == head["size"] and verify_inclusion(
            proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["receipt"]),
            [bytes.fromhex(p) for p in proof["audit_path"]], bytes.fromhex(head["root"])),
    }  # fmt: skip
    if coordinator is not None:
        checks["coordinator_key"] = head["coordinator"] == coordinator
    if anchored_root is not None:
        checks["anchored"] = anchored_root.removeprefix("0x") == head["root"]
    return checks


ROOTS_ABI = [{"name": "roots", "type": "function", "stateMutability": "view", "inputs": [{"name": "epoch", "type": "uint256"}],
              "outputs": [{"name": "", "type": "bytes32"}]}]  # fmt: skip


def read_anchored_root(rpc_url: str, anchor_address: str, epoch: int) -> str:
    """The root anchored for `epoch` in the EpochAnchor contract, read with web3 (`pip install one-network-sdk[chain]`),
    as 64 hex digits (zeros while the epoch is not anchored). Pass it to verify_proof(..., anchored_root=...)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc_url))
    return bytes(w3.eth.contract(address=Web3.to_checksum_address(anchor_address), abi=ROOTS_ABI).functions.roots(epoch).call()).hex()
