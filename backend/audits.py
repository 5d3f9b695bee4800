"""Audits by redundant execution, reliability and bonds.

After a deterministic job (temperature 0, or a client `seed`) the coordinator may re-run the same request
on a different worker serving the same model and compare output digests; a mismatch goes to a third
worker and the odd one out fails. New and less reliable workers are sampled more often. Each re-run is
an `audit` receipt (no charge) whose `parent` is the audited receipt, so audits are in the verifiable
log like everything else. A failed audit slashes ONE_SLASH_BPS of the worker's bond, quarantines it
(no more jobs) and withholds its unaudited earnings at settlement.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

from sqlmodel import select

from backend.config import Settings
from backend.db import session
from backend.db.models import AuditRecord, WorkerRecord
from backend.scheduler import PRIORITY_INCLUDED, Job, Scheduler

log = logging.getLogger("one.audits")
AUDITED_TASKS = ("chat", "completion")
WARMUP_AUDITS = 10  # a worker counts as new until this many audits passed
BPS = 10_000


def deterministic(body: dict[str, Any]) -> bool:
    """Two honest workers with the same weights give the same output: greedy decoding or a fixed seed."""
    return body.get("temperature") == 0 or isinstance(body.get("seed"), int)


def reliability(record: WorkerRecord | None) -> float:
    """Passed audits raise it slowly, a failed audit sinks it, usage claimed far above what was relayed pulls
    it down: (passed + 1) / (passed + 1 + 10 * failed + 2 * overclaims)."""
    if record is None:
        return 1.0
    return (record.audits_passed + 1) / (record.audits_passed + 1 + 10 * record.audits_failed + 2 * record.overclaims)


def record_overclaim(worker_id: str, scheduler: Scheduler) -> float:
    """A job's claimed usage was far above the coordinator's own count: lower the worker's reliability
    (routing weight, and a higher audit rate below 0.9). Returns the new reliability."""
    with session() as db:
        record = db.get(WorkerRecord, worker_id)
        if record is None:
            return 1.0
        record.overclaims += 1
        db.add(record)
        db.commit()
        value = reliability(record)
    conn = scheduler.workers.get(worker_id)
    if conn is not None:
        conn.reliability = value
    log.warning("worker %s… claimed far more usage than it relayed (overclaims: %d)", worker_id[:12], record.overclaims)
    return value


class Auditor:
    def __init__(self, settings: Settings, scheduler: Scheduler, inference: Any):
        self.settings, self.scheduler, self.inference = settings, scheduler, inference
        self.running: set[asyncio.Task] = set()
        with session() as db:
            for record in db.exec(select(WorkerRecord).where(WorkerRecord.quarantined == True)).all():  # noqa: E712
                scheduler.quarantined.add(record.id)

    def rate(self, record: WorkerRecord | None) -> float:
        if record is None or record.audits_passed < WARMUP_AUDITS or reliability(record) < 0.9:
            return self.settings.audit_new_rate
        return self.settings.audit_rate

    def consider(self, job: Job, receipt: dict[str, Any]) -> None:
        """Called after each receipt: maybe audit it (never blocks the caller)."""
        if job.task not in AUDITED_TASKS or not deterministic(job.body):
            return
        worker = receipt["worker"]["id"]
        with session() as db:
            record = db.get(WorkerRecord, worker)
        if random.random() >= self.rate(record):
            return
        task = asyncio.get_running_loop().create_task(self.audit(job, receipt))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _rerun(self, job: Job, receipt: dict[str, Any], exclude: set[str]) -> tuple[str, str, str] | None:
        """The request again on another worker: (worker id, output digest, audit receipt hash), or None."""
        from backend.inference import Caller, Finished, InferenceError

        if not any(job.model in w.models for w in self.scheduler.routable() if w.worker_id not in exclude):
            return None
        caller = Caller(account_id="audit", lane="included", priority=PRIORITY_INCLUDED + 50)
        try:
            async for event in self.inference.run(job.task, job.body, caller, exclude=frozenset(exclude), audit_of=receipt):
                if isinstance(event, Finished):
                    return event.receipt["worker"]["id"], event.receipt["output_digest"], event.receipt["hash"]
        except InferenceError as exc:
            log.info("audit re-run of %s failed: %s", receipt["hash"][:12], exc.message)
        return None

    async def audit(self, job: Job, receipt: dict[str, Any]) -> str:
        worker, claimed = receipt["worker"]["id"], receipt["output_digest"]
        first = await self._rerun(job, receipt, {worker})
        runs = [first] if first else []
        verdict, culprit = "inconclusive", None
        if first and first[1] == claimed:
            verdict = "pass"
        elif first:
            second = await self._rerun(job, receipt, {worker, first[0]})
            if second:
                runs.append(second)
                if second[1] == claimed:  # the first auditor was the odd one out
                    verdict, culprit = "fail", first[0]
                elif second[1] == first[1]:
                    verdict, culprit = "fail", worker
        await asyncio.to_thread(self._record, receipt["hash"], worker, runs, verdict, culprit)
        return verdict

    def _record(self, receipt_hash: str, worker: str, runs: list, verdict: str, culprit: str | None) -> None:
        now = time.time()
        auditors = [{"worker": w, "output_digest": d, "audit_receipt": h} for w, d, h in runs]
        with session() as db:
            db.add(AuditRecord(receipt=receipt_hash, worker=worker, auditors=json.dumps(auditors), verdict=verdict, culprit=culprit, at=now))
            touched = {worker} | {w for w, _, _ in runs}
            for wid in touched:
                record = db.get(WorkerRecord, wid)
                if record is None:
                    continue
                if verdict == "pass":
                    record.audits_passed += 1
                elif verdict == "fail" and wid == culprit:
                    record.audits_failed += 1
                    cut = record.bond * self.settings.slash_bps // BPS
                    record.bond -= cut
                    record.slashed += cut
                    record.quarantined = True
                elif verdict == "fail":
                    record.audits_passed += 1  # agreed with the majority
                db.add(record)
                conn = self.scheduler.workers.get(wid)
                if conn is not None:
                    conn.reliability = reliability(record)
            db.commit()
        if culprit:
            self.scheduler.quarantine(culprit)
            log.warning("audit of %s: worker %s… failed (output differs from two others); slashed and quarantined", receipt_hash[:12], culprit[:12])


def audited_receipts(worker: str) -> set[str]:
    """Receipts of a worker that passed an audit (paid even when the worker is quarantined later)."""
    with session() as db:
        return set(db.exec(select(AuditRecord.receipt).where(AuditRecord.worker == worker, AuditRecord.verdict == "pass")).all())


def quarantined_workers() -> frozenset[str]:
    with session() as db:
        return frozenset(db.exec(select(WorkerRecord.id).where(WorkerRecord.quarantined == True)).all())  # noqa: E712
