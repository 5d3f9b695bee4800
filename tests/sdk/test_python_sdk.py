"""The Python SDK passes every shared vector, its verify command keeps `one verify`'s contract, and against a live
devnet a streamed chat and an embedding come back with receipts it checks (a tampered copy is rejected)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys

import pytest

from one_sdk import (  # noqa: E402  (tests/sdk/conftest.py puts it on the path)
    One,
    ReceiptError,
    parse_receipts,
    read_anchored_root,
    verify_chain,
    verify_proof,
)
from one_sdk import receipts as r  # noqa: E402
from tests.sdk.conftest import SDK

VECTORS = SDK / "vectors"
VERIFY = SDK / "python" / "bin" / "verify"


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def test_canonical_json_matches_every_vector():
    for case in load("canonical.json")["cases"]:
        value = json.loads(case["json"], parse_int=float) if case["name"] == "large integers as IEEE doubles" else json.loads(case["json"])
        assert r.canonical(value).decode() == case["canonical"], case["name"]


def test_receipt_verdicts_match_the_reference_for_every_case():
    data = load("receipts.json")
    for case in data["cases"]:
        verdicts = verify_chain(case["receipts"])
        got = [{"seq": v.seq, "hash": v.hash, "ok": v.ok, "checks": v.checks, "problems": v.problems} for v in verdicts]
        assert got == case["verdict"]["receipts"], case["name"]
    for request in data["requests"]:
        assert r.request_digest(request["body"], request["request_salt"]) == request["request_digest"]
    for out in data["outputs"]:
        digest = {"chat": lambda o: r.chat_output_digest(o["choices"]), "embedding": lambda o: r.embedding_output_digest(o["vectors"]),
                  "image": lambda o: r.image_output_digest(bytes.fromhex(p) for p in o["pngs_hex"])}[out["kind"]](out)  # fmt: skip
        assert digest == out["output_digest"], out["kind"]


def test_inclusion_proofs_match_for_trees_of_1_to_17_leaves():
    data = load("proofs.json")
    for tree in data["trees"]:
        for proof in tree["proofs"]:
            path = [bytes.fromhex(p) for p in proof["audit_path"]]
            leaf = bytes.fromhex(tree["leaves"][proof["leaf_index"]])
            assert r.verify_inclusion(proof["leaf_index"], tree["size"], leaf, path, bytes.fromhex(tree["root"]))
            assert not r.verify_inclusion(proof["leaf_index"], tree["size"], bytes(32), path, bytes.fromhex(tree["root"]))
    for case in data["proofs"]:
        assert verify_proof(case["proof"]) == case["checks"], case["name"]


def test_the_verify_command_prints_a_verdict_per_receipt_and_exits_0_only_when_all_pass(tmp_path):
    cases = {c["name"]: c["receipts"] for c in load("receipts.json")["cases"]}
    good, bad = tmp_path / "good.json", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(cases["valid chain"]))
    bad.write_text("\n".join(json.dumps(x) for x in cases["tampered charge.amount"]))
    passed = subprocess.run([str(VERIFY), str(good)], capture_output=True, text=True, timeout=60)
    assert passed.returncode == 0 and passed.stdout.count(" valid") == 6 and "all checks pass" in passed.stdout, passed.stdout + passed.stderr
    failed = subprocess.run([str(VERIFY), str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "INVALID: hash check failed" in failed.stdout and "verification FAILED" in failed.stdout


@pytest.mark.e2e
def test_a_streamed_chat_and_an_embedding_through_the_sdk_verify_and_a_tampered_copy_does_not(devnet):
    one = One(devnet.url, verify=True)
    stream = one.chat_stream(model="tiny-chat", messages=[{"role": "user", "content": "hello from the SDK"}], max_tokens=24)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([p for p in pieces if p]) >= 2 and stream.reply.verdict.ok, stream.reply.verdict  # streamed, then checked whole
    assert stream.reply.verdict.checks == {"hash": True, "coordinator_sig": True, "worker_sig": True, "request": True, "output": True}
    embedded = one.embed(model="all-minilm-l6-v2", input=["a receipt", "a worker"])
    assert embedded.verdict.ok and len(embedded.data.data) == 2 and embedded.receipt["kind"] == "embedding"

    # What the coordinator's log holds for them verifies as a chain; a copy with one charge changed does not.
    log = [stream.reply.receipt, embedded.receipt]
    assert all(v.ok for v in verify_chain(log[:1])) and all(v.ok for v in verify_chain(log[1:]))
    forged = copy.deepcopy(stream.reply.receipt)
    forged["charge"]["amount"] += 1
    assert not r.verify_receipt(forged).ok
    # The reply's receipt must cover this request and this answer: another body or another answer is caught.
    sent = one._sent.body
    assert not one.check(stream.reply.receipt, stream.reply.request_salt, {**sent, "max_tokens": 25}, r.chat_output_digest([{"index": 0, "content": "x"}])).ok
    with pytest.raises(ReceiptError):
        one._finish(None, stream._headers, forged, stream.reply.request_salt, r.chat_output_digest([{"index": 0, "content": stream.text}]), sent)
    assert parse_receipts(json.dumps({"receipt": forged}))[0] == forged


@pytest.mark.e2e
def test_the_readme_example_runs(devnet):
    readme = (SDK / "python" / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1).replace("http://127.0.0.1:3000", devnet.url)
    assert len(example.strip().splitlines()) == 5
    env = {**os.environ, "PYTHONPATH": str(SDK / "python" / "src")}
    done = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(r" [0-9a-f]{64} True ", done.stdout), done.stdout


@pytest.mark.e2e
def test_the_anchored_root_is_read_from_the_epoch_anchor_contract(devnet):
    """An epoch not anchored yet reads as zeros from the devnet's real EpochAnchor, so a proof checked against it fails
    its `anchored` check; the root the head names passes it."""
    unanchored = read_anchored_root(devnet.chain.rpc_url, devnet.deployment.anchor, 10**9)
    assert unanchored == "0" * 64
    valid = next(c["proof"] for c in load("proofs.json")["proofs"] if c["name"] == "valid")
    assert verify_proof(valid, anchored_root=unanchored)["anchored"] is False
    assert verify_proof(valid, anchored_root="0x" + valid["head"]["root"])["anchored"] is True
