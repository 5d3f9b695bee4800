"""Cluster = dedicated nodes, and routing a caller can steer, on the devnet.

A wallet buys the Cluster package with USDC on anvil. A third node worker asks to join as its node and is refused
until the Cluster consents; then the Cluster's jobs run on it and nobody else's do. The Cluster registers a private
model that its node serves: its key calls it, everyone else gets a 404. Routing: a request for an offline model with
fallbacks is answered (and charged) by the fallback, and the reply and its receipt name that model."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from backend.chain import token_at
from backend.dev.demo import sign_in
from backend.protocol.signing import load_or_create_key, public_hex
from tests.conftest import small_holder

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "hi"}]


def _until(check, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def _buy(devnet, wallet, package: str, usdc_amount: int) -> str:
    w3, d = devnet.chain.web3(), devnet.deployment
    usdc = token_at(w3, d.usdc_token)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": d.deployer, "to": wallet.address, "value": 10**18}))
    w3.eth.wait_for_transaction_receipt(usdc.functions.mint(wallet.address, usdc_amount).transact({"from": d.deployer}))
    call = usdc.functions.transfer(d.treasury, usdc_amount)
    tx = call.build_transaction({"from": wallet.address, "nonce": w3.eth.get_transaction_count(wallet.address), "chainId": w3.eth.chain_id})
    tx_hash = w3.eth.send_raw_transaction(wallet.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    session = sign_in(devnet.url, wallet)
    bought = httpx.post(f"{devnet.url}/one/packages/purchase", json={"package": package, "tx_hash": "0x" + bytes(tx_hash).hex().removeprefix("0x")},
                        headers={"authorization": f"Bearer {session}"}, timeout=60)  # fmt: skip
    assert bought.status_code == 200, bought.text
    return bought.json()["api_key"]


def _workers(devnet) -> dict[str, dict]:
    return {w["id"]: w for w in httpx.get(f"{devnet.url}/one/workers", timeout=30).json()["workers"]}


def test_cluster_nodes_private_models_and_consent(devnet, tiny_models):
    wallet = small_holder("cluster-e2e")
    key = _buy(devnet, wallet, "cluster", 100 * 10**6)
    cluster = wallet.address.lower()
    auth = {"authorization": f"Bearer {key}"}
    node_id = public_hex(load_or_create_key(devnet.data_dir / "cluster-node.key"))
    tiny = tiny_models / "tiny-chat"
    devnet.start_worker("cluster-node", "--engine", f"transformers:tiny-chat={tiny}", "--engine", f"transformers:acme-tiny={tiny}",
                        "--cluster", wallet.address, "--slots", "2")  # fmt: skip
    try:
        # Refused at its hello (it keeps retrying): waited for in its log, since a loaded machine takes a while to start it.
        log = devnet.log_dir / "cluster-node.log"
        assert _until(lambda: log.exists() and "has not consented" in log.read_text())
        assert node_id not in _workers(devnet)

        # Consent; a key of no Cluster package (a sign-in session here) cannot consent to anything. (No Pro is bought
        # here: its reserved slot would hold devnet capacity for the tests after this one.)
        other = sign_in(devnet.url, small_holder("cluster-e2e-stranger"))
        refused = httpx.post(f"{devnet.url}/one/cluster/nodes", json={"worker_id": node_id}, headers={"authorization": f"Bearer {other}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_a_cluster"
        shown = httpx.post(f"{devnet.url}/one/cluster/nodes", json={"worker_id": node_id}, headers=auth).json()
        assert shown["cluster"] == cluster and shown["nodes"][0]["worker_id"] == node_id
        joined = _until(lambda: _workers(devnet).get(node_id))
        assert joined["cluster"] == cluster and "acme-tiny" in joined["models"]

        # The Cluster's jobs run on its node first; everyone else's never do.
        member = openai.OpenAI(base_url=devnet.url + "/v1", api_key=key, max_retries=0, timeout=120)
        anonymous = openai.OpenAI(base_url=devnet.url + "/v1", api_key="dev", max_retries=0, timeout=120)
        for _ in range(3):
            reply = member.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=4)
            assert reply.model_extra["receipt"]["worker"]["id"] == node_id
        for _ in range(4):
            reply = anonymous.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=4)
            assert reply.model_extra["receipt"]["worker"]["id"] != node_id

        # A private model: callable by the Cluster's key only, served by its node only.
        card = httpx.post(f"{devnet.url}/one/cluster/models", headers=auth,
                          json={"id": "acme-tiny", "tasks": ["chat"], "context": 2048, "rate": 1000}).json()  # fmt: skip
        assert card["private"] is True and card["status"] == "online"
        mine = {m.id for m in member.models.list()}
        assert "acme-tiny" in mine and "acme-tiny" not in {m.id for m in anonymous.models.list()}
        reply = member.chat.completions.create(model="acme-tiny", messages=MESSAGES, max_tokens=4, extra_body={"min_tokens": 4})
        receipt = reply.model_extra["receipt"]
        assert reply.model == "acme-tiny" and receipt["model"] == "acme-tiny" and receipt["worker"]["id"] == node_id
        assert receipt["charge"] == {"unit": "usdc", "amount": 4}  # 4 tokens at 1000 micro-USDC per 1K, rounded up
        for stranger in (anonymous, openai.OpenAI(base_url=devnet.url + "/v1", api_key=other, max_retries=0, timeout=60)):
            with pytest.raises(openai.NotFoundError):
                stranger.chat.completions.create(model="acme-tiny", messages=MESSAGES, max_tokens=4)
        taken = httpx.post(f"{devnet.url}/one/cluster/models", headers=auth, json={"id": "tiny-chat", "tasks": ["chat"], "context": 64})
        assert taken.status_code == 409

        # Withdrawn consent hangs up on the node at once; it cannot join again.
        assert httpx.delete(f"{devnet.url}/one/cluster/nodes/{node_id}", headers=auth).status_code == 200
        _until(lambda: node_id not in _workers(devnet), timeout_s=10)
        time.sleep(3)
        assert node_id not in _workers(devnet)
    finally:
        devnet.stop("cluster-node")


def test_fallbacks_answer_for_an_offline_model_and_preferences_steer(devnet):
    client = openai.OpenAI(base_url=devnet.url + "/v1", api_key="dev", max_retries=0, timeout=120)
    reply = client.chat.completions.create(model="chat-large", messages=MESSAGES, max_tokens=4,
                                           extra_body={"route": {"fallbacks": ["chat-medium", "tiny-chat"], "allow_browser": False}})  # fmt: skip
    assert reply.model == "tiny-chat" and reply.model_extra["receipt"]["model"] == "tiny-chat"
    stream = client.chat.completions.create(model="chat-large", messages=MESSAGES, max_tokens=4, stream=True,
                                            extra_body={"route": {"fallbacks": ["tiny-chat"], "sort": "latency"}})  # fmt: skip
    chunks = list(stream)
    assert {c.model for c in chunks} == {"tiny-chat"} and chunks[-1].model_extra["receipt"]["model"] == "tiny-chat"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=4, extra_body={"route": {"min_reliability": 2}})
    assert bad.value.response.json()["error"]["param"].startswith("route")
    with pytest.raises(openai.APIStatusError) as offline:  # no fallback: the offline model's own 503
        client.chat.completions.create(model="chat-large", messages=MESSAGES, max_tokens=4)
    assert offline.value.status_code == 503
