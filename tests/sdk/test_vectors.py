"""sdk/vectors are generated from the reference (backend/protocol, backend/trust/verify.py) and can never drift from
it: regenerating gives the committed files byte for byte. And they test what they claim to."""

from __future__ import annotations

import json

from sdk.vectors import generate
from tests.sdk.conftest import SDK


def test_the_committed_vectors_are_what_the_reference_generates():
    assert generate.main(["--check"]) == 0, "run: .venv/bin/python -m sdk.vectors.generate"


def test_every_tamper_and_broken_link_fails_and_the_valid_chain_passes():
    cases = {c["name"]: c["verdict"] for c in json.loads((SDK / "vectors" / "receipts.json").read_text())["cases"]}
    assert cases["valid chain"]["ok"] and cases["file order does not matter"]["ok"]
    tampers = [name for name in cases if name.startswith("tampered ")]
    assert len(tampers) >= 20  # every scalar field of a receipt with all optional commitments
    assert all(not cases[name]["ok"] for name in tampers)
    assert not cases["receipt seq 2 dropped"]["ok"] and not cases["receipts 2 and 3 reordered"]["ok"]
    assert not cases["one receipt signed by another coordinator"]["ok"]
    proofs = json.loads((SDK / "vectors" / "proofs.json").read_text())
    assert [t["size"] for t in proofs["trees"]] == list(range(1, 18))
    assert all(p["checks"] == {"head_hash": True, "head_sig": True, "inclusion": True} for p in proofs["proofs"] if p["name"] == "valid")
    assert all(not all(p["checks"].values()) for p in proofs["proofs"] if p["name"] != "valid")
