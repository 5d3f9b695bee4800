"""Attack: one caller sends as fast as it can (key-less, with one key, or with many keys of one account),
asks /one/verify to check a mountain of receipts, and asks for inclusion proofs again and again.

Before: no limit anywhere, no x-ratelimit-* headers, /one/verify ran 10,000 receipts on the event loop, and
every proof request rebuilt its epoch's whole Merkle tree. Now: per-key, per-account and per-address rates
with the headers on every reply and 429 + retry-after past them; a cap on /one/verify (off the event loop);
a closed epoch's tree is built once.
"""

from __future__ import annotations

import time

import pytest
from nacl.signing import SigningKey
from sqlmodel import select

from backend.access import auth
from backend.access.limits import Rates
from backend.api.routes import auth as auth_routes
from backend.db import session
from backend.db.models import SiweNonce
from backend.money.settlement import close_epoch, epoch_tree, inclusion_proof
from backend.protocol import merkle
from backend.serving.inference import Caller
from tests.adversarial.conftest import Peer, make_service, run_chat

HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")


@pytest.fixture
def tight(monkeypatch):
    monkeypatch.setenv("ONE_RATE_LIMIT_OPEN", "3")
    monkeypatch.setenv("ONE_RATE_LIMIT_PER_KEY", "3")
    monkeypatch.setenv("ONE_RATE_LIMIT_PER_ACCOUNT", "4")
    monkeypatch.setenv("ONE_VERIFY_MAX_RECEIPTS", "5")
    monkeypatch.setenv("ONE_NONCE_RATE_PER_MINUTE", "3")
    monkeypatch.setattr(auth_routes, "NONCE_RATE", Rates())


def test_keyless_callers_are_limited_per_address_with_headers_on_every_reply(tight, api):
    replies = [api.get("/v1/models"), api.get("/v1/models/nope"), api.post("/v1/chat/completions", json={"model": "x"})]
    assert [r.status_code for r in replies] == [200, 404, 400]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in replies] == ["2", "1", "0"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" and r.headers["x-ratelimit-reset-requests"].endswith("s") for r in replies)
    refused = api.get("/v1/models")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and all(h in refused.headers for h in HEADERS)


def test_a_key_and_its_account_have_limits_of_their_own(tight, api):
    first, second = auth.create_key("0xaccount", "included"), auth.create_key("0xaccount", "included")
    other = auth.create_key("0xsomeone", "included")

    def models(key: str) -> int:
        return api.get("/v1/models", headers={"authorization": f"Bearer {key}"}).status_code

    assert [models(first) for _ in range(4)] == [200, 200, 200, 429]  # the key's 3 per minute
    assert [models(second) for _ in range(2)] == [200, 429]  # the account's 4, across both keys
    assert models(other) == 200  # another account is not held back
    assert api.get("/v1/models").status_code == 200  # nor is the address's key-less bucket


def test_sign_in_nonces_are_rate_limited_and_expired_ones_pruned(tight, api):
    assert [api.get("/one/auth/nonce").status_code for _ in range(4)] == [200, 200, 200, 429]
    with session() as db:
        assert len(db.exec(select(SiweNonce)).all()) == 3
    auth.issue_nonce(now=time.time() + auth.NONCE_TTL_S + 1)  # the three are past their TTL by then
    with session() as db:
        assert len(db.exec(select(SiweNonce)).all()) == 1


def test_verify_is_capped(tight, api):
    reply = api.post("/one/verify", json={"receipts": [{"hash": "00"}] * 6})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "receipts"
    assert api.post("/one/verify", json={"receipts": [{"hash": "00"}] * 2}).status_code == 200


async def test_proofs_reuse_the_epochs_tree(sqlite_db):
    service = make_service()
    peer = await Peer(service.scheduler).join()
    peer.auto = lambda job: peer.answer(job, "ok")
    receipts = [(await run_chat(service, Caller(account_id="anonymous")))[-1].receipt for _ in range(5)]
    close_epoch(SigningKey.generate())
    epoch_tree.cache_clear()
    proofs = [inclusion_proof(r["hash"]) for r in receipts for _ in range(3)]
    assert epoch_tree.cache_info().misses == 1 and epoch_tree.cache_info().hits == len(proofs) - 1
    for proof in proofs:
        path = [bytes.fromhex(p) for p in proof["audit_path"]]
        assert merkle.verify_inclusion(proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["receipt"]), path, bytes.fromhex(proof["head"]["root"]))
