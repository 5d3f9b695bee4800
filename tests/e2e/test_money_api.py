"""The money routes over HTTP against the running coordinator and its anvil dev chain."""

from __future__ import annotations

import httpx
import pytest

from backend.chain import token_at
from backend.chain.devchain import dev_accounts
from backend.dev.demo import sign_in

pytestmark = pytest.mark.e2e


def test_catalog_lists_rate_context_and_availability(devnet):
    models = {m["id"]: m for m in httpx.get(f"{devnet.url}/one/catalog").json()["models"]}
    served = {"tiny-chat", "tiny-vision", "tiny-sd", "all-minilm-l6-v2"}  # what the devnet's CPU workers serve
    assert set(models) >= served | {"chat-large", "vision-7b", "sdxl", "bge-m3"}
    for card in models.values():
        assert isinstance(card["rate"], int) and isinstance(card["context_length"], int)
        assert card["available"] is (card["id"] in served) and card["status"] == ("online" if card["id"] in served else "offline")


def test_quote_before_sending(devnet):
    body = {"model": "tiny-chat", "task": "chat", "body": {"max_tokens": 100, "n": 2}}
    assert httpx.post(f"{devnet.url}/one/quote", json=body).json()["max_amount"] == 400
    assert httpx.post(f"{devnet.url}/one/quote", json={"model": "nope"}).status_code == 404


def test_vision_is_quoted_per_image_plus_output_tokens(devnet):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image, image]}]
    quoted = httpx.post(f"{devnet.url}/one/quote", json={"model": "tiny-vision", "task": "vision",
                                                          "body": {"messages": messages, "max_tokens": 100}}).json()  # fmt: skip
    assert (quoted["billing"], quoted["rate"], quoted["image_rate"]) == ("per_image_plus_output_tokens", 3000, 1000)
    assert quoted["max_amount"] == 2 * 1000 + 100 * 3000 // 1000
    card = next(m for m in httpx.get(f"{devnet.url}/v1/models").json()["data"] if m["id"] == "tiny-vision")
    assert card["image_rate"] == 1000
    assert "image_rate" not in next(m for m in httpx.get(f"{devnet.url}/v1/models").json()["data"] if m["id"] == "tiny-chat")


def test_packages_and_purchases_that_must_fail(devnet):
    listing = httpx.get(f"{devnet.url}/one/packages").json()
    assert [p["id"] for p in listing["packages"]] == ["starter", "pro", "cluster"]
    assert listing["usdc"] == devnet.deployment.usdc_token and listing["treasury"] == devnet.deployment.treasury
    buyer, other = dev_accounts(5)[3], dev_accounts(5)[4]
    key = sign_in(devnet.url, buyer)
    headers = {"authorization": f"Bearer {key}"}
    w3 = devnet.chain.web3()
    usdc = token_at(w3, devnet.deployment.usdc_token)

    def pay(sender, to, amount):
        tx = usdc.functions.transfer(to, amount).transact({"from": sender})
        w3.eth.wait_for_transaction_receipt(tx)
        return "0x" + bytes(tx).hex().removeprefix("0x")

    cases = {
        "short_amount": pay(buyer.address, devnet.deployment.treasury, 1),
        "wrong_recipient": pay(buyer.address, other.address, 20_000_000),
        "wrong_sender": pay(other.address, devnet.deployment.treasury, 20_000_000),
    }
    for code, tx in cases.items():
        response = httpx.post(f"{devnet.url}/one/packages/purchase", json={"package": "pro", "tx_hash": tx}, headers=headers)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, response.text
    unknown = httpx.post(f"{devnet.url}/one/packages/purchase", json={"package": "pro", "tx_hash": "0x" + "cd" * 32}, headers=headers)
    assert unknown.status_code == 202 and unknown.json()["status"] == "pending"
    unsigned = httpx.post(f"{devnet.url}/one/packages/purchase", json={"package": "pro", "tx_hash": cases["short_amount"]})
    assert unsigned.status_code == 401
