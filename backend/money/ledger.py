"""The ledger: integer micro-unit movements per account, each under an idempotency key.

A request first places a hold for its maximum cost; the hold is replaced by the exact charge in the
same transaction that stores the request's receipt, or deleted if no receipt comes. Inserting the
hold before checking the balance (and, on Postgres, a per-account advisory lock) keeps concurrent
requests from overdrawing: balances never go negative.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, func, insert, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from backend.db import session
from backend.db.models import LedgerEntry

BPS = 10_000  # basis points in a whole: every *_bps setting and rate is a share of this


class InsufficientBalance(Exception):
    def __init__(self, balance: int, needed: int):
        super().__init__(f"balance {balance} < {needed}")
        self.balance, self.needed = balance, needed


def _lock_account(db: Session, account: str) -> None:
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:a, 0))"), {"a": account})


def balance_in(db: Session, account: str, unit: str, epoch: int | None = None) -> int:
    query = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account == account, LedgerEntry.unit == unit)
    if epoch is not None:
        query = query.where(LedgerEntry.epoch == epoch)
    return int(db.exec(query).one())


def balance(account: str, unit: str, epoch: int | None = None) -> int:
    """Spendable micro-units (holds already subtracted). Included-lane credits count only in their epoch."""
    with session() as db:
        return balance_in(db, account, unit, epoch)


def granted(account: str, unit: str, epoch: int | None = None) -> int:
    """Micro-units put in (allotments, purchases), before any spending: the "of" in "balance of allotment"."""
    with session() as db:
        query = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account == account, LedgerEntry.unit == unit, LedgerEntry.amount > 0
        )
        if epoch is not None:
            query = query.where(LedgerEntry.epoch == epoch)
        return int(db.exec(query).one())


def has_key(key: str) -> bool:
    with session() as db:
        return db.exec(select(LedgerEntry.id).where(LedgerEntry.key == key)).first() is not None


def credit_in(db: Session, key: str, account: str, unit: str, amount: int, kind: str, epoch: int | None = None) -> None:
    """Inside the caller's transaction: credit an account under an idempotency key."""
    _check_int(amount)
    db.add(LedgerEntry(key=key, account=account, unit=unit, epoch=epoch, amount=amount, kind=kind, created_at=time.time()))


def grant(key: str, account: str, unit: str, amount: int, kind: str, epoch: int | None = None) -> bool:
    """Credit an account once per key; False when that key was already used."""
    with session() as db:
        credit_in(db, key, account, unit, amount, kind, epoch)
        try:
            db.commit()
            return True
        except IntegrityError:
            db.rollback()
            return False


def hold(job: str, account: str, unit: str, amount: int, epoch: int | None = None) -> None:
    """Reserve `amount` for a running job or raise InsufficientBalance (nothing is reserved then)."""
    _check_int(amount)
    with session() as db:
        _lock_account(db, account)
        db.add(LedgerEntry(key=f"hold:{job}", account=account, unit=unit, epoch=epoch, amount=-amount, kind="hold", created_at=time.time()))
        db.flush()
        left = balance_in(db, account, unit, epoch)
        if left < 0:
            db.rollback()
            raise InsufficientBalance(left + amount, amount)
        db.commit()


def release(job: str) -> None:
    """The job ended without a receipt: give its hold back."""
    with session() as db:
        db.exec(delete(LedgerEntry).where(LedgerEntry.key == f"hold:{job}"))
        db.commit()


CHARGE_KEY_PREFIX = "charge:"  # + receipt hash: the debit a receipt made (settlement pays only these)


_ENTRIES = LedgerEntry.__table__  # Core statements for the hot path: the ORM's bulk paths cost more than the rows


def settle_in(db: Session, settlements: list[tuple[dict[str, Any], str, int | None]]) -> None:
    """Inside the receipts' own transaction: for each (receipt, account, epoch), drop the job's hold and debit
    exactly the receipt's charge (one delete and one multi-row insert for a whole group-committed batch)."""
    db.execute(delete(_ENTRIES).where(_ENTRIES.c.key.in_([f"hold:{receipt['job']}" for receipt, _, _ in settlements])))
    now = time.time()
    db.execute(insert(_ENTRIES), [
        {"key": CHARGE_KEY_PREFIX + receipt["hash"], "account": account, "unit": receipt["charge"]["unit"], "epoch": epoch,
         "amount": -receipt["charge"]["amount"], "kind": "charge", "created_at": now}
        for receipt, account, epoch in settlements
    ])  # fmt: skip


def _check_int(amount: Any) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValueError("ledger amounts are non-negative integers (micro-units)")
