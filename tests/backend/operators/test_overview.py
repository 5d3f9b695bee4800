"""The operator dashboard's overview, read from the real scheduler, inference service, receipt log and settlement
tables after a job really ran: the page renders these rows and queries nothing itself."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlmodel import select

from backend.access import auth
from backend.db import session
from backend.db.models import WorkerRecord
from backend.money.settlement import remember_worker
from backend.operators import NotAnOperator, authorize_operator, overview
from backend.operators.overview import BUCKET_S, WINDOW_S
from tests.backend.scheduler.test_scheduler import BODY, Peer, _collect, service  # noqa: F401  (fixture)


async def test_the_overview_shows_the_live_worker_its_bond_the_job_and_its_receipt(service):
    peer = Peer(service.scheduler, slots=3)
    await asyncio.to_thread(remember_worker, peer.conn.worker_id, "node", peer.conn.payout_address)
    with session() as db:
        record = db.exec(select(WorkerRecord).where(WorkerRecord.id == peer.conn.worker_id)).one()
        record.bond = 2_500_000
        db.add(record)
        db.commit()
    await service.scheduler.register(peer.conn)
    task = asyncio.create_task(_collect(service))
    peer.answer(await peer.next_job(), "hello")
    receipt = (await task)[-1].receipt

    now = time.time()
    o = overview(service.scheduler, service.completed, service.receipts, now)
    [w] = o.workers
    assert (w.id, w.slots, w.busy, w.served, w.bond, w.quarantined) == (peer.conn.worker_id, 3, 0, 1, 2_500_000, False)
    assert o.queue_depth == {"included": 0, "dedicated": 0}
    assert o.total_receipts == receipt["seq"] + 1 and o.receipts[0]["hash"] == receipt["hash"]
    assert len(o.load) == WINDOW_S // BUCKET_S + 1 and sum(p.requests_per_min for p in o.load) == 60 // BUCKET_S  # the one job
    assert o.load[-1].p50_ms > 0

    service.scheduler.quarantined.add(peer.conn.worker_id)
    assert overview(service.scheduler, service.completed, service.receipts, now).workers[0].quarantined


def test_only_a_live_session_of_a_listed_wallet_is_an_operator(sqlite_db):
    wallet = "0x" + "ab" * 20
    key = auth.create_key(wallet, "included")
    assert authorize_operator(key, ["0x" + "AB" * 20]) == wallet  # addresses compare case-blind (checksummed or not)
    with pytest.raises(NotAnOperator, match="not an operator"):
        authorize_operator(key, ["0x" + "cd" * 20])
    with pytest.raises(NotAnOperator, match="expired"):
        authorize_operator(auth.create_key(wallet, "included", ttl_s=-1), [wallet])
