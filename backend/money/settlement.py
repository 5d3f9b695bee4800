"""Settlement: receipts become money.

Every epoch (ONE_SETTLEMENT_EPOCH_S, 6 h by default) the coordinator closes the receipts appended since
the last epoch: an RFC 9162 Merkle root over their hashes, a head it signs, and the root anchored in the
EpochAnchor contract. Then each worker is paid its earnings in USDC from the treasury, net of the
network's cut tau: Included-lane credits count at the catalog rate (1 micro-credit = 1 micro-USDC).
Payouts are one row per (epoch, worker) and the signed transaction is stored before it is sent, so
settling twice, or again after a crash mid-batch, pays every worker once. One settler runs at a time
(`settlement_lock`): the coordinator's loop and any `one settle` take turns instead of racing for nonces.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import rlp
from eth_account import Account
from nacl.signing import SigningKey
from sqlalchemy import literal, text
from sqlmodel import col, select
from web3.exceptions import TimeExhausted, TransactionNotFound

from backend.chain import address_problem, anchor_at, connect, token_at
from backend.config import Settings
from backend.db import get_engine, session
from backend.db.models import BondRefund, EpochHead, LedgerEntry, Payout, ReceiptRecord, WorkerRecord
from backend.money.ledger import BPS, CHARGE_KEY_PREFIX
from backend.protocol import merkle
from backend.protocol import receipt as rc
from backend.protocol.signing import public_hex, sign_hex
from backend.trust.audits import audited_receipts, quarantined_workers, reliability
from backend.trust.receipts import rfc3339_now

log = logging.getLogger("one.settlement")
HEAD_VERSION = 1


def remember_worker(worker_id: str, kind: str, payout_address: str) -> float:
    """Keep where a worker key's payouts go (its latest hello wins); returns its reliability."""

    now = time.time()
    with session() as db:
        row = db.get(WorkerRecord, worker_id)
        if row is None:
            db.add(WorkerRecord(id=worker_id, kind=kind, payout_address=payout_address, first_seen=now, last_seen=now))
        else:
            row.kind, row.payout_address, row.last_seen = kind, payout_address, now
            db.add(row)
        db.commit()
        return reliability(db.get(WorkerRecord, worker_id))


# ---- epochs: Merkle root, signed head, inclusion proofs ----


def close_epoch(key: SigningKey) -> dict[str, Any] | None:
    """Close the open epoch over every receipt appended since the last one; None when there are none."""
    with session() as db:
        last = db.exec(select(EpochHead).order_by(col(EpochHead.epoch).desc())).first()
        first_seq = last.last_seq + 1 if last else 0
        rows = db.exec(select(ReceiptRecord.seq, ReceiptRecord.hash).where(ReceiptRecord.seq >= first_seq).order_by(col(ReceiptRecord.seq))).all()
        if not rows:
            return None
        head: dict[str, Any] = {
            "v": HEAD_VERSION, "epoch": last.epoch + 1 if last else 0, "first_seq": first_seq, "last_seq": rows[-1][0],
            "size": len(rows), "root": merkle.root([bytes.fromhex(h) for _, h in rows]).hex(),
            "prev": json.loads(last.head)["hash"] if last else rc.GENESIS_PREV, "closed_at": rfc3339_now(),
            "coordinator": public_hex(key),
        }  # fmt: skip
        digest = rc.receipt_hash(head)  # sha256 of the JCS form without hash/sig, exactly as for receipts
        signed = {**head, "hash": digest, "sig": sign_hex(key, bytes.fromhex(digest))}
        db.add(EpochHead(epoch=head["epoch"], first_seq=first_seq, last_seq=head["last_seq"], root=head["root"], head=json.dumps(signed)))
        db.commit()
    log.info("epoch %s closed: receipts %s..%s, root %s", head["epoch"], first_seq, head["last_seq"], head["root"][:16])
    return signed


def epochs(limit: int = 50) -> list[dict[str, Any]]:
    with session() as db:
        rows = db.exec(select(EpochHead).order_by(col(EpochHead.epoch).desc()).limit(limit)).all()
    return [{**json.loads(r.head), "anchor_tx": r.anchor_tx} for r in rows]


def inclusion_proof(receipt_hash: str) -> dict[str, Any] | None:
    """The audit path of a receipt in its epoch's tree, with the signed head; None if not in a closed epoch."""
    with session() as db:
        record = db.exec(select(ReceiptRecord).where(ReceiptRecord.hash == receipt_hash)).first()
        if record is None:
            return None
        epoch = db.exec(select(EpochHead).where(EpochHead.first_seq <= record.seq, EpochHead.last_seq >= record.seq)).first()
        if epoch is None:
            return None
    tree = epoch_tree(epoch.root, epoch.first_seq, epoch.last_seq)
    index = record.seq - epoch.first_seq
    return {"receipt": receipt_hash, "epoch": epoch.epoch, "leaf_index": index, "tree_size": tree.size,
            "audit_path": [p.hex() for p in tree.path(index)], "head": json.loads(epoch.head), "anchor_tx": epoch.anchor_tx}  # fmt: skip


@lru_cache(maxsize=4)
def epoch_tree(root: str, first_seq: int, last_seq: int) -> merkle.Tree:
    """A closed epoch's tree, built once: its receipts never change, and every proof request would rebuild it.
    Keyed by the epoch's signed root, so a cached tree can only answer for the receipts it was built from."""
    with session() as db:
        hashes = db.exec(select(ReceiptRecord.hash).where(ReceiptRecord.seq >= first_seq, ReceiptRecord.seq <= last_seq)
                         .order_by(col(ReceiptRecord.seq))).all()  # fmt: skip
    tree = merkle.Tree([bytes.fromhex(h) for h in hashes])
    if tree.root().hex() != root:
        raise RuntimeError(f"receipts {first_seq}..{last_seq} no longer hash to their epoch's root")
    return tree


# ---- what each worker earned ----


@dataclass
class Earning:
    worker: str
    payout_address: str
    receipts: int
    gross: int
    fee: int
    withheld: int

    @property
    def net(self) -> int:
        return self.gross - self.fee - self.withheld


def tally(receipts: Iterable[dict[str, Any]], debited: Mapping[str, int], payout_addresses: dict[str, str], fee_bps: int,
          quarantined: frozenset[str] = frozenset(), verified: frozenset[str] = frozenset()) -> list[Earning]:  # fmt: skip
    """Per worker: gross = what its receipts actually took from accounts (`debited`, receipt hash -> micro-units
    debited by the ledger; never more than the receipt's charge), so unmetered work and audits earn nothing;
    withheld: work of a quarantined worker that no audit verified, or all of it when there is no payout address;
    tau = the rest * fee_bps // 10000. Integers throughout: gross == fee + withheld + net for every worker."""
    gross: dict[str, int] = {}
    held: dict[str, int] = {}
    counts: dict[str, int] = {}
    for receipt in receipts:
        if receipt["kind"] == "audit":
            continue
        worker = receipt["worker"]["id"]
        amount = min(int(receipt["charge"]["amount"]), int(debited.get(receipt.get("hash", ""), 0)))
        gross[worker] = gross.get(worker, 0) + amount
        counts[worker] = counts.get(worker, 0) + 1
        if worker in quarantined and receipt.get("hash") not in verified:
            held[worker] = held.get(worker, 0) + amount
    out = []
    for worker in sorted(gross):
        address = payout_addresses.get(worker, "")
        withheld = held.get(worker, 0) if address_problem(address) is None else gross[worker]
        fee = (gross[worker] - withheld) * fee_bps // BPS
        out.append(Earning(worker, address, counts[worker], gross[worker], fee, withheld))
    return out


def plan_payouts(settings: Settings) -> int:
    """Write the payout rows of every closed epoch that has none yet (in the same transaction per epoch)."""

    quarantined = quarantined_workers()
    verified = frozenset(h for w in quarantined for h in audited_receipts(w))
    planned = 0
    with session() as db:
        settled = set(db.exec(select(Payout.epoch).distinct()).all())
        addresses = {w.id: w.payout_address for w in db.exec(select(WorkerRecord)).all()}
        for epoch in db.exec(select(EpochHead).order_by(col(EpochHead.epoch))).all():
            if epoch.epoch in settled:
                continue
            rows = db.exec(
                select(ReceiptRecord.stored, LedgerEntry.amount)
                .join(LedgerEntry, LedgerEntry.key == literal(CHARGE_KEY_PREFIX).concat(ReceiptRecord.hash), isouter=True)
                .where(ReceiptRecord.seq >= epoch.first_seq, ReceiptRecord.seq <= epoch.last_seq)
            ).all()  # fmt: skip
            receipts = [json.loads(stored) for stored, _ in rows]
            debited = {r["hash"]: -amount for r, (_, amount) in zip(receipts, rows) if amount is not None}
            for e in tally(receipts, debited, addresses, settings.settlement_fee_bps, quarantined, verified):
                db.add(Payout(epoch=epoch.epoch, worker=e.worker, payout_address=e.payout_address, receipts=e.receipts, gross=e.gross,
                              fee=e.fee, withheld=e.withheld, net=e.net, status="due" if e.net > 0 else "nothing"))  # fmt: skip
                planned += 1
            db.commit()
    return planned


# ---- the chain side: anchoring and paying, resumable ----


class Unsettled(RuntimeError):
    """A sent transaction whose outcome is not known yet: keep it, and send that same transaction again later."""


class Treasury:
    """Signs with the treasury key; every transaction is signed, stored, then sent."""

    RECEIPT_WAIT_S = 120.0  # how long one run waits for a transaction to be mined

    def __init__(self, settings: Settings, w3):

        self.settings, self.w3 = settings, w3
        self.account = Account.from_key(settings.treasury_private_key())
        if settings.treasury_address and self.account.address.lower() != settings.treasury_address.lower():
            raise ValueError("the treasury key (ONE_TREASURY_KEY_FILE or ONE_TREASURY_KEY) is not the key of ONE_TREASURY_ADDRESS")

    def sign(self, call) -> tuple[str, str]:
        tx = call.build_transaction({"from": self.account.address, "chainId": self.settings.chain_id,
                                     "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending")})  # fmt: skip
        signed = self.account.sign_transaction(tx)
        return "0x" + bytes(signed.hash).hex().removeprefix("0x"), "0x" + bytes(signed.raw_transaction).hex().removeprefix("0x")

    def send(self, tx_hash: str, raw_tx: str) -> bool:
        """True when it succeeded on chain, False when it provably moved nothing (see `outcome`)."""
        return self.outcome(tx_hash, raw_tx) is None

    def outcome(self, tx_hash: str, raw_tx: str) -> str | None:
        """Broadcast (again, if a crash left it unsent) and wait. None: it succeeded on chain. A reason: it provably
        moved nothing and never will (it reverted, or another treasury transaction took its nonce), seen
        `confirmations` blocks deep, so a new transaction may take its place. Raises Unsettled when neither is
        known (not mined in time): then only this same transaction may be sent again, never a second one."""

        receipt = self._receipt(tx_hash)
        if receipt is None and not self._nonce_taken(raw_tx):
            try:
                self.w3.eth.send_raw_transaction(raw_tx)
            except Exception as exc:  # already in the pool, or already mined under this nonce: the receipt tells
                log.info("resending %s: %s", tx_hash[:12], exc)
            try:
                receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.RECEIPT_WAIT_S)
            except TimeExhausted:
                pass
        if receipt is None:
            taken = self._nonce_taken(raw_tx)
            receipt = self._receipt(tx_hash)  # read after the nonce: still none means another transaction holds it
            if receipt is None and taken:
                return "never mined: another treasury transaction took its nonce"
            if receipt is None:
                raise Unsettled(f"sent, not mined within {self.RECEIPT_WAIT_S:g} s")
        if receipt["status"] == 1:
            return None
        if self.w3.eth.block_number - receipt["blockNumber"] + 1 < self.settings.confirmations:
            raise Unsettled(f"reverted in block {receipt['blockNumber']}, not yet {self.settings.confirmations} blocks deep")
        return f"reverted on chain in block {receipt['blockNumber']}"

    def _receipt(self, tx_hash: str):

        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _nonce_taken(self, raw_tx: str) -> bool:
        """Whether the treasury's transactions `confirmations` blocks deep already used this one's nonce."""

        raw = bytes.fromhex(raw_tx.removeprefix("0x"))
        legacy = raw[0] >= 0xC0  # else an EIP-2718 typed transaction: a type byte, then chainId, nonce, ...
        nonce = int.from_bytes(rlp.decode(raw)[0] if legacy else rlp.decode(raw[1:])[1], "big")
        deep = self.w3.eth.block_number - self.settings.confirmations + 1
        return deep >= 0 and self.w3.eth.get_transaction_count(self.account.address, block_identifier=deep) > nonce


def anchor_epochs(settings: Settings, w3) -> int:
    """Write each closed epoch's root into EpochAnchor once (skips what is already on chain)."""

    treasury, contract, done = Treasury(settings, w3), anchor_at(w3, settings.anchor_address), 0
    with session() as db:
        for epoch in db.exec(select(EpochHead).where(col(EpochHead.anchor_tx).is_(None)).order_by(col(EpochHead.epoch))).all():
            on_chain = contract.functions.roots(epoch.epoch).call()
            if on_chain == bytes(32):
                tx_hash, raw = treasury.sign(contract.functions.anchor(epoch.epoch, bytes.fromhex(epoch.root), epoch.last_seq - epoch.first_seq + 1))
                if not treasury.send(tx_hash, raw):
                    raise RuntimeError(f"anchoring epoch {epoch.epoch} failed on chain")
            elif on_chain.hex() != epoch.root:
                raise RuntimeError(f"epoch {epoch.epoch}: the chain holds another root")
            else:  # anchored by a run that crashed before recording it
                tx_hash = contract.events.Anchored.get_logs(argument_filters={"epoch": epoch.epoch}, from_block=0)[0]["transactionHash"].hex()
            epoch.anchor_tx = tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash
            db.add(epoch)
            db.commit()
            done += 1
    return done


PAYABLE = ("signed", "due", "failed")


def pay(settings: Settings, w3) -> Counter[str]:
    """Pay every due payout and bond refund, each on its own: a row that cannot be paid is marked `failed` with
    its reason and the run goes on to the next; every later run retries it. Signed rows go first (their stored
    transaction, same nonce). A row gets a new transaction only when its last one provably moved nothing; one
    whose outcome is unknown stays `signed` and the same transaction is sent again: never two live ones per row.
    Returns how many rows ended in each status."""

    treasury, usdc = Treasury(settings, w3), token_at(w3, settings.usdc_token_address)
    with session() as db:
        rows = [*db.exec(select(Payout).where(col(Payout.status).in_(PAYABLE)).order_by(col(Payout.epoch), col(Payout.worker))).all(),
                *db.exec(select(BondRefund).where(col(BondRefund.status).in_(PAYABLE)).order_by(col(BondRefund.id))).all()]  # fmt: skip
        rows.sort(key=lambda r: r.status != "signed")  # finish interrupted payments before taking new nonces
        for row in rows:
            _pay_row(db, treasury, usdc, row)
        return Counter(row.status for row in rows)


def _pay_row(db, treasury: Treasury, usdc, row: Payout | BondRefund) -> None:
    """Move one row on: sign a transfer when it has no live transaction, then send what is stored."""
    if row.status != "signed":  # due, or failed by a transaction that provably moved nothing
        if isinstance(row, Payout):
            _readdress(db, row)
        if problem := address_problem(row.payout_address):
            return _record(db, row, "failed", f"payout address {row.payout_address!r} {problem}")
        try:
            row.tx_hash, row.raw_tx = treasury.sign(usdc.functions.transfer(treasury.w3.to_checksum_address(row.payout_address), row.net))
        except Exception as exc:  # nothing signed, nothing sent: the next run may sign afresh
            return _record(db, row, "failed", f"transfer not signed: {_reason(exc)}")
        _record(db, row, "signed", None)  # stored before it is sent: a crash from here on resends this very transaction
    try:
        moved_nothing = treasury.outcome(row.tx_hash, row.raw_tx)
    except Exception as exc:  # sent, outcome unknown: it stays the row's one transaction
        return _record(db, row, "signed", f"outcome unknown, the same transaction is sent again next run: {_reason(exc)}")
    if moved_nothing:
        return _record(db, row, "failed", f"transaction {row.tx_hash} moved nothing ({moved_nothing}); a new one is signed next run")
    _record(db, row, "paid", None)


def _readdress(db, row: Payout) -> None:
    """A payout planned to an address USDC cannot reach (a row from before hellos were checked) goes to the
    worker's current payout address once its hello has given a good one."""
    worker = db.get(WorkerRecord, row.worker)
    if address_problem(row.payout_address) and worker and not address_problem(worker.payout_address):
        row.payout_address = worker.payout_address


def _record(db, row: Payout | BondRefund, status: str, failure: str | None) -> None:
    row.status, row.failure = status, failure[:500] if failure else None
    db.add(row)
    db.commit()
    kind = "payout" if isinstance(row, Payout) else "bond refund"
    if failure:
        log.warning("%s of %s micro-USDC to %s: %s (%s)", kind, row.net, row.payout_address, status, failure)
    else:
        log.info("%s of %s micro-USDC to %s: %s", kind, row.net, row.payout_address, status)


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:300]


def plan_refunds(now: float | None = None) -> int:
    """Bonds whose unbonding delay has passed become refunds to the wallet that paid them, never to the
    payout address (a hello sets that, unchecked). Quarantined workers' bonds stay locked, and so do bonds
    claimed before payers were recorded (no payer known)."""
    now = time.time() if now is None else now
    with session() as db:
        due = db.exec(select(WorkerRecord).where(col(WorkerRecord.unbond_at) <= now, WorkerRecord.bond > 0, WorkerRecord.quarantined == False,  # noqa: E712
                                                 col(WorkerRecord.bond_payer).is_not(None)).with_for_update()).all()  # fmt: skip
        for record in due:  # the bond moves to a refund row in the same transaction: never refunded twice
            db.add(BondRefund(worker=record.id, payout_address=record.bond_payer, net=record.bond, status="due", at=now))
            record.bond, record.unbond_at = 0, None
            db.add(record)
        db.commit()
        return len(due)


# ---- one settler at a time ----

LOCK_ID = int.from_bytes(b"ONEsettl", "big") >> 1  # a fixed 63-bit key for pg_advisory_lock
LOCK_POLL_S = 0.25


class SettlementBusy(RuntimeError):
    """Another settler (the coordinator's loop or a `one settle`) holds the lock."""


@contextmanager
def settlement_lock(settings: Settings, wait_s: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Held for a whole settlement run, across processes: a Postgres advisory lock on Postgres, an flock
    beside the database file on SQLite. Both die with their holder, so a killed settler never leaves it
    stuck. Waits up to `wait_s` (None: as long as it takes, 0: not at all), calling `on_wait` once if it must wait."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    engine = get_engine()
    lock = _advisory_lock(engine) if engine.dialect.name == "postgresql" else _file_lock(settings, engine.url.database)
    with lock as (try_lock, unlock):
        _acquire(try_lock, deadline, on_wait)
        try:
            yield
        finally:
            unlock()


@contextmanager
def _advisory_lock(engine) -> Iterator[tuple[Callable[[], bool], Callable[[], None]]]:
    """pg_advisory_lock on a connection of its own: the server lets go if that connection dies."""

    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield (lambda: bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_ID}).scalar()),
               lambda: conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_ID}))  # fmt: skip
    finally:
        conn.close()


@contextmanager
def _file_lock(settings: Settings, database: str | None) -> Iterator[tuple[Callable[[], bool], Callable[[], None]]]:
    """flock on a file beside the SQLite database: the kernel lets go if the process dies."""
    path = Path(f"{database}.settlement-lock") if database and database != ":memory:" else settings.data_dir / "settlement.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:

        def try_lock() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        yield try_lock, lambda: fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(try_lock: Callable[[], bool], deadline: float | None, on_wait: Callable[[], None] | None) -> None:
    waited = False
    while not try_lock():
        if deadline is not None and time.monotonic() >= deadline:
            raise SettlementBusy("another settlement run is in progress; try again when it has finished")
        if not waited and on_wait:
            on_wait()
        waited = True
        time.sleep(LOCK_POLL_S)


def settle(settings: Settings, key: SigningKey, wait_s: float | None = None, on_wait: Callable[[], None] | None = None) -> dict[str, Any]:
    """Close the open epoch, anchor it, plan and send payouts. Safe to run again at any point; runs alone
    (`settlement_lock`), so two settlers never sign the same payout with two nonces."""

    with settlement_lock(settings, wait_s, on_wait):
        head = close_epoch(key)
        w3 = connect(settings.chain_rpc_url) if settings.chain_rpc_url else None
        anchored = anchor_epochs(settings, w3) if w3 and settings.anchor_address and settings.treasury_private_key() else 0
        planned = plan_payouts(settings) + plan_refunds()
        sent = pay(settings, w3) if w3 and settings.treasury_private_key() and settings.usdc_token_address else Counter()
    return {"closed": head, "anchored": anchored, "planned": planned, "paid": sent["paid"], "failed": sent["failed"], "unsettled": sent["signed"]}


def payouts(epoch: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with session() as db:
        query = select(Payout).order_by(col(Payout.epoch).desc(), col(Payout.worker)).limit(limit)
        if epoch is not None:
            query = query.where(Payout.epoch == epoch)
        return [r.model_dump(exclude={"raw_tx"}) for r in db.exec(query).all()]


def failed_payments(limit: int = 50) -> list[dict[str, Any]]:
    """Payouts and bond refunds whose last attempt failed or whose outcome is still unknown, with the reason:
    what an operator may have to fix (fund the treasury...). Every settlement run retries them."""
    with session() as db:
        rows = [*db.exec(select(Payout).where(col(Payout.failure).is_not(None)).order_by(col(Payout.epoch).desc()).limit(limit)).all(),
                *db.exec(select(BondRefund).where(col(BondRefund.failure).is_not(None)).order_by(col(BondRefund.id).desc()).limit(limit)).all()]  # fmt: skip
        return [{"kind": "payout" if isinstance(r, Payout) else "bond refund", "epoch": getattr(r, "epoch", None), "worker": r.worker,
                 "payout_address": r.payout_address, "net": r.net, "status": r.status, "tx_hash": r.tx_hash, "failure": r.failure}
                for r in rows][:limit]  # fmt: skip


async def settlement_loop(settings: Settings, key: SigningKey) -> None:
    """Inside the coordinator: settle once per epoch (the `one settle` command does the same on demand)."""
    while True:
        await asyncio.sleep(settings.settlement_epoch_s)
        try:
            await asyncio.to_thread(settle, settings, key, 0)
        except SettlementBusy:  # a `one settle` is at it; it closes this epoch's receipts too
            log.info("settlement skipped: another settler is running")
        except Exception:  # the next epoch retries; rows already written keep payments exactly-once
            log.exception("settlement failed; will retry next epoch")
