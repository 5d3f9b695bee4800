"""Attack: a worker says hello naming a Cluster it was never admitted to, or advertising a Cluster's private model
id. As a Cluster's node it would get that Cluster's jobs first (prompts a paying customer keeps off public workers);
advertising the private model, it would be sent that model's requests (the Cluster's own fine-tune traffic).

Defence: a hello naming a Cluster is refused unless that Cluster consented to the worker's key and holds a live
Cluster package; a private model id is kept in a worker's offer only when the worker is a node of the owning Cluster,
and a private model's job runs on the owning Cluster's nodes only (whatever a worker offered before the id was taken).
Through the real `/worker/ws` handler and the real scheduler."""

from __future__ import annotations

import json
import time

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from backend.access import auth, clusters
from backend.catalog import Catalog, Package, Packages
from backend.config import Settings
from backend.db import session
from backend.money.lanes import Lanes
from backend.protocol import frames
from backend.protocol.signing import public_hex, sign_hex
from backend.scheduler import Scheduler
from backend.scheduler.socket import serve_worker
from backend.serving.inference import Caller, InferenceError, InferenceService
from backend.trust.receipts import ReceiptLog
from tests.backend.conftest import ACCOUNT_SECRET
from tests.backend.scheduler.test_scheduler import Peer

HOLDER = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
CLUSTER = HOLDER.lower()
PACKAGES = Packages(packages=[Package(id="cluster", name="Cluster", price=1, duration_s=60, reserved=0, priority=10, balance=0, nodes=True)])
OFFER = [{"id": "tiny-chat", "max_context": 2048, "tasks": ["chat"]}, {"id": "acme-tiny", "max_context": 2048, "tasks": ["chat"]}]


def _hello(scheduler: Scheduler, key: SigningKey, cluster: str | None, offer: list[dict] = OFFER) -> dict:
    api = FastAPI()

    @api.websocket("/worker/ws")
    async def worker_ws(ws: WebSocket) -> None:
        await serve_worker(ws, scheduler, "00" * 32, PACKAGES)

    with TestClient(api).websocket_connect("/worker/ws") as ws:
        nonce = json.loads(ws.receive_text())["nonce"]
        ws.send_text(frames.encode(frames.hello(kind="node", pubkey=public_hex(key), payout_address="0x", slots=1, hardware={},
                                                version="test", models=offer, sig=sign_hex(key, bytes.fromhex(nonce)), cluster=cluster)))  # fmt: skip
        answer = json.loads(ws.receive_text())
        if answer["type"] == "welcome":  # registered right after the welcome is sent
            deadline = time.monotonic() + 5
            while public_hex(key) not in scheduler.workers and time.monotonic() < deadline:
                time.sleep(0.01)
            answer["models"] = sorted(scheduler.workers[public_hex(key)].models)
        return answer


def _a_live_cluster() -> None:
    with session() as db:
        auth.add_key(db, "one_sk_test", HOLDER, "dedicated", "cluster", time.time() + 60)
        db.commit()
    clusters.register_model(Catalog(models=[]), CLUSTER, {"id": "acme-tiny", "tasks": ["chat"], "context": 2048, "billing": "per_1k_output_tokens", "rate": 0})


def test_a_worker_naming_a_cluster_without_its_consent_is_refused(sqlite_db):
    _a_live_cluster()
    answer = _hello(Scheduler(), SigningKey.generate(), CLUSTER)
    assert answer["type"] == "refused" and "has not consented" in answer["reason"]


def test_a_consented_node_of_a_lapsed_cluster_is_refused(sqlite_db):
    key = SigningKey.generate()
    clusters.add_node(CLUSTER, public_hex(key))  # consent given, but no live Cluster package
    answer = _hello(Scheduler(), key, CLUSTER)
    assert answer["type"] == "refused" and "no live Cluster package" in answer["reason"]


def test_a_public_worker_advertising_a_private_model_is_not_offered_it(sqlite_db):
    _a_live_cluster()
    answer = _hello(Scheduler(), SigningKey.generate(), None)
    assert answer["type"] == "welcome" and answer["models"] == ["tiny-chat"]


def test_the_clusters_own_node_serves_its_private_model(sqlite_db):
    _a_live_cluster()
    key = SigningKey.generate()
    clusters.add_node(CLUSTER, public_hex(key))
    answer = _hello(Scheduler(), key, CLUSTER)
    assert answer["type"] == "welcome" and answer["models"] == ["acme-tiny", "tiny-chat"]


async def test_a_worker_that_advertised_the_id_before_it_was_registered_gets_none_of_its_jobs(sqlite_db):
    """The hello's filter sees only the private models registered by then: a worker that guessed the id and joined
    earlier still offers it. The job itself runs on the owning Cluster's nodes only."""
    settings = Settings(queue_timeout_s=2)
    service = InferenceService(settings, Catalog(models=[]), Scheduler(), ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), Lanes(settings, None))
    squatter = Peer(service.scheduler)
    squatter.conn.models = {"acme-tiny": {"id": "acme-tiny", "max_context": 2048, "tasks": ["chat"]}}
    await service.scheduler.register(squatter.conn)
    _a_live_cluster()  # registered after the squatter joined
    with pytest.raises(InferenceError) as err:
        async for _ in service.run("chat", {"model": "acme-tiny", "messages": [{"role": "user", "content": "secret"}]}, Caller("acct", cluster=CLUSTER)):
            pass
    assert err.value.code == "model_unavailable" and squatter.frames.empty()
