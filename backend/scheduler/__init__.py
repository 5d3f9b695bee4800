"""In-process scheduler: the worker registry, a priority queue of jobs, matching and failover.

A job waits in the queue until a worker advertising its model has a free slot. A worker that joined a Cluster
(dedicated nodes) runs that Cluster's jobs only, and the Cluster's jobs go to its own nodes first; a caller's
routing preferences (`Steering`) narrow and order the workers a job may go to. Events from the
worker (delta, done, error) reach the caller through the job's own asyncio queue. A worker that
goes away before a job's first delta gets that job re-dispatched to another worker; after the first
delta the caller gets an error (the caller must then not charge and not write a receipt).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from backend.protocol import frames

log = logging.getLogger("one.scheduler")

# Lower runs first. Step 3's lanes map packages onto these classes.
PRIORITY_INCLUDED = 100
# Slots a worker may use before any job has proven its claim (see Scheduler.admit).
START_SLOTS = 2
RESERVATION_RECHECK_S = 30.0
# Worker error codes that blame the request itself (the caller gets them as 400s). They cost the worker
# nothing, unless another worker then completes the same job: then the error was a lie.
CLIENT_FAULT_CODES = frozenset({"context_length_exceeded", "invalid_request"})


@dataclass(frozen=True)
class Steering:
    """A caller's routing preferences (the request's `route` field): which workers may run its job, and which first.
    `price` orders the models tried (one model costs the same on every worker), so it leaves worker order alone."""

    sort: str | None = None
    min_reliability: float = 0.0
    allow_browser: bool = True

    def admits(self, worker: "WorkerConnection") -> bool:
        return worker.reliability >= self.min_reliability and (self.allow_browser or worker.kind != "browser")


ANY_WORKER = Steering()


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
    pin: str | None = None  # only this worker may run it (an audit's drawn auditor)
    refused_by: list["WorkerConnection"] = field(default_factory=list)  # workers that blamed the request
    streamed: int = 0  # frame bytes its worker has streamed for it (capped: Scheduler.max_job_bytes)
    cluster: str | None = None  # the caller's Cluster (its account): its nodes run this job first
    nodes_only: bool = False  # a Cluster's private model: only its own nodes may run it, whatever others advertise
    on_own_node: bool = False  # (last) dispatched to one of its Cluster's own nodes
    steering: Steering = ANY_WORKER
    sampling_seed: str | None = None  # a text job's seed for the ONE sampler (backend.protocol.sampler)
    dispatched_at: float = 0.0
    enqueued_at: float = field(default_factory=time.monotonic)
    origin: str = ""  # with a broker: the replica holding the job's client (backend.scheduler.broker)
    score: int = 0  # with a broker: its place in the shared queue (priority, then arrival)


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
    reliability: float = 1.0  # from audits and completions (backend.trust.audits); weighs routing
    claimed_slots: int = 0  # what the hello claimed (capped); `slots` is what the worker has proven so far
    cluster: str | None = None  # the Cluster this node is dedicated to (with its consent): it runs no one else's jobs
    close: Callable[[], Awaitable[None]] | None = None  # hang up its socket (a Cluster removed the node)
    indexed: int = 0  # generation of its entries in the scheduler's free-worker index (older entries are stale)
    counted: int = 0  # what it adds to the index's public capacity of each of its models (FreeWorkers.capacity)

    def dedicated_to(self, cluster: str | None) -> bool:
        """Whether this worker is one of that Cluster's own nodes."""
        return cluster is not None and self.cluster == cluster

    def may_run(self, cluster: str | None, steering: Steering = ANY_WORKER, nodes_only: bool = False) -> bool:
        """A Cluster's node runs only that Cluster's jobs (and, `nodes_only`, a Cluster's job runs only on its nodes);
        everyone's workers must meet the caller's preferences."""
        mine = self.dedicated_to(cluster) or (not nodes_only and self.cluster is None)
        return mine and steering.admits(self)

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.jobs)

    @property
    def health(self) -> float:
        """Share of its jobs a worker finished, errors and timeouts weighing four times: (served + 1) / (served + 1 + 4 * failed)."""
        return (self.served + 1) / (self.served + 1 + 4 * self.failed)

    @property
    def weight(self) -> float:
        """Routing weight: audited reliability times job health. A worker at half weight looks twice as loaded."""
        return max(self.reliability * self.health, 1e-6)

    def public_capacity(self) -> int:
        """Its free slots as public capacity, in millionths of a slot, weighed by its job health: slots of a worker that
        drops its jobs are not capacity. Integers, so the index's running sums stay exact. A Cluster's node: none."""
        return max(self.free_slots, 0) * round(self.health * 1_000_000) if self.cluster is None else 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.worker_id,
            "kind": self.kind,
            "models": sorted(self.models),
            "slots": self.slots,
            "claimed_slots": self.claimed_slots,
            "busy": len(self.jobs),
            "served": self.served,
            "failed": self.failed,
            "latency_ewma_ms": round(self.latency_ewma_s * 1000, 1),
            "reliability": round(self.reliability, 3),
            "version": self.version,
            "cluster": self.cluster,
        }


SORTS = (None, "latency", "reliability")  # the orders a caller may ask for (Steering.sort), each with its own index


def _order(worker: WorkerConnection, sort: str | None) -> tuple:
    """Lower ranks first among workers of one kind (a Cluster's own nodes, or public workers). The caller's sort, if
    any (latency: time to first delta, unknown latency last; reliability: audited reliability); then the least loaded
    relative to its weight (a worker at half weight looks twice as loaded), the more reliable (in steps of 5%), the
    less used, the faster."""
    return _sorted_by(worker, sort, _balanced(worker))


def _balanced(worker: WorkerConnection) -> tuple:
    load = (len(worker.jobs) + 1) / (worker.slots * worker.weight)
    return (load, -round(worker.reliability * 20), worker.served + len(worker.jobs), worker.latency_ewma_s)


def _sorted_by(worker: WorkerConnection, sort: str | None, balanced: tuple) -> tuple:
    if sort == "latency":
        return (worker.latency_ewma_s if worker.served else math.inf, *balanced)
    if sort == "reliability":
        return (-worker.reliability, *balanced)
    return balanced


def _rank(worker: WorkerConnection, job: Job) -> tuple:
    """A Cluster's own nodes before public workers, then `_order`."""
    return (0 if worker.dedicated_to(job.cluster) else 1, *_order(worker, job.steering.sort))


class FreeWorkers:
    """Workers with a free slot, as heaps per (model, Cluster or None for public workers, sort): a match looks at the
    top of one or two heaps instead of every worker (10,000 workers: microseconds, not milliseconds).

    Entries (`_order`'s rank, then a sequence number, the worker's generation and the worker) are never updated in
    place. A worker whose rank may have changed is `touch`ed: its generation goes up and fresh entries are pushed;
    older entries are dropped when they reach the top. A change nobody touched (a standing lowered from outside) is
    caught at the top too: an entry whose worker now ranks worse is pushed back re-ranked. The heaps of a caller's
    sort (latency, reliability) are built the first time a job asks for it, from the default order's heaps."""

    def __init__(self) -> None:
        self.heaps: dict[tuple[str, str | None, str | None], list[tuple]] = {}
        self.sorts: set[str | None] = {None}  # the orders kept up to date
        self._live: dict[tuple[str, str | None, str | None], int] = {}  # a heap's size when last compacted
        self._seq = itertools.count()
        # Per model: the public capacity of the workers here (WorkerConnection.public_capacity), kept up to date by
        # `touch` so checking Dedicated reservations costs no scan.
        self.capacity: dict[str, int] = {}

    def touch(self, worker: WorkerConnection, listed: bool) -> None:
        """`worker`'s load, slots or standing changed; `listed`: it may get jobs (registered, not quarantined)."""
        worker.indexed += 1
        counts = worker.public_capacity() if listed else 0
        if counts != worker.counted:
            for model in worker.models:
                self.capacity[model] = self.capacity.get(model, 0) + counts - worker.counted
            worker.counted = counts
        if not listed or worker.free_slots <= 0:
            return  # out of the index until a touch finds it free again
        balanced = _balanced(worker)
        for sort in self.sorts:
            entry = (*_sorted_by(worker, sort, balanced), next(self._seq), worker.indexed, worker)
            for model in worker.models:
                key = (model, worker.cluster, sort)
                heap = self.heaps.get(key)
                if heap is None:
                    heap = self.heaps[key] = []
                heapq.heappush(heap, entry)
                if len(heap) > 2 * self._live.get(key, 0) + 64:
                    self._compact(key)

    def _compact(self, key: tuple[str, str | None, str | None]) -> None:
        """Drop stale entries (workers touched since), so a heap stays about the size of its free workers."""
        heap = self.heaps[key]
        heap[:] = [e for e in heap if e[-2] == e[-1].indexed]
        heapq.heapify(heap)
        self._live[key] = len(heap)

    def _start_sort(self, sort: str) -> None:
        """Keep `sort`'s heaps from now on, built from the current entries of the default order's."""
        self.sorts.add(sort)
        for (model, cluster, order), heap in list(self.heaps.items()):
            if order is None:
                live = [e[-1] for e in heap if e[-2] == e[-1].indexed]
                built = [(*_order(w, sort), next(self._seq), w.indexed, w) for w in live]
                heapq.heapify(built)
                self.heaps[(model, cluster, sort)] = built
                self._live[(model, cluster, sort)] = len(built)

    def best(self, key: tuple[str, str | None, str | None], job: Job, listed: Callable[[WorkerConnection], bool],
             tried: list[WorkerConnection]) -> WorkerConnection | None:
        """The top-ranked worker of one heap that may run `job` and has not tried it; workers that already tried it
        (and may run it) are added to `tried` for the caller's last resort."""
        sort = key[2]
        if sort not in self.sorts:
            self._start_sort(sort)
        heap = self.heaps.get(key)
        if not heap:
            return None
        aside: list = []
        found = None
        while heap:
            entry = heap[0]
            worker = entry[-1]
            if entry[-2] != worker.indexed or worker.free_slots <= 0 or not listed(worker):
                heapq.heappop(heap)  # stale, full (a touch brings it back when a slot frees) or gone
                continue
            now = _order(worker, sort)
            if now > entry[:-3]:  # ranks worse than when it was pushed: back in its place
                heapq.heapreplace(heap, (*now, next(self._seq), worker.indexed, worker))
                continue
            if worker.worker_id in job.exclude or not job.steering.admits(worker):
                aside.append(heapq.heappop(heap))
                continue
            if worker.worker_id in job.tried:
                tried.append(worker)
                aside.append(heapq.heappop(heap))
                continue
            found = worker
            break
        for entry in aside:
            heapq.heappush(heap, entry)
        return found


class NoCapacity(Exception):
    """No worker could take the job before the queue timeout."""


class Scheduler:
    def __init__(self, max_attempts: int = 3, max_slots: int = 64, max_job_bytes: int = 16 * 2**20):
        self.workers: dict[str, WorkerConnection] = {}
        self.max_attempts = max_attempts
        # The most a worker may stream for one job: past it the job fails (nothing charged) and the worker is told to stop.
        self.max_job_bytes = max_job_bytes
        # A hello's slot count is a claim: capped, and only proven by completed jobs (see `admit`).
        self.max_slots = max_slots
        # Jobs served / failed and admitted slots per worker key, kept across reconnects (reconnecting washes nothing).
        self.history: dict[str, tuple[int, int, int]] = {}
        # Slots per model ("*": every model) that Included-lane jobs may not take: live Dedicated packages'
        # reserved concurrency, from `reservations()` (backend.money.lanes.reservations), recomputed when a package
        # expires and every RESERVATION_RECHECK_S (purchases on other replicas).
        self.reserved: dict[str, int] = {}
        self.reservations: Callable[[], tuple[dict[str, int], float]] | None = None
        self._reserved_until = 0.0
        # Waiting jobs, a heap per model ordered by (priority, arrival). Invariant after every change: no waiting job
        # could run on a free worker. So new capacity (a worker freeing a slot) only needs the queues of its models.
        self._queues: dict[str, list[tuple[int, int, Job]]] = {}
        self._counter = itertools.count()
        self.free = FreeWorkers()
        self.quarantined: set[str] = set()  # caught by an audit: connected or not, never routed to
        # Several replicas, one network (backend.scheduler.broker): jobs queue network-wide and any replica whose
        # worker is free runs them. None: this coordinator is the whole network (the embedded default).
        self.broker: Any = None

    async def ready(self) -> None:
        """Joined the network (with a broker: every replica's workers are known) before a request is judged."""
        if self.broker is not None:
            await self.broker.start()

    # --- registry -------------------------------------------------------------------------
    def _listed(self, worker: WorkerConnection) -> bool:
        return self.workers.get(worker.worker_id) is worker and worker.worker_id not in self.quarantined

    def touch(self, worker: WorkerConnection) -> None:
        """Its load, slots or standing changed: re-ranked in the free-worker index (call after every such change)."""
        self.free.touch(worker, self._listed(worker))

    def routable(self) -> list[WorkerConnection]:
        """This replica's own workers that may get jobs: the ones it dispatches to."""
        return [w for w in self.workers.values() if w.worker_id not in self.quarantined]

    def connected(self) -> list[WorkerConnection]:
        """Every worker of the network: ours, then (with a broker) those connected to other replicas."""
        return [*self.workers.values(), *(self.broker.remote_workers() if self.broker is not None else [])]

    def network(self) -> list[WorkerConnection]:
        """Every worker of the network that may get jobs."""
        return [w for w in self.connected() if w.worker_id not in self.quarantined]

    def listed(self) -> list[dict[str, Any]]:
        """Every worker of the network as `/one/workers` lists it, with the replica it is connected to."""
        here = self.broker.name if self.broker is not None else None
        return [{"replica": here, **w.public()} for w in self.connected()]

    def advertises(self, model: str, cluster: str | None = None, steering: Steering = ANY_WORKER, nodes_only: bool = False) -> bool:
        """Whether some worker that may run this caller's job serves `model` (without `cluster`: a public worker)."""
        return any(model in w.models and w.may_run(cluster, steering, nodes_only) for w in self.network())

    def free_slots(self, model: str) -> int:
        """Free public capacity for `model`, each worker's free slots weighed by its job health: slots of a worker that
        drops its jobs are not capacity, so they cannot make room for Included jobs in Dedicated reservations.
        Cluster nodes are not public capacity. This replica's workers are counted by the index as they change."""
        remote = self.broker.remote_workers() if self.broker is not None else []
        micro = self.free.capacity.get(model, 0) + sum(w.public_capacity() for w in remote if model in w.models and w.worker_id not in self.quarantined)
        return (micro + 500_000) // 1_000_000

    def reserved_for(self, model: str) -> int:
        self._refresh_if_stale()
        return self.reserved.get(model, 0) + self.reserved.get("*", 0)

    def _refresh_if_stale(self) -> bool:
        """Recompute the reservations if a package expired (or the recheck interval passed); True if it did."""
        if self.reservations is None or time.time() < self._reserved_until:
            return False
        self.refresh_reservations()
        return True

    def refresh_reservations(self) -> None:
        """Recompute the Dedicated reservations now (after a purchase, when one expires, and periodically)."""
        if self.reservations is None:
            return
        self.reserved, changes_at = self.reservations()
        self._reserved_until = min(changes_at, time.time() + RESERVATION_RECHECK_S)

    def tick(self) -> None:
        """Called about once a second while jobs wait: reservations that ran out free their slots without an event."""
        if self._refresh_if_stale():
            self._pump()

    async def evict(self, worker_id: str, reason: str) -> None:
        """Hang up on a connected worker (its Cluster withdrew consent): its jobs fail over, it must reconnect."""
        conn = self.workers.get(worker_id)
        if conn is None:
            return
        await self.unregister(conn, reason=reason)
        if conn.close is not None:  # not awaited: a close waits for the peer's answer to the closing handshake
            asyncio.get_running_loop().create_task(_quietly(conn.close()))

    def quarantine(self, worker_id: str) -> None:
        self.quarantined.add(worker_id)
        if (conn := self.workers.get(worker_id)) is not None:
            self.touch(conn)
        log.warning("worker %s… quarantined: no more jobs are routed to it", worker_id[:12])

    async def register(self, conn: WorkerConnection) -> None:
        old = self.workers.get(conn.worker_id)
        if old is not None and old is not conn:
            await self.unregister(old, reason="replaced by a new connection")
        if conn.slots > self.max_slots:
            log.warning("worker %s… claims %d slots; capped at %d", conn.worker_id[:12], conn.slots, self.max_slots)
        conn.claimed_slots = min(conn.slots, self.max_slots)
        served, failed, admitted = self.history.get(conn.worker_id, (0, 0, START_SLOTS))
        conn.served, conn.failed, conn.slots = conn.served + served, conn.failed + failed, min(conn.claimed_slots, admitted)
        self.workers[conn.worker_id] = conn
        if self.broker is not None:
            self.broker.workers_changed()
        log.info("worker %s… joined (%s, %d slots, models=%s)", conn.worker_id[:12], conn.kind, conn.slots, sorted(conn.models))
        self.touch(conn)
        self._pump(conn)

    async def unregister(self, conn: WorkerConnection, reason: str = "disconnected") -> None:
        if self.workers.get(conn.worker_id) is conn:
            del self.workers[conn.worker_id]
        self.touch(conn)  # out of the index
        log.info("worker %s… left: %s", conn.worker_id[:12], reason)
        for job in list(conn.jobs.values()):
            self._worker_lost(job, conn, reason)
        conn.jobs.clear()
        self.history[conn.worker_id] = (conn.served, conn.failed, conn.slots)
        if self.broker is not None:
            self.broker.workers_changed()
        self._pump()

    def _worker_lost(self, job: Job, conn: WorkerConnection, reason: str) -> None:
        job.worker = None
        self.admit(conn, ok=False)
        if job.finished:
            return
        if self.can_fail_over(job):
            log.info("job %s: worker lost before first delta, re-dispatching", job.job_id)
            self._enqueue(job)
            return
        job.finished = True
        job.events.put_nowait(("error", "worker_lost", f"the worker serving this request went away ({reason})"))

    def can_fail_over(self, job: Job, after_error: bool = False) -> bool:
        """Before its first delta a job may move to another worker, up to max_attempts workers; after a worker
        error only if some other worker serves the model (the same one would fail the same way)."""
        if job.started or len(job.tried) >= self.max_attempts or job.pin is not None:
            return False
        return not after_error or any(
            job.model in w.models and w.worker_id not in job.tried and w.worker_id not in job.exclude and w.may_run(job.cluster, job.steering, job.nodes_only)
            for w in self.network()
        )

    @staticmethod
    def admit(worker: WorkerConnection, ok: bool) -> None:
        """Capacity is proven, not believed: each finished job admits one more of the claimed slots, each error,
        timeout or lost job halves them (at least one). Health, and so routing weight, follows the same counts."""
        if ok:
            worker.served += 1
            worker.slots = min(worker.slots + 1, worker.claimed_slots or worker.slots + 1)
        else:
            worker.failed += 1
            worker.slots = max(worker.slots // 2, 1)

    def reweigh(self, worker: WorkerConnection) -> None:
        """Its audited reliability changed: re-ranked, and waiting jobs that ask for a minimum reliability may now run."""
        self.touch(worker)
        self._pump(worker)

    def note_failure(self, worker: WorkerConnection) -> None:
        """A job timed out on this worker: counts against it like an error."""
        self.admit(worker, ok=False)
        self.touch(worker)

    # --- queue and matching ----------------------------------------------------------------
    def submit(self, job: Job) -> None:
        if self.broker is not None:
            self.broker.submit(job)
            return
        self._place(job)

    def _place(self, job: Job) -> None:
        """Run a job now if a worker may take it, else queue it. Jobs already waiting could run on no free worker
        (the queue's invariant), so this never overtakes a job that could have run."""
        worker = self._pick(job)
        if worker is not None:
            self._dispatch(job, worker)
        else:
            self._wait(job)

    def _wait(self, job: Job, order: int | None = None) -> None:
        queue = self._queues.setdefault(job.model, [])
        heapq.heappush(queue, (job.priority, next(self._counter) if order is None else order, job))

    def _enqueue(self, job: Job) -> None:
        """A job back from a lost or failed worker: placed again (if it must wait, behind its priority's arrivals so far)."""
        if self.broker is not None:
            self.broker.requeue(job)
            return
        self._place(job)

    def _waiting(self) -> list[Job]:
        return [j for queue in self._queues.values() for _, _, j in queue if not j.finished]

    def queue_depth(self) -> int:
        if self.broker is not None:
            return sum(self.broker.waiting.values())
        return len(self._waiting())

    def queue_depth_by_lane(self) -> dict[str, int]:
        """Waiting jobs per lane: Included runs at PRIORITY_INCLUDED, Dedicated packages ahead of it."""
        if self.broker is not None:
            return dict(self.broker.waiting)
        waiting = self._waiting()
        included = sum(1 for j in waiting if j.priority >= PRIORITY_INCLUDED)
        return {"included": included, "dedicated": len(waiting) - included}

    def _pick(self, job: Job) -> WorkerConnection | None:
        """The worker to run `job`: one of its Cluster's own nodes first, then a public worker (unless `nodes_only`);
        among them a worker that has not tried the job yet, best ranked; a worker that tried it only as a last resort.
        Included jobs leave the last free slots to Dedicated packages' reservations."""
        if job.priority >= PRIORITY_INCLUDED and (reserved := self.reserved_for(job.model)) and self.free_slots(job.model) <= reserved:
            return None  # the last free slots are kept for Dedicated packages
        if job.pin is not None:  # an audit's drawn auditor, and no other
            worker = self.workers.get(job.pin)
            ok = (worker is not None and self._listed(worker) and job.model in worker.models and worker.free_slots > 0
                  and worker.worker_id not in job.exclude and worker.may_run(job.cluster, job.steering, job.nodes_only))  # fmt: skip
            return worker if ok else None
        sort = job.steering.sort if job.steering.sort in SORTS else None
        kinds = ([job.cluster] if job.cluster is not None else []) + ([] if job.nodes_only else [None])
        tried: list[WorkerConnection] = []
        for cluster in kinds:
            if (worker := self.free.best((job.model, cluster, sort), job, self._listed, tried)) is not None:
                return worker
        return min(tried, key=lambda w: _rank(w, job)) if tried else None

    def _pump(self, freed: WorkerConnection | None = None) -> None:
        """Hand queued jobs to free workers, in priority order (with a broker: pull from the network's queue).
        `freed`: the one worker that gained a free slot; only the queues of its models can have become runnable, and
        only until it is full. Without it (reservations changed, jobs came back): every queue."""
        if self.broker is not None:
            self.broker.want_pump()
            return
        if freed is None:
            queues = list(self._queues.values())
        else:
            queues = [q for m in freed.models if (q := self._queues.get(m))]
        still: list[tuple[int, int, Job]] = []
        while queues and (freed is None or (freed.free_slots > 0 and self._listed(freed))):
            queue = min((q for q in queues if q), key=lambda q: q[0][:2], default=None)
            if queue is None:
                break
            prio, order, job = heapq.heappop(queue)
            if job.finished:
                continue
            if (worker := self._pick(job)) is not None:
                self._dispatch(job, worker)
            else:
                still.append((prio, order, job))
        for item in still:
            heapq.heappush(self._queues[item[2].model], item)

    def _dispatch(self, job: Job, worker: WorkerConnection) -> None:
        job.worker = worker
        job.on_own_node = worker.dedicated_to(job.cluster)
        job.tried.add(worker.worker_id)
        job.dispatched_at = time.monotonic()
        worker.jobs[job.job_id] = job
        self.touch(worker)
        remaining_ms = max(int((job.deadline_s - time.monotonic()) * 1000), 1)
        frame = frames.job(
            job_id=job.job_id,
            task=job.task,
            model=job.model,
            body=job.body,
            request_salt=job.request_salt,
            request_digest=job.request_digest,
            deadline_ms=remaining_ms,
            sampling_seed=job.sampling_seed,
        )  # nothing on the wire says whether a job is an audit
        asyncio.get_running_loop().create_task(self._send_job(worker, job, frame))

    async def _send_job(self, worker: WorkerConnection, job: Job, frame: dict[str, Any]) -> None:
        try:
            await worker.send(frame)
        except Exception as exc:  # the socket died under us: same as the worker leaving
            await self.unregister(worker, reason=f"send failed: {exc}")

    # --- frames from workers -----------------------------------------------------------------
    def on_frame(self, worker: WorkerConnection, frame: dict[str, Any], size: int = 0) -> None:
        """`size`: the frame's length on the wire, counted against its job's byte cap."""
        worker.last_seen = time.monotonic()
        ftype = frame["type"]
        if ftype == "pong":
            worker.reported_load = float(frame["load"])
            return
        job = worker.jobs.get(frame.get("job_id", ""))
        if job is None:
            return  # a late frame for a cancelled or failed-over job
        if ftype == "delta":
            job.streamed += size
            if job.streamed > self.max_job_bytes:
                self._overflow(worker, job)
                return
            if not job.started:
                job.started = True
                first = time.monotonic() - job.dispatched_at
                worker.latency_ewma_s = first if worker.served == 0 else 0.8 * worker.latency_ewma_s + 0.2 * first
                self.touch(worker)
            job.events.put_nowait(("delta", frame))
        elif ftype == "done":
            del worker.jobs[job.job_id]
            job.finished = True
            self.admit(worker, ok=True)
            for refuser in job.refused_by:  # it was servable after all
                self.admit(refuser, ok=False)
                self.touch(refuser)
            job.events.put_nowait(("done", frame))
            self.touch(worker)
            self._pump(worker)
        elif ftype == "error":
            del worker.jobs[job.job_id]
            if frame["code"] in CLIENT_FAULT_CODES:
                job.refused_by.append(worker)
            else:
                self.admit(worker, ok=False)
            self.touch(worker)
            job.worker = None
            if self.can_fail_over(job, after_error=True):  # like a disconnect: the caller never sees it
                log.info("job %s: worker %s… failed before its first delta (%s), re-dispatching", job.job_id, worker.worker_id[:12], frame["code"])
                self._enqueue(job)
            else:
                job.finished = True
                job.events.put_nowait(("error", frame["code"], frame["message"]))
            self._pump(worker)

    def _overflow(self, worker: WorkerConnection, job: Job) -> None:
        """A worker streamed past the job's byte cap: the caller gets an error (no receipt, no charge), the worker
        loses standing as for a failed job and is told to stop."""
        del worker.jobs[job.job_id]
        job.finished, job.worker = True, None
        self.admit(worker, ok=False)
        self.touch(worker)
        log.warning("job %s: worker %s… streamed past %d bytes; stopped", job.job_id, worker.worker_id[:12], self.max_job_bytes)
        job.events.put_nowait(("error", "output_too_large", f"the worker's answer passed {self.max_job_bytes} bytes"))
        asyncio.get_running_loop().create_task(_quietly(worker.send(frames.cancel(job.job_id))))
        self._pump(worker)

    async def cancel(self, job: Job) -> None:
        """The caller went away or gave up: free the slot and tell the worker to stop."""
        if job.finished:
            return
        job.finished = True
        worker = job.worker
        if worker is not None and worker.jobs.pop(job.job_id, None) is not None:
            self.touch(worker)
            await _quietly(worker.send(frames.cancel(job.job_id)))
        if self.broker is not None:
            self.broker.cancelled(job)
            self.broker.want_pump()
        elif worker is not None:
            self._pump(worker)

    def done_with(self, job: Job) -> None:
        """The caller's side is finished with a job, however it ended (with a broker: its request leaves the broker)."""
        if self.broker is not None:
            self.broker.forget(job)


async def _quietly(sending: Awaitable[None]) -> None:
    """A best-effort frame to a worker that may already be gone."""
    try:
        await sending
    except Exception:
        pass
