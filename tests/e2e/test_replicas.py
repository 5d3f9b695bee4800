"""Three coordinator replicas behind nginx, one network: the official openai client at one replica is served by a
worker connected to another, a client that goes away stops the job on another replica, jobs fail over across
replicas, and a small run of the load-and-faults suite (bench/replicas.py) keeps every money invariant.

Real parts throughout: Reflex prod replicas on Postgres, Redis (Reflex state and the broker), nginx from Debian,
node workers in front of an OpenAI-compatible engine (bench/instant_upstream.py, which can pace its stream).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from backend.dev.devnet import wait_for_workers
from bench.replicas import LoadNetwork, check_invariants, drive

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, test_output):
    with LoadNetwork(tmp_path_factory.mktemp("one-replicas"), replicas=3, workers=0, slots=8, log_dir=test_output / "logs-replicas") as load:
        yield load


def workers(url: str) -> dict[str, dict]:
    return {w["id"]: w for w in httpx.get(url + "/one/workers", timeout=10).json()["workers"]}


def until(check, timeout_s: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def balance(url: str, key: str) -> int:
    return httpx.get(url + "/one/account", headers={"authorization": f"Bearer {key}"}, timeout=10).json()["balance"]


def test_a_request_at_any_replica_is_served_by_a_worker_connected_to_another(replicas):
    net = replicas.net
    replicas.add_worker("on-r2", replica=2)
    replicas.add_worker("on-r3", replica=3)
    wait_for_workers(net.replica_url(1), 2)
    for i in (1, 2, 3):  # every replica lists every worker of the network (within a heartbeat), with its replica
        until(lambda: sorted(w["replica"] for w in workers(net.replica_url(i)).values()) == ["r2", "r3"], 5, f"r{i} to list both workers")

    key = replicas.keys[0]
    before = balance(net.url, key)
    client = openai.OpenAI(base_url=net.replica_url(1) + "/v1", api_key=key)  # r1 has no worker of its own
    answer = client.chat.completions.create(model="bench-model", messages=[{"role": "user", "content": "hello"}])
    receipt = answer.model_extra["receipt"]
    assert answer.choices[0].message.content and receipt["worker"]["id"] in workers(net.url)
    verdict = httpx.post(net.url + "/one/verify", json={"receipts": [receipt]}, timeout=10).json()
    assert verdict["ok"], verdict

    front = openai.OpenAI(base_url=net.url + "/v1", api_key=key)
    text, last = "", None
    for chunk in front.chat.completions.create(model="bench-model", messages=[{"role": "user", "content": "pace 0 8 5"}], stream=True):
        text += "".join(c.delta.content or "" for c in chunk.choices)
        last = chunk
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7 " and last.model_extra["receipt"]["charge"]["amount"] > 0
    spent = answer.model_extra["receipt"]["charge"]["amount"] + last.model_extra["receipt"]["charge"]["amount"]
    assert balance(net.url, key) == before - spent  # each job billed once, whichever replica ran it


def test_a_client_that_hangs_up_stops_its_job_on_the_replica_running_it(replicas):
    net = replicas.net
    key = replicas.keys[1]
    before = balance(net.url, key)
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "pace 0 400 50"}], "stream": True}
    with httpx.stream("POST", net.replica_url(1) + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                      timeout=30) as reply:  # fmt: skip
        for line in reply.iter_lines():
            if '"content"' in line:
                break  # streaming from a worker on r2 or r3: hang up
    until(lambda: sum(w["busy"] for w in workers(net.replica_url(2)).values()) == 0, 10, "the worker to be told to stop")
    until(lambda: balance(net.url, key) == before, 10, "the hold to be released without a charge")


def test_jobs_fail_over_across_replicas_and_a_lost_stream_is_not_charged(replicas):
    net = replicas.net
    key = replicas.keys[2]
    client = openai.OpenAI(base_url=net.replica_url(1) + "/v1", api_key=key, max_retries=0)
    # Only the worker on r3 is left; a slow job starts on it, it dies before the first token; the job moves to r2's.
    net.stop("on-r2")
    until(lambda: len(workers(net.url)) == 1, 20, "r2's worker to leave")
    before = balance(net.url, key)
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(client.chat.completions.create, model="bench-model", messages=[{"role": "user", "content": "pace 4000 3 1"}])
        time.sleep(1.5)
        replicas.add_worker("on-r2", replica=2)
        until(lambda: len(workers(net.url)) == 2, 30, "r2's worker to come back")
        net.stop("on-r3", sig=signal.SIGKILL)
        assert asking.result(timeout=30).choices[0].message.content == "w0 w1 w2 "

    # A worker SIGKILLed mid-stream: the client gets an error, and is not charged for the lost stream.
    charged = before - balance(net.url, key)
    stream = client.chat.completions.create(model="bench-model", messages=[{"role": "user", "content": "pace 0 300 50"}], stream=True)
    with pytest.raises(openai.APIError) as lost:
        for i, _ in enumerate(stream):
            if i == 3:
                net.stop("on-r2", sig=signal.SIGKILL)
    assert "worker" in str(lost.value).lower()
    until(lambda: before - balance(net.url, key) == charged, 15, "no charge for the lost stream")


def test_load_with_a_worker_and_a_replica_killed_keeps_every_invariant(replicas):
    """The load-and-faults suite, small: 60 streams at once for 15 s through the front door; a fifth of the workers
    SIGKILLed at 5 s, replica r3 at 7.5 s."""
    for i in range(5):
        replicas.add_worker(f"load-{i}")
    wait_for_workers(replicas.net.url, 5)
    plan = [(5.0, lambda: _kill(replicas, "load-0")), (7.5, lambda: replicas.kill_replica(3))]
    outcomes, fired = asyncio.run(drive(replicas.net.url, replicas.keys, concurrency=60, seconds=15.0, faults=plan, timeout_s=60))
    result = check_invariants(outcomes, replicas.work / "data")
    assert len(fired) == 2 and result["clients_complete"] > 0, (fired, result)
    assert result["ok"], json.dumps(result)


def _kill(replicas: LoadNetwork, name: str) -> str:
    replicas.net.stop(name, sig=signal.SIGKILL)
    return f"SIGKILLed {name}"

