"""The receipt log: append-only, hash-linked, signed by the coordinator key.

Appends are serialised in-process by a lock and, on Postgres, across replicas by a transaction-scoped
advisory lock; the unique `seq` primary key is the last guard (a racing append fails and retries on the
new head), so the chain never forks.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

from nacl.signing import SigningKey
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from backend.db import session
from backend.db.models import ReceiptRecord
from backend.money import ledger
from backend.protocol import receipt as rc
from backend.protocol.body import charge_unit
from backend.protocol.signing import public_hex, sign_hex

_APPEND_LOCK_ID = 0x4F4E45  # "ONE": one advisory lock guards the log head across replicas


# Core statements on the table, built once: the ORM's bulk-insert and entity-select paths cost more than the write.
_TABLE = ReceiptRecord.__table__
_NEWEST = select(_TABLE.c.seq, _TABLE.c.hash).order_by(_TABLE.c.seq.desc()).limit(1)
_INSERT = insert(_TABLE)


def rfc3339_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ReceiptLog:
    """Appends go through one writer task that commits whatever is waiting as a batch (group commit):
    under load many receipts share one transaction and one thread hop; alone, a receipt waits for none."""

    def __init__(self, key: SigningKey, account_secret: bytes):
        self.key = key
        self.coordinator = public_hex(key)
        self._account_secret = account_secret
        self._waiting: list[tuple[dict[str, Any], asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    def account_ref(self, account_id: str) -> str:
        """How receipts name an account: a keyed digest only this coordinator can compute (receipt `account`)."""
        return rc.account_digest(account_id, self._account_secret)

    async def append(self, **fields: Any) -> dict[str, Any]:
        """Build, hash, sign and store the next receipt; returns it with `hash` and `sig`.

        `settle=(account, epoch)` also debits the receipt's charge (and drops the job's hold) atomically. A caller
        cancelled while it waits still gets its receipt stored (the writer skips answering it): no shield needed,
        which halves what an append costs the event loop.
        """
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((fields, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        return await done

    async def append_own(self, *, job: str, kind: str, lane: str, account: str, model: str, request_digest: str, output_digest: str,
                         parent: str | None) -> dict[str, Any]:  # fmt: skip
        """Work the coordinator did itself (a tool call for an agent, an audit's outcome): its own key attests it in
        the worker slot, with no usage and no charge."""
        usage = {"input_tokens": 0, "output_tokens": 0, "images": 0}
        statement = rc.attestation(job, model, request_digest, output_digest, usage)
        return await self.append(
            job=job, kind=kind, lane=lane, account=account, model=model, request_digest=request_digest, output_digest=output_digest,
            usage=usage, charge_unit=charge_unit(lane), charge_amount=0, worker_id=self.coordinator, worker_sig=sign_hex(self.key, rc.jcs(statement)),
            parent=parent,
        )  # fmt: skip

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                stored = await asyncio.to_thread(self._append_batch, [fields for fields, _ in batch])
            except Exception as exc:  # the whole batch failed: nothing was stored
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), receipt in zip(batch, stored):
                if not done.done():
                    done.set_result(receipt)

    def _append_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for _ in range(5):
            try:
                return self._append_sync(batch)
            except IntegrityError:  # another replica took this seq: rebuild on the new head
                continue
        raise RuntimeError("receipt log contention: could not append after 5 tries")

    def _append_sync(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One transaction for the whole batch: lock (Postgres), read the head's seq and hash, then chain, hash and
        sign each receipt and write them all in one multi-row insert (a Core executemany: no ORM object per
        receipt), with the charges of those that settle, and commit. Each receipt is serialised once for its hash
        (JCS) and once for the stored row."""
        with session() as db:
            if db.get_bind().dialect.name == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPEND_LOCK_ID})
            head = db.execute(_NEWEST).first()
            seq, prev = (head.seq + 1, head.hash) if head else (0, rc.GENESIS_PREV)
            ts = rfc3339_now()  # the batch is appended at one instant: one timestamp for all of it
            out, rows, settlements = [], [], []
            for fields in batch:
                fields = dict(fields)
                settle = fields.pop("settle", None)
                body = rc.build_receipt(seq=seq, prev=prev, ts=ts, coordinator=self.coordinator, **fields)
                digest = rc.receipt_hash(body)
                stored = {**body, "hash": digest, "sig": sign_hex(self.key, bytes.fromhex(digest))}
                rows.append({"seq": seq, "hash": digest, "job": body["job"], "account": body["account"], "ts": ts,
                             "stored": json.dumps(stored)})  # fmt: skip
                if settle is not None:  # the charge lands in the same transaction as its receipt
                    settlements.append((stored, *settle))
                out.append(stored)
                seq, prev = seq + 1, digest
            db.execute(_INSERT, rows)
            if settlements:
                ledger.settle_in(db, settlements)
            db.commit()
            return out

    @staticmethod
    def get(receipt_hash: str) -> dict[str, Any] | None:
        with session() as db:
            row = db.exec(select(ReceiptRecord).where(ReceiptRecord.hash == receipt_hash)).first()
            return json.loads(row.stored) if row else None

    @staticmethod
    def chain(start_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Receipts in seq order from `start_seq`, for export and verification."""
        with session() as db:
            rows = db.exec(
                select(ReceiptRecord).where(ReceiptRecord.seq >= start_seq).order_by(col(ReceiptRecord.seq)).limit(limit)
            ).all()
            return [json.loads(r.stored) for r in rows]

    @staticmethod
    def tail(limit: int = 20) -> list[dict[str, Any]]:
        """The newest receipts, newest first (operator dashboard)."""
        with session() as db:
            rows = db.exec(select(ReceiptRecord).order_by(col(ReceiptRecord.seq).desc()).limit(limit)).all()
            return [json.loads(r.stored) for r in rows]

    def usage_by_model(self, account_id: str, limit: int = 5000) -> list[dict[str, Any]]:
        """An account's requests, usage and charges per model and unit, summed from its newest receipts."""
        return self.usage(account_id, limit)["by_model"]

    def usage(self, account_id: str, limit: int = 5000) -> dict[str, list[dict[str, Any]]]:
        """An account's usage summed from its newest receipts in one read: per model and unit (`by_model`) and per
        UTC day and unit (`by_day`, oldest first: the balance page's plot of usage over time)."""
        with session() as db:
            rows = db.exec(
                select(ReceiptRecord.stored).where(ReceiptRecord.account == self.account_ref(account_id))
                .order_by(col(ReceiptRecord.seq).desc()).limit(limit)
            ).all()  # fmt: skip
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        days: dict[tuple[str, str], dict[str, Any]] = {}
        for stored in rows:
            receipt = json.loads(stored)
            unit = receipt["charge"]["unit"]
            row = totals.setdefault((receipt["model"], unit), {"model": receipt["model"], "unit": unit, "requests": 0, "charged": 0,
                                                              **{k: 0 for k in rc.USAGE_KEYS}})  # fmt: skip
            row["requests"] += 1
            row["charged"] += receipt["charge"]["amount"]
            for k in rc.USAGE_KEYS:
                row[k] += receipt["usage"].get(k, 0)
            day = days.setdefault((receipt["ts"][:10], unit), {"day": receipt["ts"][:10], "unit": unit, "requests": 0, "charged": 0})
            day["requests"] += 1
            day["charged"] += receipt["charge"]["amount"]
        return {"by_model": sorted(totals.values(), key=lambda r: (-r["charged"], r["model"])), "by_day": sorted(days.values(), key=lambda d: (d["day"], d["unit"]))}

    @staticmethod
    def billed_by_worker(worker_id: str, limit: int = 20000) -> dict[str, Any]:
        """Receipts a worker signed and what they charged, per unit (settlement pays from this)."""
        needle = f'"worker": {{"id": "{worker_id}"'
        with session() as db:
            rows = db.exec(
                select(ReceiptRecord.stored).where(col(ReceiptRecord.stored).contains(needle)).order_by(col(ReceiptRecord.seq).desc()).limit(limit)
            ).all()
        billed: dict[str, int] = {}
        for stored in rows:
            charge = json.loads(stored)["charge"]
            billed[charge["unit"]] = billed.get(charge["unit"], 0) + charge["amount"]
        return {"receipts": len(rows), "billed": billed}
