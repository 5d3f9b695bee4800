"""Attack: two colluding new workers get an honest worker slashed.

They answer honestly, except on audits of the honest worker's jobs, where both give the same wrong
answer, so the re-run disagrees and the third worker "confirms" it. They spot audits from the job
frame (the old frame said so) or because they sent the audited request themselves as clients and a
job with that same body comes back after it was answered.

Audit jobs are now ordinary jobs on the wire, auditors are drawn at random weighted by passed audits,
a dispute is only settled by an established worker, never by new workers alone, and a conviction needs
the agreeing pair's passed audits to reach the convicted worker's: the colluders farm a record by
auditing each other honestly (they may become "established" within this test), and still cannot outvote.
"""

from __future__ import annotations

import asyncio
import hashlib

from sqlmodel import select

from backend.db import session
from backend.db.models import AuditRecord, WorkerRecord
from backend.serving.inference import Caller
from backend.trust.audits import Auditor
from tests.adversarial.conftest import Peer, make_service, run_chat

CLIENT = Caller(account_id="anonymous", lane="included")


def _honest_text(job: dict) -> str:
    """Deterministic decoding: every honest worker gives the same answer to the same request."""
    return "answer " + hashlib.sha256(str(job["body"]["messages"]).encode()).hexdigest()[:12]


def _set_record(worker_id: str, **fields) -> None:
    with session() as db:
        record = db.get(WorkerRecord, worker_id)
        for name, value in fields.items():
            setattr(record, name, value)
        db.add(record)
        db.commit()


def _record(worker_id: str) -> WorkerRecord:
    with session() as db:
        return db.exec(select(WorkerRecord).where(WorkerRecord.id == worker_id)).one()


async def _network():
    service = make_service(audit_rate=1.0, audit_new_rate=1.0, audit_warmup=5)
    service.auditor = Auditor(service.settings, service.scheduler, service)
    return service


async def test_two_colluders_never_get_the_honest_worker_slashed(sqlite_db):
    service = await _network()
    honest = await Peer(service.scheduler).join()
    colluders = [await Peer(service.scheduler).join() for _ in range(2)]
    _set_record(honest.id, audits_passed=100)  # an honest worker with a long history of passed audits
    answered: set[str] = set()  # probes the colluders sent as clients and saw answered
    served_by_us: set[str] = set()
    frames_seen: list[dict] = []
    honest.auto = lambda job: (frames_seen.append(job), honest.answer(job, _honest_text(job)))

    def colluder(peer: Peer):
        def on_job(job: dict) -> None:
            frames_seen.append(job)
            probe = job["body"]["messages"][0]["content"]
            audit_of_honest = job.get("audit") or (probe in answered and probe not in served_by_us)
            if not audit_of_honest:
                served_by_us.add(probe)
            peer.answer(job, "forged answer" if audit_of_honest else _honest_text(job))
        return on_job

    for peer in colluders:
        peer.auto = colluder(peer)
    for i in range(16):
        probe = f"colluder probe {i}"
        await run_chat(service, CLIENT, probe, temperature=0)
        answered.add(probe)
        while service.auditor.running:
            await asyncio.gather(*list(service.auditor.running))
    with session() as db:
        audits = db.exec(select(AuditRecord)).all()
    of_honest = [a for a in audits if a.worker == honest.id]
    assert of_honest and all(a.verdict == "inconclusive" for a in of_honest)  # audited by the colluders, who lied every time
    assert _record(honest.id).audits_failed == 0 and not _record(honest.id).quarantined
    assert honest.id not in service.scheduler.quarantined
    assert all(set(f) == set(frames_seen[0]) and "audit" not in f for f in frames_seen)  # audits look like any job


async def test_an_audit_compares_claimed_usage_too(sqlite_db):
    service = await _network()
    padder = await Peer(service.scheduler).join()
    request = asyncio.create_task(run_chat(service, CLIENT, "pad me", temperature=0))
    job = await padder.next_job()  # the padder takes the request; then two established workers join
    auditors = [await Peer(service.scheduler).join() for _ in range(2)]
    for peer in auditors:
        _set_record(peer.id, audits_passed=20)
        peer.auto = lambda job, peer=peer: peer.answer(job, _honest_text(job))
    padder.usage = lambda job, text: {"input_tokens": 5, "output_tokens": 9, "images": 0}  # same output, padded usage
    padder.answer(job, _honest_text(job))
    await request
    while service.auditor.running:
        await asyncio.gather(*list(service.auditor.running))
    assert _record(padder.id).audits_failed == 1 and padder.id in service.scheduler.quarantined


async def test_auditors_are_drawn_by_their_record_so_a_fresh_key_is_rarely_asked(sqlite_db):
    service = await _network()
    veteran = await Peer(service.scheduler).join()
    fresh = await Peer(service.scheduler).join()
    audited = await Peer(service.scheduler).join()
    _set_record(veteran.id, audits_passed=200)
    draws = [service.auditor.draw_auditor("tiny-chat", {audited.id}) for _ in range(1000)]
    assert set(draws) <= {veteran.id, fresh.id}  # never the audited worker itself
    assert draws.count(fresh.id) < 50  # drawn by record: a fresh key about 1 time in 202
    assert service.auditor.draw_auditor("tiny-chat", {audited.id}, established_only=True) == veteran.id
