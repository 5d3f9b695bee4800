"""The money path end to end on the anvil dev chain: a $ONE holder signs in, spends its allotment to the
402, buys Pro with USDC from its own wallet, and its requests then jump the Included-lane queue."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from backend.chain import token_at
from backend.dev.demo import sign_in
from tests.conftest import small_holder

pytestmark = [pytest.mark.e2e, pytest.mark.holds_capacity]
MESSAGES = [{"role": "user", "content": "hi"}]


def _send(w3, wallet, call) -> str:
    """Sign a contract call with the wallet's own key (it is not an unlocked dev account)."""
    tx = call.build_transaction({"from": wallet.address, "nonce": w3.eth.get_transaction_count(wallet.address), "chainId": w3.eth.chain_id})
    signed = wallet.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    return "0x" + bytes(tx_hash).hex().removeprefix("0x")


def test_holder_hits_402_buys_pro_and_jumps_the_queue(devnet):
    w3, d = devnet.chain.web3(), devnet.deployment
    one, usdc = token_at(w3, d.one_token), token_at(w3, d.usdc_token)
    wallet = small_holder("dedicated-flow")  # held 150 $ONE when the Included epoch began (tests/conftest.py)
    assert one.functions.balanceOf(wallet.address).call() == 150 * 10**18
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": d.deployer, "to": wallet.address, "value": 10**18}))
    w3.eth.wait_for_transaction_receipt(usdc.functions.mint(wallet.address, 30 * 10**6).transact({"from": d.deployer}))

    # Included lane: 150 $ONE is the 3000 micro-credit tier (tests/conftest.py); one 1000-token answer costs 2000.
    session = openai.OpenAI(base_url=devnet.url + "/v1", api_key=sign_in(devnet.url, wallet), max_retries=0, timeout=120)
    first = session.chat.completions.with_raw_response.create(model="tiny-chat", messages=MESSAGES, max_tokens=1000, extra_body={"min_tokens": 1000})
    assert first.headers["x-one-balance"] == "1000" and first.parse().model_extra["receipt"]["charge"]["amount"] == 2000
    with pytest.raises(openai.APIStatusError) as soft_stop:
        session.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=1000)
    assert soft_stop.value.status_code == 402 and soft_stop.value.response.json()["offer"]["packages_url"] == "/one/packages"

    # Buy Pro: 20 USDC from the wallet itself to the treasury, proven by the tx hash.
    tx = _send(w3, wallet, usdc.functions.transfer(d.treasury, 20 * 10**6))
    bought = httpx.post(f"{devnet.url}/one/packages/purchase", json={"package": "pro", "tx_hash": tx},
                        headers={"authorization": f"Bearer {session.api_key}"}).json()  # fmt: skip
    assert bought["status"] == "confirmed" and bought["lane"] == "dedicated"
    # Asking again (as after a lost answer) gets a fresh key for the same package; the first one is revoked.
    replay = httpx.post(f"{devnet.url}/one/packages/purchase", json={"package": "pro", "tx_hash": tx}, headers={"authorization": f"Bearer {session.api_key}"})
    assert replay.status_code == 200 and replay.json()["package"] == "pro" and replay.json()["api_key"] != bought["api_key"]
    pro = openai.OpenAI(base_url=devnet.url + "/v1", api_key=replay.json()["api_key"], max_retries=0, timeout=120)

    # Measured order: the Included lane now has one slot; fill it, queue two more, then send one Pro request.
    anonymous = openai.OpenAI(base_url=devnet.url + "/v1", api_key="dev", max_retries=0, timeout=120)
    finished: list[tuple[str, int]] = []

    def included(i: int) -> None:
        reply = anonymous.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=600, extra_body={"min_tokens": 600})
        finished.append((f"included-{i}", reply.model_extra["receipt"]["seq"]))

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(included, 0)]
        _until(lambda: sum(w["busy"] for w in httpx.get(f"{devnet.url}/one/workers").json()["workers"]) == 1)
        futures += [pool.submit(included, i) for i in (1, 2)]
        _until(lambda: httpx.get(f"{devnet.url}/one/workers").json()["queue_depth"] == 2)
        raw = pro.chat.completions.with_raw_response.create(model="tiny-chat", messages=MESSAGES, max_tokens=20, extra_body={"min_tokens": 20})
        reply = raw.parse()
        finished.append(("pro", reply.model_extra["receipt"]["seq"]))
        # The two queued Included jobs are still waiting behind (not the queue's depth: the auditor may have queued a
        # re-scoring of this very answer by now, ONE_AUDIT_NEW_RATE being 0.5 here).
        assert not {"included-1", "included-2"} & {name for name, _ in finished}
        for future in futures:
            future.result()
    order = [name for name, _ in sorted(finished, key=lambda item: item[1])]
    assert order.index("pro") < order.index("included-1") and order.index("pro") < order.index("included-2")
    receipt = reply.model_extra["receipt"]
    assert receipt["lane"] == "dedicated" and receipt["charge"]["unit"] == "usdc"
    assert raw.headers["x-one-lane"] == "dedicated" and int(raw.headers["x-one-balance"]) == 20_000_000 - receipt["charge"]["amount"]


def _until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
