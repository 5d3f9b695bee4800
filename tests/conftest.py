"""Shared fixtures. The e2e network is the same `Devnet` that `one up` (make run) starts."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_OUTPUT = REPO / "test-output"


# Small Included allotments reach the soft-stop in two requests; Pro reserves one of the two worker slots.
E2E_ENV = {
    "ONE_INCLUDED_TIERS": "[[100, 3000], [1000, 5000000], [10000, 20000000]]",
    "ONE_PACKAGES_PATH": str(REPO / "tests" / "e2e" / "packages.yaml"),
    "ONE_AUDIT_NEW_RATE": "0.5",  # half of a new worker's deterministic jobs are re-run (tests/e2e/test_audits.py)
    "ONE_AUDIT_WARMUP": "2",  # two passed audits make a worker established (able to settle a dispute)
    # Every test worker runs the same CPU kernels, so honest answers re-score exactly (bench/README.md): judge them as
    # a one-stack network would, not at the 2% of a mixed-GPU one (tests/e2e/test_audits.py catches 8-bit weights).
    "ONE_AUDIT_HONEST_MISS_RATE": "0.002",
    "ONE_UNBOND_DELAY_S": "0",  # bonds come back at the next settlement
    "ONE_AGENT_MIN_INTERVAL_S": "1",  # tests/e2e/test_agents.py schedules agents every few seconds
    "ONE_RATE_LIMIT_OPEN": "100000",  # every e2e caller is 127.0.0.1; the limits have tests of their own
    "ONE_NONCE_RATE_PER_MINUTE": "100000",
    "ONE_FETCH_ALLOW_NETWORKS": '["127.0.0.1/32"]',  # the tests' local webhook, search and image servers (workers too)
}


def small_holder(name: str):
    """A test wallet with its own key (not an unlocked dev account), known before the devnet starts."""
    import hashlib

    from eth_account import Account

    return Account.from_key(hashlib.sha256(f"one test wallet: {name}".encode()).digest())


def small_holders() -> dict[str, int]:
    """Allotments read $ONE at the Included epoch's start, so wallets of a chosen tier are funded before it began
    (the dev chain starts backdated): 150 $ONE is the 3000 micro-credit tier of E2E_ENV. The web app's upsell
    test signs with dev account 7 (anvil signs for it); the Dedicated flow with a key of its own."""
    from backend.chain.devchain import dev_accounts

    return {small_holder("dedicated-flow").address: 150, dev_accounts(8)[7].address: 150}


def pytest_collection_modifyitems(config, items):
    """Tests that buy a Dedicated package keep worker slots reserved for the rest of the session: run them
    late. Tests that start their own coordinator rebuild .web for their port: run them after everything else."""
    def late(item) -> tuple:
        holds = item.get_closest_marker("holds_capacity")
        return (item.get_closest_marker("own_network") is not None, holds is not None, holds.kwargs.get("order", 0) if holds else 0)

    items.sort(key=late)


@contextmanager
def read_only_db(data_dir: Path):
    """A read-only connection to a running coordinator's SQLite database, always closed on the way out.

    SQLite's locks are POSIX advisory locks, which a process loses on *every* file of the database as soon as
    it closes any descriptor of that file. A connection left open here (a leaked one waits for the garbage
    collector) keeps believing it holds read locks that a later plain open()/close() of one.db, -wal or -shm in
    this process silently dropped; the coordinator then checkpoints under its readers, and they read pages that
    are being rewritten: "database disk image is malformed" although the file is sound."""
    with closing(sqlite3.connect(f"file:{Path(data_dir) / 'one.db'}?mode=ro", uri=True, timeout=30)) as db:
        yield db


def files_containing(roots: list[Path], needle: bytes) -> tuple[int, list[str]]:
    """(files scanned, files holding `needle`) under `roots`, read in a child process: opening and closing a
    live database's files here would drop the SQLite locks of any connection this process holds (see
    read_only_db)."""
    scan = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "needle, roots = bytes.fromhex(sys.argv[1]), sys.argv[2:]\n"
        "files = [p for r in roots if Path(r).exists() for p in Path(r).rglob('*') if p.is_file() and 'node_modules' not in p.parts]\n"
        "print(json.dumps([len(files), [str(p) for p in files if needle in p.read_bytes()]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", scan, needle.hex(), *map(str, roots)], capture_output=True, text=True, timeout=120, check=True)
    scanned, hits = json.loads(done.stdout)
    return scanned, hits


@contextmanager
def own_network(tmp_path_factory, test_output: Path, name: str, env: dict[str, str]):
    """anvil and a coordinator of a test module's own, no worker yet (mark the module `own_network`: its build of
    .web carries its own port, so such modules run after everything else)."""
    from backend.dev.devnet import Devnet

    net = Devnet(port=free_port(), data_dir=tmp_path_factory.mktemp(f"one-{name}"), log_dir=test_output / f"logs-{name}")
    try:
        net.deployment = net.start_chain(free_port())  # type: ignore[attr-defined]
        net.start_coordinator(extra_env=env)
        yield net
    finally:
        net.stop_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def test_output() -> Path:
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    from gpu_worker.tiny_models import build_all

    root = tmp_path_factory.mktemp("models")
    build_all(root)
    return root


@pytest.fixture(scope="session")
def devnet(tmp_path_factory, tiny_models, test_output):
    """anvil with the test tokens, coordinator + UI (reflex prod, one port) and two CPU node workers."""
    from backend.dev.devnet import Devnet, wait_for_workers

    data_dir = tmp_path_factory.mktemp("one-data")
    net = Devnet(port=free_port(), data_dir=data_dir, log_dir=test_output / "logs", worker_env={"ONE_FETCH_ALLOW_NETWORKS": E2E_ENV["ONE_FETCH_ALLOW_NETWORKS"]})
    try:
        net.deployment = net.start_chain(free_port(), small_holders())  # type: ignore[attr-defined]
        net.start_coordinator(extra_env=E2E_ENV)
        from backend.chain.devchain import dev_accounts

        payout = dev_accounts(10)  # settlement pays the workers here (dev accounts 8 and 9)
        net.start_worker("worker-a", "--payout-address", payout[8].address, models_dir=tiny_models)
        net.start_worker("worker-b", "--payout-address", payout[9].address, models_dir=tiny_models)
        wait_for_workers(net.url, 2)
        net.models_dir = tiny_models  # type: ignore[attr-defined]
        yield net
    finally:
        net.stop_all()
