"""Settlement arithmetic and OneVerify's chain checks, as properties."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.money.settlement import tally
from backend.protocol import merkle

WORKERS = [f"{i:064x}" for i in range(1, 6)]
ADDRESSES = {w: "0x" + f"{i:040x}" for i, w in enumerate(WORKERS, start=1)}


receipt_st = st.fixed_dictionaries({
    "hash": st.sampled_from(["h1", "h2", "h3", "h4"]),
    "kind": st.sampled_from(["chat", "embedding", "image", "audit"]),
    "worker": st.fixed_dictionaries({"id": st.sampled_from(WORKERS)}),
    "charge": st.fixed_dictionaries({"unit": st.sampled_from(["credit", "usdc"]), "amount": st.integers(0, 10**9)}),
})  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(receipts=st.lists(receipt_st, max_size=60), fee_bps=st.integers(0, 10_000), quarantined=st.frozensets(st.sampled_from(WORKERS)),
       without_address=st.frozensets(st.sampled_from(WORKERS)), verified=st.frozensets(st.sampled_from(["h1", "h2"])),
       debited=st.dictionaries(st.sampled_from(["h1", "h2", "h3", "h4"]), st.integers(0, 10**9)))  # fmt: skip
def test_every_micro_unit_is_paid_kept_or_withheld(receipts, fee_bps, quarantined, without_address, verified, debited):
    addresses = {w: a for w, a in ADDRESSES.items() if w not in without_address}
    earnings = tally(receipts, debited, addresses, fee_bps, quarantined, verified)
    basis = {id(r): min(r["charge"]["amount"], debited.get(r["hash"], 0)) for r in receipts}  # only what was debited is paid
    charges = sum(basis[id(r)] for r in receipts if r["kind"] != "audit")
    assert charges == sum(e.net for e in earnings) + sum(e.fee for e in earnings) + sum(e.withheld for e in earnings)
    for e in earnings:
        assert all(isinstance(v, int) for v in (e.gross, e.fee, e.withheld, e.net)) and e.net >= 0
        assert e.fee == (e.gross - e.withheld) * fee_bps // 10_000
        mine = [r for r in receipts if r["worker"]["id"] == e.worker and r["kind"] != "audit"]
        if e.worker in without_address:
            assert e.net == 0 and e.withheld == e.gross
        elif e.worker in quarantined:  # only audit-verified work is paid
            assert e.withheld == sum(basis[id(r)] for r in mine if r["hash"] not in verified)
        else:
            assert e.withheld == 0 and e.net == e.gross - e.gross * fee_bps // 10_000


def test_audit_receipts_earn_nothing():
    audit = {"hash": "h1", "kind": "audit", "worker": {"id": WORKERS[0]}, "charge": {"unit": "credit", "amount": 500}}
    assert tally([audit], {"h1": 500}, ADDRESSES, 1000) == []


def _chain(n: int):
    """A real signed, hash-linked chain built with the coordinator's own receipt code."""
    from nacl.signing import SigningKey

    from backend.protocol import receipt as rc
    from backend.protocol.signing import public_hex, sign_hex

    coord, worker = SigningKey.generate(), SigningKey.generate()
    chain, prev = [], rc.GENESIS_PREV
    for seq in range(n):
        usage = {"input_tokens": seq, "output_tokens": 2 * seq, "images": 0}
        att = rc.attestation(f"job{seq}", "tiny-chat", "a" * 64, "b" * 64, usage)
        body = rc.build_receipt(seq=seq, prev=prev, ts="2026-01-01T00:00:00.000Z", job=f"job{seq}", kind="chat", lane="included",
                                account="c" * 64, model="tiny-chat", request_digest="a" * 64, output_digest="b" * 64, usage=usage,
                                charge_unit="credit", charge_amount=seq, worker_id=public_hex(worker), worker_sig=sign_hex(worker, rc.jcs(att)),
                                parent=None, coordinator=public_hex(coord))  # fmt: skip
        digest = rc.receipt_hash(body)
        chain.append({**body, "hash": digest, "sig": sign_hex(coord, bytes.fromhex(digest))})
        prev = digest
    return chain


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_one_verify_catches_tampering_reordering_and_dropping(data):
    from backend.trust.verify import verify_chain

    chain = _chain(6)
    assert verify_chain(chain).ok
    i = data.draw(st.integers(0, 5))
    tampered = copy.deepcopy(chain)
    field = data.draw(st.sampled_from(["model", "charge", "usage", "account", "ts"]))
    tampered[i][field] = {"unit": "credit", "amount": 10**6} if field == "charge" else {"input_tokens": 9, "output_tokens": 9, "images": 9} if field == "usage" else "x"
    assert not verify_chain(tampered).ok
    dropped = chain[:i] + chain[i + 1:]
    if 0 < i < 5:
        assert not verify_chain(dropped).ok  # a gap in seq/prev
    else:  # an export may start or stop anywhere: the first or last missing shows against the epoch head's root
        root = merkle.root([bytes.fromhex(r["hash"]) for r in chain])
        assert merkle.root([bytes.fromhex(r["hash"]) for r in dropped]) != root
    j = data.draw(st.integers(0, 5).filter(lambda j: j != i))
    swapped = copy.deepcopy(chain)
    swapped[i]["seq"], swapped[j]["seq"] = swapped[j]["seq"], swapped[i]["seq"]  # reorder by rewriting positions
    assert not verify_chain(swapped).ok
