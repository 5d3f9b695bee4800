"""The scheduler's free-worker index and per-model queues against the rule they replace.

The rule (what `Scheduler._pick` did by scanning every worker): among the workers that may run a job (serve its
model, have a free slot, not quarantined, not excluded, the job's pin, its Cluster's nodes or public workers, the
caller's steering), prefer the ones that have not tried it, and take the best by `_rank`. The index must give a
worker of that same rank after any sequence of dispatches, completions, errors, cancels, joins, leaves and
quarantines, and a freed slot must go to the oldest waiting job it may run.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from backend.protocol import frames
from backend.scheduler import PRIORITY_INCLUDED, Job, Scheduler, Steering, WorkerConnection, _rank

MODELS = ["m0", "m1", "m2"]
CLUSTERS = [None, None, None, "0xc1", "0xc2"]


def _worker(rng: random.Random, i: int, sent: list) -> WorkerConnection:
    async def send(frame):
        sent.append(frame)

    models = {m: {} for m in rng.sample(MODELS, rng.randint(1, 2))}
    conn = WorkerConnection(worker_id=f"w{i}", kind=rng.choice(["node", "node", "browser"]), payout_address="0x", models=models,
                            slots=rng.randint(1, 4), hardware={}, version="1", send=send, cluster=rng.choice(CLUSTERS))  # fmt: skip
    conn.reliability = rng.choice([0.5, 0.9, 1.0])
    return conn


def _job(rng: random.Random, i: int, workers: list[WorkerConnection]) -> Job:
    ids = [w.worker_id for w in workers]
    job = Job(job_id=f"j{i}", task="chat", model=rng.choice(MODELS), body={}, request_salt="", request_digest="", deadline_s=1e9,
              priority=rng.choice([10, PRIORITY_INCLUDED]), cluster=rng.choice(CLUSTERS), nodes_only=rng.random() < 0.1,
              steering=Steering(sort=rng.choice([None, None, "latency", "reliability", "price"]),
                                min_reliability=rng.choice([0.0, 0.0, 0.8]), allow_browser=rng.random() < 0.8))  # fmt: skip
    if ids and rng.random() < 0.2:
        job.exclude = frozenset(rng.sample(ids, min(3, len(ids))))
    if ids and rng.random() < 0.2:
        job.tried = set(rng.sample(ids, min(2, len(ids))))
    if ids and rng.random() < 0.05:
        job.pin = rng.choice(ids)
    return job


def by_scan(scheduler: Scheduler, job: Job) -> WorkerConnection | None:
    """The best worker the rule allows, by looking at every worker (how the scheduler matched before the index)."""
    candidates = [w for w in scheduler.routable() if job.model in w.models and w.free_slots > 0 and w.worker_id not in job.exclude
                  and (job.pin is None or w.worker_id == job.pin) and w.may_run(job.cluster, job.steering, job.nodes_only)]  # fmt: skip
    fresh = [w for w in candidates if w.worker_id not in job.tried]
    pool = fresh or candidates
    return min(pool, key=lambda w: _rank(w, job)) if pool else None


@pytest.mark.parametrize("seed", range(6))
async def test_the_index_picks_what_a_scan_of_every_worker_picks(seed):
    rng, sent = random.Random(seed), []
    scheduler = Scheduler(max_attempts=10)
    workers: list[WorkerConnection] = []
    for i in range(60):
        workers.append(_worker(rng, i, sent))
        await scheduler.register(workers[-1])
    checked = 0
    for step in range(600):
        live = [w for w in workers if scheduler.workers.get(w.worker_id) is w]
        job = _job(rng, step, live)
        for model in MODELS:  # public capacity (for Dedicated reservations), counted as workers change
            scan = sum(w.public_capacity() for w in scheduler.network() if model in w.models)
            assert scheduler.free_slots(model) == (scan + 500_000) // 1_000_000, step
        expected = by_scan(scheduler, job)
        got = scheduler._pick(job)
        if expected is None:
            assert got is None
        else:  # the same worker, or one ranked the same
            assert got is not None and _rank(got, job) == _rank(expected, job), step
            checked += 1
        roll = rng.random()
        if got is not None and roll < 0.5:  # it runs there
            scheduler._dispatch(job, got)
        busy = [(w, j) for w in live for j in list(w.jobs.values())]
        if busy and roll < 0.7:
            w, j = rng.choice(busy)
            kind = rng.random()
            if kind < 0.6:
                scheduler.on_frame(w, frames.done(j.job_id, {"input_tokens": 1, "output_tokens": 1, "images": 0}, "00" * 32, "00" * 64))
            elif kind < 0.8:
                scheduler.on_frame(w, frames.error(j.job_id, "engine_error", "x"))
            else:
                await scheduler.cancel(j)
        elif roll < 0.75 and live:
            await scheduler.unregister(rng.choice(live))
        elif roll < 0.8:
            workers.append(_worker(rng, len(workers), sent))
            await scheduler.register(workers[-1])
        elif roll < 0.82 and live:
            scheduler.quarantine(rng.choice(live).worker_id)
        elif roll < 0.86 and live:  # a standing lowered by someone who did not tell the index: caught at the top
            rng.choice(live).reliability /= 2
        await asyncio.sleep(0)
    assert checked > 200  # the comparison ran on real choices, not only on "nobody"
    assert scheduler.free.sorts == {None, "latency", "reliability"}  # callers asked for each order: each is kept
    for heap in scheduler.free.heaps.values():  # stale entries are compacted away
        assert len(heap) <= 2 * len(scheduler.workers) + 64 + 1


def _plain(i: int, model: str = "m0", priority: int = PRIORITY_INCLUDED) -> Job:
    return Job(job_id=f"q{i}", task="chat", model=model, body={}, request_salt="", request_digest="", deadline_s=1e9, priority=priority)


async def test_a_freed_slot_goes_to_the_oldest_waiting_job_of_its_model_and_dedicated_first():
    sent: list = []

    async def send(frame):
        sent.append(frame)

    scheduler = Scheduler()
    conn = WorkerConnection(worker_id="w", kind="node", payout_address="0x", models={"m0": {}}, slots=1, hardware={}, version="1",
                            send=send)  # fmt: skip
    await scheduler.register(conn)
    first = _plain(0)
    scheduler.submit(first)
    assert conn.jobs == {"q0": first}
    waiting = [_plain(1), _plain(2, model="m1"), _plain(3), _plain(4, priority=10)]
    for job in waiting:
        scheduler.submit(job)
    assert scheduler.queue_depth() == 4 and scheduler.queue_depth_by_lane() == {"included": 3, "dedicated": 1}
    done = {"input_tokens": 1, "output_tokens": 1, "images": 0}
    order = []
    for _ in range(3):
        running = next(iter(conn.jobs.values()))
        scheduler.on_frame(conn, frames.done(running.job_id, done, "00" * 32, "00" * 64))
        order.append(next(iter(conn.jobs)))
    assert order == ["q4", "q1", "q3"]  # Dedicated first, then arrival order; m1's job waits for an m1 worker
    assert scheduler.queue_depth() == 1
    other = WorkerConnection(worker_id="v", kind="node", payout_address="0x", models={"m1": {}}, slots=1, hardware={}, version="1",
                             send=send)  # fmt: skip
    await scheduler.register(other)
    assert "q2" in other.jobs and scheduler.queue_depth() == 0


async def test_a_cancelled_waiting_job_is_skipped_and_a_lost_worker_s_job_moves_on():
    async def send(frame):
        return None

    scheduler = Scheduler()
    a = WorkerConnection(worker_id="a", kind="node", payout_address="0x", models={"m0": {}}, slots=1, hardware={}, version="1", send=send)
    await scheduler.register(a)
    running, queued = _plain(0), _plain(1)
    scheduler.submit(running)
    scheduler.submit(queued)
    await scheduler.cancel(queued)
    b = WorkerConnection(worker_id="b", kind="node", payout_address="0x", models={"m0": {}}, slots=1, hardware={}, version="1", send=send)
    await scheduler.register(b)
    assert not b.jobs and scheduler.queue_depth() == 0  # the cancelled job never runs
    await scheduler.unregister(a)  # before the first delta: the job fails over to b
    assert b.jobs == {"q0": running} and running.tried == {"a", "b"}
