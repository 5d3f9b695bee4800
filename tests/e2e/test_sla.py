"""SLAs on a network of its own (one worker with one slot, 30-second SLA periods): a Cluster key's jobs sent one
at a time meet its targets; in the next period two at once on the one slot push time to first token p99 past the
target. /one/sla shows both periods, the packages page shows the figures, and the coordinator's own loop credits
the Cluster holder's balance exactly once for the breached period (judging again, from another process, adds
nothing). Runs with the other own-network tests (its build of .web carries its own port)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from eth_account import Account

from backend.chain import token_at
from backend.dev.demo import sign_in
from backend.dev.devnet import coordinator_env
from tests.conftest import E2E_ENV, REPO, own_network

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]
PERIOD_S = 30
PACKAGES = REPO / "tests" / "e2e" / "sla_packages.yaml"
ENV = {**E2E_ENV, "ONE_PACKAGES_PATH": str(PACKAGES), "ONE_SLA_PERIOD_S": str(PERIOD_S), "ONE_SLA_GRACE_S": "1"}
TARGET_MS = 1500  # the Cluster's time-to-first-token p99 target (sla_packages.yaml)
CLUSTER_PRICE, CREDIT = 100_000_000, 10_000_000  # credit_bps 1000 of the price
# How long the first loaded job keeps the one slot busy, so the second waits past the 1.5 s p99 target. The context caps
# a job at 1800 tokens: ~2.4 s on an idle box, still past the target. (The Cluster reserves 2 slots: only 2 jobs at
# once are judged, so the wait must come from the second one.)
QUEUED_WAIT_S = 5
LOADED_JOBS = 2


@pytest.fixture(scope="module")
def sla_net(tmp_path_factory, tiny_models, test_output):
    from backend.dev.devnet import wait_for_workers

    with own_network(tmp_path_factory, test_output, "sla", ENV) as net:
        net.start_worker("sla-worker", models_dir=tiny_models)  # one slot
        wait_for_workers(net.url, 1)
        yield net


def buy_cluster(net) -> str:
    """A fresh wallet pays the Cluster price in USDC on anvil and gets its key."""
    w3, d = net.chain.web3(), net.deployment
    wallet = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": d.deployer, "to": wallet.address, "value": 10**18}))
    usdc = token_at(w3, d.usdc_token)
    w3.eth.wait_for_transaction_receipt(usdc.functions.mint(wallet.address, CLUSTER_PRICE).transact({"from": d.deployer}))
    tx = usdc.functions.transfer(d.treasury, CLUSTER_PRICE).build_transaction(
        {"from": wallet.address, "nonce": w3.eth.get_transaction_count(wallet.address), "chainId": w3.eth.chain_id})
    tx_hash = w3.eth.send_raw_transaction(wallet.sign_transaction(tx).raw_transaction)
    w3.eth.wait_for_transaction_receipt(tx_hash)
    bought = httpx.post(f"{net.url}/one/packages/purchase", json={"package": "cluster", "tx_hash": w3.to_hex(tx_hash)},
                        headers={"authorization": f"Bearer {sign_in(net.url, wallet)}"}, timeout=60).json()  # fmt: skip
    assert bought["status"] == "confirmed", bought
    return bought["api_key"]


def chat(net, key: str, tokens: int) -> int:
    """One chat of exactly `tokens` output tokens (the context holds 2048); returns its charge (micro-USDC)."""
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens, "min_tokens": tokens}
    reply = httpx.post(f"{net.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=120)
    assert reply.status_code == 200, reply.text
    receipt = reply.json()["receipt"]
    assert receipt["lane"] == "dedicated" and receipt["charge"]["unit"] == "usdc"
    return receipt["charge"]["amount"]


def next_period() -> int:
    """Sleep into the start of the next SLA period; returns its number."""
    period = int(time.time() // PERIOD_S) + 1
    time.sleep(period * PERIOD_S - time.time() + 0.3)
    return period


def cluster_periods(net) -> dict[int, dict]:
    reply = httpx.get(f"{net.url}/one/sla", timeout=10).json()
    assert reply["period_s"] == PERIOD_S
    (cluster,) = [p for p in reply["packages"] if p["package"] == "cluster"]
    assert cluster["targets"]["ttft_p99_ms"] == TARGET_MS and cluster["targets"]["credit_bps"] == 1000
    return {row["period"]: row for row in cluster["periods"]}


def balance(net, key: str) -> int:
    return httpx.get(f"{net.url}/one/account", headers={"authorization": f"Bearer {key}"}, timeout=10).json()["balance"]


def test_sla_figures_move_under_load_and_a_cluster_breach_is_credited_once(sla_net):
    key = buy_cluster(sla_net)
    charged = chat(sla_net, key, 4)  # warm the worker's model before the measured periods

    calm = next_period()
    for _ in range(4):
        charged += chat(sla_net, key, 4)
    # The worker's speed, measured just before the loaded period (on a shared 2-core box it changes over a minute).
    started = time.monotonic()
    charged += chat(sla_net, key, 200)
    long = min(1800, int(200 * QUEUED_WAIT_S / (time.monotonic() - started)))  # tokens that keep the slot busy that long
    loaded = next_period()
    with ThreadPoolExecutor(LOADED_JOBS) as pool:  # at once on the one slot: the second waits for the first
        charged += sum(pool.map(lambda _: chat(sla_net, key, long), range(LOADED_JOBS)))
    assert int(time.time() // PERIOD_S) == loaded, "the loaded jobs ran past their period"

    live = cluster_periods(sla_net)
    assert live[loaded]["closed"] is False and live[loaded]["jobs"] == LOADED_JOBS  # the running period is already shown
    assert live[loaded]["ttft_p99_ms"] > TARGET_MS and live[loaded]["breached"] == ["ttft_p99"], live[loaded]
    assert live[calm]["jobs"] == 5 and live[calm]["ttft_p99_ms"] < TARGET_MS and live[calm]["breached"] == [], live[calm]

    deadline = time.monotonic() + 3 * PERIOD_S  # the period closes, then the coordinator's loop judges it
    while (periods := cluster_periods(sla_net))[loaded]["credits"] == 0:
        assert time.monotonic() < deadline, periods
        time.sleep(1)
    assert periods[calm]["closed"] and periods[calm]["jobs"] == 5 and periods[calm]["failed"] == 0
    assert periods[calm]["ttft_p99_ms"] < TARGET_MS and periods[calm]["breached"] == [] and periods[calm]["credits"] == 0
    row = periods[loaded]
    assert row["closed"] and row["jobs"] == LOADED_JOBS and row["availability_bps"] == 10_000
    assert row["ttft_p99_ms"] > TARGET_MS and row["ttft_p50_ms"] < row["ttft_p99_ms"] and row["breached"] == ["ttft_p99"]
    assert (row["credits"], row["credited"]) == (1, CREDIT)
    assert balance(sla_net, key) == CLUSTER_PRICE - charged + CREDIT

    # Judged again from another process on the same database (as a second replica would): nothing more.
    judge = ("import json; from backend.config import get_settings; from backend.catalog import load_packages; "
             "from backend.money.sla import credit_breaches; s = get_settings(); "
             "print(json.dumps(len(credit_breaches(load_packages(s.packages_path), s))))")  # fmt: skip
    again = subprocess.run([sys.executable, "-c", judge], cwd=REPO, capture_output=True, text=True, timeout=120,
                           env=coordinator_env(sla_net.port, sla_net.data_dir, ENV))  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == 0, again.stderr[-2000:]
    time.sleep(PERIOD_S / 4 + 1)  # another tick of the coordinator's loop
    assert balance(sla_net, key) == CLUSTER_PRICE - charged + CREDIT
    assert cluster_periods(sla_net)[loaded]["credits"] == 1

    pages_show(sla_net)


def pages_show(net) -> None:
    """The packages page lists each package's targets and the last closed period's figures (here: the missed p99);
    the operator dashboard lists the periods with their breaches and credits."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.web import CHROMIUM, CHROMIUM_ARGS, dev_account, wallet_context

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(net.url + "/packages")
        card = page.locator("[data-package=cluster] [data-testid=sla]")
        expect(card).to_contain_text(f"p99 ≤ {TARGET_MS} ms", timeout=30_000)
        expect(card).to_contain_text("credits 10 USDC")
        expect(card.locator("[data-testid=sla-measured]")).to_contain_text("missed ttft_p99")
        expect(page.locator("[data-package=pro] [data-testid=sla-measured]")).to_contain_text("not measured yet")
        page.screenshot(path=str(REPO / "test-output" / "screenshots" / "packages-sla.png"), full_page=True)

        operator = wallet_context(browser, net, dev_account(0))  # the dev chain's deployer operates the network
        page = operator.new_page()
        page.goto(net.url + "/operator")
        page.locator("[data-testid=browser-wallet]").click()
        expect(page.locator("#operator-address")).to_have_text(dev_account(0), timeout=30_000)
        breached = page.locator("#sla-table tbody tr", has_text="ttft_p99")
        expect(breached).to_have_count(1, timeout=10_000)
        expect(breached).to_contain_text("cluster")
        expect(breached).to_contain_text(f"1 ({CREDIT} micro-USDC)")
        expect(page.locator("#sla-table tbody tr", has_text="none")).not_to_have_count(0)  # the calm period met its targets
        page.screenshot(path=str(REPO / "test-output" / "screenshots" / "operator-sla.png"), full_page=True)
        browser.close()
