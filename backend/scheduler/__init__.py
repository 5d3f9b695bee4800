"""In-process scheduler: the worker registry, a priority queue of jobs, matching and failover.

A job waits in the queue until a worker advertising its model has a free slot. Events from the
worker (delta, done, error) reach the caller through the job's own asyncio queue. A worker that
goes away before a job's first delta gets that job re-dispatched to another worker; after the first
delta the caller gets an error (the caller must then not charge and not write a receipt).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from backend.protocol import frames

log = logging.getLogger("one.scheduler")

# Lower runs first. Step 3's lanes map packages onto these classes.
PRIORITY_INCLUDED = 100


@dataclass(eq=False)
class Job:
    job_id: str
    task: str
    model: str
    body: dict[str, Any]
    request_salt: str
    request_digest: str
    deadline_s: float
    priority: int = PRIORITY_INCLUDED
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    worker: "WorkerConnection | None" = None
    started: bool = False  # first delta seen: no failover past this point
    finished: bool = False
    tried: set[str] = field(default_factory=set)
    exclude: frozenset[str] = frozenset()  # workers that must not run it (an audit never goes to the audited worker)
    audit: bool = False  # a re-execution checking another worker's receipt
    dispatched_at: float = 0.0
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class WorkerConnection:
    """One registered worker socket."""

    worker_id: str
    kind: str
    payout_address: str
    models: dict[str, dict[str, Any]]
    slots: int
    hardware: dict[str, Any]
    version: str
    send: Callable[[dict[str, Any]], Awaitable[None]]
    jobs: dict[str, Job] = field(default_factory=dict)
    latency_ewma_s: float = 0.0  # time from dispatch to first delta
    served: int = 0
    failed: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    reported_load: float = 0.0
    connected_at: float = field(default_factory=time.time)
    reliability: float = 1.0  # from audits and completions (backend.audits); weighs routing

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.jobs)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.worker_id,
            "kind": self.kind,
            "models": sorted(self.models),
            "slots": self.slots,
            "busy": len(self.jobs),
            "served": self.served,
            "failed": self.failed,
            "latency_ewma_ms": round(self.latency_ewma_s * 1000, 1),
            "reliability": round(self.reliability, 3),
            "version": self.version,
        }


class NoCapacity(Exception):
    """No worker could take the job before the queue timeout."""


class Scheduler:
    def __init__(self, max_attempts: int = 3):
        self.workers: dict[str, WorkerConnection] = {}
        self.max_attempts = max_attempts
        # Slots per model that Included-lane jobs may not take: Dedicated packages' reserved concurrency.
        self.reserved = 0
        self._queue: list[tuple[int, int, Job]] = []
        self._counter = itertools.count()
        self.quarantined: set[str] = set()  # caught by an audit: connected or not, never routed to

    # --- registry -------------------------------------------------------------------------
    def routable(self) -> list[WorkerConnection]:
        return [w for w in self.workers.values() if w.worker_id not in self.quarantined]

    def advertises(self, model: str) -> bool:
        return any(model in w.models for w in self.routable())

    def free_slots(self, model: str) -> int:
        return sum(max(w.free_slots, 0) for w in self.routable() if model in w.models)

    def quarantine(self, worker_id: str) -> None:
        self.quarantined.add(worker_id)
        log.warning("worker %s… quarantined: no more jobs are routed to it", worker_id[:12])

    async def register(self, conn: WorkerConnection) -> None:
        old = self.workers.get(conn.worker_id)
        if old is not None and old is not conn:
            await self.unregister(old, reason="replaced by a new connection")
        self.workers[conn.worker_id] = conn
        log.info("worker %s… joined (%s, %d slots, models=%s)", conn.worker_id[:12], conn.kind, conn.slots, sorted(conn.models))
        self._pump()

    async def unregister(self, conn: WorkerConnection, reason: str = "disconnected") -> None:
        if self.workers.get(conn.worker_id) is conn:
            del self.workers[conn.worker_id]
        log.info("worker %s… left: %s", conn.worker_id[:12], reason)
        for job in list(conn.jobs.values()):
            self._worker_lost(job, conn, reason)
        conn.jobs.clear()
        self._pump()

    def _worker_lost(self, job: Job, conn: WorkerConnection, reason: str) -> None:
        job.worker = None
        conn.failed += 1
        if job.finished:
            return
        if not job.started and len(job.tried) < self.max_attempts:
            log.info("job %s: worker lost before first delta, re-dispatching", job.job_id)
            self._enqueue(job)
            return
        job.finished = True
        job.events.put_nowait(("error", "worker_lost", f"the worker serving this request went away ({reason})"))

    # --- queue and matching ----------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self._enqueue(job)
        self._pump()

    def _enqueue(self, job: Job) -> None:
        heapq.heappush(self._queue, (job.priority, next(self._counter), job))

    def queue_depth(self) -> int:
        return sum(1 for _, _, j in self._queue if not j.finished)

    def queue_depth_by_lane(self) -> dict[str, int]:
        """Waiting jobs per lane: Included runs at PRIORITY_INCLUDED, Dedicated packages ahead of it."""
        waiting = [j for _, _, j in self._queue if not j.finished]
        included = sum(1 for j in waiting if j.priority >= PRIORITY_INCLUDED)
        return {"included": included, "dedicated": len(waiting) - included}

    def _pick(self, job: Job) -> WorkerConnection | None:
        candidates = [w for w in self.routable() if job.model in w.models and w.free_slots > 0 and w.worker_id not in job.exclude]
        if job.priority >= PRIORITY_INCLUDED and self.free_slots(job.model) <= self.reserved:
            return None  # the last free slots are kept for Dedicated packages
        fresh = [w for w in candidates if w.worker_id not in job.tried]
        pool = fresh or candidates
        if not pool:
            return None
        # Least loaded first, then the more reliable (in steps of 5%), then the less used, then the faster.
        return min(pool, key=lambda w: (len(w.jobs) / w.slots, -round(w.reliability * 20), w.served + len(w.jobs), w.latency_ewma_s))

    def _pump(self) -> None:
        """Hand queued jobs to free workers, in priority order."""
        waiting: list[tuple[int, int, Job]] = []
        while self._queue:
            prio, order, job = heapq.heappop(self._queue)
            if job.finished:
                continue
            worker = self._pick(job)
            if worker is None:
                waiting.append((prio, order, job))
                continue
            self._dispatch(job, worker)
        for item in waiting:
            heapq.heappush(self._queue, item)

    def _dispatch(self, job: Job, worker: WorkerConnection) -> None:
        job.worker = worker
        job.tried.add(worker.worker_id)
        job.dispatched_at = time.monotonic()
        worker.jobs[job.job_id] = job
        remaining_ms = max(int((job.deadline_s - time.monotonic()) * 1000), 1)
        frame = frames.job(
            job_id=job.job_id,
            task=job.task,
            model=job.model,
            body=job.body,
            request_salt=job.request_salt,
            request_digest=job.request_digest,
            deadline_ms=remaining_ms,
            audit=job.audit,
        )
        asyncio.get_running_loop().create_task(self._send_job(worker, job, frame))

    async def _send_job(self, worker: WorkerConnection, job: Job, frame: dict[str, Any]) -> None:
        try:
            await worker.send(frame)
        except Exception as exc:  # the socket died under us: same as the worker leaving
            await self.unregister(worker, reason=f"send failed: {exc}")

    # --- frames from workers -----------------------------------------------------------------
    def on_frame(self, worker: WorkerConnection, frame: dict[str, Any]) -> None:
        worker.last_seen = time.monotonic()
        ftype = frame["type"]
        if ftype == "pong":
            worker.reported_load = float(frame["load"])
            return
        job = worker.jobs.get(frame.get("job_id", ""))
        if job is None:
            return  # a late frame for a cancelled or failed-over job
        if ftype == "delta":
            if not job.started:
                job.started = True
                first = time.monotonic() - job.dispatched_at
                worker.latency_ewma_s = first if worker.served == 0 else 0.8 * worker.latency_ewma_s + 0.2 * first
            job.events.put_nowait(("delta", frame))
        elif ftype in ("done", "error"):
            del worker.jobs[job.job_id]
            job.finished = True
            if ftype == "done":
                worker.served += 1
                job.events.put_nowait(("done", frame))
            else:
                worker.failed += 1
                job.events.put_nowait(("error", frame["code"], frame["message"]))
            self._pump()

    async def cancel(self, job: Job) -> None:
        """The caller went away or gave up: free the slot and tell the worker to stop."""
        if job.finished:
            return
        job.finished = True
        worker = job.worker
        if worker is not None and worker.jobs.pop(job.job_id, None) is not None:
            try:
                await worker.send(frames.cancel(job.job_id))
            except Exception:
                pass
        self._pump()
