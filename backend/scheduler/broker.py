"""Cross-replica dispatch on Redis: several coordinator replicas that are one network.

Each replica keeps its own worker sockets and its own Scheduler (matching, admission, failover); what they share
lives in Redis (`ONE_BROKER_URL`):
- `one:queue`, a sorted set: every waiting job of the network, scored by (priority, arrival), so a Dedicated job runs
  ahead of an Included one whichever replica each arrived at. A replica with a free worker pulls from the top the
  jobs its own workers may run and claims each with one atomic script (ZREM wins once): a job runs, and is billed, once.
- `one:job:<id>`, a hash: the job's routing head and its request body, only while the job is in flight (it expires).
- `one:events:<replica>`, a stream per replica: the deltas, done and errors of the jobs whose client that replica
  holds, added by whichever replica runs them. Entries are deleted as soon as they are read: no output stays.
- `one:control`, a stream every replica reads: "jobs are waiting" wake-ups and cancels.
- `one:replicas`, `one:workers`: heartbeats, and every worker of the network with the replica it is connected to.
- `one:quarantined`: workers an audit caught on any replica; every replica stops routing to them.
- `one:holds:<replica>`: the jobs holding credit at a replica; when it dies the survivors release them.

The replica holding the client writes the receipt (it relayed the output and checks the worker's attestation), so
the receipt log stays one chain: appends from every replica serialise on Postgres (backend.trust.receipts).
Each process is its own incarnation (`name-xxxxxx`): a restarted replica never inherits a dead one's jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import redis.asyncio as aioredis

from backend.scheduler import PRIORITY_INCLUDED, Job, Scheduler, Steering, WorkerConnection

log = logging.getLogger("one.broker")

QUEUE = "one:queue"
CONTROL = "one:control"
REPLICAS = "one:replicas"
WORKERS = "one:workers"
QUARANTINED = "one:quarantined"  # workers an audit caught, on any replica: none of them routes to them
HEARTBEAT_S = 1.0
# A replica silent this long is gone: jobs it ran fail over (or end in a clean error), jobs of its clients stop, and
# the credit its clients' jobs held is released.
DEAD_AFTER_S = 6.0
# A dead replica's heartbeat stays this long as a tombstone, so every survivor sees it stop (and fails its jobs over)
# whichever of them released its credit first.
TOMBSTONE_S = 600.0
PUMP_WINDOW = 500  # queued jobs a replica looks at per pull, from the top
CONTROL_MAXLEN = 10_000
_PRIORITY_STEP = 10**13  # score = priority * step + arrival in ms: one priority class never overtakes another

# Claim a queued job: whoever removes it from the queue runs it. A job whose client is gone (hash deleted) is not run.
_CLAIM = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  if redis.call('EXISTS', KEYS[2]) == 0 then return false end
  redis.call('HSET', KEYS[2], 'executor', ARGV[2])
  return redis.call('HMGET', KEYS[2], 'head', 'body')
end
return false
"""


def _job_key(job_id: str) -> str:
    return f"one:job:{job_id}"


def _events_key(replica: str) -> str:
    return f"one:events:{replica}"


def _holds_key(replica: str) -> str:
    return f"one:holds:{replica}"


async def _never_send(frame: dict[str, Any]) -> None:
    raise RuntimeError("a worker connected to another replica is reached through the broker")


@dataclass(eq=False)
class RemoteWorker(WorkerConnection):
    """A worker connected to another replica, as its heartbeat last described it: counts toward availability and
    reserved capacity here; jobs reach it through the shared queue, never a socket of ours."""

    busy: int = 0
    replica: str = ""

    @property
    def free_slots(self) -> int:
        return self.slots - self.busy

    def public(self) -> dict[str, Any]:
        return {**super().public(), "busy": self.busy, "replica": self.replica}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "RemoteWorker":
        return cls(
            worker_id=record["id"], kind=record["kind"], payout_address="", models={m: {} for m in record["models"]},
            slots=int(record["slots"]), hardware={}, version=record.get("version", ""), send=_never_send,
            latency_ewma_s=float(record.get("latency_ewma_ms", 0)) / 1000, served=int(record.get("served", 0)),
            failed=int(record.get("failed", 0)), reliability=float(record.get("reliability", 1.0)),
            claimed_slots=int(record.get("claimed_slots", 0)), cluster=record.get("cluster"),
            busy=int(record.get("busy", 0)), replica=record.get("replica", ""),
        )  # fmt: skip


class _Relay:
    """Stands in for a job's event queue on the replica running another replica's job: every event goes to the
    client's replica."""

    def __init__(self, broker: "Broker", job_id: str, origin: str):
        self.broker, self.job_id, self.origin = broker, job_id, origin

    def put_nowait(self, event: tuple) -> None:
        if event[0] in ("done", "error"):
            self.broker.running.pop(self.job_id, None)
        self.broker.forward(self.origin, self.job_id, list(event))


class Broker:
    def __init__(self, url: str, name: str, scheduler: Scheduler, release_hold: Callable[[str], None]):
        self.url, self.name, self.scheduler, self.release_hold = url, name, scheduler, release_hold
        self.replica = f"{name}-{secrets.token_hex(3)}"
        self.redis = aioredis.Redis.from_url(url, decode_responses=True)
        self.mine: dict[str, Job] = {}  # jobs whose client this replica holds
        self.executor_of: dict[str, str] = {}  # of those, the replica running each (when not this one)
        self.running: dict[str, Job] = {}  # other replicas' jobs running on this replica's workers
        self.remote: dict[str, RemoteWorker] = {}
        self.live: dict[str, str] = {}  # replica incarnation -> its name, for every replica with a fresh heartbeat
        # Replicas seen to stop beating (one that joined since our last heartbeat is in neither: it is not dead).
        self.dead: OrderedDict[str, None] = OrderedDict()
        self._last_death = -math.inf  # when we last saw a replica die (lost claims are looked for a while after)
        self.waiting = {"dedicated": 0, "included": 0}
        self._outbox: list[Callable[[Any], None]] = []
        self._queued = False  # the outbox holds an enqueue
        self._wrote = asyncio.Event()
        self._pump_wanted = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._cancelled: OrderedDict[str, None] = OrderedDict()  # recent cancels: a claim racing one is dropped
        self._tasks: list[asyncio.Task] = []
        self._starting: asyncio.Future | None = None
        self._claim = self.redis.register_script(_CLAIM)

    # --- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the network (idempotent): the first heartbeat loads every replica's workers before any request is
        judged available or not."""
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_future()
            try:
                await self._heartbeat()
                last = await self.redis.xrevrange(CONTROL, count=1)
                control_from = last[0][0] if last else "0-0"
                for loop in (self._beat_loop(), self._read_loop(control_from), self._pump_loop(), self._write_loop()):
                    self._tasks.append(asyncio.create_task(loop))
                log.info("replica %s joined the broker at %s", self.replica, self.url.rsplit("@", 1)[-1])
                self._starting.set_result(None)
            except Exception as exc:
                self._starting.set_exception(exc)
                self._starting = None
                raise
        await asyncio.shield(self._starting)

    def _ensure(self) -> None:
        """Start from a synchronous caller inside the loop (a worker joined before any request came)."""
        if self._starting is None:
            asyncio.get_running_loop().create_task(self.start())

    def remote_workers(self) -> list[RemoteWorker]:
        return list(self.remote.values())

    # --- the client's side ------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue a job network-wide; whichever replica first has a worker for it runs it."""
        self._ensure()
        job.origin = self.replica
        self.mine[job.job_id] = job
        job.score = job.priority * _PRIORITY_STEP + int(time.time() * 1000)
        head, body = json.dumps(self._head(job)), json.dumps(job.body, separators=(",", ":"))
        expire_at = int((time.time() + max(job.deadline_s - time.monotonic(), 0) + 60) * 1000)

        def enqueue(pipe: Any) -> None:
            pipe.hset(_job_key(job.job_id), mapping={"head": head, "body": body, "origin": self.replica})
            pipe.pexpireat(_job_key(job.job_id), expire_at)
            pipe.zadd(QUEUE, {job.job_id: job.score})
            pipe.xadd(CONTROL, {"op": "queued"}, maxlen=CONTROL_MAXLEN, approximate=True)

        self._send(enqueue, queues=True)

    def requeue(self, job: Job) -> None:
        """Back into the shared queue at its old place (its worker went away before the first delta)."""
        head = json.dumps(self._head(job))
        foreign = self.running.pop(job.job_id, None) is not None

        def enqueue(pipe: Any) -> None:
            pipe.hset(_job_key(job.job_id), "head", head)
            pipe.hdel(_job_key(job.job_id), "executor")
            pipe.zadd(QUEUE, {job.job_id: job.score})
            pipe.xadd(CONTROL, {"op": "queued"}, maxlen=CONTROL_MAXLEN, approximate=True)

        if job.job_id in self._cancelled:
            return
        self._send(enqueue, queues=True)
        self.executor_of.pop(job.job_id, None)
        if foreign:
            self.forward(job.origin, job.job_id, ["requeued"])

    def cancelled(self, job: Job) -> None:
        """The scheduler cancelled `job`: ours -> out of the queue, and its runner (if another replica) told to stop."""
        self._remember_cancel(job.job_id)
        if self.running.pop(job.job_id, None) is not None:
            return  # another replica's job we stopped: its client is gone or asked us to
        if self.mine.pop(job.job_id, None) is None:
            return
        self.executor_of.pop(job.job_id, None)
        local = job.worker is not None and not isinstance(job.worker, RemoteWorker)

        def withdraw(pipe: Any) -> None:
            pipe.zrem(QUEUE, job.job_id)
            pipe.delete(_job_key(job.job_id))
            if not local:
                pipe.xadd(CONTROL, {"op": "cancel", "job": job.job_id}, maxlen=CONTROL_MAXLEN, approximate=True)

        self._send(withdraw)

    def forget(self, job: Job) -> None:
        """The client's side is done with `job` (answered, failed or cancelled): its request leaves Redis."""
        if self.mine.pop(job.job_id, None) is None:
            return
        self.executor_of.pop(job.job_id, None)
        self._send(lambda pipe: (pipe.zrem(QUEUE, job.job_id), pipe.delete(_job_key(job.job_id))))

    async def track_hold(self, job_id: str) -> None:
        """Before a job's credit is held: if this replica dies, the survivors know to release it."""
        await self.redis.sadd(_holds_key(self.replica), job_id)

    def untrack_hold(self, job_id: str) -> None:
        self._send(lambda pipe: pipe.srem(_holds_key(self.replica), job_id))

    # --- the worker's side --------------------------------------------------------------------
    def forward(self, origin: str, job_id: str, event: list) -> None:
        """An event of another replica's job, to the replica holding its client."""
        text = json.dumps(event, separators=(",", ":"))
        self._send(lambda pipe: pipe.xadd(_events_key(origin), {"job": job_id, "ev": text}))

    def want_pump(self) -> None:
        self._pump_wanted.set()

    def workers_changed(self) -> None:
        self._ensure()
        self._beat_now.set()

    async def _pump_loop(self) -> None:
        while True:
            await self._pump_wanted.wait()
            self._pump_wanted.clear()
            try:
                await self._pump_once()
            except Exception:
                log.exception("pulling jobs from the shared queue failed")
                await asyncio.sleep(0.2)

    def _has_free_worker(self) -> bool:
        return any(w.free_slots > 0 for w in self.scheduler.routable())

    async def _pump_once(self) -> None:
        """Pull, in priority order, the queued jobs our free workers may run; claim them; dispatch what we won."""
        sched = self.scheduler
        if not self._has_free_worker():
            return
        ids = await self.redis.zrange(QUEUE, 0, PUMP_WINDOW - 1)
        foreign = [i for i in ids if i not in self.mine]
        heads: dict[str, dict[str, Any] | None] = {}
        if foreign:
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in foreign:
                    pipe.hget(_job_key(job_id), "head")
                heads = {i: json.loads(h) if h else None for i, h in zip(foreign, await pipe.execute())}
        wanted: list[str] = []
        free = sum(max(w.free_slots, 0) for w in sched.routable())
        gone: list[str] = []
        for job_id in ids:
            if len(wanted) >= free:
                break
            job = self.mine.get(job_id)
            if job is None:
                head = heads.get(job_id)
                if head is None or head["origin"] in self.dead:
                    gone.append(job_id)  # its client's replica withdrew it or died: nobody waits for the answer
                    continue
                if job_id in self._cancelled:
                    continue
                job = self._job(head, {})
            elif job.finished:
                continue
            if sched._pick(job) is not None:
                wanted.append(job_id)
        if gone:
            await self.redis.zrem(QUEUE, *gone)
        if not wanted:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in wanted:
                await self._claim(keys=[QUEUE, _job_key(job_id)], args=[job_id, self.replica], client=pipe)
            won = await pipe.execute()
        for job_id, claimed in zip(wanted, won):
            if not claimed:
                continue
            job = self.mine.get(job_id)
            if job is None:
                job = self._job(json.loads(claimed[0]), json.loads(claimed[1]))
                if job_id in self._cancelled:
                    continue
                self.running[job_id] = job
            worker = sched._pick(job)
            if worker is None or job.finished:  # the slot went meanwhile: back to its place in the queue
                if not job.finished:
                    self.requeue(job)
                continue
            sched._dispatch(job, worker)
            if job.origin != self.replica:
                record = {**worker.public(), "replica": self.name}
                self.forward(job.origin, job_id, ["dispatched", record, self.replica, job.on_own_node])

    # --- shared state -------------------------------------------------------------------------------
    def _send(self, op: Callable[[Any], Any], queues: bool = False) -> None:
        """`queues`: the op puts a job in the shared queue (once written, our own workers may take it)."""
        self._outbox.append(op)
        self._queued = self._queued or queues
        self._wrote.set()

    async def _write_loop(self) -> None:
        """One writer, in order: an enqueue always reaches Redis before its cancel. Whatever waits goes in one round trip."""
        while True:
            await self._wrote.wait()
            self._wrote.clear()
            batch, self._outbox = self._outbox, []
            queued, self._queued = self._queued, False
            if not batch:
                continue
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for op in batch:
                        op(pipe)
                    await pipe.execute()
            except Exception:
                log.exception("writing %d operations to the broker failed", len(batch))
                await asyncio.sleep(0.2)
            if queued:
                self.want_pump()

    async def _read_loop(self, control_from: str) -> None:
        """Wake-ups and cancels from every replica, and the events of our clients' jobs run elsewhere."""
        reader = aioredis.Redis.from_url(self.url, decode_responses=True)
        mine = _events_key(self.replica)
        streams = {CONTROL: control_from, mine: "0-0"}
        while True:
            try:
                replies = await reader.xread(streams, count=1000, block=1000)
            except Exception:
                log.exception("reading the broker failed")
                await asyncio.sleep(0.5)
                continue
            for stream, entries in replies or []:
                for entry_id, fields in entries:
                    streams[stream] = entry_id
                    if stream == CONTROL:
                        self._on_control(fields)
                    else:
                        self._on_event(fields["job"], json.loads(fields["ev"]))
                if stream == mine and entries:  # read once, then gone: no answer text stays in Redis
                    ids = [entry_id for entry_id, _ in entries]
                    self._send(lambda pipe, ids=ids: pipe.xdel(mine, *ids))

    def _on_control(self, fields: dict[str, str]) -> None:
        if fields.get("op") == "queued":
            self.want_pump()
        elif fields.get("op") == "cancel":
            job_id = fields.get("job", "")
            self._remember_cancel(job_id)
            job = self.running.get(job_id)
            if job is not None:
                asyncio.get_running_loop().create_task(self.scheduler.cancel(job))

    def _on_event(self, job_id: str, event: list) -> None:
        job = self.mine.get(job_id)
        if job is None or job.finished:
            return  # a late event of a job we gave up on
        kind = event[0]
        if kind == "dispatched":
            job.worker = RemoteWorker.from_record(event[1])
            job.tried.add(job.worker.worker_id)
            self.executor_of[job_id] = event[2]
            job.on_own_node = bool(event[3])
        elif kind == "requeued":
            job.worker = None
            self.executor_of.pop(job_id, None)
        elif kind == "delta":
            job.started = True
            job.events.put_nowait(("delta", event[1]))
        elif kind in ("done", "error"):
            job.finished = True
            job.events.put_nowait(tuple(event))

    def _remember_cancel(self, job_id: str) -> None:
        self._cancelled[job_id] = None
        while len(self._cancelled) > 10_000:
            self._cancelled.popitem(last=False)

    async def _beat_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._beat_now.wait(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                pass
            self._beat_now.clear()
            try:
                await self._heartbeat()
            except Exception:
                log.exception("broker heartbeat failed")

    async def _heartbeat(self) -> None:
        """Say we are alive with our workers; read everyone else's; act on replicas that died."""
        now = time.time()
        local = {w.worker_id: w for w in self.scheduler.workers.values()}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(REPLICAS, self.replica, json.dumps({"name": self.name, "at": now}))
            for w in local.values():
                pipe.hset(WORKERS, w.worker_id, json.dumps({**w.public(), "replica": self.name, "instance": self.replica, "at": now}))
            if self.scheduler.quarantined:
                pipe.sadd(QUARANTINED, *self.scheduler.quarantined)
            pipe.smembers(QUARANTINED)
            pipe.hgetall(REPLICAS)
            pipe.hgetall(WORKERS)
            pipe.zcount(QUEUE, "-inf", f"({PRIORITY_INCLUDED * _PRIORITY_STEP}")
            pipe.zcard(QUEUE)
            *_, quarantined, replicas, workers, dedicated, total = await pipe.execute()
        self.scheduler.quarantined |= quarantined
        seen = {r: json.loads(v) for r, v in replicas.items()}
        self.live = {r: v["name"] for r, v in seen.items() if now - v["at"] < DEAD_AFTER_S}
        for replica in seen.keys() - self.live.keys():
            if replica not in self.dead:
                self._last_death = time.monotonic()
            self.dead[replica] = None
        while len(self.dead) > 1000:
            self.dead.popitem(last=False)
        self.waiting = {"dedicated": dedicated, "included": total - dedicated}
        remote, stale = {}, []
        for wid, text in workers.items():
            record = json.loads(text)
            instance = record.get("instance")
            if instance == self.replica:
                if wid not in local:
                    stale.append(wid)  # left since our last beat
            elif instance in self.dead:
                stale.append(wid)
            elif wid not in local:
                remote[wid] = RemoteWorker.from_record(record)
        self.remote = remote
        if stale:
            await self.redis.hdel(WORKERS, *stale)
        for replica in seen.keys() - self.live.keys():
            await self._reap(replica, now - seen[replica]["at"])
        await self._watch_jobs()
        if total and self._has_free_worker():
            self.want_pump()  # the safety net under the wake-ups

    async def _reap(self, replica: str, silent_s: float) -> None:
        """A dead replica's clients are gone: release the credit their jobs held (once, by one survivor)."""
        if silent_s > TOMBSTONE_S:
            await self.redis.hdel(REPLICAS, replica)
        if not await self.redis.set(f"one:reaping:{replica}", self.replica, nx=True, ex=int(TOMBSTONE_S * 2)):
            return
        jobs = await self.redis.smembers(_holds_key(replica))
        for job_id in jobs:
            await asyncio.to_thread(self.release_hold, job_id)
        await self.redis.delete(_holds_key(replica), _events_key(replica))
        log.warning("replica %s went away: released %d held jobs' credit", replica, len(jobs))

    async def _watch_jobs(self) -> None:
        """Our clients' jobs on a replica that died fail over (before the first delta) or end in a clean error; other
        replicas' jobs whose client's replica died stop."""
        await self._learn_lost_claims()
        for job_id, job in list(self.mine.items()):
            executor = self.executor_of.get(job_id)
            if job.finished or executor not in self.dead:
                continue
            self.executor_of.pop(job_id, None)
            if self.scheduler.can_fail_over(job):
                log.info("job %s: replica %s went away before the first delta; back in the queue", job_id, executor)
                job.worker = None
                self.requeue(job)
            else:
                job.finished = True
                job.events.put_nowait(("error", "worker_lost", "the replica running this request went away"))
        for job_id, job in list(self.running.items()):
            if job.origin in self.dead:
                asyncio.get_running_loop().create_task(self.scheduler.cancel(job))

    async def _learn_lost_claims(self) -> None:
        """After a replica died: our waiting jobs it had claimed but not yet told us about (it died in between) are
        found by the executor their hash names, so they fail over now instead of waiting out the queue timeout."""
        if time.monotonic() - self._last_death > DEAD_AFTER_S * 10:
            return
        waiting = [j for j in self.mine.values() if not j.finished and j.worker is None and j.job_id not in self.executor_of]
        if not waiting:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in waiting:
                pipe.hget(_job_key(job.job_id), "executor")
            executors = await pipe.execute()
        for job, executor in zip(waiting, executors):
            if executor and executor != self.replica:
                self.executor_of[job.job_id] = executor

    # --- job <-> Redis ------------------------------------------------------------------------------
    def _head(self, job: Job) -> dict[str, Any]:
        """What a replica needs to decide whether its workers may run a job (everything but the body)."""
        s = job.steering
        return {
            "id": job.job_id, "task": job.task, "model": job.model, "salt": job.request_salt, "digest": job.request_digest,
            "deadline": time.time() + (job.deadline_s - time.monotonic()), "priority": job.priority, "score": job.score,
            "tried": sorted(job.tried), "exclude": sorted(job.exclude), "pin": job.pin, "cluster": job.cluster,
            "nodes_only": job.nodes_only, "steering": [s.sort, s.min_reliability, s.allow_browser], "seed": job.sampling_seed,
            "origin": job.origin, "enqueued": time.time() - (time.monotonic() - job.enqueued_at),
        }  # fmt: skip

    def _job(self, head: dict[str, Any], body: dict[str, Any]) -> Job:
        """Another replica's job, as this replica runs it: its events go back to the client's replica."""
        now, wall = time.monotonic(), time.time()
        sort, min_reliability, allow_browser = head["steering"]
        return Job(
            job_id=head["id"], task=head["task"], model=head["model"], body=body, request_salt=head["salt"],
            request_digest=head["digest"], deadline_s=now + head["deadline"] - wall, priority=head["priority"],
            events=_Relay(self, head["id"], head["origin"]), tried=set(head["tried"]), exclude=frozenset(head["exclude"]),
            pin=head["pin"], cluster=head["cluster"], nodes_only=head["nodes_only"],
            steering=Steering(sort, min_reliability, allow_browser), sampling_seed=head["seed"],
            enqueued_at=now - (wall - head["enqueued"]), origin=head["origin"], score=head["score"],
        )  # fmt: skip
