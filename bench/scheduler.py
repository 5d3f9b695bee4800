"""Scheduler match + dispatch per job with 10,000 registered workers: the free-worker index against the scan it
replaced, same run, same workers, same jobs. Reported, never asserted.

    .venv/bin/python bench/scheduler.py            # ~30 s
    .venv/bin/python bench/scheduler.py --quick    # fewer jobs

The real `backend.scheduler.Scheduler`: 10,000 workers registered through `register` (each serves 2 of 20 models,
8 slots; a tenth are Cluster nodes; browsers and nodes; reliabilities vary), workers that answer nothing (`send`
is a no-op: the socket is not what is measured). Steady state: about half the slots busy; each job submitted is
matched and dispatched (`Scheduler.submit`: the match, the job frame, the send task), then a random running job
completes (`on_frame` done, which re-ranks its worker and pumps its models' queues).

Measured:
- `match+dispatch`: `submit` per job, now (the index) and before (the scan of every worker, `by_scan` in
  tests/backend/scheduler/test_free_workers.py, the rule the index is tested against), on the same scheduler state.
- `completion with a backlog`: the network saturated with 2,000 jobs waiting; a completion frees one slot. Now the
  scheduler pumps only the freed worker's models until it is full; before, it re-pumped every waiting job.
Before timing, the standing network is moved out of the garbage collector's view (`gc.freeze`): the pauses of a
full collection over 10,000 workers and 40,000 running jobs would land on whichever job allocates at that moment.
Results go to bench/results/scheduler-match-<utc time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from backend.protocol import frames  # noqa: E402
from backend.scheduler import PRIORITY_INCLUDED, Job, Scheduler, Steering, WorkerConnection  # noqa: E402
from tests.backend.scheduler.test_free_workers import by_scan  # noqa: E402

TARGET_US = 50.0
USAGE = {"input_tokens": 8, "output_tokens": 8, "images": 0}
console = Console()


class ScanScheduler(Scheduler):
    """The scheduler as it was: every match scans every worker, every freed slot re-pumps every waiting job. (Set up
    through the index, which reaches the same state far sooner; `scanning` switches to the old way for the timing.)"""

    scanning = False

    def _pick(self, job: Job) -> WorkerConnection | None:
        if not self.scanning:
            return super()._pick(job)
        return by_scan(self, job)

    def _pump(self, freed: WorkerConnection | None = None) -> None:
        super()._pump(None if self.scanning else freed)


async def _network(kind: type[Scheduler], n: int) -> Scheduler:
    async def send(frame):
        return None

    rng = random.Random(7)
    scheduler = kind()
    for i in range(n):
        models = {f"m{m}": {} for m in rng.sample(range(20), 2)}
        conn = WorkerConnection(worker_id=f"w{i:05d}", kind="browser" if i % 7 == 0 else "node", payout_address="0x", models=models,
                                slots=8, hardware={}, version="1", send=send, cluster=f"0xc{i % 50}" if i % 10 == 0 else None)  # fmt: skip
        conn.reliability = rng.choice([0.8, 0.95, 1.0])
        await scheduler.register(conn)
        conn.slots = conn.claimed_slots  # capacity proven (as after its first jobs)
        scheduler.touch(conn)
    return scheduler


def _job(i: int, rng: random.Random, steered: bool = True) -> Job:
    steering = Steering(sort="latency") if steered and i % 10 == 0 else Steering()
    return Job(job_id=f"j{i}", task="chat", model=f"m{rng.randrange(20)}", body={"messages": []}, request_salt="s", request_digest="d",
               deadline_s=time.monotonic() + 60, priority=PRIORITY_INCLUDED if i % 4 else 10, steering=steering)  # fmt: skip


def _complete(scheduler: Scheduler, running: list[tuple[WorkerConnection, str]], rng: random.Random) -> int:
    """A random running job finishes; returns the nanoseconds its done frame took (re-rank and pump)."""
    while running:
        worker, job_id = running.pop(rng.randrange(len(running)))
        if job_id in worker.jobs:
            started = time.perf_counter_ns()
            scheduler.on_frame(worker, frames.done(job_id, USAGE, "00" * 32, "00" * 64))
            return time.perf_counter_ns() - started
    return 0


def _us(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"mean": round(statistics.fmean(ordered) / 1e3, 2), "p50": round(ordered[len(ordered) // 2] / 1e3, 2),
            "p99": round(ordered[int(len(ordered) * 0.99)] / 1e3, 2), "n": len(ordered)}  # fmt: skip


def _settle() -> None:
    """The standing network (workers, running jobs) leaves the garbage collector's young generations, as a running
    coordinator's long-lived state has: a full collection over it, landing on some job, is not that job's cost."""
    gc.collect()
    gc.freeze()


def _track(job: Job, running: list[tuple[WorkerConnection, str]]) -> None:
    if job.worker is not None:
        running.append((job.worker, job.job_id))


async def match_and_dispatch(kind: type[Scheduler], n_workers: int, n_jobs: int) -> dict:
    """Half the network busy; then each job is submitted (timed) and a random running job completes."""
    rng = random.Random(3)
    scheduler = await _network(kind, n_workers)
    running: list[tuple[WorkerConnection, str]] = []
    for i in range(sum(w.slots for w in scheduler.workers.values()) // 2):
        job = _job(-1 - i, rng, steered=False)
        scheduler.submit(job)
        _track(job, running)
        if i % 4096 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    warm = _job(-10**6, rng)  # a caller's first sort order builds its heaps once: not part of a job's cost
    warm.steering = Steering(sort="latency")
    scheduler.submit(warm)
    _track(warm, running)
    _settle()
    scheduler.scanning = True
    submit_ns = []
    for i in range(n_jobs):
        job = _job(i, rng)
        started = time.perf_counter_ns()
        scheduler.submit(job)
        submit_ns.append(time.perf_counter_ns() - started)
        _track(job, running)
        _complete(scheduler, running, rng)
        if i % 256 == 0:
            await asyncio.sleep(0)  # the send tasks run (not timed)
    return {"workers": n_workers, "match_and_dispatch_us": _us(submit_ns), "waiting_at_end": scheduler.queue_depth()}


async def completion_with_backlog(kind: type[Scheduler], n_workers: int, backlog: int, rounds: int) -> dict:
    """Every slot busy and `backlog` jobs waiting; each completion (timed) frees one slot."""
    rng = random.Random(11)
    scheduler = await _network(kind, n_workers)
    running: list[tuple[WorkerConnection, str]] = []
    i = 0
    while scheduler.queue_depth() < backlog:
        job = _job(i, rng, steered=False)
        scheduler.submit(job)
        _track(job, running)
        i += 1
        if i % 4096 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    _settle()
    scheduler.scanning = True
    done_ns = []
    for _ in range(rounds):
        done_ns.append(_complete(scheduler, running, rng))
        running.extend((w, j) for w in {w for w, _ in running[-1:]} for j in w.jobs)
    return {"workers": n_workers, "backlog": backlog, "completion_us": _us(done_ns)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=10_000)
    args = parser.parse_args()
    n = args.workers
    jobs_now, jobs_before, rounds_now, rounds_before = (3_000, 200, 200, 3) if args.quick else (30_000, 1_000, 2_000, 8)
    console.print(f"scheduler: {n:,} workers, {jobs_now:,} jobs now / {jobs_before:,} before ...")
    now = asyncio.run(match_and_dispatch(Scheduler, n, jobs_now))
    before = asyncio.run(match_and_dispatch(ScanScheduler, n, jobs_before))
    backlog_now = asyncio.run(completion_with_backlog(Scheduler, n, 500, rounds_now))
    backlog_before = asyncio.run(completion_with_backlog(ScanScheduler, n, 500, rounds_before))
    table = Table(title=f"Scheduler with {n:,} registered workers: µs per job, now (index) and before (scan), same run")
    for col in ("measure", "now", "before", "before/now", f"target ≤ {TARGET_US:.0f} µs"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    a, b = now["match_and_dispatch_us"], before["match_and_dispatch_us"]
    for stat in ("mean", "p50", "p99"):
        verdict = (f"met ({a[stat] / TARGET_US:.2f}x of it)" if a[stat] <= TARGET_US else f"missed ({a[stat] / TARGET_US:.2f}x of it)") if stat != "p99" else ""
        table.add_row(f"match+dispatch {stat}", f"{a[stat]}", f"{b[stat]}", f"{b[stat] / a[stat]:.0f}x", verdict)
    c, d = backlog_now["completion_us"], backlog_before["completion_us"]
    for stat in ("mean", "p99"):
        table.add_row(f"completion with 500 waiting, {stat}", f"{c[stat]}", f"{d[stat]}", f"{d[stat] / c[stat]:.0f}x", "")
    console.print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = REPO / "bench/results" / f"scheduler-match-{stamp}.json"
    out.write_text(json.dumps({"when": stamp, "target_us": TARGET_US, "now": {"steady": now, "backlog": backlog_now},
                               "before_scan": {"steady": before, "backlog": backlog_before}, "python": sys.version.split()[0]},
                              indent=2) + "\n")  # fmt: skip
    console.print(f"results: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
