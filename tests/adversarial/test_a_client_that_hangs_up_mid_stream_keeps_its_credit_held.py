"""Attack (or accident): hang up in the middle of a streamed answer. The server cancels the request's task, and its
cancel scope cancelled every await the clean-up made after it, so the worker was never told to stop and the hold
placed for the request was never given back: each hang-up locked the request's quote out of the account for good.

A real coordinator (the API app under granian, one process, as Reflex serves it), a real node worker in front of an
OpenAI-compatible engine that streams slowly (bench/instant_upstream.py), a metered Dedicated key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from backend.dev.devnet import stop_groups, wait_for_workers
from bench.replicas import seed_accounts, use_database
from tests.conftest import free_port
from tests.processes import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def coordinator(tmp_path):
    upstream, port = free_port(), free_port()
    env = {**os.environ, "ONE_DATA_DIR": str(tmp_path), "ONE_PORT": str(port), "ONE_CATALOG_PATH": os.path.join(REPO, "bench", "catalog.yaml"),
           "PYTHONUNBUFFERED": "1", "ONE_DATABASE_URL": ""}  # fmt: skip
    log = open(tmp_path / "processes.log", "ab")
    procs = [subprocess.Popen([sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(upstream),
                               "--workers", "1", "bench.instant_upstream:app"], cwd=REPO, stdout=log, stderr=log, start_new_session=True)]  # fmt: skip
    procs.append(subprocess.Popen([sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port",
                                   str(port), "--workers", "1", "backend.api.app:create_api"], cwd=REPO, env=env, stdout=log, stderr=log,
                                  start_new_session=True))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _answers(url), 60), "the coordinator did not start"
        procs.append(subprocess.Popen([sys.executable, "-m", "backend.cli", "worker", "--coordinator", url, "--key-file", str(tmp_path / "w.key"),
                                       "--engine", f"openai:bench-model=http://127.0.0.1:{upstream}/v1#bench-model", "--slots", "4"],
                                      cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True))  # fmt: skip
        wait_for_workers(url, 1)
        with use_database("", tmp_path):
            yield url, seed_accounts(1)[0]
    finally:
        stop_groups({proc.pid: proc for proc in procs}, signal.SIGKILL)  # granian's own worker processes too
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def balance(url: str, key: str) -> int:
    return httpx.get(url + "/one/account", headers={"authorization": f"Bearer {key}"}, timeout=10).json()["balance"]


def busy(url: str) -> int:
    return sum(w["busy"] for w in httpx.get(url + "/one/workers", timeout=10).json()["workers"])


def test_a_client_that_hangs_up_mid_stream_gets_its_hold_back_and_stops_the_worker(coordinator):
    url, key = coordinator
    before = balance(url, key)
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "pace 0 400 50"}], "stream": True}  # 20 s of stream
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30) as reply:
        for line in reply.iter_lines():
            if '"content"' in line:
                assert balance(url, key) < before  # the hold is in place while the answer streams
                break  # hang up
    assert wait_for(lambda: busy(url) == 0, 10), "the worker was never told to stop"
    assert wait_for(lambda: balance(url, key) == before, 10), f"the hold was kept: {before - balance(url, key)} micro-USDC locked"
    time.sleep(0.5)
