"""The operator dashboard's data, as typed rows from the services that own it: the scheduler's live workers
(with their bond), queue depth per lane, throughput and p50 latency per time bucket, the receipt log's tail,
epochs, payouts and payments that failed, and each package's SLA figures per period. Pages render these; they
never query tables themselves."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlmodel import select

from backend.access import auth
from backend.catalog import Packages
from backend.config import Settings
from backend.db import session
from backend.db.models import WorkerRecord
from backend.money import sla
from backend.money.settlement import epochs, failed_payments, payouts
from backend.scheduler import Scheduler
from backend.serving.inference import Completed
from backend.trust.receipts import ReceiptLog

BUCKET_S = 10  # one point of the throughput/latency plots
WINDOW_S = 300  # how far back the plots reach


@dataclass(frozen=True)
class WorkerRow:
    id: str
    kind: str
    models: list[str]
    busy: int
    slots: int
    served: int
    reliability: float
    quarantined: bool
    latency_ms: float
    bond: int  # micro-USDC
    cluster: str | None = None  # the Cluster it is a dedicated node of


@dataclass(frozen=True)
class LoadPoint:
    at: float  # start of the bucket, unix seconds
    requests_per_min: int
    p50_ms: int


@dataclass(frozen=True)
class SlaRow:
    """One package's figures for one SLA period, beside its targets."""

    package: str
    start: float  # unix seconds
    closed: bool
    jobs: int
    failed: int
    ttft_p50_ms: int | None
    ttft_p99_ms: int | None
    availability_bps: int | None
    targets: dict | None  # the package's SlaTargets as a dict
    breached: list[str]
    credits: int
    credited: int  # micro-USDC


@dataclass(frozen=True)
class Overview:
    workers: list[WorkerRow]
    queue_depth: dict[str, int]  # lane -> jobs waiting
    load: list[LoadPoint]
    receipts: list[dict]  # the newest stored receipts (receipt + hash + sig), newest first
    total_receipts: int
    epochs: list[dict]
    payouts: list[dict]
    failed_payments: list[dict]
    sla: list[SlaRow] = field(default_factory=list)  # newest period first, per package


class NotAnOperator(Exception):
    """The key is unknown, expired, or not a wallet named in ONE_OPERATORS; the message says which."""


def authorize_operator(key: str, operators: list[str]) -> str:
    """The operator wallet a session key stands for."""
    principal = auth.principal_for(key)
    if principal is None:
        raise NotAnOperator("That session has expired; sign in again.")
    if not auth.is_operator(principal.account, operators):
        raise NotAnOperator(f"{principal.account} is not an operator of this coordinator (ONE_OPERATORS).")
    return principal.account


def overview(scheduler: Scheduler, completed: Iterable[Completed], log: ReceiptLog, now: float, receipts: int = 15, rows: int = 20,
             packages: Packages | None = None, settings: Settings | None = None) -> Overview:  # fmt: skip
    with session() as db:
        bonds = {r.id: r.bond for r in db.exec(select(WorkerRecord)).all()}
    workers = [
        WorkerRow(id=w.worker_id, kind=w.kind, models=sorted(w.models), busy=w.slots - w.free_slots, slots=w.slots, served=w.served,
                  reliability=w.reliability, quarantined=w.worker_id in scheduler.quarantined,
                  latency_ms=w.latency_ewma_s * 1000, bond=bonds.get(w.worker_id, 0), cluster=w.cluster)
        for w in scheduler.connected()  # every replica's workers, with a broker
    ]  # fmt: skip
    tail = log.tail(receipts)
    return Overview(
        workers=workers,
        queue_depth=scheduler.queue_depth_by_lane(),
        load=load_series(completed, now),
        receipts=tail,
        total_receipts=tail[0]["seq"] + 1 if tail else 0,
        epochs=epochs(10),
        payouts=payouts(limit=rows),
        failed_payments=failed_payments(limit=rows),
        sla=sla_rows(packages, settings, now) if packages is not None and settings is not None else [],
    )


def sla_rows(packages: Packages, settings: Settings, now: float, periods: int = 6) -> list[SlaRow]:
    """The last `periods` SLA periods of every package that had jobs in them, newest first."""
    return sorted(
        (SlaRow(e.package.id, r.start, r.closed, r.figures.jobs, r.figures.failed, r.figures.ttft_p50_ms, r.figures.ttft_p99_ms,
                r.figures.availability_bps, e.package.sla.model_dump() if e.package.sla else None, r.breached, r.credits, r.credited)
         for e in sla.report(packages, settings, now, periods) for r in e.periods),
        key=lambda row: (-row.start, row.package),
    )  # fmt: skip


def load_series(completed: Iterable[Completed], now: float) -> list[LoadPoint]:
    """Requests per minute and median latency per bucket over the last WINDOW_S, from the in-memory timings."""
    buckets: dict[int, list[float]] = {b: [] for b in range(int(now - WINDOW_S) // BUCKET_S, int(now) // BUCKET_S + 1)}
    for done in list(completed):
        b = int(done.at) // BUCKET_S
        if b in buckets:
            buckets[b].append(done.latency_ms)
    return [LoadPoint(b * BUCKET_S, len(v) * 60 // BUCKET_S, round(statistics.median(v)) if v else 0) for b, v in sorted(buckets.items())]


def clock(ts: float) -> str:
    """HH:MM:SS UTC of a unix time, as the dashboard's axes and receipt rows show it."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S")
