"""Two of the three agent uses end to end on the devnet (research is tests/e2e/test_agents.py), each deployed from
YAML with `one agent` and paid by a Pro key bought on anvil:

- monitoring: http_get on a local page the test flips, `watch: { when: changed }`: the first run records the
  baseline, an unchanged page posts nothing, a changed one fires the signed webhook;
- trading: the agent's own derived wallet, funded by the test, reads the pool's price and its balances, swaps
  USDC for $ONE on the dev chain's pool (the tx mined, balances moved as the pool math says, its receipt in the
  run's trail named by the tx hash), and the per-run and per-day caps each refuse a trade with no tx sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from eth_account import Account

from backend.agents.runner import sign_webhook
from backend.chain import pool_amount_out, pool_at, token_at
from backend.chain.devchain import POOL_FEE_BPS
from backend.trust.verify import verify_chain
from tests.conftest import REPO, free_port
from tests.e2e.test_agents import LocalHandler, one, pro_key, serve_locally, wait_runs

pytestmark = [pytest.mark.e2e, pytest.mark.holds_capacity(order=2)]  # buys a Pro package: late, after test_agents.py


class Site(LocalHandler):
    """A page the test rewrites (GET /page) and a webhook receiver (POST /hook)."""

    page = b"status: all systems normal"
    hooks: list[tuple[bytes, str]] = []

    def do_GET(self):
        self.reply(Site.page, "text/plain")

    def do_POST(self):
        Site.hooks.append((self.rfile.read(int(self.headers["content-length"])), self.headers["x-one-signature"]))
        self.reply(b"{}")


@pytest.fixture(scope="module")
def site():
    yield from serve_locally(Site)


@pytest.fixture(scope="module")
def key(devnet) -> str:
    return pro_key(devnet)


def receipts_of(devnet, run: dict) -> list[dict]:
    """The run's receipts, checked as one trail: each verifies on its own and is the parent of the next."""
    receipts = [httpx.get(f"{devnet.url}/one/receipts/{h}").json() for h in run["receipts"]]
    assert receipts and receipts[0]["parent"] is None and all(b["parent"] == a["hash"] for a, b in zip(receipts, receipts[1:]))
    assert all(verify_chain([r]).ok for r in receipts), [verify_chain([r]).verdicts[0].problems for r in receipts]
    return receipts


def run_once(devnet, key: str, name: str, runs_before: int) -> dict:
    started = one("run", name, key=key, url=devnet.url)
    assert started.returncode == 0, started.stdout + started.stderr
    runs = wait_runs(devnet, key, name, runs_before + 1)
    return runs[0]  # newest first


def test_a_monitor_fires_its_webhook_only_when_the_watched_page_changes(devnet, site, key, tmp_path):
    spec = tmp_path / "monitor.yaml"
    spec.write_text(f"""agent: page-monitor
model: tiny-chat
trigger: {{ manual: true }}
tools: [ {{ http_get: {{ url: "{site}/page" }} }} ]
watch: {{ tool: http_get, when: changed }}
budget: {{ lane: dedicated, package: pro }}
output: {{ webhook: {site}/hook }}
""")
    deployed = one("deploy", str(spec), key=key, url=devnet.url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    secret = deployed.stdout.split("verify x-one-signature with it): ")[1].split()[0]

    def posted(run: dict) -> list[bytes]:
        return [b for b, _ in Site.hooks if json.loads(b)["run"] == run["id"]]

    def watched_digest(run: dict) -> str:
        [tool] = [r for r in receipts_of(devnet, run) if r["kind"] == "tool"]
        assert tool["model"] == "http_get"
        return tool["output_digest"]

    baseline = run_once(devnet, key, "page-monitor", 0)
    assert baseline["status"] == "baseline" and baseline["tools"] == ["http_get"] and posted(baseline) == []
    same = run_once(devnet, key, "page-monitor", 1)
    assert same["status"] == "unchanged" and posted(same) == []
    assert watched_digest(same) == watched_digest(baseline)
    assert same["steps"] == 1  # it stopped after the watched tool: no report was written, nothing was posted

    Site.page = b"status: major outage in eu-west"
    changed = run_once(devnet, key, "page-monitor", 2)
    assert changed["status"] == "done", changed
    assert watched_digest(changed) != watched_digest(same)
    [body] = posted(changed)
    assert dict(Site.hooks)[body] == sign_webhook(secret, body)
    delivered = json.loads(body)
    assert delivered["status"] == "done" and delivered["receipts"] == changed["receipts"] and isinstance(delivered["report"], str)

    quiet_again = run_once(devnet, key, "page-monitor", 3)
    assert quiet_again["status"] == "unchanged" and posted(quiet_again) == []


def test_a_trader_swaps_from_its_own_wallet_under_its_caps(devnet, key, tmp_path):
    w3, d = devnet.chain.web3(), devnet.deployment
    usdc, one_token, pool = token_at(w3, d.usdc_token), token_at(w3, d.one_token), pool_at(w3, d.pool)
    friend = Account.create().address
    spec = tmp_path / "trader.yaml"
    spec.write_text(f"""agent: trader
model: tiny-chat
trigger: {{ manual: true }}
tools:
  - pool_price
  - wallet_balance
  - swap: {{ sell: USDC, amount: 1_500_000 }}
  - transfer: {{ token: USDC, to: "{friend}", amount: 1_000_000 }}
wallet: {{ max_per_run: 2_000_000, max_per_day: 2_500_000 }}
budget: {{ lane: dedicated, package: pro }}
""")
    deployed = one("deploy", str(spec), key=key, url=devnet.url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    [agent] = [a for a in httpx.get(f"{devnet.url}/one/agents", headers={"authorization": f"Bearer {key}"}).json()["agents"] if a["name"] == "trader"]
    wallet = agent["wallet"]
    assert wallet in deployed.stdout and wallet in one("list", key=key, url=devnet.url).stdout

    # The owner funds the agent's wallet: ETH for gas, USDC to trade.
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": d.deployer, "to": wallet, "value": 10**18}))
    w3.eth.wait_for_transaction_receipt(usdc.functions.mint(wallet, 10_000_000).transact({"from": d.deployer}))
    reserve_one, reserve_usdc = pool.functions.reserve_one().call(), pool.functions.reserve_usdc().call()

    # The day cap counts per UTC day (backend.agents.trading.today): both runs must fall in one day, so a test that
    # would start within a few minutes of midnight waits for the new day first.
    if (left := 86400 - time.time() % 86400) < 300:
        time.sleep(left + 1)
    # Run 1: price and balances read, 1.5 USDC swapped; the 1 USDC transfer would take the run to 2.5 > max_per_run 2.
    first = run_once(devnet, key, "trader", 0)
    assert first["status"] == "done", first
    assert first["tools"] == ["pool_price", "wallet_balance", "swap", "transfer"] and first["traded"] == 1_500_000
    receipts = receipts_of(devnet, first)
    sent = {r["model"]: r for r in receipts if r["kind"] == "tool" and r["model"] in ("approve", "swap")}
    assert set(sent) == {"approve", "swap"}
    swap_tx = w3.eth.get_transaction_receipt("0x" + sent["swap"]["job"])
    assert swap_tx["status"] == 1 and swap_tx["from"] == wallet and swap_tx["to"] == pool.address
    assert w3.eth.get_transaction_receipt("0x" + sent["approve"]["job"])["status"] == 1
    bought = pool_amount_out(1_500_000, reserve_usdc, reserve_one, POOL_FEE_BPS)
    assert one_token.functions.balanceOf(wallet).call() == bought > 0
    assert usdc.functions.balanceOf(wallet).call() == 10_000_000 - 1_500_000
    assert (pool.functions.reserve_one().call(), pool.functions.reserve_usdc().call()) == (reserve_one - bought, reserve_usdc + 1_500_000)
    assert w3.eth.get_transaction_count(wallet) == 2  # approve + swap: the refused transfer sent nothing
    assert usdc.functions.balanceOf(friend).call() == 0
    [refused] = [r for r in receipts if r["kind"] == "tool" and r["model"] == "transfer"]
    assert len(refused["job"]) == 32  # a plain tool call, no transaction behind it

    # Run 2: the day has 1.0 USDC left under max_per_day 2.5: the swap (1.5) is refused unsent, the transfer (1.0) goes.
    second = run_once(devnet, key, "trader", 1)
    assert second["status"] == "done" and second["traded"] == 1_000_000, second
    receipts = receipts_of(devnet, second)
    assert [r["model"] for r in receipts if r["kind"] == "tool"] == ["pool_price", "wallet_balance", "swap", "transfer"]
    [swap_call, transfer] = [r for r in receipts if r["kind"] == "tool" and r["model"] in ("swap", "transfer")]
    assert len(swap_call["job"]) == 32  # refused: no transaction
    transfer_tx = w3.eth.get_transaction_receipt("0x" + transfer["job"])
    assert transfer_tx["status"] == 1 and transfer_tx["from"] == wallet and transfer_tx["to"] == usdc.address
    assert w3.eth.get_transaction_count(wallet) == 3  # only the transfer: the day cap stopped the swap before signing
    assert usdc.functions.balanceOf(friend).call() == 1_000_000
    assert usdc.functions.balanceOf(wallet).call() == 10_000_000 - 1_500_000 - 1_000_000
    agents_page_shows_wallet(devnet, key, "trader", wallet)


def agents_page_shows_wallet(devnet, key: str, name: str, wallet: str) -> None:
    """The Agents page row names the agent's wallet, so its owner can fund it."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.web import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(devnet.url + "/agents")
        page.evaluate("k => localStorage.setItem('one.dedicated', JSON.stringify({api_key: k, package: 'pro', account: '', in_use: true}))", key)
        page.reload()
        expect(page.locator(f"[data-agent='{name}'] [data-testid=agent-wallet]")).to_have_text(wallet, timeout=30_000)
        browser.close()


def test_validate_accepts_a_known_model_no_worker_serves_with_a_warning(devnet, tmp_path):
    """The seed's own file names chat-large: the catalog knows it, no devnet worker serves it. Valid, with a warning
    from the coordinator's live catalog; an unknown model is still an error; no coordinator: the check is skipped."""
    from tests.backend.agents.test_spec import SEED
    def validate(text: str, url: str) -> subprocess.CompletedProcess:
        path = tmp_path / "agent.yaml"
        path.write_text(text)
        return subprocess.run([sys.executable, "-m", "backend.cli", "agent", "validate", str(path), "--url", url], cwd=REPO,
                              capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "250"})  # fmt: skip

    offline = validate(SEED, devnet.url)
    assert offline.returncode == 0 and "no worker serves `chat-large`" in offline.stdout and "is valid" in offline.stdout, offline.stdout
    served = validate(SEED.replace("chat-large", "tiny-chat"), devnet.url)
    assert served.returncode == 0 and "warning" not in served.stdout, served.stdout
    unknown = validate(SEED.replace("chat-large", "chat-huge"), devnet.url)
    assert unknown.returncode == 1 and "no model `chat-huge`" in unknown.stdout
    nobody = validate(SEED, f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 0 and "availability not checked" in nobody.stdout
