"""Buying a Dedicated package: a USDC transfer to the treasury, proven by its transaction hash.

Checked on chain: the transaction succeeded; it moved the configured USDC token (not another ERC-20);
to the treasury; from the signed-in wallet; at least the package price; with enough confirmations
(fewer: "pending", nothing recorded, ask again later). A transaction hash buys once: the ledger key
`purchase:<tx hash>` is unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend import auth, ledger
from backend.catalog import Package

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


class PurchaseError(Exception):
    def __init__(self, reason: str, code: str):
        super().__init__(reason)
        self.reason, self.code = reason, code


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
    """(status, confirmations seen, amount paid in micro-USDC) or PurchaseError. `buyer_role` names the
    expected sender in the refusal (the signed-in wallet for purchases, the payout address for bonds)."""
    from web3.exceptions import TransactionNotFound

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


def purchase(w3, *, account: str, package: Package, tx_hash: str, usdc: str, treasury: str, confirmations: int) -> Purchase:
    """Verify the payment; once confirmed, credit the package balance once and issue its API key (shown once)."""
    tx_hash = tx_hash.lower()
    if ledger.has_key(f"purchase:{tx_hash}") or _is_bond(tx_hash):
        raise PurchaseError("this transaction already bought a package", "tx_already_used")
    status, seen, paid = verify_payment(
        w3, tx_hash, usdc=usdc, treasury=treasury, buyer=account, price=package.price, confirmations=confirmations
    )
    if status == "pending":
        return Purchase(status="pending", confirmations=seen, package=package.id)
    if not ledger.grant(f"purchase:{tx_hash}", account, "usdc", package.balance, "purchase"):
        raise PurchaseError("this transaction already bought a package", "tx_already_used")
    key = auth.create_key(account, "dedicated", package.id, ttl_s=package.duration_s)
    return Purchase(status="confirmed", confirmations=seen, package=package.id, api_key=key, amount=paid)


def _is_bond(tx_hash: str) -> bool:
    """A transfer claimed as a worker's bond cannot also buy a package."""
    from backend.db import session
    from backend.db.models import Bond

    with session() as db:
        return db.get(Bond, tx_hash) is not None
