"""Attack: a Cluster holder consents to a node it runs itself and keeps it slow (or failing) on purpose. Its jobs
go to its own nodes first, so every period misses the SLA, and each miss credits 10% of the package price to the
holder's balance: money from the network for a breach the holder made.

Defence: a job that ran on the holder's own Cluster node is recorded as such, and the credit judge leaves those jobs
out (the public per-package figures still show them). Through the real InferenceService and scheduler with a slow
node peer, then the real judge."""

from __future__ import annotations

import asyncio
import time

from nacl.signing import SigningKey

from backend.catalog import Package, Packages, SlaTargets, load_catalog
from backend.config import Settings
from backend.db import session
from backend.db.models import SlaJob
from backend.money import ledger
from backend.money.lanes import Lanes
from backend.money.sla import SlaMeter, credit_breaches, record
from backend.scheduler import Scheduler
from backend.serving.inference import Caller, Finished, InferenceService
from backend.trust.receipts import ReceiptLog
from tests.backend.conftest import ACCOUNT_SECRET
from tests.backend.scheduler.test_scheduler import Peer

PERIOD_S = 60
HOLDER = "0x" + "ab" * 20
PACKAGES = Packages(packages=[Package(id="cluster", name="Cluster", price=100_000_000, duration_s=3600, reserved=0, priority=10, balance=0,
                                      nodes=True, sla=SlaTargets(ttft_p50_ms=500, ttft_p99_ms=2000, credit_bps=1000))])  # fmt: skip


async def test_jobs_on_the_holders_own_node_are_marked_and_earn_no_credit(sqlite_db):
    settings = Settings(sla_period_s=PERIOD_S, sla_grace_s=0)
    service = InferenceService(settings, load_catalog(*settings.catalog_files), Scheduler(), ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET),
                               Lanes(settings, None))  # fmt: skip
    service.sla = SlaMeter(settings)
    node = Peer(service.scheduler)
    node.conn.cluster = HOLDER
    await service.scheduler.register(node.conn)
    ledger.grant("seed", HOLDER, "usdc", 10_000_000, "test", None)
    caller = Caller(HOLDER, lane="dedicated", metered=True, package="cluster", cluster=HOLDER, priority=10)

    async def ask():
        return [e async for e in service.run("chat", {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}, caller)]

    task = asyncio.create_task(ask())
    job = await node.next_job()
    await asyncio.sleep(2.2)  # the holder's node sits on it: time to first token > the 2000 ms p99 target
    node.answer(job, "slow")
    assert isinstance((await task)[-1], Finished)
    with session() as db:
        [row] = db.exec(SlaJob.__table__.select()).all()
    assert row.own_node is True and row.ttft_ms > 2000

    # The period closes: the judge sees a breached period, but only on the holder's own node: no credit.
    later = time.time() + 2 * PERIOD_S
    assert credit_breaches(PACKAGES, settings, now=later) == []
    # The same breach on the network's own workers is credited (the judge itself still works).
    ended = time.time()
    record("cluster", HOLDER, ended - 3, ended, 2500, None, PERIOD_S, own_node=False)
    assert [c.amount for c in credit_breaches(PACKAGES, settings, now=later)] == [10_000_000]
