"""Two replicas in one process, each its own Scheduler + InferenceService, sharing the machine's Redis as the broker
and one receipt log on Postgres: what one replica's client asks for runs on a worker connected to the other.

The workers are hand-driven protocol peers (tests/backend/scheduler/test_scheduler.py's Peer); everything else is
the real code: Scheduler, Broker, InferenceService, ReceiptLog, ledger.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from nacl.signing import SigningKey

from backend.catalog import load_catalog
from backend.config import Settings
from backend.money import ledger
from backend.money.lanes import Lanes
from backend.scheduler import PRIORITY_INCLUDED, Job, Scheduler
from backend.scheduler import broker as broker_module
from backend.scheduler.broker import Broker
from backend.serving.inference import Caller, Delta, Finished, InferenceError, InferenceService
from backend.trust.receipts import ReceiptLog
from backend.trust.verify import verify_chain
from tests.backend.conftest import ACCOUNT_SECRET
from tests.backend.scheduler.test_scheduler import Peer

BROKER_URL = "redis://127.0.0.1:6379/12"
COORDINATOR = SigningKey.generate()
CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture
def broker_db():
    store = redis.Redis.from_url(BROKER_URL)
    store.flushdb()
    yield store
    store.flushdb()


class Replica:
    def __init__(self, name: str):
        self.settings = Settings(queue_timeout_s=5, broker_url=BROKER_URL, replica=name)
        self.scheduler = Scheduler()
        self.released: list[str] = []
        self.scheduler.broker = Broker(BROKER_URL, name, self.scheduler, release_hold=ledger.release)
        self.service = InferenceService(self.settings, load_catalog(*self.settings.catalog_files), self.scheduler,
                                        ReceiptLog(COORDINATOR, ACCOUNT_SECRET), Lanes(self.settings, None))  # fmt: skip

    @property
    def broker(self) -> Broker:
        return self.scheduler.broker

    async def join(self, *peers: Peer) -> None:
        await self.scheduler.ready()
        for peer in peers:
            await self.scheduler.register(peer.conn)

    def die(self) -> None:
        """SIGKILL, as far as the others can tell: no more heartbeats, reads or writes."""
        for task in self.broker._tasks:
            task.cancel()


async def until(check, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def heard_of(replica: Replica, worker: Peer) -> None:
    """Wait until `replica` sees `worker` (connected elsewhere) in the shared registry."""
    await until(lambda: any(w.worker_id == worker.conn.worker_id for w in replica.scheduler.network()))


async def two_replicas(slots: int) -> tuple[Replica, Replica, Peer]:
    """Replica a with no worker of its own, replica b with one, and a that knows of it."""
    a, b = Replica("a"), Replica("b")
    worker = Peer(b.scheduler, slots=slots)
    await b.join(worker)
    await a.join()
    await heard_of(a, worker)
    return a, b, worker


async def collect(service: InferenceService, caller: Caller, body=CHAT) -> tuple[str, dict]:
    text, receipt = "", None
    async for event in service.run("chat", body, caller):
        if isinstance(event, Delta):
            text += "".join(data[0]["delta"].get("content", "") for data in event.chunks)
        elif isinstance(event, Finished):
            receipt = event.receipt
    return text, receipt


@pytest.mark.asyncio
async def test_a_request_at_one_replica_runs_on_a_worker_of_another_and_is_billed_once(postgres_db, broker_db):
    a, b, worker = await two_replicas(slots=2)
    account = "0xpayer"
    ledger.grant("seed", account, "usdc", 1_000_000, "purchase")
    caller = Caller(account_id=account, lane="dedicated", metered=True, priority=30)

    asking = asyncio.create_task(collect(a.service, caller))
    job = await worker.next_job()
    worker.answer(job, "hello across replicas")
    text, receipt = await asyncio.wait_for(asking, 10)

    assert text == "hello across replicas"
    assert receipt["worker"]["id"] == worker.conn.worker_id and receipt["charge"]["amount"] > 0
    assert ledger.balance(account, "usdc") == 1_000_000 - receipt["charge"]["amount"]  # charged once, hold gone
    assert verify_chain([receipt]).ok
    # Nothing of the request or the answer stays in Redis.
    await until(lambda: not broker_db.keys("one:job:*") and all(broker_db.xlen(k) == 0 for k in broker_db.keys("one:events:*")))
    listed = {w["id"]: w["replica"] for w in a.scheduler.listed()}
    assert listed == {worker.conn.worker_id: "b"}


@pytest.mark.asyncio
async def test_dedicated_overtakes_included_across_replicas(postgres_db, broker_db):
    a, b, c = Replica("a"), Replica("b"), Replica("c")
    worker = Peer(c.scheduler, slots=1)
    await c.join(worker)
    await a.join()
    await b.join()
    await heard_of(a, worker)
    await heard_of(b, worker)

    busy = asyncio.create_task(collect(c.service, Caller(account_id="x")))
    first = await worker.next_job()
    included = asyncio.create_task(collect(a.service, Caller(account_id="inc", priority=PRIORITY_INCLUDED)))
    await until(lambda: a.scheduler.broker.mine)  # queued first, at replica a
    await asyncio.sleep(0.3)
    dedicated = asyncio.create_task(collect(b.service, Caller(account_id="ded", priority=30)))
    await until(lambda: b.scheduler.broker.mine)
    await asyncio.sleep(0.3)

    worker.answer(first, "first")
    nxt = await worker.next_job()
    assert nxt["job_id"] in b.broker.mine, "the Dedicated job (queued later, at another replica) runs next"
    worker.answer(nxt, "dedicated")
    last = await worker.next_job()
    worker.answer(last, "included")
    assert (await asyncio.wait_for(dedicated, 10))[0] == "dedicated"
    assert (await asyncio.wait_for(included, 10))[0] == "included"
    await busy


@pytest.mark.asyncio
async def test_a_client_that_goes_away_stops_the_job_on_the_other_replica(postgres_db, broker_db):
    a, b, worker = await two_replicas(slots=1)

    asking = asyncio.create_task(collect(a.service, Caller(account_id="x")))
    job = await worker.next_job()
    asking.cancel()  # the client hung up
    frame = await asyncio.wait_for(worker.frames.get(), 5)
    assert frame == {"type": "cancel", "job_id": job["job_id"]}
    await until(lambda: not worker.conn.jobs)  # its slot is free again


@pytest.mark.asyncio
async def test_a_dead_replica_fails_over_before_the_first_delta_and_its_clients_credit_is_released(postgres_db, broker_db, monkeypatch):
    monkeypatch.setattr(broker_module, "DEAD_AFTER_S", 2.0)
    a, b, c = Replica("a"), Replica("b"), Replica("c")
    on_b, on_c = Peer(b.scheduler, slots=1), Peer(c.scheduler, slots=1)
    await b.join(on_b)
    await a.join()
    await heard_of(a, on_b)

    # A job of a's client runs on b's worker; b dies before the first delta: the job moves to c's worker.
    asking = asyncio.create_task(collect(a.service, Caller(account_id="x")))
    await on_b.next_job()
    await c.join(on_c)
    b.die()
    job = await asyncio.wait_for(on_c.next_job(), 10)
    on_c.answer(job, "after failover")
    text, receipt = await asyncio.wait_for(asking, 10)
    assert text == "after failover" and receipt["worker"]["id"] == on_c.conn.worker_id

    # A job that started streaming when its replica died ends in a clean error, and nothing is charged.
    ledger.grant("seed", "0xpayer", "usdc", 1_000_000, "purchase")
    payer = Caller(account_id="0xpayer", lane="dedicated", metered=True, priority=30)
    streaming = asyncio.create_task(collect(a.service, payer))
    job = await on_c.next_job()
    from backend.protocol import frames

    c.scheduler.on_frame(on_c.conn, frames.delta(job["job_id"], 0, [{"index": 0, "delta": {"content": "par"}, "finish_reason": None}]))
    await asyncio.sleep(0.3)
    c.die()
    with pytest.raises(InferenceError) as failed:
        await asyncio.wait_for(streaming, 10)
    assert failed.value.code == "worker_lost"
    assert ledger.balance("0xpayer", "usdc") == 1_000_000

    # a dies while a client's job runs on d's worker: d stops the job, and releases the credit it held.
    d = Replica("d")
    on_d = Peer(d.scheduler, slots=1)
    await d.join(on_d)
    await heard_of(a, on_d)
    held = asyncio.create_task(collect(a.service, payer))
    job = await on_d.next_job()
    assert ledger.balance("0xpayer", "usdc") < 1_000_000
    a.die()  # its client's request task stays put: only the survivor can give the credit back
    assert await asyncio.wait_for(on_d.frames.get(), 10) == {"type": "cancel", "job_id": job["job_id"]}
    await until(lambda: ledger.balance("0xpayer", "usdc") == 1_000_000, timeout_s=15)
    held.cancel()


def test_a_job_head_round_trips_through_redis():
    """What another replica rebuilds from the shared queue is the job the client's replica queued."""
    scheduler = Scheduler()
    broker = Broker(BROKER_URL, "x", scheduler, release_hold=lambda job: None)
    job = Job(job_id="j1", task="chat", model="tiny-chat", body={}, request_salt="ab", request_digest="cd", deadline_s=time.monotonic() + 60,
              priority=30, exclude=frozenset({"w9"}), pin=None, cluster="0xc", nodes_only=True, sampling_seed="ee", origin="x-1", score=7)  # fmt: skip
    job.tried.add("w1")
    again = broker._job(broker._head(job), CHAT)
    for field in ("job_id", "task", "model", "request_salt", "request_digest", "priority", "exclude", "pin", "cluster", "nodes_only",
                  "sampling_seed", "origin", "score", "tried", "steering"):  # fmt: skip
        assert getattr(again, field) == getattr(job, field), field
    assert abs(again.deadline_s - job.deadline_s) < 0.1 and again.body == CHAT


@pytest.mark.asyncio
async def test_a_replica_sees_a_dead_one_even_when_another_released_its_credit_first(postgres_db, broker_db, monkeypatch):
    """The survivor that reaps a dead replica leaves its heartbeat as a tombstone: a replica that had not yet noticed
    the death still fails its jobs over, instead of waiting on them until their deadline."""
    monkeypatch.setattr(broker_module, "DEAD_AFTER_S", 2.0)
    a, b, x = Replica("a"), Replica("b"), Replica("x")
    on_b = Peer(b.scheduler, slots=1)
    await b.join(on_b)
    await a.join()
    await x.join()
    await heard_of(a, on_b)
    streaming = asyncio.create_task(collect(a.service, Caller(account_id="y")))
    job = await on_b.next_job()
    from backend.protocol import frames

    b.scheduler.on_frame(on_b.conn, frames.delta(job["job_id"], 0, [{"index": 0, "delta": {"content": "par"}, "finish_reason": None}]))
    await asyncio.sleep(0.3)
    b.die()
    await x.broker._reap(b.broker.replica, silent_s=3.0)  # x releases b's credit before a's heartbeat looked
    with pytest.raises(InferenceError) as failed:
        await asyncio.wait_for(streaming, 10)
    assert failed.value.code == "worker_lost"


@pytest.mark.asyncio
async def test_a_job_claimed_by_a_replica_that_died_before_saying_so_fails_over_at_once(postgres_db, broker_db, monkeypatch):
    """b claims a's job and dies before its "dispatched" event leaves: a finds the claim in the job's hash and moves the
    job to c's worker after b's silence, not after the 30-second queue timeout."""
    monkeypatch.setattr(broker_module, "DEAD_AFTER_S", 2.0)
    a, b, c = Replica("a"), Replica("b"), Replica("c")
    a.settings.queue_timeout_s = 30
    on_b, on_c = Peer(b.scheduler, slots=1), Peer(c.scheduler, slots=1)
    await b.join(on_b)
    await a.join()
    await heard_of(a, on_b)
    sent = b.broker.forward
    monkeypatch.setattr(b.broker, "forward", lambda origin, job_id, event: None if event[0] == "dispatched" else sent(origin, job_id, event))
    started = time.monotonic()
    asking = asyncio.create_task(collect(a.service, Caller(account_id="x")))
    await on_b.next_job()
    await c.join(on_c)
    b.die()
    job = await asyncio.wait_for(on_c.next_job(), 15)
    on_c.answer(job, "moved")
    assert (await asyncio.wait_for(asking, 10))[0] == "moved"
    assert time.monotonic() - started < 15


@pytest.mark.asyncio
async def test_a_worker_quarantined_at_one_replica_gets_no_more_jobs_at_another(postgres_db, broker_db):
    """An audit at replica a catches a worker connected to b: within a heartbeat b stops routing to it too."""
    a, b, worker = await two_replicas(slots=1)
    a.scheduler.quarantine(worker.conn.worker_id)
    await until(lambda: worker.conn.worker_id in b.scheduler.quarantined, 5)
    assert not b.scheduler.routable() and not a.scheduler.network()
    with pytest.raises(InferenceError) as refused:
        await collect(b.service, Caller(account_id="x"))
    assert refused.value.code == "model_unavailable"
