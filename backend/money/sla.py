"""SLAs: each Dedicated package's targets measured per period from its jobs' timings, and the credits a breach gives.

Every metered Dedicated job leaves one `sla_job` row when it ends (no content: when it was queued, its time to
first token, served or the failure's code). Time to first token runs from the submit to the first delta, queue
wait included (embedding and image jobs send one delta). Availability = served / (served + failed), where only
the network's failures count (no capacity, timeouts, worker errors and lost workers: 5xx); the caller's own
faults (400, 402, 429, a client that went away) are not recorded at all. Periods are ONE_SLA_PERIOD_S long and a
job belongs to the period it ended in, so every replica sharing the database reports the same figures, and a
restart keeps them.

A package whose `sla.credit_bps` is above 0 (Cluster) credits each holder whose own jobs missed a target in a
closed period: `credit_bps` of the package price, to the holder's USDC balance, once per (period, account) (the
`sla_credit` row and its ledger entry are one transaction under a primary key). The targets cover `concurrency`
jobs in flight per holder (default: the package's reserved slots, at least 1): jobs a holder queued beyond that
are left out of its judgment, since waiting behind one's own excess load is not the network's breach (otherwise
flooding one's own key would mint credits).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from backend.catalog import Package, Packages, SlaTargets
from backend.config import Settings
from backend.db import session
from backend.db.models import SlaCredit, SlaJob
from backend.money import ledger
from backend.money.ledger import BPS

if TYPE_CHECKING:
    from backend.serving.inference import Caller

log = logging.getLogger("one.sla")
CREDIT_KIND = "sla_credit"
# Failures that are the network's doing; the rest (4xx) are the caller's and are not counted.
NETWORK_FAULT_MIN_STATUS = 500


def percentile(values: Sequence[int], pct: int) -> int | None:
    """Nearest-rank percentile (an observed value, never interpolated): None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[rank - 1]


def availability_bps(served: int, failed: int) -> int | None:
    """served / (served + failed) in basis points, rounded down (a target is met only when really met)."""
    total = served + failed
    return served * BPS // total if total else None


@dataclass(frozen=True)
class Figures:
    """One period's measurements of a set of jobs."""

    jobs: int
    served: int
    failed: int
    ttft_p50_ms: int | None
    ttft_p99_ms: int | None
    availability_bps: int | None


def measure(jobs: Iterable[SlaJob]) -> Figures:
    jobs = list(jobs)
    ttfts = [j.ttft_ms for j in jobs if j.served and j.ttft_ms is not None]
    served = sum(1 for j in jobs if j.served)
    return Figures(len(jobs), served, len(jobs) - served, percentile(ttfts, 50), percentile(ttfts, 99),
                   availability_bps(served, len(jobs) - served))  # fmt: skip


def breaches(targets: SlaTargets | None, figures: Figures) -> list[str]:
    """The targets a period's figures missed (none without jobs: an idle period breaches nothing)."""
    if targets is None or figures.jobs == 0:
        return []
    missed = []
    if targets.ttft_p50_ms is not None and figures.ttft_p50_ms is not None and figures.ttft_p50_ms > targets.ttft_p50_ms:
        missed.append("ttft_p50")
    if targets.ttft_p99_ms is not None and figures.ttft_p99_ms is not None and figures.ttft_p99_ms > targets.ttft_p99_ms:
        missed.append("ttft_p99")
    if targets.availability_bps is not None and (figures.availability_bps or 0) < targets.availability_bps:
        missed.append("availability")
    return missed


def credit_amount(package: Package) -> int:
    """What one breached period credits a holder: credit_bps of the price, in micro-USDC."""
    return package.price * (package.sla.credit_bps if package.sla else 0) // BPS


def covered_concurrency(package: Package) -> int:
    """How many of a holder's jobs in flight at once its targets cover."""
    return (package.sla.concurrency if package.sla else None) or max(1, package.reserved)


def within_reservation(jobs: Sequence[SlaJob], limit: int) -> list[SlaJob]:
    """One account's jobs less those queued while it already had `limit` of its own in flight."""
    limit, in_flight, kept = max(1, limit), [], []  # in_flight: a heap of the end times of earlier jobs
    for job in sorted(jobs, key=lambda j: (j.submitted_at, j.id or 0)):
        while in_flight and in_flight[0] <= job.submitted_at:
            heapq.heappop(in_flight)
        if len(in_flight) < limit:
            kept.append(job)
        heapq.heappush(in_flight, job.ended_at)
    return kept


# ---- recording (the hook in InferenceService.run) ----


MAX_REPORT_PERIODS = 168  # the most periods GET /one/sla shows


def period_of(ts: float, period_s: int) -> int:
    return int(ts // period_s)


def record(package: str, account: str, submitted_at: float, ended_at: float, ttft_ms: int | None, code: str | None,
           period_s: int, own_node: bool = False) -> None:  # fmt: skip
    """Store one job's outcome (served when `code` is None)."""
    with session() as db:
        db.add(SlaJob(period=period_of(ended_at, period_s), package=package, account=account, submitted_at=submitted_at,
                      ended_at=ended_at, ttft_ms=ttft_ms, served=code is None, code=code, own_node=own_node))  # fmt: skip
        db.commit()


class SlaMeter:
    """What InferenceService.run calls as a metered Dedicated job ends; measuring never fails the request."""

    def __init__(self, settings: Settings):
        self.settings = settings

    async def served(self, caller: Caller, submitted: float, first_delta: float | None, own_node: bool = False) -> None:
        """`submitted`, `first_delta`: time.monotonic() readings; a job with no delta counts its whole run.
        `own_node`: it ran on one of the holder's own Cluster nodes (kept apart: see `credit_breaches`)."""
        end = time.monotonic()
        await self._record(caller, submitted, end, round(((first_delta or end) - submitted) * 1000), None, own_node)

    async def failed(self, caller: Caller, submitted: float, error: BaseException | None, own_node: bool = False) -> None:
        """Counted only when the network was at fault: an error with a 5xx status, or an unexpected exception.
        None (the client went away: the generator was closed) and the caller's 4xx are not."""
        if error is None:
            return
        status = getattr(error, "status", NETWORK_FAULT_MIN_STATUS)
        if status < NETWORK_FAULT_MIN_STATUS:
            return
        await self._record(caller, submitted, time.monotonic(), None, str(getattr(error, "code", None) or "internal_error")[:40], own_node)

    async def _record(self, caller: Caller, submitted: float, end: float, ttft_ms: int | None, code: str | None, own_node: bool) -> None:
        if not (caller.metered and caller.lane == "dedicated" and caller.package):
            return
        now_wall, now_mono = time.time(), time.monotonic()
        try:
            await asyncio.to_thread(record, caller.package, caller.account_id, now_wall - (now_mono - submitted),
                                    now_wall - (now_mono - end), ttft_ms, code, self.settings.sla_period_s, own_node)  # fmt: skip
        except Exception:  # the answer already went out or the error is being raised: measuring must not change it
            log.exception("could not record an SLA sample")


# ---- figures per package and period (/one/sla, the packages page, the operator dashboard) ----


@dataclass(frozen=True)
class PeriodRow:
    period: int
    start: int  # unix seconds
    end: int
    closed: bool
    figures: Figures
    breached: list[str]
    credits: int  # holders credited for this period
    credited: int  # micro-USDC


@dataclass(frozen=True)
class PackageSla:
    package: Package
    periods: list[PeriodRow] = field(default_factory=list)  # newest first, only periods with jobs


def report(packages: Packages, settings: Settings, now: float | None = None, periods: int = 24) -> list[PackageSla]:
    """Each package's figures for the last `periods` periods (the open one included), newest first."""
    now = time.time() if now is None else now
    period_s, current = settings.sla_period_s, period_of(now, settings.sla_period_s)
    first = current - periods + 1
    jobs: dict[tuple[str, int], list[SlaJob]] = defaultdict(list)
    credits: dict[tuple[str, int], tuple[int, int]] = {}
    with session() as db:
        for job in db.exec(select(SlaJob).where(SlaJob.period >= first)).all():
            jobs[(job.package, job.period)].append(job)
        query = (select(SlaCredit.package, SlaCredit.period, func.count(), func.coalesce(func.sum(SlaCredit.amount), 0))
                 .where(SlaCredit.period >= first).group_by(SlaCredit.package, SlaCredit.period))  # fmt: skip
        for package_id, period, count, amount in db.exec(query).all():
            credits[(package_id, period)] = (int(count), int(amount))
    out = []
    for package in packages.packages:
        rows = []
        for period in range(current, first - 1, -1):
            if (package.id, period) not in jobs:
                continue
            figures = measure(jobs[(package.id, period)])
            count, amount = credits.get((package.id, period), (0, 0))
            rows.append(PeriodRow(period, period * period_s, (period + 1) * period_s, period < current, figures,
                                  breaches(package.sla, figures), count, amount))  # fmt: skip
        out.append(PackageSla(package, rows))
    return out


def as_dict(entry: PackageSla) -> dict[str, Any]:
    """A package's SLA as /one/sla and the pages show it."""
    return {
        "package": entry.package.id, "name": entry.package.name,
        "targets": entry.package.sla.model_dump() if entry.package.sla else None,
        "periods": [{"period": r.period, "start": r.start, "end": r.end, "closed": r.closed, "jobs": r.figures.jobs,
                     "served": r.figures.served, "failed": r.figures.failed, "ttft_p50_ms": r.figures.ttft_p50_ms,
                     "ttft_p99_ms": r.figures.ttft_p99_ms, "availability_bps": r.figures.availability_bps,
                     "breached": r.breached, "credits": r.credits, "credited": r.credited} for r in entry.periods],
    }  # fmt: skip


# ---- credits for breached periods (the coordinator's loop, or called directly) ----


def credit_breaches(packages: Packages, settings: Settings, now: float | None = None) -> list[SlaCredit]:
    """Judge every closed period (within the lookback) of every crediting package, holder by holder, and credit each
    breach once. Safe to run on every replica at once and again after a restart: returns only what this call wrote.
    Jobs that ran on the holder's own Cluster nodes are left out: the holder picked those nodes (and may run them), so
    a node kept slow on purpose must not turn into credits paid by the network."""
    now = time.time() if now is None else now
    period_s = settings.sla_period_s
    last_closed = period_of(now - settings.sla_grace_s, period_s) - 1  # its end is at least sla_grace_s ago
    first = last_closed - settings.sla_lookback_periods + 1
    crediting = {p.id: p for p in packages.packages if credit_amount(p) > 0}
    if not crediting:
        return []
    with session() as db:
        done = {(c.period, c.account) for c in db.exec(select(SlaCredit).where(SlaCredit.period >= first)).all()}
        rows = db.exec(select(SlaJob).where(col(SlaJob.package).in_(list(crediting)), SlaJob.period >= first,
                                            SlaJob.period <= last_closed).order_by(col(SlaJob.id))).all()  # fmt: skip
    holders: dict[tuple[int, str, str], list[SlaJob]] = defaultdict(list)
    for job in rows:  # a holder's own nodes are its own to run well: only the network's work is judged for credit
        if (job.period, job.account) not in done and not job.own_node:
            holders[(job.period, job.account, job.package)].append(job)
    written = []
    for (period, account, package_id), jobs in sorted(holders.items()):
        package = crediting[package_id]
        own = within_reservation(jobs, covered_concurrency(package))
        missed = breaches(package.sla, measure(own))
        if missed and (credit := _credit(period, account, package, missed, len(own), now)) is not None:
            written.append(credit)
    return written


def _credit(period: int, account: str, package: Package, missed: list[str], jobs: int, now: float) -> SlaCredit | None:
    """The credit row and its ledger entry in one transaction; None when another judge wrote them first."""
    credit = SlaCredit(period=period, account=account, package=package.id, breached=",".join(missed), jobs=jobs,
                       amount=credit_amount(package), at=now)  # fmt: skip
    with session() as db:
        db.add(credit)
        ledger.credit_in(db, f"sla:{period}:{account}", account, "usdc", credit.amount, CREDIT_KIND)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            return None
        db.refresh(credit)
        db.expunge(credit)
    log.info("SLA credit: %s %s period %d missed %s: %d micro-USDC", package.id, account, period, credit.breached, credit.amount)
    return credit


def kept_periods(settings: Settings) -> int:
    """How many periods of job rows are kept: the retention, never less than what is still judged or shown."""
    return max(settings.sla_retention_periods, settings.sla_lookback_periods + 1, MAX_REPORT_PERIODS)


def prune(settings: Settings, now: float | None = None) -> int:
    """Delete job rows of periods older than `kept_periods` (their credits stay): the table does not grow forever."""
    now = time.time() if now is None else now
    oldest = period_of(now, settings.sla_period_s) - kept_periods(settings) + 1
    with session() as db:
        gone = db.connection().execute(delete(SlaJob).where(col(SlaJob.period) < oldest)).rowcount
        db.commit()
    return gone


async def sla_loop(packages: Packages, settings: Settings) -> None:
    """Inside the coordinator: judge closed periods a few times per period (every replica may; credits stay once),
    and drop job rows past the retention."""
    every = min(60.0, max(1.0, settings.sla_period_s / 4))
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(credit_breaches, packages, settings)
            await asyncio.to_thread(prune, settings)
        except Exception:  # the next tick retries; written credits are keyed, so nothing is paid twice
            log.exception("SLA credit run failed; will retry")
