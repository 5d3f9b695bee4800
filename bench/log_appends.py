"""Receipt appends/s on Postgres as coordinator replicas grow: where one hash-chained log behind one advisory lock
stops scaling. Reported, never asserted.

    .venv/bin/python bench/log_appends.py            # ~1.5 min: SQLite reference, then 1-4 replicas at c=1, 8 and 64
    .venv/bin/python bench/log_appends.py --quick    # ~20 s: 1-2 replicas, shorter windows

Every append goes through the real `backend.trust.receipts.ReceiptLog` (group commit; on Postgres the
transaction-scoped advisory lock `_APPEND_LOCK_ID` guards the head across replicas). Each replica is its own
process with its own ReceiptLog, the same coordinator key and account secret, and `concurrency` requests appending
in a loop, as a replica's finished jobs would. All replicas of a row start together on a barrier, run for a fixed
window and append to one fresh Postgres database (dropped afterwards), so every row extends the same chain.

Measured per replica: appends, batches (group commits), the time its writer spent waiting in
`pg_advisory_xact_lock` (lock wait share = that wait / the writer's time in `_append_sync`) and holding the lock
(from the lock granted to the commit done, as the client sees it: the serial part no replica can overlap; on SQLite,
from the head read). Append fields come from a pool of 512 jobs per replica signed beforehand (a real worker's Ed25519
signature each): the coordinator only checks them, so the bench keeps signing out of the window. At the end the whole
table is read back and checked to be one chain (seq contiguous from 0, every `prev` the hash before it), and the newest
receipts are run through `one verify`.
Results go to bench/results/log-appends-<utc time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
COORDINATOR_SEED = hashlib.sha256(b"one bench coordinator").digest()
ACCOUNT_SECRET = b"bench account secret, 32 bytes.."
FIELD_POOL = 512
VERIFY_TAIL = 2000  # receipts run through `one verify` (signatures too) at the end


@contextlib.contextmanager
def scratch_postgres(prefix: str, missing: str = "") -> Iterator[str]:
    """A fresh Postgres database for one run (its SQLAlchemy URL), dropped afterwards whatever happens; exits with
    `missing` added to the reason when no Postgres answers on 127.0.0.1:5432."""
    import psycopg

    from backend import db

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        sys.exit(f"no Postgres at {ADMIN_URL} ({str(exc).strip().splitlines()[0]}){missing}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        db.get_engine().dispose()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- one replica (a child process) ----------------------------------------------------------------
def _use_database(url: str, data_dir: str) -> None:
    os.environ["ONE_DATABASE_URL"] = url
    os.environ["ONE_DATA_DIR"] = data_dir
    from backend import config, db

    config.get_settings.cache_clear()
    db.get_engine.cache_clear()


def _signed_fields(replica: int) -> list[dict]:
    """A pool of append fields, each with a real worker attestation signature (as tests/backend/conftest.py builds)."""
    from nacl.signing import SigningKey

    from backend.protocol import receipt as rc
    from backend.protocol.signing import public_hex, sign_hex

    worker = SigningKey(hashlib.sha256(f"bench worker {replica}".encode()).digest())
    account = rc.account_digest(f"acct-{replica}", ACCOUNT_SECRET)
    pool = []
    for i in range(FIELD_POOL):
        job = f"r{replica}-{i:04d}"
        usage = {"input_tokens": 7, "output_tokens": 5 + i % 50, "images": 0}
        request_digest, output_digest = rc.sha256hex(job.encode()), rc.sha256hex(b"out" + job.encode())
        statement = rc.attestation(job, "tiny-chat", request_digest, output_digest, usage)
        pool.append(dict(
            job=job, kind="chat", lane="included", account=account, model="tiny-chat", request_digest=request_digest,
            output_digest=output_digest, usage=usage, charge_unit="credit", charge_amount=2 * usage["output_tokens"],
            worker_id=public_hex(worker), worker_sig=sign_hex(worker, rc.jcs(statement)), parent=None,
        ))  # fmt: skip
    return pool


class _Meter:
    """Times the writer of one ReceiptLog: lock wait (the advisory-lock statement), lock hold (granted -> committed)
    and batch sizes, by wrapping the instance's `_append_sync` and listening to the engine's cursor events."""

    def __init__(self, log, engine):
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        self.batches = self.appends = self.retries = 0
        self.lock_wait_s = self.hold_s = self.writer_s = 0.0
        self.fit = [0.0] * 5  # n, sum k, sum k^2, sum hold, sum k*hold: least squares of hold = a + b*k
        self._granted_at: float | None = None
        self._committed_at: float | None = None
        inner = log._append_sync

        def timed(batch):
            self._granted_at = self._committed_at = None
            started = time.perf_counter()
            try:
                return inner(batch)
            except Exception:
                self.retries += 1
                raise
            finally:
                self.writer_s += time.perf_counter() - started
                if self._granted_at is not None and self._committed_at is not None:
                    hold, k = self._committed_at - self._granted_at, len(batch)
                    self.hold_s += hold
                    self.batches += 1
                    self.appends += k
                    for i, v in enumerate((1, k, k * k, hold, k * hold)):
                        self.fit[i] += v

        log._append_sync = timed

        @event.listens_for(Session, "after_commit")
        def _committed(session):  # the transaction-scoped lock is released with the commit
            self._committed_at = time.perf_counter()

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn, cursor, statement, params, context, executemany):
            if "pg_advisory_xact_lock" in statement:
                conn.info["lock_asked"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn, cursor, statement, params, context, executemany):
            asked = conn.info.pop("lock_asked", None)
            if asked is not None:
                self._granted_at = time.perf_counter()
                self.lock_wait_s += self._granted_at - asked
            elif self._granted_at is None and "FROM receipt" in statement:  # SQLite: no lock, the head read opens the section
                self._granted_at = time.perf_counter()

    def reset(self) -> None:
        self.batches = self.appends = self.retries = 0
        self.lock_wait_s = self.hold_s = self.writer_s = 0.0
        self.fit = [0.0] * 5


def replica_main(replica: int, url: str, data_dir: str, concurrency: int, seconds: float, barrier, results) -> None:
    """One coordinator replica: its own ReceiptLog, `concurrency` appenders for `seconds` after the barrier."""
    _use_database(url, data_dir)
    from nacl.signing import SigningKey

    from backend import db
    from backend.trust.receipts import ReceiptLog

    pool = _signed_fields(replica)
    log = ReceiptLog(SigningKey(COORDINATOR_SEED), ACCOUNT_SECRET)
    meter = _Meter(log, db.get_engine())

    async def run() -> dict:
        await log.append(**pool[0])  # warm: connection pool, statement caches
        meter.reset()
        await asyncio.to_thread(barrier.wait)
        start = time.perf_counter()
        deadline = start + seconds
        latencies: list[float] = []

        async def appender(lane: int) -> None:
            i = lane
            while time.perf_counter() < deadline:
                asked = time.perf_counter()
                await log.append(**pool[i % FIELD_POOL])
                latencies.append(time.perf_counter() - asked)
                i += concurrency

        await asyncio.gather(*(appender(lane) for lane in range(concurrency)))
        elapsed = time.perf_counter() - start
        latencies.sort()
        return {
            "replica": replica, "appends": len(latencies), "elapsed_s": elapsed, "appends_per_s": len(latencies) / elapsed,
            "batches": meter.batches, "mean_batch": meter.appends / max(meter.batches, 1), "retries": meter.retries,
            "lock_wait_s": meter.lock_wait_s, "lock_hold_s": meter.hold_s, "writer_s": meter.writer_s,
            "lock_wait_share": meter.lock_wait_s / meter.writer_s if meter.writer_s else 0.0,
            "p50_ms": 1e3 * latencies[len(latencies) // 2] if latencies else None,
            "p99_ms": 1e3 * latencies[int(len(latencies) * 0.99)] if latencies else None, "fit": meter.fit,
        }  # fmt: skip

    results.put(asyncio.run(run()))
    db.get_engine().dispose()


# --- the parent: rows, database, verification --------------------------------------------------------
def run_row(ctx, backend: str, url: str, data_dir: str, replicas: int, concurrency: int, seconds: float) -> dict:
    """Start `replicas` processes on one database, release them together, collect their counts."""
    barrier, results = ctx.Barrier(replicas + 1), ctx.Queue()
    procs = [ctx.Process(target=replica_main, args=(r, url, data_dir, concurrency, seconds, barrier, results)) for r in range(replicas)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    per = sorted((results.get(timeout=seconds + 120) for _ in procs), key=lambda d: d["replica"])
    for p in procs:
        p.join(timeout=30)
    appends, batches, wall = sum(d["appends"] for d in per), sum(d["batches"] for d in per), max(d["elapsed_s"] for d in per)
    writer_s = sum(d["writer_s"] for d in per)
    return {
        "backend": backend, "replicas": replicas, "concurrency": concurrency, "seconds": seconds, "appends": appends,
        "appends_per_s": appends / wall, "per_replica_appends_per_s": [round(d["appends_per_s"], 1) for d in per],
        "mean_batch": appends / max(batches, 1), "lock_wait_share": sum(d["lock_wait_s"] for d in per) / writer_s if writer_s else 0.0,
        "lock_hold_per_append_ms": 1e3 * sum(d["lock_hold_s"] for d in per) / max(appends, 1),
        "lock_busy_share": sum(d["lock_hold_s"] for d in per) / wall, "retries": sum(d["retries"] for d in per),
        "p50_ms": statistics.median(d["p50_ms"] for d in per), "p99_ms": max(d["p99_ms"] for d in per),
        "fit": [sum(d["fit"][i] for d in per) for i in range(5)],
    }  # fmt: skip


def hold_model(rows: list[dict]) -> dict:
    """Least squares of the lock hold per batch, hold = a + b*k (k receipts in the batch), over every Postgres batch:
    `a` is what a transaction costs (lock, head read, commit), `b` what each receipt adds (JCS, hash, sign, insert).
    With group commit one chain's ceiling is about 1/b appends/s."""
    n, sk, skk, sh, skh = (sum(r["fit"][i] for r in rows if r["backend"] == "postgres") for i in range(5))
    det = n * skk - sk * sk
    if n < 2 or det <= 0:
        return {}
    b = (n * skh - sk * sh) / det
    a = (sh - b * sk) / n
    return {"per_batch_ms": round(1e3 * a, 4), "per_append_ms": round(1e3 * b, 4), "ceiling_appends_per_s": round(1 / b) if b > 0 else None}


def check_chain(url: str, data_dir: str) -> dict:
    """Read the table back: one chain (seq 0..n-1, every prev links), how often consecutive receipts come from
    different replicas, and `one verify` over the newest VERIFY_TAIL receipts (hashes, both signatures, links)."""
    _use_database(url, data_dir)
    from sqlalchemy import text

    from backend import db
    from backend.protocol import receipt as rc
    from backend.trust.verify import verify_chain

    with db.get_engine().connect() as conn:
        rows = conn.execute(text("SELECT seq, hash, stored FROM receipt ORDER BY seq")).all()
    contiguous = all(seq == i for i, (seq, _, _) in enumerate(rows))
    prev, links, switches, last_replica = rc.GENESIS_PREV, True, 0, None
    tail: list[dict] = []
    for i, (seq, digest, stored) in enumerate(rows):
        receipt = json.loads(stored)
        links = links and receipt["prev"] == prev and receipt["seq"] == seq and receipt["hash"] == digest
        prev = digest
        replica = receipt["job"].split("-")[0]
        switches += replica != last_replica and last_replica is not None
        last_replica = replica
        if i >= len(rows) - VERIFY_TAIL:
            tail.append(receipt)
    report = verify_chain(tail, coordinator=tail[0]["coordinator"] if tail else None)
    db.get_engine().dispose()
    return {"receipts": len(rows), "seq_contiguous": contiguous, "prev_links": links, "replica_switches": switches,
            "verified_tail": len(tail), "verify_ok": report.ok}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows, fewer rows (~20 s)")
    parser.add_argument("--seconds", type=float, default=None, help="window per row (default 4, quick 1.5)")
    parser.add_argument("--replicas", default=None, help="replica counts, e.g. 1,2,3,4 (quick: 1,2)")
    parser.add_argument("--concurrency", default=None, help="appenders per replica, e.g. 1,8,64 (quick: 1,64)")
    args = parser.parse_args()
    seconds = args.seconds or (1.5 if args.quick else 4.0)
    replica_counts = [int(x) for x in (args.replicas or ("1,2" if args.quick else "1,2,3,4")).split(",")]
    concurrencies = [int(x) for x in (args.concurrency or ("1,64" if args.quick else "1,8,64")).split(",")]

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    ctx = mp.get_context("spawn")
    rows: list[dict] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="one-bench-") as tmp:
        sqlite_dir, pg_dir = Path(tmp, "sqlite"), Path(tmp, "pg")
        from backend import db

        _use_database("", str(sqlite_dir))
        db.migrate()
        db.get_engine().dispose()
        for c in concurrencies:
            rows.append(run_row(ctx, "sqlite", "", str(sqlite_dir), 1, c, seconds))
            console.print(f"sqlite  replicas=1 c={c}: {rows[-1]['appends_per_s']:.0f} appends/s")
        with scratch_postgres("one_bench_appends", ": the SQLite rows above are all this run has") as pg_url:
            _use_database(pg_url, str(pg_dir))
            db.migrate()
            db.get_engine().dispose()
            for c in concurrencies:
                for n in replica_counts:
                    rows.append(run_row(ctx, "postgres", pg_url, str(pg_dir), n, c, seconds))
                    console.print(f"postgres replicas={n} c={c}: {rows[-1]['appends_per_s']:.0f} appends/s")
            chain = check_chain(pg_url, str(pg_dir))

    model = hold_model(rows)
    table = Table(title=f"Receipt appends through ReceiptLog ({os.cpu_count()} cores, {seconds:g} s per row)")
    for col in ("backend", "replicas", "c/replica", "appends/s", "per replica", "mean batch", "lock wait", "lock busy",
                "hold/append", "p50", "p99"):  # fmt: skip
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in rows:
        pg = r["backend"] == "postgres"
        table.add_row(r["backend"], str(r["replicas"]), str(r["concurrency"]), f"{r['appends_per_s']:,.0f}",
                      " / ".join(f"{x:,.0f}" for x in r["per_replica_appends_per_s"]), f"{r['mean_batch']:.1f}",
                      f"{100 * r['lock_wait_share']:.0f}%" if pg else "—", f"{100 * r['lock_busy_share']:.0f}%",
                      f"{r['lock_hold_per_append_ms']:.3f} ms", f"{r['p50_ms']:.2f} ms", f"{r['p99_ms']:.2f} ms")  # fmt: skip
    console.print(table)
    console.print(f"lock hold per batch (Postgres, least squares): {model.get('per_batch_ms')} ms + {model.get('per_append_ms')} ms "
                  f"per receipt -> one chain tops out near {model.get('ceiling_appends_per_s')} appends/s")  # fmt: skip
    console.print(f"chain check: {chain['receipts']} receipts, seq contiguous: {chain['seq_contiguous']}, every prev links: "
                  f"{chain['prev_links']}, replica switches along the chain: {chain['replica_switches']}, "
                  f"one verify on the newest {chain['verified_tail']}: {'ok' if chain['verify_ok'] else 'FAILED'}")  # fmt: skip
    pg_rows = [r for r in rows if r["backend"] == "postgres"]
    out = REPO / "bench/results" / f"log-appends-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(), "seconds_per_row": seconds,
        "wall_s": round(time.time() - started, 1), "rows": [{k: v for k, v in r.items() if k != "fit"} for r in rows],
        "peak_postgres_appends_per_s": round(max(r["appends_per_s"] for r in pg_rows)) if pg_rows else None,
        "hold_model": model, "chain": chain,
    }, indent=2) + "\n")  # fmt: skip
    console.print(f"wrote {out.relative_to(REPO)} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
