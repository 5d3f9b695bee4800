"""Load and faults across coordinator replicas: throughput, time to first token and errors for 1, 2 and 3 replicas,
then the money invariants after workers and a replica were SIGKILLed mid-stream.

    .venv/bin/python bench/replicas.py                 # 1000 streams at once for 60 s, per replica count 1, 2, 3
    .venv/bin/python bench/replicas.py --quick         # 200 streams for 20 s

Every run: a fresh Postgres database and Redis dbs, nginx on a front port, N replicas (backend/dev/replicas.py),
five node workers in front of the instant upstream (bench/instant_upstream.py, as `make bench` does, so the run
measures the network, not a model) connected through the front door, and metered Dedicated accounts. Clients
stream through the front door. With faults (the default), 20% of the workers are SIGKILLed a third of the way in
and one replica (when there are several) halfway. Afterwards, checked on the database (`check_invariants`):
no job billed twice, no charge without a receipt, no metered receipt without its charge, every hold released
within a minute, every client got a complete answer or a clean error, the log verifies with `one verify`, and the
epoch's settlement conserves money exactly. tests/e2e/test_replicas.py runs a small version of the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PACE = "pace 0 8 25"  # the instant upstream streams 8 words, 25 ms apart (a fifth of a second per stream)
WORDS = " ".join(f"w{i}" for i in range(8)) + " "
ACCOUNTS = 20
ACCOUNT_USDC = 1_000 * 10**6


@dataclass
class Outcome:
    """One client request as the client saw it."""

    kind: str  # complete | error (HTTP status or SSE error event) | cut (connection lost) | hang | incomplete | wrong
    started: float
    first_token_s: float | None = None
    ended: float = 0.0
    receipt: str | None = None
    detail: str = ""


@dataclass
class Run:
    replicas: int
    concurrency: int
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    invariants: dict = field(default_factory=dict)

    def figures(self) -> dict:
        done = [o for o in self.outcomes if o.kind == "complete"]
        ttft = sorted(o.first_token_s for o in done if o.first_token_s is not None)
        pick = lambda q: round(ttft[min(int(q * len(ttft)), len(ttft) - 1)] * 1000, 1) if ttft else None  # noqa: E731
        return {
            "replicas": self.replicas, "concurrency": self.concurrency, "seconds": self.seconds,
            "requests": len(self.outcomes), "complete": len(done), "throughput_rps": round(len(done) / self.seconds, 1),
            "ttft_p50_ms": pick(0.5), "ttft_p99_ms": pick(0.99), "outcomes": dict(Counter(o.kind for o in self.outcomes)),
            "failures_by_cause": dict(Counter(f"{o.kind}: {o.detail[:60]}" for o in self.outcomes if o.kind != "complete").most_common(8)),
            "faults": self.faults, "invariants": self.invariants,
        }  # fmt: skip


async def _one_request(client: httpx.AsyncClient, url: str, key: str, timeout_s: float) -> Outcome:
    body = {"model": "bench-model", "messages": [{"role": "user", "content": PACE}], "stream": True}
    out = Outcome("incomplete", time.monotonic())
    text, done = "", False
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    out.kind, out.detail = "error", f"{reply.status_code} {reply.text[:120]}"
                    return out
                async for line in reply.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line == "data: [DONE]":
                        done = True
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        out.kind, out.detail = "error", chunk["error"].get("code") or "error"
                        return out
                    if "receipt" in chunk:
                        out.receipt = chunk["receipt"]["hash"]
                    for choice in chunk.get("choices") or []:
                        if (choice.get("delta") or {}).get("content"):
                            out.first_token_s = out.first_token_s or time.monotonic() - out.started
                            text += choice["delta"]["content"]
    except TimeoutError:
        out.kind = "hang"
        return out
    except httpx.HTTPError as exc:
        out.kind, out.detail = "cut", type(exc).__name__
        return out
    finally:
        out.ended = time.monotonic()
    if done:
        out.kind = "complete" if out.receipt and text == WORDS else "wrong"
    return out


async def drive(url: str, keys: list[str], concurrency: int, seconds: float, faults: list[tuple[float, Callable[[], str]]],
                timeout_s: float = 90.0) -> tuple[list[Outcome], list[str]]:  # fmt: skip
    """`concurrency` clients, each streaming one request after another for `seconds`; faults fire at their times."""
    outcomes: list[Outcome] = []
    fired: list[str] = []
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency + 10)

    async def client_loop(client: httpx.AsyncClient, n: int) -> None:
        rng = random.Random(n)
        while time.monotonic() < stop_at:
            outcomes.append(await _one_request(client, url, rng.choice(keys), timeout_s))

    async def fault_loop() -> None:
        start = time.monotonic()
        for at, fault in sorted(faults, key=lambda f: f[0]):
            await asyncio.sleep(max(start + at - time.monotonic(), 0))
            fired.append(f"{time.monotonic() - start:.1f}s: " + await asyncio.to_thread(fault))

    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10), limits=limits) as client:
        await asyncio.gather(fault_loop(), *(client_loop(client, n) for n in range(concurrency)))
    return outcomes, fired


def seed_accounts(count: int = ACCOUNTS) -> list[str]:
    """Metered Dedicated accounts, each with a key and USDC, written straight into the network's database."""
    from backend.access import auth
    from backend.money import ledger

    keys = []
    for i in range(count):
        account = f"0xload{i:034x}"
        ledger.grant(f"seed:{account}", account, "usdc", ACCOUNT_USDC, "purchase")
        keys.append(auth.create_key(account, "dedicated", package="starter", ttl_s=86400))
    return keys


@contextmanager
def use_database(url: str, data_dir: Path) -> Iterator[None]:
    """Point this process's backend code at the network's database and keys (the invariants read them), and back."""
    from backend import config, db

    saved = {name: os.environ.get(name) for name in ("ONE_DATABASE_URL", "ONE_DATA_DIR")}
    os.environ["ONE_DATABASE_URL"], os.environ["ONE_DATA_DIR"] = url, str(data_dir)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    try:
        yield
    finally:
        db.get_engine().dispose()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.get_settings.cache_clear()
        db.get_engine.cache_clear()


def check_invariants(outcomes: list[Outcome], data_dir: Path, hold_wait_s: float = 60.0) -> dict:
    """The money and delivery invariants after a run with faults (see the module docstring); `ok` says all hold."""
    from sqlmodel import col, func, select

    from backend.config import get_settings
    from backend.db import session
    from backend.db.models import LedgerEntry, Payout, ReceiptRecord
    from backend.money.ledger import CHARGE_KEY_PREFIX
    from backend.money.settlement import close_epoch, plan_payouts
    from backend.protocol.signing import load_or_create_key

    started = time.monotonic()
    while True:  # holds of jobs that were running when their replica died are released by the survivors
        with session() as db:
            holds = db.exec(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "hold")).one()
        if holds == 0 or time.monotonic() - started > hold_wait_s:
            break
        time.sleep(1)
    holds_released_s = round(time.monotonic() - started, 1)
    with session() as db:
        receipts = [json.loads(s) for s in db.exec(select(ReceiptRecord.stored).order_by(col(ReceiptRecord.seq))).all()]
        charges = {k.removeprefix(CHARGE_KEY_PREFIX): -a for k, a in db.exec(
            select(LedgerEntry.key, LedgerEntry.amount).where(LedgerEntry.kind == "charge")).all()}  # fmt: skip
    by_hash = {r["hash"]: r for r in receipts}
    jobs = Counter(r["job"] for r in receipts if r["kind"] != "audit")
    metered = [r for r in receipts if r["kind"] != "audit" and r["lane"] == "dedicated"]
    clients = Counter(o.kind for o in outcomes)
    delivered = {o.receipt for o in outcomes if o.kind == "complete"}

    log = data_dir / "receipts-export.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in receipts))
    verify = subprocess.run([sys.executable, "-m", "backend.cli", "verify", str(log)], cwd=REPO, capture_output=True, text=True)

    close_epoch(load_or_create_key(get_settings().data_dir / "coordinator.key"))
    plan_payouts(get_settings())
    with session() as db:
        payouts = db.exec(select(Payout)).all()
    paid_out = sum(p.fee + p.withheld + p.net for p in payouts)
    gross = sum(p.gross for p in payouts)
    result = {
        "receipts": len(receipts),
        "double_charged_jobs": sum(1 for n in jobs.values() if n > 1),
        "charges_without_receipt": sum(1 for h in charges if h not in by_hash),
        "metered_receipts_without_charge": sum(1 for r in metered if charges.get(r["hash"]) != r["charge"]["amount"] or not r["charge"]["amount"]),
        "holds_left": holds, "holds_released_within_s": holds_released_s,
        "clients_complete": clients["complete"], "clients_clean_error": clients["error"] + clients["cut"],
        "clients_hung": clients["hang"], "clients_incomplete_or_wrong": clients["incomplete"] + clients["wrong"],
        "complete_answers_without_stored_receipt": sum(1 for h in delivered if h not in by_hash),
        "one_verify_exit": verify.returncode,
        "settlement_charged": sum(charges.values()), "settlement_gross": gross, "settlement_paid_plus_fee": paid_out,
    }  # fmt: skip
    result["ok"] = (
        result["double_charged_jobs"] == result["charges_without_receipt"] == result["metered_receipts_without_charge"] == 0
        and holds == 0 and result["clients_hung"] == result["clients_incomplete_or_wrong"] == 0
        and result["complete_answers_without_stored_receipt"] == 0 and verify.returncode == 0
        and result["settlement_charged"] == gross == paid_out
    )  # fmt: skip
    return result


class LoadNetwork:
    """A replica set on fresh databases, nginx in front, workers in front of the instant upstream."""

    def __init__(self, work: Path, replicas: int, workers: int, slots: int = 256, log_dir: Path | None = None):
        from tests.conftest import free_port

        self.work, self.replicas, self.workers, self.slots = work, replicas, workers, slots
        self.log_dir = log_dir or work / "logs"
        self.database = f"one_load_{uuid.uuid4().hex[:8]}"
        self.redis_dbs = (10, 11)  # broker, Reflex state
        self.upstream_port = free_port()
        self.net = None
        self.database_in_use = None
        self.free_port = free_port

    def __enter__(self) -> "LoadNetwork":
        import psycopg
        import redis

        from backend.dev.devnet import wait_for_workers
        from backend.dev.replicas import ReplicaSet

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        for n in self.redis_dbs:
            redis.Redis(db=n).flushdb()
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.database}"
        self.net = ReplicaSet(
            data_dir=self.work / "data", log_dir=self.log_dir, front_port=self.free_port(),
            replica_ports=tuple(self.free_port() for _ in range(self.replicas)), database_url=url,
            redis_url=f"redis://127.0.0.1:6379/{self.redis_dbs[1]}", broker_url=f"redis://127.0.0.1:6379/{self.redis_dbs[0]}",
            extra_env={"ONE_CATALOG_PATH": str(REPO / "bench" / "catalog.yaml"), "ONE_MAX_QUEUE_DEPTH": "100000",
                       "ONE_RATE_LIMIT_PER_KEY": "1000000", "ONE_RATE_LIMIT_PER_ACCOUNT": "1000000"},  # the network, not the limits
        )  # fmt: skip
        # The engine the workers front, in a process group the network stops (granian's own worker process with it).
        self.net.spawn("upstream", [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port",
                                    str(self.upstream_port), "--workers", "1", "bench.instant_upstream:app"], dict(os.environ))  # fmt: skip
        self.net.start(replicas=self.replicas)
        for i in range(self.workers):  # through the front door: a worker whose replica dies rejoins another
            self.add_worker(f"load-worker-{i}")
        wait_for_workers(self.net.url, self.workers)
        self.database_in_use = use_database(url, self.work / "data")
        self.database_in_use.__enter__()
        self.keys = seed_accounts()
        return self

    def add_worker(self, name: str, replica: int | None = None, slots: int | None = None) -> subprocess.Popen:
        """A node worker in front of the instant upstream, connected to replica `replica` (1-based) or the front door."""
        engine = f"openai:bench-model=http://127.0.0.1:{self.upstream_port}/v1#bench-model"
        return self.net.start_worker(name, "--engine", engine, "--slots", str(slots or self.slots), replica=replica)

    def kill_workers(self, share: float) -> str:
        victims = [f"load-worker-{i}" for i in range(max(1, round(self.workers * share)))]
        for name in victims:
            self.net.stop(name, sig=signal.SIGKILL)
        return f"SIGKILLed {len(victims)} of {self.workers} workers"

    def kill_replica(self, i: int) -> str:
        self.net.kill_replica(i)
        return f"SIGKILLed replica r{i} of {self.replicas}"

    def __exit__(self, *exc) -> None:
        import psycopg
        import redis

        if self.net is not None:
            self.net.stop_all()
        if self.database_in_use is not None:
            self.database_in_use.__exit__(None, None, None)
        for n in self.redis_dbs:
            redis.Redis(db=n).flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def run(replicas: int, concurrency: int, seconds: float, workers: int = 5, faults: bool = True) -> Run:
    """One load run (with faults unless told otherwise), its figures and the invariants afterwards."""
    result = Run(replicas, concurrency, seconds)
    with tempfile.TemporaryDirectory(prefix="one-load-") as tmp, LoadNetwork(Path(tmp), replicas, workers) as load:
        plan = [(seconds / 3, lambda: load.kill_workers(0.2))] if faults else []
        if faults and replicas > 1:
            plan.append((seconds / 2, lambda: load.kill_replica(replicas)))
        result.outcomes, result.faults = asyncio.run(drive(load.net.url, load.keys, concurrency, seconds, plan))
        result.invariants = check_invariants(result.outcomes, Path(tmp) / "data")
    return result


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 streams at once for 20 s")
    parser.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--no-faults", action="store_true")
    args = parser.parse_args()
    concurrency, seconds = (200, 20.0) if args.quick else (1000, 60.0)
    runs = [run(n, concurrency, seconds, faults=not args.no_faults) for n in args.replicas]
    table = Table("replicas", "streams at once", "complete/s", "TTFT p50 ms", "TTFT p99 ms", "outcomes", "invariants", title="Replicas under load and faults")
    for r in runs:
        f = r.figures()
        table.add_row(str(r.replicas), str(r.concurrency), str(f["throughput_rps"]), str(f["ttft_p50_ms"]), str(f["ttft_p99_ms"]),
                      json.dumps(f["outcomes"]), "[green]hold" if r.invariants.get("ok") else "[red]BROKEN")  # fmt: skip
    Console(width=170).print(table)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = REPO / "bench" / "results" / f"replicas-load-faults-{stamp}.json"
    out.write_text(json.dumps({"machine": "2 cores, shared by clients, nginx, replicas, workers, upstream, Postgres, Redis",
                               "runs": [r.figures() for r in runs]}, indent=1))  # fmt: skip
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
