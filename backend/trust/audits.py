"""Audits: re-scoring sampled answers, redundant execution, reliability and bonds.

Every text answer is auditable: its worker sampled with the ONE sampler under a seed its attestation commits to,
and committed to the token ids. After a receipt the coordinator may (at the worker's audit rate) send a `score` job
to another worker serving the model, drawn at random: one teacher-forced pass gives each token's margin
(backend.protocol.sampler; 0 = the claimed model picks exactly that token) and `sampler.judge` reads the verdict.
An answer judged not the model's goes to a third, established worker; two agreeing scorers convict. Answers with no
token ids (an engine that cannot sample our way) are re-run instead when deterministic (temperature 0, or a client
`seed`), comparing output digests. JSON-constrained answers are re-run only (their grammar shapes every pick).

Each auditor's work is an `audit` receipt (no charge) whose `parent` is the audited receipt, and each outcome is a
coordinator-signed `audit` receipt whose output digest is the outcome document's (GET /one/audits/{receipt}): the
verdict, the scores and the auditors, so anyone can recompute reliability and slashing. New and less reliable
workers are audited more often. A failed audit slashes ONE_SLASH_BPS of the worker's bond, quarantines it (no more
jobs) and withholds its unaudited earnings at settlement.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any, Protocol

from sqlmodel import col, select

from backend.config import Settings
from backend.db import session
from backend.db.models import AuditRecord, ReceiptRecord, WorkerRecord
from backend.money.ledger import BPS
from backend.protocol import receipt as rc
from backend.protocol import sampler
from backend.protocol.body import OpenAIBody
from backend.scheduler import PRIORITY_INCLUDED, Job, Scheduler

log = logging.getLogger("one.audits")
AUDITED_TASKS = ("chat", "completion")  # re-run when deterministic
SCORED_TASKS = ("chat", "completion", "vision")  # re-scored when the worker committed to its token ids
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
        scheduler.reweigh(conn)
    log.warning("worker %s… claimed far more usage than it relayed (overclaims: %d)", worker_id[:12], record.overclaims)
    return value


class AuditRuns(Protocol):
    """What the auditor needs of the inference service (backend.serving.inference.InferenceService, which holds the
    auditor: named here as a protocol so neither module imports the other at run time both ways)."""

    async def rerun(self, job: Job, receipt: dict[str, Any], worker: str) -> dict[str, Any] | None: ...

    async def score(self, job: Job, receipt: dict[str, Any], body: dict[str, Any], worker: str) -> tuple[list[float], dict[str, Any]] | None: ...

    async def outcome(self, receipt: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]: ...


class Auditor:
    def __init__(self, settings: Settings, scheduler: Scheduler, inference: AuditRuns):
        self.settings, self.scheduler, self.inference = settings, scheduler, inference
        self.rule = sampler.AuditRule(margin_tolerance=settings.audit_margin_tolerance, honest_miss_rate=settings.audit_honest_miss_rate,
                                      false_fail_odds=settings.audit_false_fail_odds)  # fmt: skip
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

    def consider(self, job: Job, receipt: dict[str, Any], output: rc.OutputAssembler | None = None, tokens: list[list[int]] | None = None) -> None:
        """Called after each receipt: maybe audit it (never blocks the caller). A text answer with committed token ids
        is re-scored; one without is re-run when deterministic; anything else is not audited."""
        scoreable = (job.task in SCORED_TASKS and tokens is not None and output is not None and bool(receipt.get("tokens_digest"))
                     and bool(receipt.get("sampling_seed")) and not OpenAIBody(job.body).constrained())  # fmt: skip
        if not scoreable and (job.task not in AUDITED_TASKS or not deterministic(job.body)):
            return
        worker = receipt["worker"]["id"]
        with session() as db:
            record = db.get(WorkerRecord, worker)
        if _random.random() >= self.rate(record):
            return
        audit = self.audit_by_score(job, receipt, score_body(job, receipt, output, tokens)) if scoreable else self.audit(job, receipt)
        task = asyncio.get_running_loop().create_task(audit)
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    def draw_auditor(self, model: str, exclude: set[str], established_only: bool = False, cluster: str | None = None,
                     nodes_only: bool = False, task: str | None = None) -> str | None:  # fmt: skip
        """A worker serving `model`, drawn at random weighted by its history of passed audits, so a fresh key (a
        colluder's new identity) is rarely the one asked; `established_only` for the worker that settles a dispute.
        A Cluster's job is audited on workers that may run its jobs (its own nodes or public ones; its private model's
        on its nodes only), and a public job never on a Cluster's node."""
        candidates = [w.worker_id for w in self.scheduler.routable()
                      if model in w.models and w.worker_id not in exclude and w.may_run(cluster, nodes_only=nodes_only)
                      and (task is None or task in w.models[model].get("tasks", ()))]  # fmt: skip
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
        auditors = [{"worker": w, "output_digest": claim[0], "audit_receipt": h} for w, claim, h in runs]
        await self._conclude(receipt, "rerun", auditors, verdict, culprit)
        return verdict

    async def audit_by_score(self, job: Job, receipt: dict[str, Any], body: dict[str, Any]) -> str:
        """Re-score the answer on an auditor drawn by history; an answer it judges not the claimed model's is scored
        again by a third, established worker: both agreeing convicts the audited worker, the third clearing it
        convicts the first auditor (the odd one out), as with re-runs (and under the same `_outweighs` rule)."""
        worker = receipt["worker"]["id"]

        async def scored_by(exclude: set[str], established_only: bool) -> tuple[str, sampler.Judgement, str] | None:
            auditor = await asyncio.to_thread(self.draw_auditor, job.model, exclude, established_only, job.cluster, job.nodes_only, "score")
            result = await self.inference.score(job, receipt, body, auditor) if auditor else None
            return (auditor, sampler.judge(result[0], self.rule), result[1]["hash"]) if result else None

        first = await scored_by({worker}, established_only=False)
        runs = [first] if first else []
        verdict, culprit = (first[1].verdict, None) if first else ("inconclusive", None)
        if first and verdict == "fail":
            verdict = "inconclusive"
            second = await scored_by({worker, first[0]}, established_only=True)
            if second:
                runs.append(second)
                if second[1].verdict == "fail":
                    verdict, culprit = "fail", worker
                elif second[1].verdict == "pass":
                    verdict, culprit = "fail", first[0]
            if culprit is not None and not await asyncio.to_thread(self._outweighs, {worker, first[0], second[0]} - {culprit}, culprit):
                verdict, culprit = "inconclusive", None
        auditors = [{"worker": w, **judged.as_json(), "audit_receipt": h} for w, judged, h in runs]
        await self._conclude(receipt, "score", auditors, verdict, culprit)
        return verdict

    async def _conclude(self, receipt: dict[str, Any], method: str, auditors: list[dict[str, Any]], verdict: str, culprit: str | None) -> None:
        """Record the outcome (reliability, bonds, quarantine) and put it in the public log as a receipt."""
        document = outcome_document(receipt, method, auditors, verdict, culprit, self.rule)
        stored = await self.inference.outcome(receipt, document)
        await asyncio.to_thread(self._record, receipt["hash"], receipt["worker"]["id"], auditors, verdict, culprit, document, stored["hash"])

    @staticmethod
    def _outweighs(majority: set[str], culprit: str) -> bool:
        """A conviction needs the agreeing pair's passed audits, together, to reach the convicted worker's: keys
        that farmed a short record (colluders auditing each other) cannot outvote a long-standing worker."""
        with session() as db:
            passed = {wid: (record.audits_passed if (record := db.get(WorkerRecord, wid)) else 0) for wid in majority | {culprit}}
        return sum(passed[w] for w in majority) >= passed[culprit]

    def _record(self, receipt_hash: str, worker: str, auditors: list[dict[str, Any]], verdict: str, culprit: str | None,
                document: dict[str, Any], outcome_receipt: str) -> None:  # fmt: skip
        now = time.time()
        with session() as db:
            db.add(AuditRecord(receipt=receipt_hash, worker=worker, auditors=json.dumps(auditors), verdict=verdict, culprit=culprit, at=now,
                               outcome=json.dumps(document), outcome_receipt=outcome_receipt))  # fmt: skip
            touched = {worker} | {a["worker"] for a in auditors}
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
                    self.scheduler.reweigh(conn)
            db.commit()
        if culprit:
            self.scheduler.quarantine(culprit)
            log.warning("audit of %s: worker %s… failed (two others disagree with it); slashed and quarantined", receipt_hash[:12], culprit[:12])


def score_body(job: Job, receipt: dict[str, Any], output: rc.OutputAssembler, tokens: list[list[int]]) -> dict[str, Any]:
    """A `score` job's body: the request, the seed the worker committed to and its claimed tokens per choice (with the
    content it sent, so the auditor checks the ids are that answer)."""
    claimed = [sampler.ClaimedChoice(c["index"], ids, c["content"]) for c, ids in zip(output.ordered_choices(), tokens)]
    return sampler.ScoreJob(job.task, job.body, receipt["sampling_seed"], claimed).body()


def outcome_document(receipt: dict[str, Any], method: str, auditors: list[dict[str, Any]], verdict: str, culprit: str | None,
                     rule: sampler.AuditRule) -> dict[str, Any]:  # fmt: skip
    """What an audit decided, as published (its sha256 of JCS is the outcome receipt's output digest): no content, only
    hashes, keys and scores, plus the rule the scores were judged by."""
    rule_json = rule.as_json() if method == "score" else {"compare": "output_digest+usage"}
    return {"v": 1, "audited": receipt["hash"], "worker": receipt["worker"]["id"], "model": receipt["model"], "method": method,
            "auditors": auditors, "verdict": verdict, "culprit": culprit, "rule": rule_json}  # fmt: skip


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


def published_outcomes(worker: str | None, receipt: str | None, limit: int) -> list[dict[str, Any]]:
    """Outcome documents with their outcome receipts, newest first, optionally of one audited worker or receipt (one
    query: the receipt rows joined, not looked up one by one)."""
    query = select(AuditRecord.outcome, ReceiptRecord.stored).join(ReceiptRecord, ReceiptRecord.hash == AuditRecord.outcome_receipt)
    if worker:
        query = query.where(AuditRecord.worker == worker)
    if receipt:
        query = query.where(AuditRecord.receipt == receipt)
    with session() as db:
        rows = db.exec(query.order_by(col(AuditRecord.id).desc()).limit(limit)).all()
    return [{"outcome": json.loads(doc), "receipt": json.loads(stored)} for doc, stored in rows]
