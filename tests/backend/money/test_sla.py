"""SLAs: the figures (nearest-rank percentiles, availability in basis points), which failures count, the breach
rule, and a breached Cluster period credited once, even when judged twice or by several judges at once, on SQLite
and on the machine's Postgres."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlmodel import col, select

from backend.api.errors import ApiError
from backend.catalog import Package, Packages, SlaTargets
from backend.config import Settings
from backend.db import session
from backend.db.models import LedgerEntry, SlaCredit, SlaJob
from backend.money import ledger
from backend.money.sla import (
    SlaMeter,
    availability_bps,
    breaches,
    covered_concurrency,
    credit_breaches,
    measure,
    percentile,
    prune,
    record,
    report,  # fmt: skip
    within_reservation,
)
from backend.operators.overview import sla_rows
from backend.serving.inference import Caller
from tests.backend.scheduler.test_scheduler import service  # noqa: F401  (fixture: the real inference service)

PERIOD_S = 60
TARGETS = SlaTargets(ttft_p50_ms=500, ttft_p99_ms=2000, availability_bps=9900, credit_bps=1000)
PACKAGES = Packages(packages=[
    Package(id="pro", name="Pro", price=20_000_000, duration_s=3600, reserved=1, priority=20, balance=1,
            sla=SlaTargets(ttft_p50_ms=500, ttft_p99_ms=2000, availability_bps=9900, credit_bps=0)),
    Package(id="cluster", name="Cluster", price=100_000_000, duration_s=3600, reserved=2, priority=10, balance=1, sla=TARGETS),
])  # fmt: skip
CREDIT = 10_000_000  # 1000 bps of the Cluster's 100 USDC


@pytest.fixture(params=["sqlite_db", "postgres_db"])
def database(request):
    return request.getfixturevalue(request.param)


def settings() -> Settings:
    return Settings(sla_period_s=PERIOD_S, sla_grace_s=1)


def test_percentiles_are_nearest_rank_observed_values():
    assert percentile([], 50) is None
    assert percentile([7], 99) == 7
    assert percentile(list(range(1, 11)), 50) == 5 and percentile(list(range(1, 11)), 99) == 10
    assert percentile(list(range(100, 0, -1)), 99) == 99 and percentile(list(range(1, 101)), 50) == 50
    assert percentile([10] * 99 + [5000], 99) == 10 and percentile([10] * 98 + [5000] * 2, 99) == 5000


def test_availability_rounds_down_in_basis_points():
    assert availability_bps(0, 0) is None
    assert availability_bps(10, 0) == 10_000 and availability_bps(0, 3) == 0
    assert availability_bps(199, 1) == 9950 and availability_bps(9949, 51) == 9949  # 99.49%: below a 99.50% target


def job(ttft: int | None, served: bool = True, at: float = 0.0, end: float | None = None, id_: int = 0) -> SlaJob:
    return SlaJob(id=id_, period=0, package="cluster", account="a", submitted_at=at, ended_at=at + 1 if end is None else end,
                  ttft_ms=ttft, served=served, code=None if served else "timeout")  # fmt: skip


def test_the_breach_rule_names_each_missed_target_and_an_idle_period_misses_none():
    assert breaches(TARGETS, measure([])) == []
    assert breaches(TARGETS, measure([job(100)] * 99)) == []
    slow_tail = measure([job(100)] * 98 + [job(2500)] * 2)
    assert (slow_tail.ttft_p50_ms, slow_tail.ttft_p99_ms) == (100, 2500) and breaches(TARGETS, slow_tail) == ["ttft_p99"]
    assert breaches(TARGETS, measure([job(600)] * 10)) == ["ttft_p50"]
    flaky = measure([job(100)] * 98 + [job(None, served=False)] * 2)
    assert flaky.availability_bps == 9800 and flaky.failed == 2 and breaches(TARGETS, flaky) == ["availability"]
    assert breaches(None, slow_tail) == []


def test_jobs_queued_behind_the_holders_own_excess_load_do_not_count():
    """Reserved 2: a third job sent while two of the holder's own are in flight waited on the holder, not the network."""
    a, b, c = job(10, at=0, end=5, id_=1), job(3000, at=0.1, end=6, id_=2), job(9000, at=0.2, end=9, id_=3)
    later = job(20, at=7, end=8, id_=4)  # only c is still in flight: within the reservation again
    assert within_reservation([c, later, b, a], 2) == [a, b, later]
    assert within_reservation([a, b], 0) == [a]  # a package that reserves nothing still has its one job judged
    assert [covered_concurrency(p) for p in PACKAGES.packages] == [1, 2]  # default: the package's reserved slots
    assert covered_concurrency(PACKAGES.packages[1].model_copy(update={"reserved": 0, "sla": TARGETS.model_copy(update={"concurrency": 4})})) == 4


def cluster_caller(account: str, package: str = "cluster") -> Caller:
    return Caller(account_id=account, lane="dedicated", metered=True, priority=10, package=package)


def account() -> str:
    return "0x" + uuid.uuid4().hex + "00000000"


async def test_only_the_networks_failures_of_metered_dedicated_jobs_are_recorded(sqlite_db):
    meter, who = SlaMeter(settings()), account()
    for status, code in ((400, "context_length_exceeded"), (402, "insufficient_quota"), (429, "rate_limit_exceeded")):
        await meter.failed(cluster_caller(who), 0.0, ApiError(status, "caller's fault", code))
    await meter.failed(cluster_caller(who), 0.0, None)  # the client went away
    await meter.served(Caller(account_id=who, lane="included", metered=True), 0.0, 0.0)  # Included lane: no SLA
    await meter.served(Caller(account_id="anonymous"), 0.0, 0.0)  # dev mode's unmetered caller
    with session() as db:
        assert db.exec(select(SlaJob).where(SlaJob.account == who)).all() == []
    for status, code in ((503, "no_capacity"), (504, "timeout"), (502, "worker_lost")):
        await meter.failed(cluster_caller(who), 0.0, ApiError(status, "network's fault", code))
    await meter.failed(cluster_caller(who), 0.0, RuntimeError("a bug of ours is the network's fault too"))
    import time

    start = time.monotonic()
    await meter.served(cluster_caller(who), start - 0.25, start - 0.05)
    with session() as db:
        rows = db.exec(select(SlaJob).where(SlaJob.account == who).order_by(SlaJob.id)).all()
    assert [(r.served, r.code) for r in rows] == [(False, "no_capacity"), (False, "timeout"), (False, "worker_lost"),
                                                  (False, "internal_error"), (True, None)]  # fmt: skip
    assert 190 <= rows[-1].ttft_ms <= 260 and rows[-1].package == "cluster" and rows[-1].ended_at >= rows[-1].submitted_at


def closed_period(now: float) -> tuple[int, float]:
    """The period before `now`'s (closed), and a time inside it."""
    period = int(now // PERIOD_S) - 1
    return period, period * PERIOD_S + 10


def test_a_breached_cluster_period_credits_its_holder_once_and_only_a_closed_crediting_package(database):
    now = 1_000_000 * PERIOD_S + 30.0
    period, inside = closed_period(now)
    breached, fine, pro_holder, open_period = account(), account(), account(), account()
    for i in range(5):
        record("cluster", breached, inside + i * 3, inside + i * 3 + 1, 100 if i else 2600, None, PERIOD_S)  # p99 2600 > 2000
        record("cluster", fine, inside + i * 3, inside + i * 3 + 1, 120, None, PERIOD_S)
        record("pro", pro_holder, inside + i * 3, inside + i * 3 + 1, 2600, None, PERIOD_S)  # breached, but Pro credits 0
    record("cluster", open_period, now - 5, now - 4, 9000, None, PERIOD_S)  # the running period is not judged yet

    written = credit_breaches(PACKAGES, settings(), now)
    assert [(c.account, c.period, c.breached, c.amount) for c in written] == [(breached, period, "ttft_p99", CREDIT)]
    assert credit_breaches(PACKAGES, settings(), now) == []  # judged again (another tick, a restart): nothing more
    assert ledger.balance(breached, "usdc") == CREDIT
    assert ledger.balance(fine, "usdc") == ledger.balance(pro_holder, "usdc") == ledger.balance(open_period, "usdc") == 0

    by_package = {e.package.id: e for e in report(PACKAGES, settings(), now, periods=3)}
    (cluster_row,) = [r for r in by_package["cluster"].periods if r.period == period]
    assert cluster_row.closed and cluster_row.figures.jobs == 10 and cluster_row.breached == ["ttft_p99"]
    assert (cluster_row.credits, cluster_row.credited) == (1, CREDIT)
    (pro_row,) = by_package["pro"].periods
    assert pro_row.breached == ["ttft_p50", "ttft_p99"] and pro_row.credits == 0
    assert [r.closed for r in by_package["cluster"].periods] == [False, True]  # newest (the open period) first
    dashboard = [(r.package, r.closed, r.jobs, r.ttft_p99_ms, r.breached, r.credits, r.credited)
                 for r in sla_rows(PACKAGES, settings(), now) if r.start == period * PERIOD_S]  # the operator dashboard's rows
    assert dashboard == [("cluster", True, 10, 2600, ["ttft_p99"], 1, CREDIT),
                         ("pro", True, 5, 2600, ["ttft_p50", "ttft_p99"], 0, 0)]  # fmt: skip


def test_judges_racing_on_one_database_credit_a_breach_exactly_once(database):
    """Replicas judging the same closed period at the same moment: the (period, account) key lets one credit in."""
    now = 2_000_000 * PERIOD_S + 30.0
    period, inside = closed_period(now)
    holder = account()
    for i in range(3):
        record("cluster", holder, inside + i, inside + i + 0.5, None, "no_capacity", PERIOD_S)
    record("cluster", holder, inside + 5, inside + 6, 50, None, PERIOD_S)
    results: list[list[SlaCredit]] = []
    barrier = threading.Barrier(4)

    def judge() -> None:
        barrier.wait()
        results.append(credit_breaches(PACKAGES, settings(), now))

    threads = [threading.Thread(target=judge) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    (credit,) = [c for r in results for c in r]
    assert credit.breached == "availability" and credit.period == period
    with session() as db:
        entries = db.exec(select(LedgerEntry).where(LedgerEntry.account == holder)).all()
        assert [(e.key, e.amount, e.kind) for e in entries] == [(f"sla:{period}:{holder}", CREDIT, "sla_credit")]
        assert len(db.exec(select(SlaCredit).where(SlaCredit.account == holder)).all()) == 1


# ---- the hook in InferenceService.run, on the real scheduler with an in-process worker peer ----


async def test_run_records_one_outcome_per_metered_dedicated_job(service):
    """Served (time to first token includes the queue wait), a worker error (the network's), a context overflow
    (the caller's), a client that went away, and a caller without balance (402): only the first two count."""
    import asyncio

    from backend.protocol import frames
    from tests.backend.scheduler.test_scheduler import BODY, Peer

    service.sla = SlaMeter(service.settings)
    who, broke = account(), account()
    ledger.grant(f"purchase:test:{who}", who, "usdc", 10_000_000, "purchase")
    peer = Peer(service.scheduler, slots=1)
    await service.scheduler.register(peer.conn)

    async def run():
        return [e async for e in service.run("chat", BODY, cluster_caller(who))]

    served = asyncio.create_task(run())
    job = await peer.next_job()
    await asyncio.sleep(0.3)  # the worker takes its time before the first delta
    peer.answer(job, "hello")
    await served
    for code in ("engine_failed", "context_length_exceeded"):
        failing = asyncio.create_task(run())
        service.scheduler.on_frame(peer.conn, frames.error((await peer.next_job())["job_id"], code, "no"))
        with pytest.raises(ApiError):
            await failing
    gone = asyncio.create_task(run())
    await peer.next_job()
    gone.cancel()  # the client went away mid-job
    with pytest.raises(asyncio.CancelledError):
        await gone
    with pytest.raises(ApiError) as refused:
        await service.run("chat", BODY, cluster_caller(broke)).__anext__()
    assert refused.value.status == 402

    with session() as db:
        rows = db.exec(select(SlaJob).where(col(SlaJob.account).in_([who, broke])).order_by(SlaJob.id)).all()
    assert [(r.served, r.code, r.package) for r in rows] == [(True, None, "cluster"), (False, "engine_failed", "cluster")]
    assert 300 <= rows[0].ttft_ms < 5000 and rows[1].ttft_ms is None


def test_job_rows_past_the_retention_are_pruned(database):
    kept = Settings(sla_period_s=PERIOD_S, sla_retention_periods=200, sla_lookback_periods=48)
    now = 1_000_000 * PERIOD_S + 30.0
    current = int(now // PERIOD_S)
    for age in (0, 199, 200, 500):  # periods back from the open one: 0 and 199 are kept, 200 and 500 are not
        at = (current - age) * PERIOD_S + 5
        record("cluster", "0xholder", at, at + 1, 100, None, PERIOD_S)
    assert prune(kept, now) == 2
    with session() as db:
        assert sorted(current - p for p in db.exec(select(SlaJob.period)).all()) == [0, 199]
    assert prune(kept, now) == 0  # nothing more to drop
    short = Settings(sla_period_s=PERIOD_S, sla_retention_periods=1, sla_lookback_periods=48)
    assert prune(short, now) == 1  # never fewer than what /one/sla shows (168 periods): age 199 goes, age 0 stays
    with session() as db:
        assert [current - p for p in db.exec(select(SlaJob.period)).all()] == [0]
