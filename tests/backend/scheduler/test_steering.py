"""Routing a caller can steer, and Cluster nodes, through the real Scheduler and InferenceService with hand-driven
worker connections (protocol peers): which worker a job goes to, which model answers after a fallback, and that only
the answering job is charged."""

from __future__ import annotations

import asyncio

import pytest
from nacl.signing import SigningKey

from backend.catalog import load_catalog
from backend.config import Settings
from backend.money import ledger
from backend.money.lanes import Lanes
from backend.scheduler import Scheduler
from backend.serving.inference import Caller, Finished, InferenceError, InferenceService
from backend.trust.receipts import ReceiptLog
from tests.backend.conftest import ACCOUNT_SECRET
from tests.backend.scheduler.test_scheduler import Peer

CLUSTER = "0x" + "c1" * 20
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def service(sqlite_db):
    settings = Settings(queue_timeout_s=2)
    return InferenceService(settings, load_catalog(*settings.catalog_files), Scheduler(), ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET),
                            Lanes(settings, None))  # fmt: skip


async def _peer(service, kind="node", reliability=1.0, cluster=None, model="tiny-chat", slots=1) -> Peer:
    peer = Peer(service.scheduler, slots=slots)
    peer.conn.kind, peer.conn.reliability, peer.conn.cluster = kind, reliability, cluster
    peer.conn.models = {model: {"id": model, "max_context": 2048, "tasks": ["chat"]}}
    await service.scheduler.register(peer.conn)
    return peer


async def _served_by(service, peers, body, caller=None) -> tuple[Peer, Finished]:
    """Run one request; the peer that got the job answers it."""
    task = asyncio.create_task(_last(service, body, caller or Caller("acct")))
    while True:
        for peer in peers:
            if not peer.frames.empty():
                job = await peer.next_job()
                peer.answer(job, "ok")
                return peer, await task
        await asyncio.sleep(0.01)


async def _last(service, body, caller):
    return [e async for e in service.run("chat", body, caller)][-1]


async def test_min_reliability_and_no_browsers_narrow_the_workers(service):
    shaky = await _peer(service, reliability=0.5)
    browser = await _peer(service, kind="browser")
    steady = await _peer(service, reliability=0.95)
    body = {"model": "tiny-chat", "messages": MESSAGES, "route": {"min_reliability": 0.9, "allow_browser": False}}
    for _ in range(3):
        peer, _ = await _served_by(service, [shaky, browser, steady], body)
        assert peer is steady
    with pytest.raises(InferenceError) as err:  # nobody meets the bar: a clear 503, not a wait
        await _last(service, {**body, "route": {"min_reliability": 0.99, "allow_browser": False}}, Caller("acct"))
    assert err.value.status == 503 and "route preferences" in err.value.message


async def test_sort_by_latency_and_by_reliability(service):
    fast, slow = await _peer(service, reliability=0.8), await _peer(service, reliability=0.99)
    fast.conn.served, fast.conn.latency_ewma_s = 5, 0.05
    slow.conn.served, slow.conn.latency_ewma_s = 5, 0.9
    for peer in (fast, slow):  # a standing set by hand: re-ranked as the scheduler's own updates are
        service.scheduler.touch(peer.conn)
    peer, _ = await _served_by(service, [fast, slow], {"model": "tiny-chat", "messages": MESSAGES, "route": {"sort": "latency"}})
    assert peer is fast
    peer, _ = await _served_by(service, [fast, slow], {"model": "tiny-chat", "messages": MESSAGES, "route": {"sort": "reliability"}})
    assert peer is slow


async def test_fallback_answers_and_only_it_is_charged(service):
    vision = await _peer(service, model="tiny-vision")  # tiny-chat has no worker: the fallback answers
    ledger.grant("seed", "payer", "usdc", 1_000_000, "test", None)
    caller = Caller("payer", lane="dedicated", metered=True)
    body = {"model": "tiny-chat", "messages": MESSAGES, "max_tokens": 10, "route": {"fallbacks": ["tiny-vision"]}}
    peer, finished = await _served_by(service, [vision], body, caller)
    assert finished.model == "tiny-vision" and finished.receipt["model"] == "tiny-vision"
    assert ledger.balance("payer", "usdc", None) == 1_000_000 - finished.receipt["charge"]["amount"]  # no hold left behind
    with pytest.raises(InferenceError) as err:  # a fallback the catalog does not know is the caller's mistake
        await _last(service, {**body, "route": {"fallbacks": ["no-such-model"]}}, caller)
    assert err.value.status == 400 and err.value.param == "route.fallbacks.0"
    with pytest.raises(InferenceError) as err:
        await _last(service, {**body, "route": {"sort": "fastest"}}, caller)
    assert err.value.status == 400 and err.value.code == "invalid_route"


async def test_price_sort_tries_the_cheapest_model_first(service):
    chat, vision = await _peer(service, model="tiny-chat"), await _peer(service, model="tiny-vision")
    body = {"model": "tiny-vision", "messages": MESSAGES, "max_tokens": 10, "route": {"sort": "price", "fallbacks": ["tiny-chat"]}}
    peer, finished = await _served_by(service, [chat, vision], body)  # tiny-chat: 2000 per 1K tokens, tiny-vision 3000
    assert peer is chat and finished.model == "tiny-chat"


async def test_cluster_nodes_run_their_clusters_jobs_only_and_first(service):
    public = await _peer(service)
    node = await _peer(service, cluster=CLUSTER)
    member, stranger = Caller("acct", cluster=CLUSTER), Caller("other")
    for _ in range(3):
        assert (await _served_by(service, [public, node], {"model": "tiny-chat", "messages": MESSAGES}, member))[0] is node
        assert (await _served_by(service, [public, node], {"model": "tiny-chat", "messages": MESSAGES}, stranger))[0] is public
    # While its node is busy the Cluster's job may still run on a public worker; a stranger's job never on the node.
    await service.scheduler.unregister(public.conn)
    with pytest.raises(InferenceError) as err:
        await _last(service, {"model": "tiny-chat", "messages": MESSAGES}, stranger)
    assert err.value.code == "model_unavailable"
    assert service.scheduler.free_slots("tiny-chat") == 0  # a Cluster's node is not public capacity
