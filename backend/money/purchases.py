"""Buying a Dedicated package: a USDC transfer to the treasury, proven by its transaction hash.

Checked on chain: the transaction succeeded; it moved the configured USDC token (not another ERC-20);
to the treasury; from the signed-in wallet; at least the package price; with enough confirmations
(fewer: "pending", nothing recorded, ask again later). A transfer buys one thing once, a package or a
bond (backend/money/bonds.py): its consumed_tx row is written in the same database transaction as what it
bought, so the primary key on the tx hash decides every race. The wallet that bought a package may ask
again with the same transfer (its answer may have been lost): it gets a fresh key for that package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from web3.exceptions import TransactionNotFound

from backend.access import auth
from backend.api.errors import ApiError
from backend.catalog import Package
from backend.db import session
from backend.db.models import ConsumedTx
from backend.money import ledger

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


class PurchaseError(ApiError):
    """A refused purchase, bond claim or unbond request, in the API's error shape (a 400 about `tx_hash` unless said)."""

    def __init__(self, reason: str, code: str, status: int = 400, param: str = "tx_hash"):
        super().__init__(status, reason, code, param=param)
        self.reason = reason


ALREADY_USED = "this transaction was already used (for a package or a bond)"


@dataclass
class Purchase:
    status: str  # "pending" or "confirmed"
    confirmations: int
    package: str
    api_key: str | None = None
    amount: int = 0


def _addr(topic: Any) -> str:
    return "0x" + bytes(topic)[-20:].hex()


def verify_payment(w3, tx_hash: str, *, usdc: str, treasury: str, buyer: str, price: int, confirmations: int,
                   buyer_role: str = "the signed-in one") -> tuple[str, int, int]:  # fmt: skip
    """The one payment check, for packages and bonds alike: (status, confirmations seen, amount paid in
    micro-USDC) or PurchaseError. `buyer_role` names the expected sender in the refusal (the signed-in wallet
    for purchases, the claim's signer for bonds)."""
    try:
        receipt = w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return "pending", 0, 0
    except ValueError:
        raise PurchaseError("not a transaction hash", "invalid_tx_hash") from None
    if receipt["status"] != 1:
        raise PurchaseError("the transaction failed on chain", "tx_failed")
    transfers = [log for log in receipt["logs"] if log["topics"] and bytes(log["topics"][0]).hex() == TRANSFER_TOPIC]
    usdc_transfers = [log for log in transfers if log["address"].lower() == usdc.lower()]
    if not usdc_transfers:
        raise PurchaseError("the transaction moved no USDC (wrong token?)", "wrong_token")
    to_treasury = [log for log in usdc_transfers if _addr(log["topics"][2]).lower() == treasury.lower()]
    if not to_treasury:
        raise PurchaseError("the USDC did not go to the treasury", "wrong_recipient")
    from_buyer = [log for log in to_treasury if _addr(log["topics"][1]).lower() == buyer.lower()]
    if not from_buyer:
        raise PurchaseError(f"the USDC was sent by another wallet than {buyer_role}", "wrong_sender")
    paid = sum(int.from_bytes(bytes(log["data"]), "big") for log in from_buyer)
    if paid < price:
        raise PurchaseError(f"paid {paid} micro-USDC; the package costs {price}", "short_amount")
    seen = int(w3.eth.block_number) - int(receipt["blockNumber"]) + 1
    return ("confirmed" if seen >= confirmations else "pending"), seen, paid


def consume(db: Session, spent: ConsumedTx) -> None:
    """Mark a transfer used, first thing in the transaction that spends it. Of two claims racing for one
    transfer the database lets one insert commit; the other gets tx_already_used (and writes nothing)."""
    db.add(spent)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise PurchaseError(ALREADY_USED, "tx_already_used") from None


def purchase(w3, *, account: str, package: Package, tx_hash: str, usdc: str, treasury: str, confirmations: int) -> Purchase:
    """Verify the payment; once confirmed, credit the package balance and issue its API key (shown once),
    in one database transaction with the transfer's consumed_tx row."""
    tx_hash = tx_hash.lower()
    with session() as db:
        spent = db.get(ConsumedTx, tx_hash)
    if spent is not None:
        return _reissue(spent, account, package)
    status, seen, paid = verify_payment(
        w3, tx_hash, usdc=usdc, treasury=treasury, buyer=account, price=package.price, confirmations=confirmations
    )
    if status == "pending":
        return Purchase(status="pending", confirmations=seen, package=package.id)
    key, now = auth.new_secret(), time.time()
    with session() as db:
        consume(db, ConsumedTx(tx_hash=tx_hash, use="purchase", payer=account, amount=paid, package=package.id,
                               key_hash=auth.hash_key(key), at=now))  # fmt: skip
        ledger.credit_in(db, f"purchase:{tx_hash}", account, "usdc", package.balance, "purchase")
        auth.add_key(db, key, account, "dedicated", package.id, expires_at=now + package.duration_s)
        db.commit()
    return Purchase(status="confirmed", confirmations=seen, package=package.id, api_key=key, amount=paid)


def _reissue(spent: ConsumedTx, account: str, package: Package) -> Purchase:
    """The buyer asks again for a transfer that bought a package: a fresh key for the same package and
    expiry, the key issued before revoked; no second credit. Anyone else: tx_already_used."""
    if spent.use != "purchase" or spent.payer.lower() != account.lower() or spent.key_hash is None:
        raise PurchaseError(ALREADY_USED, "tx_already_used")
    if spent.package != package.id:
        reason = f"this transaction bought the `{spent.package}` package; ask for that one to get a fresh key"
        raise PurchaseError(reason, "tx_already_used")
    key = auth.new_secret()
    with session() as db:
        swapped = db.execute(  # compare-and-swap: of two retries at once, one replaces the key
            update(ConsumedTx).where(ConsumedTx.tx_hash == spent.tx_hash, ConsumedTx.key_hash == spent.key_hash)
            .values(key_hash=auth.hash_key(key))
        ).rowcount  # fmt: skip
        old = auth.revoke_key(db, spent.key_hash) if swapped else None
        if old is None:
            raise PurchaseError("a fresh key for this purchase is being issued to another request; ask again", "tx_already_used")
        auth.add_key(db, key, old.account, old.lane, old.package, old.expires_at)
        db.commit()
    return Purchase(status="confirmed", confirmations=0, package=package.id, api_key=key, amount=spent.amount)
