"""The ONE network at 10,000 workers and 100,000 requests/s, simulated: where the scheduler and the receipt log
break, and what the per-replica-chains design (docs/scaling.md) buys. Reported, never asserted.

    .venv/bin/python bench/scale_sim.py              # 5 s of simulated time (~30 s here); bench/results/scale-sim-<time>.json
    .venv/bin/python bench/scale_sim.py --quick      # 1.5 s simulated, smaller sweep (~3 s)
    .venv/bin/python bench/scale_sim.py --calibrate  # time today's Scheduler._pick and the indexed pick on this machine

A seeded discrete-event simulation (heapq, stdlib only: the same seed gives the same JSON, wall time aside).

Event by event: every request (Poisson arrivals at a random replica, a model drawn by popularity, Dedicated ahead of
Included), every match, every worker slot and every finish. Each replica's scheduler is one thread: a match
occupies it for the matching cost, so a slow matcher delays every request behind it. Matching is either indexed (a
heap of free workers per (replica, model): O(log n)) or today's scan (`Scheduler._pick` looks at every worker:
O(workers)); both pick the same worker, only the cost charged differs, so the scan's cost is charged as time, never
run. Dispatch is local first: a replica with no free worker for the model forwards the request over the broker to the
replica with the most free slots for it (free-slot counts are taken as exact, not as stale heartbeats); a freed worker
with nothing queued at home pulls a queued job from another replica. (The replicas work's broker puts every job through
one shared Redis queue instead; docs/scaling.md says why local first matters at this rate.) A request
waits at most --queue-timeout, then counts as rejected; a replica whose scheduler is further behind than that
rejects at once.

Aggregated: the receipt log runs one event per group commit (a batch), not per receipt. Each writer (one per
replica) takes everything waiting, waits for its chain's lock, and holds it for a + b*k seconds for k receipts:
a and b come from the latest bench/results/log-appends-*.json (the least-squares fit of lock hold per batch
on Postgres), else the CLI defaults. Design "one chain": every replica's writer takes one lock (today: the advisory
lock). Design "per-replica chains": each replica's writer has its own chain and lock; an epoch's Merkle tree
covers every chain's receipts ordered by (replica, seq). The epoch head here is built over stand-in hashes, to show
the merge and its size, not real receipts.
"""

from __future__ import annotations

import argparse
import bisect
import glob
import hashlib
import heapq
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench/results"
INCLUDED, DEDICATED = 100, 0  # priorities, as backend.scheduler: lower runs first
TARGET_UTILISATION = 0.7  # sizing keeps every serial resource (a lock, a matcher) at most this busy
OVERLOAD = 2.0  # the overload run: this many times the rate, past what the workers' slots can serve

# Matching costs on this machine (2 cores), from `--calibrate` (bench/results/match-cost-*.json wins when present).
SCAN_S_PER_WORKER = 0.14e-6  # Scheduler._pick over 10,000 workers: 1.4 ms
INDEX_MATCH_S = 3e-6  # heap pop + slot bookkeeping
INDEX_LEVEL_S = 0.1e-6  # per level of the heap
# Receipt log on Postgres, lock hold per batch = a + b*k (bench/results/log-appends-*.json wins when present).
APPEND_BATCH_S = 1.23e-3
APPEND_PER_RECEIPT_S = 0.166e-3
# The whole HTTP path (ASGI, relay, receipt) per 2-core box: bench/gateway.py, 2026-11-25 (c=32, JSON).
FRONT_REQ_PER_S = 267


@dataclass(frozen=True)
class SimConfig:
    workers: int = 10_000
    rate: float = 100_000.0  # requests/s over the whole network
    horizon_s: float = 5.0  # arrivals stop here; the sim drains what is in flight
    replicas: int = 16
    models: int = 24
    zipf: float = 1.1  # model popularity
    node_share: float = 0.7  # the rest are browser workers
    node_slots: int = 12
    browser_slots: int = 1
    dedicated_share: float = 0.2
    prefill_median_s: float = 0.06
    prefill_sigma: float = 0.5
    decode_median_s: float = 0.45
    decode_sigma: float = 0.6
    network_s: float = 0.002  # coordinator <-> worker, each way
    broker_hop_s: float = 0.001
    queue_timeout_s: float = 2.0
    matching: str = "index"  # or "scan"
    scan_view: str = "all"  # a scan looks at every worker ("all") or at its replica's own ("replica")
    scan_s_per_worker: float = SCAN_S_PER_WORKER
    index_match_s: float = INDEX_MATCH_S
    index_level_s: float = INDEX_LEVEL_S
    broker: bool = True
    sample_every_s: float = 0.1
    seed: int = 1


def _pct(values: list[float], q: float) -> float | None:
    """q-quantile of sorted values (nearest rank), None when empty."""
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _ms(x: float | None) -> float | None:
    return None if x is None else round(1e3 * x, 3)


# --- the pool: workers, models, service times -------------------------------------------------------
@dataclass
class Pool:
    replica_of: list[int]
    slots: list[int]
    models_of: list[tuple[int, ...]]
    popularity_cdf: list[float]
    speed: list[float]  # per model: multiplies prefill and decode
    on_replica_model: list[int]  # workers per (replica, model) index r*M+m


def build_pool(cfg: SimConfig, replicas: int, rng: random.Random) -> Pool:
    """Workers spread over replicas round-robin (each keeps one socket to one replica). Each worker serves 1-3
    models drawn by demand (popularity x service time), so every model's capacity roughly follows its demand."""
    m_count = cfg.models
    weights = [1 / (i + 1) ** cfg.zipf for i in range(m_count)]
    total = sum(weights)
    cdf, acc = [], 0.0
    for w in weights:
        acc += w / total
        cdf.append(acc)
    cdf[-1] = 1.0
    raw_speed = [rng.uniform(0.5, 2.0) for _ in range(m_count)]
    mean_speed = sum(w * s for w, s in zip(weights, raw_speed)) / total
    speed = [s / mean_speed for s in raw_speed]  # demand-weighted mean service time stays the configured one
    demand = [w * s for w, s in zip(weights, speed)]
    replica_of, slots, models_of = [], [], []
    on = [0] * (replicas * m_count)
    for i in range(cfg.workers):
        node = rng.random() < cfg.node_share
        n_models = rng.choice((1, 2, 3)) if node else 1
        picked: list[int] = []
        while len(picked) < n_models:
            m = rng.choices(range(m_count), weights=demand)[0]
            if m not in picked:
                picked.append(m)
        r = i % replicas
        replica_of.append(r)
        slots.append(cfg.node_slots if node else cfg.browser_slots)
        models_of.append(tuple(picked))
        for m in picked:
            on[r * m_count + m] += 1
    return Pool(replica_of, slots, models_of, cdf, speed, on)


# --- the scheduler: arrivals, matching, slots, queue, broker ----------------------------------------
ARRIVE, FINISH, TIMEOUT, SAMPLE = 0, 1, 2, 3


def simulate_scheduler(cfg: SimConfig) -> dict:
    """Run the network for cfg.horizon_s of arrivals and drain it. Returns the counts, latencies, per-replica load and
    `receipts`: per replica, the times its clients' finished jobs asked for a receipt (the log designs' input: the
    replica holding the client writes the receipt, as backend.scheduler.broker does)."""
    rng = random.Random(cfg.seed)
    R, M = cfg.replicas, cfg.models
    pool = build_pool(cfg, R, rng)
    W = len(pool.slots)
    slots, models_of, replica_of, speed = pool.slots, pool.models_of, pool.replica_of, pool.speed
    busy, version = [0] * W, [0] * W
    free_heap: list[list[tuple[int, int, int]]] = [[] for _ in range(R * M)]  # (load per mille, worker, version)
    free_slots = [0] * (R * M)
    compact_at = [4 * n + 16 for n in pool.on_replica_model]
    for w in range(W):
        for m in models_of[w]:
            i = replica_of[w] * M + m
            free_heap[i].append((0, w, 0))
            free_slots[i] += slots[w]
    for h in free_heap:
        heapq.heapify(h)
    waiting: list[list[tuple[int, int]]] = [[] for _ in range(R * M)]  # (priority, request)
    waiting_n, waiting_model = [0] * (R * M), [0] * M
    pending: dict[int, tuple] = {}  # queued request -> (arrival, model, priority, prefill, decode, client's replica)
    sched_free, sched_busy, dispatched_by = [0.0] * R, [0.0] * R, [0] * R
    workers_on = [0] * R
    for r in replica_of:
        workers_on[r] += 1
    receipts: list[list[float]] = [[] for _ in range(R)]
    ttft: dict[int, list[float]] = {DEDICATED: [], INCLUDED: []}
    samples: list[tuple[float, int, float, int]] = []  # (t, queued, worst scheduler backlog s, busy slots)
    counts = {"arrivals": 0, "served": 0, "rejected_timeout": 0, "rejected_overload": 0, "forwarded": 0, "stolen": 0}
    busy_slots = 0

    scan = cfg.matching == "scan"
    scan_cost = [cfg.scan_s_per_worker * (W if cfg.scan_view == "all" else workers_on[r]) for r in range(R)]

    def match_cost(r: int, m: int) -> float:
        if scan:
            return scan_cost[r]
        return cfg.index_match_s + cfg.index_level_s * len(free_heap[r * M + m]).bit_length()

    def occupy(r: int, ready: float, cost: float) -> float:
        """The replica's scheduler thread does one match; returns when it is done."""
        start = sched_free[r] if sched_free[r] > ready else ready
        sched_free[r] = start + cost
        sched_busy[r] += cost
        return start + cost

    def push_free(w: int) -> None:
        if busy[w] < slots[w]:
            entry = (busy[w] * 1000 // slots[w], w, version[w])
            base = replica_of[w] * M
            for m in models_of[w]:
                h = free_heap[base + m]
                heapq.heappush(h, entry)
                if len(h) > compact_at[base + m]:  # drop stale entries now and then
                    h[:] = [e for e in h if e[2] == version[e[1]] and busy[e[1]] < slots[e[1]]]
                    heapq.heapify(h)

    def take(r: int, m: int) -> int:
        """The least-loaded free worker for model m on replica r (lazy deletion of stale heap entries), or -1."""
        h = free_heap[r * M + m]
        while h:
            _, w, v = heapq.heappop(h)
            if v == version[w] and busy[w] < slots[w]:
                return w
        return -1

    def occupy_slot(w: int) -> None:
        nonlocal busy_slots
        busy[w] += 1
        version[w] += 1
        busy_slots += 1
        base = replica_of[w] * M
        for m in models_of[w]:
            free_slots[base + m] -= 1
        push_free(w)

    def start_job(r: int, w: int, ready: float, job: tuple, cost: float) -> None:
        arrival, m, prio, prefill, decode, client = job
        occupy_slot(w)
        dispatched = occupy(r, ready, cost)
        first_token = dispatched + cfg.network_s + prefill
        ttft[prio].append(first_token - arrival)
        dispatched_by[r] += 1
        heapq.heappush(events, (first_token + decode + cfg.network_s, next(order), FINISH, (w, client)))

    def richest(m: int, exclude: int, table: list[int]) -> int:
        """The replica with the most of `table` for model m (free slots, or queued jobs), or -1."""
        best, best_n = -1, 0
        for r2 in range(R):
            n = table[r2 * M + m]
            if n > best_n and r2 != exclude:
                best, best_n = r2, n
        return best

    events: list[tuple] = []
    order = iter(range(1 << 62))
    t_sample = 0.0
    while t_sample <= cfg.horizon_s:
        heapq.heappush(events, (t_sample, next(order), SAMPLE, 0))
        t_sample += cfg.sample_every_s
    cdf, rate, horizon, timeout = pool.popularity_cdf, cfg.rate, cfg.horizon_s, cfg.queue_timeout_s
    lp, sp, ld, sd = math.log(cfg.prefill_median_s), cfg.prefill_sigma, math.log(cfg.decode_median_s), cfg.decode_sigma
    next_arrival = rng.expovariate(rate)
    request = 0
    while True:
        if next_arrival <= horizon and (not events or next_arrival <= events[0][0]):
            t = next_arrival
            next_arrival = t + rng.expovariate(rate)
            request += 1
            m = bisect.bisect_left(cdf, rng.random())
            prio = DEDICATED if rng.random() < cfg.dedicated_share else INCLUDED
            job = (t, m, prio, speed[m] * rng.lognormvariate(lp, sp), speed[m] * rng.lognormvariate(ld, sd), r := rng.randrange(R))
            if sched_free[r] - t > timeout:
                counts["rejected_overload"] += 1
                continue
            w = take(r, m)
            if w >= 0:
                start_job(r, w, t, job, match_cost(r, m))
                continue
            looked = occupy(r, t, match_cost(r, m))  # the local match found nothing, but it cost the scheduler
            r2 = richest(m, r, free_slots) if cfg.broker else -1
            w = take(r2, m) if r2 >= 0 else -1
            if w >= 0:
                counts["forwarded"] += 1
                start_job(r2, w, looked + cfg.broker_hop_s, job, match_cost(r2, m))
                continue
            pending[request] = job
            heapq.heappush(waiting[r * M + m], (prio, request))
            waiting_n[r * M + m] += 1
            waiting_model[m] += 1
            heapq.heappush(events, (t + timeout, next(order), TIMEOUT, request))
            continue
        if not events:
            break
        t, _, kind, what = heapq.heappop(events)
        if kind == FINISH:
            w, client = what
            r = replica_of[w]
            busy[w] -= 1
            version[w] += 1
            busy_slots -= 1
            base = r * M
            for m in models_of[w]:
                free_slots[base + m] += 1
            counts["served"] += 1
            receipts[client].append(t)  # the replica holding the client writes the receipt
            best = None  # the most urgent job queued here for one of this worker's models
            for m in models_of[w]:
                h = waiting[base + m]
                while h and h[0][1] not in pending:
                    heapq.heappop(h)
                if h and (best is None or h[0] < best[0]):
                    best = (h[0], m, r)
            if best is None and cfg.broker:
                for m in models_of[w]:
                    if waiting_model[m] > 0 and (r2 := richest(m, r, waiting_n)) >= 0:
                        h = waiting[r2 * M + m]
                        while h and h[0][1] not in pending:
                            heapq.heappop(h)
                        if h and (best is None or h[0] < best[0]):
                            best = (h[0], m, r2)
            if best is None:
                push_free(w)
                continue
            (_, req), m, home = best
            heapq.heappop(waiting[home * M + m])
            job = pending.pop(req)
            waiting_n[home * M + m] -= 1
            waiting_model[m] -= 1
            if home != r:
                counts["stolen"] += 1
            start_job(r, w, t + (cfg.broker_hop_s if home != r else 0.0), job, match_cost(r, m))
        elif kind == TIMEOUT:
            job = pending.pop(what, None)
            if job is not None:
                counts["rejected_timeout"] += 1
                waiting_n[job[5] * M + job[1]] -= 1
                waiting_model[job[1]] -= 1
        else:
            samples.append((t, len(pending), max(0.0, max(sched_free) - t), busy_slots))
    counts["arrivals"] = request

    warm = min(1.0, horizon / 5)  # served/s counts finishes after the warm-up and before arrivals stop
    everyone = sorted(ttft[DEDICATED] + ttft[INCLUDED])
    for lane in ttft.values():
        lane.sort()
    total_slots = sum(slots)
    return {
        "config": asdict(cfg),
        **counts,
        "served_per_s": round(sum(bisect.bisect_right(x, horizon) - bisect.bisect_left(x, warm) for x in receipts) / (horizon - warm), 1),
        "rejected_share": round((counts["rejected_timeout"] + counts["rejected_overload"]) / max(request, 1), 5),
        "ttft_ms": {"p50": _ms(_pct(everyone, 0.5)), "p99": _ms(_pct(everyone, 0.99))},
        "ttft_dedicated_ms": {"p50": _ms(_pct(ttft[DEDICATED], 0.5)), "p99": _ms(_pct(ttft[DEDICATED], 0.99))},
        "ttft_included_ms": {"p50": _ms(_pct(ttft[INCLUDED], 0.5)), "p99": _ms(_pct(ttft[INCLUDED], 0.99))},
        "queue_depth": {"mean": round(sum(s[1] for s in samples) / len(samples), 1), "max": max(s[1] for s in samples)},
        "scheduler_backlog_ms_max": _ms(max(s[2] for s in samples)),
        "slot_utilisation": round(sum(s[3] for s in samples) / len(samples) / total_slots, 3),
        "total_slots": total_slots,
        "per_replica": {
            "dispatches_per_s": [round(n / horizon, 1) for n in dispatched_by],
            "matcher_load": [round(b / horizon, 3) for b in sched_busy],  # matching work per second of arrivals: > 1 is overload
            "receipts_per_s": [round(len(x) / horizon, 1) for x in receipts],
        },
        "receipts": receipts,
    }


# --- the receipt log: one chain behind one lock, or one chain per replica ------------------------------
def simulate_chain(writers: list[list[float]], batch_s: float, per_receipt_s: float, window: tuple[float, float]) -> dict:
    """One chain: its writers (sorted request times each) take turns on the chain's lock, first come first served.
    A writer takes everything waiting when it asks for the lock (group commit, as ReceiptLog does) and holds the lock
    for batch_s + per_receipt_s * k. Returns the latencies (ask -> committed), what was asked and committed inside
    `window` (steady state: after the warm-up, before arrivals stop) and what was still waiting at its end."""
    ready = [(ws[0], i) for i, ws in enumerate(writers) if ws]
    heapq.heapify(ready)
    at = [0] * len(writers)
    lo, hi = window
    lock_free, committed, committed_by_end, batches = 0.0, 0, 0, 0
    latencies: list[float] = []
    while ready:
        asked, i = heapq.heappop(ready)
        ws, p = writers[i], at[i]
        q = bisect.bisect_right(ws, asked, p)
        granted = lock_free if lock_free > asked else asked
        done = granted + batch_s + per_receipt_s * (q - p)
        lock_free = done
        batches += 1
        latencies.extend([done - x for x in ws[p:q]])
        if done <= hi:
            committed_by_end += q - p
            if done >= lo:
                committed += q - p
        at[i] = q
        if q < len(ws):
            heapq.heappush(ready, (done if done > ws[q] else ws[q], i))
    asked_by_end = sum(bisect.bisect_right(ws, hi) for ws in writers)
    asked = asked_by_end - sum(bisect.bisect_left(ws, lo) for ws in writers)
    return {"latencies": latencies, "committed": committed, "asked": asked, "backlog": asked_by_end - committed_by_end,
            "batches": batches, "drained_at": lock_free}  # fmt: skip


def simulate_log(streams: list[list[float]], design: str, batch_s: float, per_receipt_s: float, horizon: float) -> dict:
    """Design "one-chain": every replica's writer on one lock. "per-replica": each replica its own chain and lock.
    Rates are over the steady window (the first fifth of the horizon, at most 1 s, is warm-up)."""
    chains = [streams] if design == "one-chain" else [[s] for s in streams]
    window = (min(1.0, horizon / 5), horizon)
    span = window[1] - window[0]
    runs = [simulate_chain(c, batch_s, per_receipt_s, window) for c in chains]
    latencies = sorted(x for run in runs for x in run["latencies"])
    return {
        "design": design, "chains": len(chains), "receipts": len(latencies),
        "appends_per_s_sustained": round(sum(run["committed"] for run in runs) / span, 1),
        "asked_per_s": round(sum(run["asked"] for run in runs) / span, 1),
        "backlog_at_horizon": sum(run["backlog"] for run in runs),
        "append_ms": {"p50": _ms(_pct(latencies, 0.5)), "p99": _ms(_pct(latencies, 0.99))},
        "mean_batch": round(len(latencies) / max(sum(run["batches"] for run in runs), 1), 1),
        "per_chain_appends_per_s": [round(run["committed"] / span, 1) for run in runs],
        "drained_after_s": round(max((run["drained_at"] for run in runs), default=0.0) - horizon, 3),
    }  # fmt: skip


def poisson_streams(rate: float, writers: int, horizon: float, rng: random.Random) -> list[list[float]]:
    """Receipt requests at `rate` in all, spread evenly over `writers` replicas."""
    streams = []
    for _ in range(writers):
        t, times = 0.0, []
        while True:
            t += rng.expovariate(rate / writers)
            if t > horizon:
                break
            times.append(t)
        streams.append(times)
    return streams


def log_sweep(rates: list[float], replicas: int, batch_s: float, per_receipt_s: float, horizon: float, seed: int) -> list[dict]:
    """Both designs at each arrival rate: one chain breaks near 1/per_receipt_s, per-replica chains near replicas times that."""
    rows = []
    for rate in rates:
        streams = poisson_streams(rate, replicas, horizon, random.Random(seed + int(rate)))
        row: dict = {"rate": rate}
        for design in ("one-chain", "per-replica"):
            got = simulate_log(streams, design, batch_s, per_receipt_s, horizon)
            row[design] = {k: got[k] for k in ("appends_per_s_sustained", "append_ms", "backlog_at_horizon", "mean_batch")}
        rows.append(row)
    return rows


# --- an epoch over several chains --------------------------------------------------------------------
def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH, bottom-up (an odd last node moves up unchanged: the same root as the recursive definition)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]  # fmt: skip
    return level[0]


def epoch_head(chain_sizes: list[int], seed: int) -> dict:
    """The proposed v2 epoch head: each replica chain's head, and one Merkle root over every chain's receipt hashes
    ordered by (replica, seq). Stand-in receipt hashes (sha256 of seed:replica:seq); real ones come from the chains."""
    leaves, chains = [], []
    for replica, size in enumerate(chain_sizes):
        hashes = [hashlib.sha256(f"{seed}:{replica}:{seq}".encode()).digest() for seq in range(size)]
        leaves.extend(hashes)
        if size:
            chains.append({"chain": replica, "first_seq": 0, "last_seq": size - 1, "head": hashes[-1].hex()})
    return {"v": 2, "epoch": 0, "chains": chains, "size": len(leaves), "root": merkle_root(leaves).hex()}


# --- sizing: how many replicas 100k req/s needs ----------------------------------------------------
def sizing(cfg: SimConfig, per_receipt_s: float) -> dict:
    """Replicas so that no serial resource runs above TARGET_UTILISATION: a chain's lock (1/per_receipt_s appends/s at
    large batches), a replica's matcher, and (not simulated) the HTTP path measured by bench/gateway.py."""
    rho, lam = TARGET_UTILISATION, cfg.rate
    index_s = cfg.index_match_s + cfg.index_level_s * max(cfg.workers, 1).bit_length()
    scan_all_s = cfg.scan_s_per_worker * cfg.workers
    return {
        "one_chain_ceiling_appends_per_s": round(1 / per_receipt_s),
        "one_chain_enough": lam * per_receipt_s <= rho,
        "replicas_for_log_per_replica_chains": math.ceil(lam * per_receipt_s / rho),
        "replicas_for_matching_index": math.ceil(lam * index_s / rho),
        "replicas_for_matching_scan_all": math.ceil(lam * scan_all_s / rho),
        "replicas_for_matching_scan_own": math.ceil(math.sqrt(lam * cfg.scan_s_per_worker * cfg.workers / rho)),
        "boxes_for_http_path": math.ceil(lam / (FRONT_REQ_PER_S * rho)),
        "match_ms_at_workers": {"index": _ms(index_s), "scan_all": _ms(scan_all_s)},
    }


# --- inputs from the other benches -----------------------------------------------------------------
def measured_append_costs() -> tuple[float, float, str]:
    """(a, b, source) of the lock hold per batch a + b*k, from the latest log-appends result if there is one."""
    for path in sorted(glob.glob(str(RESULTS / "log-appends-*.json")), reverse=True):
        model = json.loads(Path(path).read_text()).get("hold_model") or {}
        if model.get("per_append_ms") and model.get("per_batch_ms") is not None:
            return model["per_batch_ms"] / 1e3, model["per_append_ms"] / 1e3, Path(path).name
    return APPEND_BATCH_S, APPEND_PER_RECEIPT_S, "defaults"


def measured_match_costs() -> tuple[dict, str]:
    for path in sorted(glob.glob(str(RESULTS / "match-cost-*.json")), reverse=True):
        got = json.loads(Path(path).read_text())
        return {k: got[k] for k in ("scan_s_per_worker", "index_match_s", "index_level_s")}, Path(path).name
    return {}, "defaults"


def calibrate() -> dict:
    """Time the scan matching did before (every worker looked at: `by_scan`, the rule the index is tested against)
    and today's indexed `Scheduler._pick` (the real code, 10,000 workers registered, 2 of 20 models each), plus a
    heap pop and push per dispatch; write bench/results/match-cost-<time>.json. bench/scheduler.py times the whole
    match + dispatch."""
    sys.path.insert(0, str(REPO))
    import asyncio

    from backend.scheduler import Job, Scheduler
    from bench.scheduler import _network
    from tests.backend.scheduler.test_free_workers import by_scan

    rng, n = random.Random(1), 10_000
    scheduler = asyncio.run(_network(Scheduler, n))
    job = Job(job_id="j", task="chat", model="m3", body={}, request_salt="", request_digest="", deadline_s=30)
    rounds, started = 50, time.perf_counter()
    for _ in range(rounds):
        by_scan(scheduler, job)
    pick_s = (time.perf_counter() - started) / rounds
    rounds, started = 20_000, time.perf_counter()
    for _ in range(rounds):
        scheduler._pick(job)
    index_s = (time.perf_counter() - started) / rounds
    heap = [(rng.randrange(1000), i, 0) for i in range(n)]
    heapq.heapify(heap)
    rounds, started = 200_000, time.perf_counter()
    for _ in range(rounds):
        load, w, v = heapq.heappop(heap)
        heapq.heappush(heap, (load + 1, w, v + 1))
    heap_s = (time.perf_counter() - started) / rounds
    level_s = heap_s / n.bit_length()
    got = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "workers": n, "pick_ms": round(pick_s * 1e3, 4),
           "scan_s_per_worker": pick_s / n, "heap_pop_push_us": round(heap_s * 1e6, 3),
           "index_match_s": index_s, "index_level_s": level_s}  # fmt: skip
    out = RESULTS / f"match-cost-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.write_text(json.dumps(got, indent=2) + "\n")
    print(f"scan at {n} workers: {got['pick_ms']} ms; indexed pick: {index_s * 1e6:.1f} us; heap pop+push: {got['heap_pop_push_us']} us -> {out.relative_to(REPO)}")
    return got


# --- the whole study ------------------------------------------------------------------------------
def study(cfg: SimConfig, batch_s: float, per_receipt_s: float, quick: bool = False, epoch: bool = True) -> dict:
    """Indexed matching vs today's scan, then both log designs on the served traffic, a rate sweep of the log, the
    sizing, and an epoch head over the per-replica chains."""
    runs = {"index": simulate_scheduler(cfg), "scan": simulate_scheduler(replace(cfg, matching="scan", scan_view="all"))}
    if not quick:
        runs["scan-own"] = simulate_scheduler(replace(cfg, matching="scan", scan_view="replica"))
        runs["index-overload"] = simulate_scheduler(replace(cfg, rate=OVERLOAD * cfg.rate))
    receipts = runs["index"]["receipts"]
    logs = [simulate_log(receipts, design, batch_s, per_receipt_s, cfg.horizon_s) for design in ("one-chain", "per-replica")]
    base_rates = [1_000, 3_000, 5_000, 7_000, 10_000, 30_000, 100_000]
    rates = sorted({r for r in base_rates + [round(1 / per_receipt_s)] if r <= cfg.rate} | {cfg.rate})
    sweep = log_sweep(rates if not quick else [r for r in rates if r in (1_000, 10_000, cfg.rate)], cfg.replicas, batch_s,
                      per_receipt_s, 1.0 if quick else 2.0, cfg.seed)  # fmt: skip
    out = {
        "config": asdict(cfg), "append_cost": {"per_batch_ms": _ms(batch_s), "per_receipt_ms": _ms(per_receipt_s)},
        "scheduler": {name: {**{k: v for k, v in run.items() if k not in ("receipts", "config")},
                             "config": {k: run["config"][k] for k in ("rate", "matching", "scan_view")}} for name, run in runs.items()},
        "log": logs, "log_sweep": sweep, "sizing": sizing(cfg, per_receipt_s),
    }  # fmt: skip
    if epoch:
        out["epoch_head"] = epoch_head([len(x) for x in receipts], cfg.seed)
        out["epoch_head"]["chains_shown"] = out["epoch_head"]["chains"][:2]
        out["epoch_head"]["chains"] = len(out["epoch_head"]["chains"])
    return out


def _show_ms(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f} ms" if x >= 100 else f"{x:.1f} ms"


def print_tables(result: dict, sources: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 170))
    cfg = result["config"]
    table = Table(title=f"Scheduler: {cfg['workers']:,} workers, {cfg['rate']:,.0f} req/s for {cfg['horizon_s']:g} s, "
                        f"{cfg['replicas']} replicas")  # fmt: skip
    for col in ("matching", "req/s", "served/s", "rejected", "TTFT p50", "TTFT p99", "Dedicated p99", "Included p99",
                "queued mean/max", "matcher load", "matcher backlog", "slots busy", "dispatch/s per replica", "via broker"):  # fmt: skip
        table.add_column(col, justify="left" if col == "matching" else "right")
    names = {"index": "index", "scan": "scan all", "scan-own": "scan own", "index-overload": f"index, {OVERLOAD:g}x rate"}
    for name, run in result["scheduler"].items():
        per = run["per_replica"]["dispatches_per_s"]
        table.add_row(names[name], f"{run['config']['rate']:,.0f}", f"{run['served_per_s']:,.0f}", f"{100 * run['rejected_share']:.2f}%",
                      _show_ms(run["ttft_ms"]["p50"]), _show_ms(run["ttft_ms"]["p99"]), _show_ms(run["ttft_dedicated_ms"]["p99"]),
                      _show_ms(run["ttft_included_ms"]["p99"]), f"{run['queue_depth']['mean']:,.0f} / {run['queue_depth']['max']:,}",
                      f"{100 * max(run['per_replica']['matcher_load']):.0f}%", _show_ms(run["scheduler_backlog_ms_max"]),
                      f"{100 * run['slot_utilisation']:.0f}%", f"{min(per):,.0f}–{max(per):,.0f}",
                      f"{run['forwarded'] + run['stolen']:,}")  # fmt: skip
    console.print(table)
    table = Table(title=f"Receipt log on the served traffic (lock hold {result['append_cost']['per_batch_ms']} ms per batch + "
                        f"{result['append_cost']['per_receipt_ms']} ms per receipt: {sources})")  # fmt: skip
    for col in ("design", "chains", "asked/s", "sustained/s", "append p50", "append p99", "backlog at horizon", "mean batch",
                "per chain /s"):  # fmt: skip
        table.add_column(col, justify="left" if col == "design" else "right")
    for log in result["log"]:
        per = log["per_chain_appends_per_s"]
        table.add_row(log["design"], str(log["chains"]), f"{log['asked_per_s']:,.0f}", f"{log['appends_per_s_sustained']:,.0f}",
                      _show_ms(log["append_ms"]["p50"]), _show_ms(log["append_ms"]["p99"]), f"{log['backlog_at_horizon']:,}",
                      f"{log['mean_batch']:,}", f"{min(per):,.0f}–{max(per):,.0f}")  # fmt: skip
    console.print(table)
    table = Table(title=f"Receipt log vs arrival rate ({cfg['replicas']} replicas)")
    for col in ("req/s", "one chain: sustained/s", "p99", "backlog", "per-replica chains: sustained/s", "p99", "backlog"):
        table.add_column(col, justify="right")
    for row in result["log_sweep"]:
        a, b = row["one-chain"], row["per-replica"]
        table.add_row(f"{row['rate']:,.0f}", f"{a['appends_per_s_sustained']:,.0f}", _show_ms(a["append_ms"]["p99"]), f"{a['backlog_at_horizon']:,}",
                      f"{b['appends_per_s_sustained']:,.0f}", _show_ms(b["append_ms"]["p99"]), f"{b['backlog_at_horizon']:,}")  # fmt: skip
    console.print(table)
    size = result["sizing"]
    console.print(f"Sizing at {cfg['rate']:,.0f} req/s (every serial resource <= {TARGET_UTILISATION:.0%} busy): one chain tops out near "
                  f"{size['one_chain_ceiling_appends_per_s']:,}/s; per-replica chains need {size['replicas_for_log_per_replica_chains']} "
                  f"replicas; matching needs {size['replicas_for_matching_index']} (index), {size['replicas_for_matching_scan_own']} "
                  f"(scan of own workers), {size['replicas_for_matching_scan_all']} (scan of all); the HTTP path needs "
                  f"{size['boxes_for_http_path']} two-core boxes at {FRONT_REQ_PER_S} req/s each (bench/gateway.py).")  # fmt: skip
    if "epoch_head" in result:
        head = result["epoch_head"]
        console.print(f"Epoch head v2 (proposal): {head['chains']} chains, {head['size']:,} leaves, root {head['root'][:16]}…")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1.5 s of simulated time, a smaller sweep")
    parser.add_argument("--calibrate", action="store_true", help="time Scheduler._pick and the indexed pick here, then exit")
    parser.add_argument("--workers", type=int, default=SimConfig.workers)
    parser.add_argument("--rate", type=float, default=SimConfig.rate, help="requests/s over the network")
    parser.add_argument("--horizon", type=float, default=None, help="simulated seconds of arrivals (default 5, quick 1.5)")
    parser.add_argument("--replicas", type=int, default=0, help="coordinator replicas (default: what sizing asks for the log and matching)")
    parser.add_argument("--append-batch-ms", type=float, default=None, help="lock hold per batch (default: the latest log-appends result)")
    parser.add_argument("--append-receipt-ms", type=float, default=None, help="lock hold per receipt (default: the latest log-appends result)")
    parser.add_argument("--queue-timeout", type=float, default=SimConfig.queue_timeout_s)
    parser.add_argument("--no-broker", action="store_true", help="no cross-replica forwarding")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return
    batch_s, per_receipt_s, source = measured_append_costs()
    if args.append_batch_ms is not None:
        batch_s, source = args.append_batch_ms / 1e3, "CLI"
    if args.append_receipt_ms is not None:
        per_receipt_s, source = args.append_receipt_ms / 1e3, "CLI"
    match, match_source = measured_match_costs()
    cfg = SimConfig(workers=args.workers, rate=args.rate, horizon_s=args.horizon or (1.5 if args.quick else 5.0),
                    queue_timeout_s=args.queue_timeout, broker=not args.no_broker, seed=args.seed, **match)  # fmt: skip
    if not args.replicas:
        need = sizing(cfg, per_receipt_s)
        args.replicas = max(2, need["replicas_for_log_per_replica_chains"], need["replicas_for_matching_index"])
    cfg = replace(cfg, replicas=args.replicas)
    started = time.perf_counter()
    result = study(cfg, batch_s, per_receipt_s, quick=args.quick)
    wall = time.perf_counter() - started
    sources = f"append costs from {source}, matching costs from {match_source}"
    print_tables(result, sources)
    result["sources"] = sources
    result["wall_s"] = round(wall, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scale-sim-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{sources}; wrote {out.relative_to(REPO)} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
