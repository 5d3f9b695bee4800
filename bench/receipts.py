"""Receipts: sign + append/s through the real ReceiptLog on SQLite and Postgres, and `one verify` receipts/s on one
core, each beside the raw libsodium (PyNaCl) Ed25519 rate measured in the same run. Reported, never asserted.

    .venv/bin/python bench/receipts.py            # ~1 min: 5 s per append row, verify over 20,000 receipts
    .venv/bin/python bench/receipts.py --quick    # ~25 s: 1.5 s per append row, same verify

Appends: one ReceiptLog (one coordinator replica, group commit) in this process, `--concurrency` requests appending
in a loop for a fixed window, as a loaded coordinator's finished jobs would; on a fresh SQLite file and a fresh
Postgres database (dropped afterwards). Every append builds the receipt, hashes its JCS form, signs the hash with the
coordinator key and stores it; rows "+ settle" also drop the job's hold and debit its charge in the same transaction,
as every paid request does. Worker attestations are signed beforehand (bench/log_appends.py's pool): the coordinator
only carries them. Baselines from the same run: the 20,000/s target, and PyNaCl's raw sign rate (the one step no
append can skip: appends/s / raw signs/s is the share of the signing ceiling reached).

Verify: the SQLite log (topped up to `--verify` receipts) is written as JSON lines and checked the way `one verify
FILE` does (`load_receipts` + `verify_chain`: hash, coordinator and worker signatures, links), single-threaded.
Baseline: PyNaCl's raw verify rate over the same receipts' signatures, measured just before and after; every receipt
carries two signatures, so receipts/s can reach at most half of raw verifies/s.
Results go to bench/results/receipts-<utc time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.log_appends import (  # noqa: E402
    ACCOUNT_SECRET,
    COORDINATOR_SEED,
    FIELD_POOL,
    _signed_fields,
    _use_database,
    scratch_postgres,
)

APPEND_TARGET = 20_000  # receipts/s, issue 19 goal 3
VERIFY_TARGET = 10_000


def raw_sign_rate(n: int) -> float:
    """PyNaCl Ed25519 signs/s of 32-byte messages (what the coordinator signs: a receipt hash)."""
    from nacl.signing import SigningKey

    key, messages = SigningKey(COORDINATOR_SEED), [os.urandom(32) for _ in range(n)]
    started = time.perf_counter()
    for m in messages:
        key.sign(m)
    return n / (time.perf_counter() - started)


def raw_verify_rate(receipts: list[dict]) -> float:
    """PyNaCl Ed25519 verifies/s over these receipts' coordinator signatures (keys and bytes decoded beforehand)."""
    from nacl.signing import VerifyKey

    key = VerifyKey(bytes.fromhex(receipts[0]["coordinator"]))
    pairs = [(bytes.fromhex(r["hash"]), bytes.fromhex(r["sig"])) for r in receipts]
    started = time.perf_counter()
    for message, signature in pairs:
        key.verify(message, signature)
    return len(pairs) / (time.perf_counter() - started)


async def append_window(log, pool: list[dict], concurrency: int, seconds: float, settle: tuple | None) -> dict:
    """`concurrency` appenders loop over the pool for `seconds`; appends/s, batch sizes and latency."""
    batches = []
    inner = log._append_batch

    def counted(batch):
        batches.append(len(batch))
        return inner(batch)

    log._append_batch = counted
    extra = {"settle": settle} if settle else {}
    await log.append(**pool[0], **extra)  # warm: connection pool, statement caches
    batches.clear()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()

    async def appender(lane: int) -> None:
        i = lane
        while time.perf_counter() < deadline:
            asked = time.perf_counter()
            await log.append(**pool[i % len(pool)], **extra)
            latencies.append(time.perf_counter() - asked)
            i += concurrency

    await asyncio.gather(*(appender(lane) for lane in range(concurrency)))
    elapsed = time.perf_counter() - started
    log._append_batch = inner
    latencies.sort()
    return {
        "appends": len(latencies), "elapsed_s": round(elapsed, 3), "appends_per_s": len(latencies) / elapsed,
        "mean_batch": round(len(latencies) / max(len(batches), 1), 1), "batches": len(batches),
        "p50_ms": round(1e3 * latencies[len(latencies) // 2], 2), "p99_ms": round(1e3 * latencies[int(len(latencies) * 0.99)], 2),
    }  # fmt: skip


def store_only_rate(chain: list[dict], batch: int = 256, rows: int = 10_240) -> float:
    """Rows/s the database alone takes: the log's own rows (same sizes, same four indexes) inserted again into a
    scratch copy of the receipt table, `batch` per transaction, nothing built, hashed or signed."""
    from sqlalchemy import MetaData, insert

    from backend.db import get_engine
    from backend.db.models import ReceiptRecord

    scratch = ReceiptRecord.__table__.to_metadata(MetaData(), name=f"receipt_floor_{uuid.uuid4().hex[:8]}")
    for index in scratch.indexes:
        index.name = f"{scratch.name}_{index.name}"
    engine = get_engine()
    scratch.create(engine)
    try:
        values = [{"seq": i, "hash": f"{i:064x}", "job": r["job"], "account": r["account"], "ts": r["ts"], "stored": json.dumps(r)}
                  for i, r in enumerate(chain[i % len(chain)] for i in range(rows))]  # fmt: skip
        started = time.perf_counter()
        for at in range(0, rows, batch):
            with engine.begin() as conn:
                conn.execute(insert(scratch), values[at : at + batch])
        return rows / (time.perf_counter() - started)
    finally:
        scratch.drop(engine)


def check_chain() -> list[dict]:
    """The whole log read back: seq contiguous from 0 and every `prev` the hash before it (else SystemExit)."""
    from backend.protocol import receipt as rc
    from backend.trust.receipts import ReceiptLog

    chain, start = [], 0
    while page := ReceiptLog.chain(start, 10_000):
        chain += page
        start += len(page)
    prev = rc.GENESIS_PREV
    for i, receipt in enumerate(chain):
        if receipt["seq"] != i or receipt["prev"] != prev:
            sys.exit(f"the log does not chain at seq {i}")
        prev = receipt["hash"]
    return chain


def append_rows(backend: str, concurrency: int, seconds: float, pool: list[dict]) -> list[dict]:
    """A plain row and a `+ settle` row on the database the environment points at (already migrated)."""
    from nacl.signing import SigningKey

    from backend.trust.receipts import ReceiptLog

    rows: list[dict] = []
    for settle in (None, ("acct-bench", 1)):
        log = ReceiptLog(SigningKey(COORDINATOR_SEED), ACCOUNT_SECRET)
        row = asyncio.run(append_window(log, pool, concurrency, seconds, settle))
        rows.append({"backend": backend, "settle": settle is not None, "concurrency": concurrency, **row})
        print(f"{backend:8s} {'+ settle' if settle else 'plain':8s} c={concurrency}: {row['appends_per_s']:,.0f} appends/s "
              f"(mean batch {row['mean_batch']}, p50 {row['p50_ms']} ms)", flush=True)  # fmt: skip
    return rows


def top_up(count: int, pool: list[dict]) -> None:
    """Append plain receipts in batches of 1,000 until the log holds `count`."""
    from nacl.signing import SigningKey

    from backend.trust.receipts import ReceiptLog

    log = ReceiptLog(SigningKey(COORDINATOR_SEED), ACCOUNT_SECRET)
    have = len(ReceiptLog.chain(0, count))
    while have < count:
        n = min(1000, count - have)
        log._append_batch([pool[(have + i) % len(pool)] for i in range(n)])
        have += n


def verify_run(path: Path, receipts: list[dict], rounds: int) -> dict:
    """`one verify FILE` (load + verify_chain) timed `rounds` times, raw verify before each; best of each. Pinned
    to one core (the last), as bench/sdk_verify.py pins each SDK."""
    from backend.trust.verify import load_receipts, verify_chain

    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cores)})
    raw, loaded, checked, ok = [], [], [], True
    for _ in range(rounds):
        raw.append(raw_verify_rate(receipts))
        started = time.perf_counter()
        read = load_receipts(str(path))
        parsed = time.perf_counter()
        report = verify_chain(read)
        done = time.perf_counter()
        ok = ok and report.ok and len(report.verdicts) == len(receipts)
        loaded.append(len(read) / (done - started))
        checked.append(len(read) / (done - parsed))
    raw.append(raw_verify_rate(receipts))
    os.sched_setaffinity(0, cores)
    return {"receipts": len(receipts), "rounds": rounds, "raw_verify_per_s": max(raw), "one_verify_per_s": max(loaded),
            "verify_chain_per_s": max(checked), "all_ok": ok}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1.5 s per append row (~25 s in all)")
    parser.add_argument("--seconds", type=float, default=None, help="window per append row (default 5, quick 1.5)")
    parser.add_argument("--concurrency", type=int, default=256, help="appenders at once (default 256)")
    parser.add_argument("--verify", type=int, default=20_000, help="receipts in the verified log (default 20,000)")
    args = parser.parse_args()
    seconds = args.seconds or (1.5 if args.quick else 5.0)
    rounds = 2 if args.quick else 3

    from rich.console import Console
    from rich.table import Table

    from backend import db

    started = time.time()
    pool = _signed_fields(0)
    sign_before = raw_sign_rate(20_000)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="one-bench-receipts-") as tmp:
        _use_database("", str(Path(tmp, "sqlite")))
        db.migrate()
        rows += append_rows("sqlite", args.concurrency, seconds, pool)
        top_up(args.verify, pool)
        chain = check_chain()
        floors = {"sqlite": store_only_rate(chain)}
        db.get_engine().dispose()
        path = Path(tmp, "receipts.jsonl")
        path.write_text("".join(json.dumps(r) + "\n" for r in chain[-args.verify :]))
        verified = verify_run(path, chain[-args.verify :], rounds)
        print(f"one verify: {verified['one_verify_per_s']:,.0f} receipts/s over {verified['receipts']:,} "
              f"(raw Ed25519 verify {verified['raw_verify_per_s']:,.0f}/s)", flush=True)  # fmt: skip
        with scratch_postgres("one_bench_receipts") as pg_url:
            _use_database(pg_url, str(Path(tmp, "pg")))
            db.migrate()
            rows += append_rows("postgres", args.concurrency, seconds, pool)
            pg_chain = len(check_chain())
            floors["postgres"] = store_only_rate(chain)
    sign_rate = max(sign_before, raw_sign_rate(20_000))

    console = Console(width=max(Console().width, 140))
    table = Table(title=f"Receipt sign + append through ReceiptLog ({os.cpu_count()} cores, {seconds:g} s per row, one replica)")
    for col in ("backend", "row", "appenders", "appends/s", "vs 20,000 target", "vs raw sign/s", "vs store-only rows/s", "mean batch",
                "p50", "p99"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("backend", "row") else "right")
    for r in rows:
        r["vs_target"], r["vs_raw_sign"] = r["appends_per_s"] / APPEND_TARGET, r["appends_per_s"] / sign_rate
        r["store_only_rows_per_s"] = round(floors[r["backend"]])
        r["vs_store_only"] = r["appends_per_s"] / floors[r["backend"]]
        table.add_row(r["backend"], "+ settle" if r["settle"] else "plain", str(r["concurrency"]), f"{r['appends_per_s']:,.0f}",
                      f"{r['vs_target']:.2f}x", f"{r['vs_raw_sign']:.2f}",
                      f"{r['vs_store_only']:.2f} of {floors[r['backend']]:,.0f}", f"{r['mean_batch']:.0f}", f"{r['p50_ms']:.1f} ms",
                      f"{r['p99_ms']:.1f} ms")  # fmt: skip
    console.print(table)
    console.print(f"raw PyNaCl sign: {sign_rate:,.0f}/s (best of before and after the rows); store-only: the same rows inserted "
                  f"256 per transaction with nothing signed; chains read back whole: "
                  f"SQLite {len(chain):,} receipts, Postgres {pg_chain:,}, seq contiguous and every prev links")  # fmt: skip
    v = verified
    v["vs_raw_verify"] = v["one_verify_per_s"] / v["raw_verify_per_s"]
    v["vs_target"] = v["one_verify_per_s"] / VERIFY_TARGET
    console.print(f"one verify (load + verify_chain, one core) over {v['receipts']:,} receipts: {v['one_verify_per_s']:,.0f}/s "
                  f"({v['verify_chain_per_s']:,.0f}/s without the file read) = {v['vs_raw_verify']:.2f} of raw Ed25519 verify "
                  f"{v['raw_verify_per_s']:,.0f}/s (ceiling 0.50: two signatures per receipt), {v['vs_target']:.2f}x the "
                  f"{VERIFY_TARGET:,}/s target; all verified: {v['all_ok']}")  # fmt: skip
    out = REPO / "bench/results" / f"receipts-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(), "seconds_per_row": seconds,
        "field_pool": FIELD_POOL, "wall_s": round(time.time() - started, 1), "raw_sign_per_s": round(sign_rate),
        "append_target_per_s": APPEND_TARGET, "appends": rows, "verify_target_per_s": VERIFY_TARGET, "verify": verified,
        "chains": {"sqlite": len(chain), "postgres": pg_chain},
    }, indent=2) + "\n")  # fmt: skip
    console.print(f"wrote {out.relative_to(REPO)} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
