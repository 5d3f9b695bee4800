"""OneVerify: check receipts with nothing but their bytes and the public keys inside them.

Checks per receipt: the hash is sha256 of its JCS form, the coordinator signed that hash, the worker
signed the attestation the receipt restates; across receipts: seq runs on, each `prev` is the hash
before it, and one coordinator key signed them all (or the key the caller pins).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import httpx

from backend.protocol import merkle
from backend.protocol import receipt as rc
from backend.protocol.signing import verify_hex


@dataclass
class ReceiptVerdict:
    seq: Any
    hash: str
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(self.checks.values()) and not self.problems


@dataclass
class Report:
    verdicts: list[ReceiptVerdict]

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)

    def as_json(self) -> dict[str, Any]:
        """The verdicts as `one verify --json` and POST /one/verify give them."""
        return {"ok": self.ok, "receipts": [{"seq": v.seq, "hash": v.hash, "ok": v.ok, "checks": dict(v.checks), "problems": list(v.problems)}
                                            for v in self.verdicts]}  # fmt: skip


_REQUIRED = ("v", "seq", "prev", "ts", "job", "kind", "lane", "account", "model", "request_digest",
             "output_digest", "usage", "charge", "worker", "parent", "coordinator", "hash", "sig")


def verify_receipt(stored: dict[str, Any], coordinator: str | None = None) -> ReceiptVerdict:
    """Signatures and hash of one stored receipt (no chain context)."""
    verdict = ReceiptVerdict(seq=stored.get("seq"), hash=str(stored.get("hash", "")))
    missing = [k for k in _REQUIRED if k not in stored]
    if missing:
        verdict.problems.append(f"missing fields: {', '.join(missing)}")
        verdict.checks["shape"] = False
        return verdict
    try:
        verdict.checks["hash"] = rc.receipt_hash(stored) == stored["hash"]
        verdict.checks["coordinator_sig"] = verify_hex(stored["coordinator"], bytes.fromhex(stored["hash"]), stored["sig"])
        attestation = rc.attestation_of_receipt(stored)
        worker = stored["worker"]
        verdict.checks["worker_sig"] = verify_hex(worker["id"], rc.jcs(attestation), worker["sig"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        verdict.problems.append(f"malformed receipt: {exc}")
        verdict.checks["shape"] = False
        return verdict
    if coordinator is not None:
        verdict.checks["coordinator_key"] = stored["coordinator"] == coordinator
    for name, passed in verdict.checks.items():
        if not passed:
            verdict.problems.append(f"{name} check failed")
    return verdict


def _seq(receipt: dict[str, Any]) -> int | None:
    """A receipt's seq if it is a real integer (not a bool, a string or a float): anything else links to nothing."""
    seq = receipt.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def verify_chain(receipts: Iterable[dict[str, Any]], coordinator: str | None = None) -> Report:
    """Every receipt on its own, then the links between consecutive ones (sorted by seq)."""
    receipts = sorted(receipts, key=lambda r: -1 if _seq(r) is None else _seq(r))
    pinned = coordinator or (receipts[0].get("coordinator") if receipts else None)
    verdicts = []
    previous: dict[str, Any] | None = None
    for stored in receipts:
        verdict = verify_receipt(stored, pinned)
        if previous is not None:
            seq, before = _seq(stored), _seq(previous)
            linked = seq is not None and before is not None and seq == before + 1 and stored.get("prev") == previous.get("hash")
            verdict.checks["chain_link"] = linked
            if not linked:
                verdict.problems.append(f"does not link to receipt seq {previous.get('seq')}")
        elif stored.get("seq") == 0:
            verdict.checks["chain_link"] = stored.get("prev") == rc.GENESIS_PREV
            if not verdict.checks["chain_link"]:
                verdict.problems.append("first receipt must link to the genesis value")
        verdicts.append(verdict)
        previous = stored
    return Report(verdicts)


def verify_with_output(receipts: list[dict[str, Any]], coordinator: str | None = None, output: str | None = None) -> Report:
    """verify_chain, and for a single receipt given its output (answer text, or embedding vectors as JSON),
    one more check: the output hashes to the receipt's output_digest."""
    report = verify_chain(receipts, coordinator)
    if output is not None and len(receipts) == 1 and report.verdicts:
        matched = output_matches(receipts[0], output)
        if matched is not None:
            verdict = report.verdicts[0]
            verdict.checks["output"] = matched
            if not matched:
                verdict.problems.append("output does not match output_digest")
    return report


def load_receipts(source: str) -> list[dict[str, Any]]:
    """Receipts from a file or URL: a JSON list, one receipt, `{"receipts": [...]}`, or JSON lines."""
    if source.startswith(("http://", "https://")):
        text = httpx.get(source, timeout=30).raise_for_status().text
    else:
        text = Path(source).read_text()
    return parse_receipts(text)


def parse_receipts(text: str) -> list[dict[str, Any]]:
    """Receipts pasted or uploaded: the forms load_receipts accepts, and API replies carrying a `receipt`."""
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
    return [r.get("receipt", r) if "receipt" in r and isinstance(r["receipt"], dict) else r for r in data]




def output_matches(stored: dict[str, Any], output: str) -> bool | None:
    """Does this output hash to the receipt's output_digest? Text answers (single choice) and embedding
    vectors as JSON; None when the receipt's kind cannot be checked from pasted text (images)."""
    if stored.get("kind") in rc.TEXT_TASKS:
        return rc.chat_output_digest([{"index": 0, "content": output, "tool_calls": None}]) == stored.get("output_digest")
    if stored.get("kind") == "embedding":
        try:
            vectors = json.loads(output)
            if vectors and isinstance(vectors[0], (int, float)):
                vectors = [vectors]
            return rc.embedding_output_digest(vectors) == stored.get("output_digest")
        except (ValueError, TypeError, IndexError, KeyError):
            return False
    return None


def verify_proof(proof: dict[str, Any], coordinator: str | None = None, anchored_root: str | None = None) -> dict[str, bool]:
    """A receipt's inclusion in its settlement epoch: the head's hash and coordinator signature, the RFC 9162
    audit path up to the head's root, and (given the root read from the EpochAnchor contract) the anchor."""

    head = proof["head"]
    checks = {
        "head_hash": rc.receipt_hash(head) == head.get("hash"),
        "head_sig": verify_hex(head["coordinator"], bytes.fromhex(head["hash"]), head["sig"]),
        "inclusion": proof["tree_size"] == head["size"] and merkle.verify_inclusion(
            proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["receipt"]),
            [bytes.fromhex(p) for p in proof["audit_path"]], bytes.fromhex(head["root"]),
        ),
    }  # fmt: skip
    if coordinator is not None:
        checks["coordinator_key"] = head["coordinator"] == coordinator
    if anchored_root is not None:
        checks["anchored"] = anchored_root.removeprefix("0x") == head["root"]
    return checks


def audit_logprobs(model_dir: str | Path, body: dict[str, Any], choice: dict[str, Any], receipt: dict[str, Any] | None = None,
                   tolerance: float = 1e-3) -> dict[str, Any]:  # fmt: skip
    """Audit mode: re-score a chat answer with the model it claims to come from (teacher-forced, one forward
    pass) and compare with the per-token logprobs the worker reported and committed to in its attestation.
    A different model gives different log-probabilities for the same tokens: model substitution shows.

    Needs the request body, the answer's choice with `logprobs.content` (ask with logprobs=true) and the
    model's weights (transformers; byte-level BPE tokenizers). Returns per-check verdicts and the largest gap."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    entries = (choice.get("logprobs") or {}).get("content") or []
    checks: dict[str, Any] = {"has_logprobs": bool(entries)}
    if receipt is not None:
        checks["committed"] = rc.logprobs_digest([choice]) == receipt.get("logprobs_digest")
        checks["output"] = rc.chat_output_digest([rc.answer_of(choice)]) == receipt.get("output_digest")
    if not entries:
        return {"ok": False, "checks": checks, "max_gap": None}
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    encoder = bytes_to_unicode()
    ids = [tokenizer.convert_tokens_to_ids("".join(encoder[b] for b in e["bytes"])) for e in entries]
    checks["tokens"] = None not in ids and tokenizer.unk_token_id not in ids
    if not checks["tokens"]:
        return {"ok": False, "checks": checks, "max_gap": None}
    text = tokenizer.apply_chat_template(body["messages"], tools=body.get("tools"), add_generation_prompt=True, tokenize=False)
    prompt = tokenizer.encode(text, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0].float()
    scores = torch.log_softmax(logits[len(prompt) - 1 : len(prompt) - 1 + len(ids)], dim=-1)
    gaps = [abs(float(scores[i, t]) - float(e["logprob"])) for i, (t, e) in enumerate(zip(ids, entries)) if e["logprob"] > -9999.0]
    max_gap = max(gaps) if gaps else 0.0
    checks["rescored"] = max_gap <= tolerance
    return {"ok": all(v for v in checks.values()), "checks": checks, "max_gap": max_gap}
