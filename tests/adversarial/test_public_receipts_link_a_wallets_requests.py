"""Attack: hash a known wallet address and list its activity in the public receipt log.

Receipts name accounts by HMAC-SHA256 under a coordinator secret, not by a plain hash; OneVerify's
checks do not need the account, so verification is unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from nacl.signing import SigningKey

from backend.money import ledger
from backend.serving.inference import Caller
from backend.trust.receipts import ReceiptLog
from backend.trust.verify import verify_chain
from tests.adversarial.conftest import ACCOUNT_SECRET, Peer, make_service, run_chat

WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def test_a_known_address_cannot_be_matched_to_its_receipts(sqlite_db):
    service = make_service()
    worker = await Peer(service.scheduler).join()
    worker.auto = lambda job: worker.answer(job, "answer")
    await asyncio.to_thread(ledger.grant, "test-grant", WALLET, "usdc", 10**9, "purchase")
    caller = Caller(account_id=WALLET, lane="dedicated", metered=True, priority=30)
    receipts = [(await run_chat(service, caller, f"question {i}"))[-1].receipt for i in range(2)]
    for guess in (WALLET, WALLET.lower()):  # what anyone can compute from the address
        assert all(r["account"] != hashlib.sha256(guess.encode()).hexdigest() for r in receipts)
    assert {r["account"] for r in receipts} == {hmac.new(ACCOUNT_SECRET, WALLET.encode(), hashlib.sha256).hexdigest()}
    assert ReceiptLog(SigningKey.generate(), b"another coordinator's secret!!!!").account_ref(WALLET) != receipts[0]["account"]
    assert verify_chain(receipts).ok  # OneVerify is unchanged
    assert service.receipts.usage_by_model(WALLET)[0]["requests"] == 2  # the coordinator still finds its own account's usage
