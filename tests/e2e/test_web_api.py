"""The routes the web app adds: SIWE message from the server, the account view, the dev wallet's RPC."""

from __future__ import annotations

import httpx
import pytest
from eth_account.messages import encode_defunct

from backend.chain.devchain import dev_accounts

pytestmark = pytest.mark.e2e


def test_nonce_with_an_address_returns_the_message_the_server_will_accept(devnet):
    wallet = dev_accounts(10)[8]
    challenge = httpx.get(f"{devnet.url}/one/auth/nonce", params={"address": wallet.address.lower(), "uri": devnet.url}).json()
    assert wallet.address in challenge["message"] and f"Nonce: {challenge['nonce']}" in challenge["message"]
    signature = "0x" + bytes(wallet.sign_message(encode_defunct(text=challenge["message"])).signature).hex()
    signed = httpx.post(f"{devnet.url}/one/auth/siwe", json={"message": challenge["message"], "signature": signature})
    assert signed.status_code == 200 and signed.json()["account"] == wallet.address
    bad = httpx.get(f"{devnet.url}/one/auth/nonce", params={"address": "0x123"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "address"

    account = httpx.get(f"{devnet.url}/one/account", headers={"authorization": f"Bearer {signed.json()['api_key']}"}).json()
    assert account["account"] == wallet.address and account["lane"] == "included" and account["unit"] == "credit"
    assert account["balance"] == account["allotment"] == 0 and account["usage"] == [] and account["operator"] is False
    assert 0 < account["refresh_in"] <= 86400
    assert httpx.get(f"{devnet.url}/one/account").status_code == 401


def test_dev_wallet_rpc_signs_only_for_demo_wallets(devnet):
    accounts = httpx.get(f"{devnet.url}/one/packages").json()["dev_wallets"]
    assert accounts == [a.address for a in dev_accounts(6)[2:]]  # the demo wallets and the dev operator wallet
    rpc = lambda method, params: httpx.post(f"{devnet.url}/one/dev/rpc", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params})  # noqa: E731
    assert rpc("eth_chainId", []).json()["result"] == "0x7a69"
    assert rpc("eth_accounts", []).json()["result"] == accounts
    refused = rpc("anvil_setBalance", [accounts[0], "0x1"])
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "method_not_allowed"
    deployer = dev_accounts(1)[0].address
    stolen = rpc("eth_sendTransaction", [{"from": deployer, "to": accounts[0], "value": "0x1"}])
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "not_a_dev_wallet"
    signed = rpc("personal_sign", ["0x6869", accounts[0]]).json()["result"]
    assert signed.startswith("0x") and len(signed) == 132


def test_browser_weights_are_served_from_the_package(devnet):
    from gpu_worker.engines.embeddings import minilm_path

    vocab = httpx.get(f"{devnet.url}/one/weights/all-minilm-l6-v2/vocab.txt")
    assert vocab.status_code == 200 and vocab.content == (minilm_path() / "vocab.txt").read_bytes()
    head = httpx.get(f"{devnet.url}/one/weights/all-minilm-l6-v2/model.safetensors", headers={"range": "bytes=0-7"})
    assert head.status_code in (200, 206)
    missing = httpx.get(f"{devnet.url}/one/weights/all-minilm-l6-v2/..%2Fconfig.json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] in ("weights_not_found", "not_found")
    assert httpx.get(f"{devnet.url}/one/weights/tiny-chat/config.json").status_code == 404


def test_worker_record_counts_its_receipts(devnet):
    worker = httpx.get(f"{devnet.url}/one/workers").json()["workers"][0]
    record = httpx.get(f"{devnet.url}/one/workers/{worker['id']}").json()
    assert record["online"] is True and record["kind"] == "node" and record["receipts"] >= record["served"] >= 0
    assert httpx.get(f"{devnet.url}/one/workers/{'0' * 64}").json() == {"id": "0" * 64, "online": False, "receipts": 0, "billed": {}}


def test_verify_api_checks_receipts_and_output(devnet):
    reply = httpx.post(f"{devnet.url}/v1/chat/completions", json={"model": "tiny-chat", "messages": [{"role": "user", "content": "v"}], "max_tokens": 5}, timeout=60).json()
    receipt, answer = reply["receipt"], reply["choices"][0]["message"]["content"]
    good = httpx.post(f"{devnet.url}/one/verify", json={"receipts": [receipt], "output": answer}).json()
    assert good["ok"] is True and good["receipts"][0]["checks"]["output"] is True
    bad = httpx.post(f"{devnet.url}/one/verify", json={"receipts": [{**receipt, "model": "other"}], "output": answer + "x"}).json()
    assert bad["ok"] is False and bad["receipts"][0]["checks"]["hash"] is False and bad["receipts"][0]["checks"]["output"] is False
    assert httpx.post(f"{devnet.url}/one/verify", json={"receipts": []}).status_code == 400
