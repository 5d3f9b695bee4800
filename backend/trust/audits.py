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
from typing import Any, Protocol

from sqlmodel import select

from backend.config import Settings
from backend.db import session
from backend.db.models import AuditRecord, WorkerRecord
from backend.money.ledger import BPS
from backend.protocol import receipt as rc
from backend.scheduler import PRIORITY_INCLUDED, Job, Scheduler

log = logging.getLogger("one.audits")
AUDITED_TASKS = ("chat", "completion")
AUDIT_PRIORITY = PRIORITY_INCLUDED + 50  # re-runs queue behind paying work
_random = random.SystemRandom()  # auditor draws must not be predictable from earlier ones


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


class AuditRuns(Protocol):
    """What the auditor needs of the inference service (backend.serving.inference.InferenceService, which holds the
    auditor: named here as a protocol so neither module imports the other at run time both ways)."""

    async def rerun(self, job: Job, receipt: dict[str, Any], worker: str) -> dict[str, Any] | None: ...


class Auditor:
    def __init__(self, settings: Settings, scheduler: Scheduler, inference: AuditRuns):
        self.settings, self.scheduler, self.inference = settings, scheduler, inference
        self.running: set[asyncio.Task] = set()
        with session() as db:
            for record in db.exec(select(WorkerRecord).where(WorkerRecord.quarantined == True)).all():  # noqa: E712
                scheduler.quarantined.add(record.id)

    def established(self, record: WorkerRecord | None) -> bool:
        """Has a history: at least ONE_AUDIT_WARMUP passed audits and no failed one."""
        return record is not None and record.audits_passed >= self.settings.audit_warmup and record.audits_failed == 0

    def rate(self, record: WorkerRecord | None) -> float:
        if not self.established(record) or reliability(record) < 0.9:
            return self.settings.audit_new_rate
        return self.settings.audit_rate

    def consider(self, job: Job, receipt: dict[str, Any]) -> None:
        """Called after each receipt: maybe audit it (never blocks the caller)."""
        if job.task not in AUDITED_TASKS or not deterministic(job.body):
            return
        worker = receipt["worker"]["id"]
        with session() as db:
            record = db.get(WorkerRecord, worker)
        if _random.random() >= self.rate(record):
            return
        task = asyncio.get_running_loop().create_task(self.audit(job, receipt))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    def draw_auditor(self, model: str, exclude: set[str], established_only: bool = False, cluster: str | None = None,
                     nodes_only: bool = False) -> str | None:  # fmt: skip
        """A worker serving `model`, drawn at random weighted by its history of passed audits, so a fresh key (a
        colluder's new identity) is rarely the one asked; `established_only` for the worker that settles a dispute.
        A Cluster's job is audited on workers that may run its jobs (its own nodes or public ones; its private model's
        on its nodes only), and a public job never on a Cluster's node."""
        candidates = [w.worker_id for w in self.scheduler.routable()
                      if model in w.models and w.worker_id not in exclude and w.may_run(cluster, nodes_only=nodes_only)]  # fmt: skip
        if not candidates:
            return None
        with session() as db:
            records = {wid: db.get(WorkerRecord, wid) for wid in candidates}
        if established_only:
            candidates = [wid for wid in candidates if self.established(records[wid])]
            if not candidates:
                return None
        weights = [(records[wid].audits_passed + 1 if records[wid] else 1) * reliability(records[wid]) for wid in candidates]
        return _random.choices(candidates, weights=weights)[0]

    async def _rerun(self, job: Job, receipt: dict[str, Any], auditor: str) -> tuple[str, tuple, str] | None:
        """The request again on the drawn auditor: (worker id, what it produced, audit receipt hash), or None.
        What it produced = the output digest and the usage it claimed: an audit compares both."""
        audit = await self.inference.rerun(job, receipt, auditor)
        return (audit["worker"]["id"], _claim(audit), audit["hash"]) if audit else None

    async def audit(self, job: Job, receipt: dict[str, Any]) -> str:
        """Re-run on an auditor drawn by history; a disagreement is settled by a third, established worker (never
        by new workers alone, so two fresh colluders cannot outvote an honest worker), or stays inconclusive."""
        worker, claimed = receipt["worker"]["id"], _claim(receipt)
        first_auditor = await asyncio.to_thread(self.draw_auditor, job.model, {worker}, cluster=job.cluster, nodes_only=job.nodes_only)
        first = await self._rerun(job, receipt, first_auditor) if first_auditor else None
        runs = [first] if first else []
        verdict, culprit = "inconclusive", None
        if first and first[1] == claimed:
            verdict = "pass"
        elif first:
            referee = await asyncio.to_thread(self.draw_auditor, job.model, {worker, first[0]}, established_only=True, cluster=job.cluster,
                                              nodes_only=job.nodes_only)
            second = await self._rerun(job, receipt, referee) if referee else None
            if second:
                runs.append(second)
                if second[1] == claimed:  # the first auditor was the odd one out
                    verdict, culprit = "fail", first[0]
                elif second[1] == first[1]:
                    verdict, culprit = "fail", worker
        if culprit is not None and not await asyncio.to_thread(self._outweighs, {worker, first[0], second[0]} - {culprit}, culprit):
            verdict, culprit = "inconclusive", None
        await asyncio.to_thread(self._record, receipt["hash"], worker, runs, verdict, culprit)
        return verdict

    @staticmethod
    def _outweighs(majority: set[str], culprit: str) -> bool:
        """A conviction needs the agreeing pair's passed audits, together, to reach the convicted worker's: keys
        that farmed a short record (colluders auditing each other) cannot outvote a long-standing worker."""
        with session() as db:
            passed = {wid: (record.audits_passed if (record := db.get(WorkerRecord, wid)) else 0) for wid in majority | {culprit}}
        return sum(passed[w] for w in majority) >= passed[culprit]

    def _record(self, receipt_hash: str, worker: str, runs: list, verdict: str, culprit: str | None) -> None:
        now = time.time()
        auditors = [{"worker": w, "output_digest": claim[0], "audit_receipt": h} for w, claim, h in runs]
        with session() as db:
            db.add(AuditRecord(receipt=receipt_hash, worker=worker, auditors=json.dumps(auditors), verdict=verdict, culprit=culprit, at=now))
            touched = {worker} | {w for w, _, _ in runs}
            for wid in touched:
                record = db.get(WorkerRecord, wid, with_for_update=True)  # a bond claim may be adding to it right now
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


def _claim(receipt: dict[str, Any]) -> tuple:
    """What two honest runs of a deterministic job agree on: the output digest and the usage claimed."""
    return (receipt["output_digest"], *(receipt["usage"].get(k, 0) for k in rc.USAGE_KEYS))


def audited_receipts(worker: str) -> set[str]:
    """Receipts of a worker that passed an audit (paid even when the worker is quarantined later)."""
    with session() as db:
        return set(db.exec(select(AuditRecord.receipt).where(AuditRecord.worker == worker, AuditRecord.verdict == "pass")).all())


def quarantined_workers() -> frozenset[str]:
    with session() as db:
        return frozenset(db.exec(select(WorkerRecord.id).where(WorkerRecord.quarantined == True)).all())  # noqa: E712
