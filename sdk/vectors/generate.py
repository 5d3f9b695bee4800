"""Test vectors every ONE SDK must pass, generated from the reference (backend/protocol, backend/trust/verify.py).

    .venv/bin/python -m sdk.vectors.generate          # rewrite sdk/vectors/*.json
    .venv/bin/python -m sdk.vectors.generate --check  # exit 1 if the committed files differ (a test runs this)

Three files, deterministic (fixed keys, fixed times):
- canonical.json: RFC 8785 edge cases, {"name", "json" (input text to parse), "canonical" (the expected UTF-8 text)}.
- receipts.json: signed receipts and what the reference says of them: a valid chain, every single-field tamper,
  dropped and reordered receipts (each case: the receipts in file order and the verdict per receipt, in seq order,
  as `one verify --json` gives it), request digests with their salt, and output digests per kind.
- proofs.json: RFC 9162 inclusion proofs for trees of 1 to 17 leaves (every leaf), a signed epoch head over one of
  them, and broken proofs that must fail.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from backend.protocol import merkle
from backend.protocol import receipt as rc
from backend.protocol.signing import public_hex, sign_hex
from backend.trust.verify import verify_chain, verify_proof

HERE = Path(__file__).resolve().parent
FILES = ("canonical.json", "receipts.json", "proofs.json")


def key(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"ONE test vector key: {name}".encode()).digest())


COORDINATOR, WORKERS = key("coordinator"), [key("worker a"), key("worker b")]

# ---- RFC 8785 ----

CANONICAL_CASES = {
    "key order by UTF-16 code units": '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh",'
                                      '"1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
    "nested objects sorted at every level": '{"b":{"z":1,"a":[{"y":2,"x":1}]},"a":null}',
    "whitespace dropped": '{ "a" : [ 1 , 2 , { "b" : true } ] , "c" : false }',
    "string escapes": '["\\u0000\\u0001\\u001f", "\\"\\\\", "\\/", "\\b\\f\\n\\r\\t", "\\u007f", "\\u00e9"]',
    "surrogate pair": '"\\ud83d\\ude00 and \\ud834\\udd1e"',
    "non-ASCII kept as UTF-8": '"Grüße, 你好, عربى"',
    "integers": '[0, -0, 1, -1, 9007199254740991, -9007199254740991, 1000000]',
    "large integers as IEEE doubles": '[9007199254740993, 18446744073709551615, 1e21, 123456789012345678901234567890]',
    "floats, shortest round trip": '[0.1, 0.30000000000000004, 1.5, -2.25, 1e-7, 1e-6, 123456789.123, 5e-324, 1.7976931348623157e308]',
    "float exponents": '[1e20, 1e21, 1.5e300, 2.5e-10, 100.0, 1E2, 0.000001]',
    "empty containers": '{"a":[],"b":{},"c":""}',
    "literals": '[true, false, null]',
}


def canonical_vectors() -> dict[str, Any]:
    cases = []
    for name, text in CANONICAL_CASES.items():
        value = json.loads(text, parse_int=float) if name == "large integers as IEEE doubles" else json.loads(text)
        cases.append({"name": name, "json": text, "canonical": rc.jcs(value).decode("utf-8")})
    return {"about": "parse `json` (numbers as IEEE doubles), serialise with RFC 8785, compare with `canonical` byte for byte",
            "cases": cases}  # fmt: skip


# ---- receipts ----


def _receipt(seq: int, prev: str, kind: str, worker: SigningKey, output_digest: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": f"question {seq}"}]}
    salt = hashlib.sha256(f"salt {seq}".encode()).hexdigest()[:32]
    request_digest = rc.request_digest(body, salt)
    usage = {"input_tokens": 12 + seq, "output_tokens": 0 if kind in ("embedding", "image") else 30 + seq, "images": 2 if kind == "image" else 0}
    job = f"job-{seq:04d}"
    att = rc.attestation(job, body["model"], request_digest, output_digest, usage, **extra)
    unsigned = rc.build_receipt(seq=seq, prev=prev, ts=f"2026-11-26T12:00:{seq:02d}.000Z", job=job, kind=kind, lane="included",
                                account=hashlib.sha256(b"an account").hexdigest(), model=body["model"], request_digest=request_digest,
                                output_digest=output_digest, usage=usage, charge_unit="credit", charge_amount=64 * (seq + 1),
                                worker_id=public_hex(worker), worker_sig=sign_hex(worker, rc.jcs(att)), parent=None,
                                coordinator=public_hex(COORDINATOR), **extra)  # fmt: skip
    digest = rc.receipt_hash(unsigned)
    return {**unsigned, "hash": digest, "sig": sign_hex(COORDINATOR, bytes.fromhex(digest))}


def chain(n: int = 6) -> list[dict[str, Any]]:
    """seq 0..n-1 from the genesis value: chats (one with a sampling seed and token ids), an embedding, an image."""
    out, prev = [], rc.GENESIS_PREV
    for seq in range(n):
        kind = ("chat", "embedding", "chat", "image", "completion", "vision")[seq % 6]
        worker = WORKERS[seq % 2]
        if kind == "embedding":
            digest, extra = rc.embedding_output_digest([[0.25, -1.5, 3.0]]), {}
        elif kind == "image":
            digest, extra = rc.image_output_digest([b"\x89PNG not really", b"\x89PNG second"]), {}
        else:
            digest = rc.chat_output_digest([{"index": 0, "content": f"answer {seq} ✓", "tool_calls": None}])
            extra = {"sampling_seed": hashlib.sha256(f"seed {seq}".encode()).hexdigest(), "tokens_digest": rc.tokens_digest([[5, 6, 7, 2]])} if seq == 2 else {}
        receipt = _receipt(seq, prev, kind, worker, digest, **extra)
        out.append(receipt)
        prev = receipt["hash"]
    return out


def _verdict(receipts: list[dict[str, Any]]) -> dict[str, Any]:
    return verify_chain(copy.deepcopy(receipts)).as_json()


def _tamper(value: Any) -> Any:
    """A different value of the same JSON type (what a forger would change)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return (value[:-1] + ("0" if value[-1:] != "0" else "1")) if value else "x"
    if value is None:
        return "0" * 64
    raise TypeError(type(value))


def _leaves(receipt: dict[str, Any], prefix: tuple = ()) -> list[tuple]:
    """Every scalar field's path in a receipt (nested objects walked)."""
    out = []
    for k, v in receipt.items():
        if isinstance(v, dict):
            out += _leaves(v, prefix + (k,))
        else:
            out.append(prefix + (k,))
    return out


def receipt_vectors() -> dict[str, Any]:
    good = chain()
    cases = [{"name": "valid chain", "receipts": good, "verdict": _verdict(good)}]
    target = good[2]  # a chat receipt with every optional commitment
    for path in _leaves(target):
        forged = copy.deepcopy(good)
        node = forged[2]
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = _tamper(node[path[-1]])
        cases.append({"name": f"tampered {'.'.join(path)}", "receipts": forged, "verdict": _verdict(forged)})
    dropped = good[:2] + good[3:]
    cases.append({"name": "receipt seq 2 dropped", "receipts": dropped, "verdict": _verdict(dropped)})
    swapped = copy.deepcopy(good)
    swapped[2]["seq"], swapped[3]["seq"] = 3, 2  # reordered: seq numbers swapped, hashes and signatures kept
    cases.append({"name": "receipts 2 and 3 reordered", "receipts": swapped, "verdict": _verdict(swapped)})
    cases.append({"name": "file order does not matter", "receipts": list(reversed(good)), "verdict": _verdict(good)})
    other = copy.deepcopy(good)
    other[4] = _receipt(4, good[3]["hash"], "completion", WORKERS[0], good[4]["output_digest"])
    other[4]["sig"] = sign_hex(key("another coordinator"), bytes.fromhex(other[4]["hash"]))
    other[4]["coordinator"] = public_hex(key("another coordinator"))
    other[4]["hash"] = rc.receipt_hash(other[4])
    other[4]["sig"] = sign_hex(key("another coordinator"), bytes.fromhex(other[4]["hash"]))
    cases.append({"name": "one receipt signed by another coordinator", "receipts": other, "verdict": _verdict(other)})

    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "Grüße 😀"}], "temperature": 0.7, "max_tokens": 16}
    salt = "00112233445566778899aabbccddeeff"
    outputs = [
        {"kind": "chat", "choices": [{"index": 0, "content": "Hello\r\nworld\u0000 ✓", "tool_calls": None}]},
        {"kind": "chat", "choices": [{"index": 1, "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
                                     {"index": 0, "content": "first", "tool_calls": None}]},
        {"kind": "embedding", "vectors": [[0.1, -0.2, 0.30000001192092896], [1e-8, 65504.0, -0.0]]},
        {"kind": "image", "pngs_hex": [b"\x89PNG\r\n\x1a\nA".hex(), b"\x89PNG\r\n\x1a\nB".hex()]},
    ]  # fmt: skip
    for out in outputs:
        if out["kind"] == "chat":
            out["output_digest"] = rc.chat_output_digest(out["choices"])
        elif out["kind"] == "embedding":
            out["output_digest"] = rc.embedding_output_digest(out["vectors"])
        else:
            out["output_digest"] = rc.image_output_digest(bytes.fromhex(p) for p in out["pngs_hex"])
    return {
        "about": "verify each case's receipts (any order in the file; checked in seq order) and match `verdict`: ok per receipt and "
                 "the set of checks that ran and failed. request: sha256hex(salt || JCS(body)). outputs: digest per kind.",
        "coordinator": public_hex(COORDINATOR),
        "cases": cases,
        "requests": [{"body": body, "request_salt": salt, "request_digest": rc.request_digest(body, salt)}],
        "outputs": outputs,
    }  # fmt: skip


# ---- inclusion proofs ----


def proof_vectors() -> dict[str, Any]:
    trees = []
    for size in range(1, 18):
        leaves = [hashlib.sha256(f"receipt {size}.{i}".encode()).digest() for i in range(size)]
        tree = merkle.Tree(leaves)
        trees.append({"size": size, "leaves": [leaf.hex() for leaf in leaves], "root": tree.root().hex(),
                      "proofs": [{"leaf_index": i, "audit_path": [p.hex() for p in tree.path(i)]} for i in range(size)]})  # fmt: skip
    seven = trees[6]
    head = {"v": 1, "epoch": 3, "first_seq": 100, "last_seq": 106, "size": 7, "root": seven["root"], "prev": rc.GENESIS_PREV,
            "closed_at": "2026-11-26T18:00:00.000Z", "coordinator": public_hex(COORDINATOR)}  # fmt: skip
    head["hash"] = rc.receipt_hash(head)
    head["sig"] = sign_hex(COORDINATOR, bytes.fromhex(head["hash"]))
    good = {"receipt": seven["leaves"][5], "epoch": 3, "leaf_index": 5, "tree_size": 7, "audit_path": seven["proofs"][5]["audit_path"], "head": head}
    broken = {
        "wrong leaf index": {**good, "leaf_index": 4},
        "wrong tree size": {**good, "tree_size": 8},
        "audit path element changed": {**good, "audit_path": [good["audit_path"][0][:-1] + "0", *good["audit_path"][1:]]},
        "audit path too short": {**good, "audit_path": good["audit_path"][:-1]},
        "another receipt": {**good, "receipt": seven["leaves"][4]},
        "head root changed": {**good, "head": {**head, "root": trees[7]["root"]}},
    }
    proofs = [{"name": "valid", "proof": good, "checks": verify_proof(good)}]
    proofs += [{"name": name, "proof": p, "checks": verify_proof(p)} for name, p in broken.items()]
    return {
        "about": "RFC 9162: leaf = sha256(0x00||receipt hash), node = sha256(0x01||left||right). trees: every leaf's audit path must "
                 "verify against `root`. proofs: a receipt's proof against its signed epoch head; match `checks`.",
        "trees": trees,
        "proofs": proofs,
    }  # fmt: skip


def build() -> dict[str, str]:
    """File name -> its text."""
    parts = {"canonical.json": canonical_vectors(), "receipts.json": receipt_vectors(), "proofs.json": proof_vectors()}
    return {name: json.dumps(data, indent=1, ensure_ascii=False) + "\n" for name, data in parts.items()}


def main(argv: list[str]) -> int:
    files = build()
    if "--check" in argv:
        stale = [name for name, text in files.items() if not (HERE / name).exists() or (HERE / name).read_text() != text]
        if stale:
            print(f"stale vectors: {', '.join(stale)} (run python -m sdk.vectors.generate)")
        return 1 if stale else 0
    for name, text in files.items():
        (HERE / name).write_text(text)
    print(f"wrote {', '.join(files)} to {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
