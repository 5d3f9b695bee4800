"""Worker bonds: USDC a worker stakes against failed audits, paid back only to the wallet that paid it.

A bond is a USDC transfer to the treasury claimed with two signatures: the worker key's (Ed25519 over
`bond_consent(tx)`: the worker consents) and the paying wallet's (EIP-191 over `bond_claim(worker, tx)`); both
messages, and the worker's `unbond_request`, are defined in backend/protocol/claims.py. The transfer must
come from the wallet that signed: a worker's payout address comes from its unauthenticated hello and proves
nothing. The payer is recorded with the bond, a bond held takes no money from another wallet, and settlement
refunds only to the payer. The transfer is checked by purchases.verify_payment, the one payment check, and
each transfer buys one thing once (consumed_tx, shared with package purchases).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature

from backend.db import session
from backend.db.models import Bond, ConsumedTx, WorkerRecord
from backend.money.purchases import PurchaseError, consume, verify_payment
from backend.protocol.claims import bond_claim, bond_consent, unbond_request
from backend.protocol.signing import verify_hex


@dataclass
class BondClaim:
    status: str  # "pending" or "confirmed"
    confirmations: int
    added: int = 0
    bond: int = 0


def claim_bond(w3, *, worker_id: str, tx_hash: str, sig: str, payer_sig: str, usdc: str, treasury: str,
               confirmations: int) -> BondClaim:  # fmt: skip
    """Check both signatures and the transfer; once confirmed, add it to the worker's bond (or PurchaseError)."""
    tx_hash = tx_hash.lower()
    if not verify_hex(worker_id, bond_consent(tx_hash), sig):
        raise PurchaseError("The signature is not the worker key's over this tx hash.", "bad_signature", 401, "sig")
    payer = recover_payer(worker_id, tx_hash, payer_sig)
    status, seen, paid = verify_payment(
        w3, tx_hash, usdc=usdc, treasury=treasury, buyer=payer, price=1, confirmations=confirmations,
        buyer_role="the one that signed the bond claim (payer_sig)",
    )  # fmt: skip
    if status == "pending":
        return BondClaim(status="pending", confirmations=seen)
    now = time.time()
    with session() as db:
        consume(db, ConsumedTx(tx_hash=tx_hash, use="bond", payer=payer, amount=paid, worker=worker_id, at=now))
        record = db.get(WorkerRecord, worker_id, with_for_update=True)
        if record is None:
            raise PurchaseError("Unknown worker: connect it once first.", "worker_not_found", 404, "worker_id")
        if record.bond > 0 and (record.bond_payer or "").lower() != payer.lower():
            paid_by = record.bond_payer or "an unrecorded wallet"
            raise PurchaseError(f"This worker's bond was paid by {paid_by}; it takes no money from another wallet until "
                                "that bond is paid back (unbond first).", "bond_payer_mismatch", 409, "payer_sig")  # fmt: skip
        db.add(Bond(tx_hash=tx_hash, worker=worker_id, amount=paid, at=now, payer=payer))
        record.bond += paid
        record.bond_payer, record.unbond_at = payer, None
        db.add(record)
        db.commit()
        return BondClaim(status="confirmed", confirmations=seen, added=paid, bond=record.bond)


def recover_payer(worker_id: str, tx_hash: str, payer_sig: str) -> str:
    """The wallet whose EIP-191 signature `payer_sig` is over this worker's claim of this transfer."""
    try:
        return Account.recover_message(encode_defunct(text=bond_claim(worker_id, tx_hash)), signature=payer_sig)
    except (BadSignature, ValueError):  # ValueError: not hex, or a v byte no signer makes
        raise PurchaseError("payer_sig is not a wallet signature.", "bad_signature", 401, "payer_sig") from None


def request_unbond(worker: str, sig: str, delay_s: int) -> float:
    """Start unbonding, asked with the worker key's signature over `unbond_request`: settlement pays the bond back
    once the delay has passed (unless an audit slashes it first). Returns when (or PurchaseError)."""
    if not verify_hex(worker, unbond_request(worker), sig):
        raise PurchaseError("The signature is not the worker key's.", "bad_signature", 401, "sig")
    with session() as db:
        record = db.get(WorkerRecord, worker)
        if record is None or record.bond <= 0:
            raise PurchaseError("this worker has no bond", "no_bond", 404, "worker_id")
        if record.unbond_at is None:
            record.unbond_at = time.time() + delay_s
            db.add(record)
            db.commit()
        return record.unbond_at
