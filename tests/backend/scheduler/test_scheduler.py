"""The scheduler and the inference service in-process, with a hand-driven worker connection.

The peer below is a protocol participant (it gets frames through `send` and answers with frames),
so these tests run the real Scheduler, InferenceService, catalog and receipt log.
"""

from __future__ import annotations

import asyncio

import pytest
from nacl.signing import SigningKey

from backend.catalog import load_catalog
from backend.config import Settings
from backend.money.lanes import Lanes
from backend.protocol import frames
from backend.protocol import receipt as rc
from backend.protocol.signing import public_hex, sign_hex
from backend.scheduler import Job, Scheduler, WorkerConnection
from backend.serving.inference import Caller, Delta, Finished, InferenceError, InferenceService
from backend.trust.receipts import ReceiptLog
from backend.trust.verify import verify_chain
from tests.backend.conftest import ACCOUNT_SECRET


class Peer:
    """A worker connection whose frames land in a queue; it answers by calling the scheduler."""

    def __init__(self, scheduler: Scheduler, slots: int = 1, key: SigningKey | None = None):
        self.key = key or SigningKey.generate()
        self.frames: asyncio.Queue = asyncio.Queue()
        self.scheduler = scheduler
        self.conn = WorkerConnection(
            worker_id=public_hex(self.key), kind="node", payout_address="0x" + "0" * 40,
            models={"tiny-chat": {"id": "tiny-chat", "max_context": 2048, "tasks": ["chat"]}},
            slots=slots, hardware={}, version="peer", send=self.frames.put,
        )  # fmt: skip

    async def next_job(self) -> dict:
        while True:
            frame = await asyncio.wait_for(self.frames.get(), 5)
            if frame["type"] == "job":
                return frame

    def answer(self, job: dict, text: str, output_tokens: int = 2) -> None:
        choice = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        self.scheduler.on_frame(self.conn, frames.delta(job["job_id"], 0, [choice]))
        usage = {"input_tokens": 3, "output_tokens": output_tokens, "images": 0}
        out = rc.OutputAssembler("chat")
        out.add([choice])
        statement = rc.attestation(job["job_id"], job["model"], job["request_digest"], out.digest(), usage, sampling_seed=job.get("sampling_seed"))
        self.scheduler.on_frame(self.conn, frames.done(job["job_id"], usage, out.digest(), sign_hex(self.key, rc.jcs(statement))))


@pytest.fixture
def service(sqlite_db):
    settings = Settings(queue_timeout_s=2, max_queue_depth=1)
    scheduler = Scheduler()
    return InferenceService(settings, load_catalog(*settings.catalog_files), scheduler, ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), Lanes(settings, None))


BODY = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}]}


async def _collect(service, body=BODY, caller=None):
    return [e async for e in service.run("chat", body, caller or Caller("acct"))]


async def test_a_job_runs_on_the_peer_and_leaves_a_verifiable_receipt(service):
    peer = Peer(service.scheduler)
    await service.scheduler.register(peer.conn)
    task = asyncio.create_task(_collect(service))
    job = await peer.next_job()
    assert job["request_digest"] == rc.request_digest(job["body"], job["request_salt"])
    peer.answer(job, "hello")
    events = await task
    assert isinstance(events[0], Delta) and isinstance(events[-1], Finished)
    receipt = events[-1].receipt
    assert receipt["charge"] == {"unit": "credit", "amount": 0}  # an unmetered (key-less dev) caller: billable to nobody
    assert verify_chain([receipt]).ok


async def test_a_lying_worker_gets_no_receipt(service):
    peer = Peer(service.scheduler)
    await service.scheduler.register(peer.conn)
    task = asyncio.create_task(_collect(service))
    job = await peer.next_job()
    choice = {"index": 0, "delta": {"content": "what I sent"}, "finish_reason": "stop"}
    service.scheduler.on_frame(peer.conn, frames.delta(job["job_id"], 0, [choice]))
    usage = {"input_tokens": 1, "output_tokens": 1, "images": 0}
    claimed = rc.chat_output_digest([{"content": "something else", "tool_calls": None}])
    statement = rc.attestation(job["job_id"], "tiny-chat", job["request_digest"], claimed, usage, sampling_seed=job.get("sampling_seed"))
    service.scheduler.on_frame(peer.conn, frames.done(job["job_id"], usage, claimed, sign_hex(peer.key, rc.jcs(statement))))
    with pytest.raises(InferenceError) as err:
        await task
    assert err.value.code == "worker_output_mismatch"
    assert ReceiptLog.chain() == []


async def test_queue_full_is_429_and_waiting_too_long_is_503(service):
    peer = Peer(service.scheduler, slots=1)
    await service.scheduler.register(peer.conn)
    first = asyncio.create_task(_collect(service))
    await peer.next_job()
    queued = asyncio.create_task(_collect(service))
    await asyncio.sleep(0.05)
    assert service.scheduler.queue_depth() == 1
    with pytest.raises(InferenceError) as err:
        await _collect(service)
    assert err.value.status == 429 and err.value.code == "rate_limit_exceeded"
    with pytest.raises(InferenceError) as err:
        await queued  # the peer never frees its slot: the queue timeout answers
    assert err.value.status == 503
    first.cancel()


async def test_jobs_leave_the_queue_by_priority_then_arrival(service):
    scheduler = service.scheduler
    peer = Peer(scheduler, slots=1)
    order = []
    for name, priority in [("late-low", 100), ("high", 10), ("low", 100), ("higher", 5)]:
        scheduler.submit(Job(job_id=name, task="chat", model="tiny-chat", body={}, request_salt="", request_digest="", deadline_s=1e12, priority=priority))
    await scheduler.register(peer.conn)
    for _ in range(4):
        job = await peer.next_job()
        order.append(job["job_id"])
        scheduler.on_frame(peer.conn, frames.error(job["job_id"], "x", "done"))
    assert order == ["higher", "high", "late-low", "low"]


async def test_unknown_model_and_no_worker(service):
    with pytest.raises(InferenceError) as err:
        await _collect(service, {**BODY, "model": "nope"})
    assert err.value.status == 404 and err.value.code == "model_not_found"
    with pytest.raises(InferenceError) as err:
        await _collect(service)
    assert err.value.status == 503 and err.value.code == "model_unavailable"


async def test_reserved_slots_are_kept_for_dedicated_jobs(service):
    scheduler = service.scheduler
    scheduler.reserved = {"*": 1}
    peer = Peer(scheduler, slots=2)
    await scheduler.register(peer.conn)

    def job(name: str, priority: int) -> Job:
        return Job(job_id=name, task="chat", model="tiny-chat", body={}, request_salt="", request_digest="", deadline_s=1e12, priority=priority)

    scheduler.submit(job("included-1", 100))
    scheduler.submit(job("included-2", 100))
    assert (await peer.next_job())["job_id"] == "included-1"
    assert scheduler.queue_depth() == 1  # the last free slot is reserved
    scheduler.submit(job("pro", 20))
    assert (await peer.next_job())["job_id"] == "pro"
    assert scheduler.queue_depth() == 1


async def test_deltas_already_queued_are_relayed_in_one_step_in_order_and_batches_are_unpacked(service):
    """A fast worker's deltas (single frames and batched ones) that wait in the job's queue come out as one Delta, in
    the order sent, with every chunk assembled into the digest; the done frame queued behind them still settles."""
    peer = Peer(service.scheduler)
    await service.scheduler.register(peer.conn)
    task = asyncio.create_task(_collect(service))
    job = await peer.next_job()
    chunks = [[{"index": 0, "delta": {"role": "assistant", "content": "w0 "}}]]
    chunks += [[{"index": 0, "delta": {"content": f"w{i} "}}] for i in range(1, 6)]
    chunks.append([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    peer.scheduler.on_frame(peer.conn, frames.delta_batch(job["job_id"], 0, chunks[:1]))
    peer.scheduler.on_frame(peer.conn, frames.delta_batch(job["job_id"], 1, chunks[1:4]))
    peer.scheduler.on_frame(peer.conn, frames.delta_batch(job["job_id"], 2, chunks[4:]))
    out = rc.OutputAssembler("chat")
    for data in chunks:
        out.add(data)
    usage = {"input_tokens": 3, "output_tokens": 6, "images": 0}
    statement = rc.attestation(job["job_id"], job["model"], job["request_digest"], out.digest(), usage, sampling_seed=job.get("sampling_seed"))
    peer.scheduler.on_frame(peer.conn, frames.done(job["job_id"], usage, out.digest(), sign_hex(peer.key, rc.jcs(statement))))
    events = await task
    assert [type(e) for e in events] == [Delta, Finished]  # everything was waiting: one step
    assert events[0].chunks == chunks
    assert events[1].output.ordered_choices()[0]["content"] == "w0 w1 w2 w3 w4 w5 "
    assert verify_chain([events[1].receipt]).ok


async def test_a_malformed_batch_is_a_protocol_error_and_gets_no_receipt(service):
    peer = Peer(service.scheduler)
    await service.scheduler.register(peer.conn)
    task = asyncio.create_task(_collect(service))
    job = await peer.next_job()
    peer.scheduler.on_frame(peer.conn, frames.delta(job["job_id"], 0, {"chunks": [], "sneaky": 1}))
    with pytest.raises(InferenceError) as err:
        await task
    assert err.value.code == "worker_protocol_error"
    assert ReceiptLog.chain() == []
