"""An agent from YAML on the devnet: a local SearxNG-style search server and webhook receiver, a Pro key
bought on anvil, a short schedule; both tools run, the webhook gets signed results, the receipt trail is
one parent-linked chain that verifies, and a coordinator restart keeps the schedule. A tiny max_spend
stops a run cleanly with no overdraft."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
from eth_account import Account

from backend.agents.runner import sign_webhook
from backend.chain import token_at
from backend.dev.demo import sign_in
from backend.dev.devnet import coordinator_env
from backend.trust.verify import verify_chain
from tests.conftest import REPO, read_only_db

pytestmark = [pytest.mark.e2e, pytest.mark.holds_capacity(order=1)]  # buys a Pro package: after the other late tests


class LocalHandler(http.server.BaseHTTPRequestHandler):
    """A handler of a test's own local HTTP server: `reply` answers with a body; nothing is logged."""

    def reply(self, body: bytes, kind: str = "application/json"):
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_locally(handler: type[http.server.BaseHTTPRequestHandler]):
    """Run `handler` on a free loopback port for a module's tests (a fixture body): yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class Recorder(LocalHandler):
    searches: list[str] = []
    hooks: list[tuple[bytes, str]] = []

    def do_GET(self):  # SearxNG JSON API
        Recorder.searches.append(self.path)
        body = json.dumps({"results": [{"title": "ONE network", "url": "https://one.example/", "content": "verifiable inference"}]}).encode()
        self.reply(body)

    def do_POST(self):  # webhook receiver
        Recorder.hooks.append((self.rfile.read(int(self.headers["content-length"])), self.headers["x-one-signature"]))
        self.reply(b"{}")


@pytest.fixture(scope="module")
def local_server():
    yield from serve_locally(Recorder)


@pytest.fixture(scope="module")
def agent_key(devnet) -> str:
    """One Pro package for this module's agents (each package reserves a worker slot for the session)."""
    return pro_key(devnet)


def pro_key(devnet) -> str:
    w3, d = devnet.chain.web3(), devnet.deployment
    wallet = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": d.deployer, "to": wallet.address, "value": 10**18}))
    usdc = token_at(w3, d.usdc_token)
    w3.eth.wait_for_transaction_receipt(usdc.functions.mint(wallet.address, 20 * 10**6).transact({"from": d.deployer}))
    call = usdc.functions.transfer(d.treasury, 20 * 10**6)
    tx = call.build_transaction({"from": wallet.address, "nonce": w3.eth.get_transaction_count(wallet.address), "chainId": w3.eth.chain_id})
    tx_hash = w3.eth.send_raw_transaction(wallet.sign_transaction(tx).raw_transaction)
    w3.eth.wait_for_transaction_receipt(tx_hash)
    session = sign_in(devnet.url, wallet)
    bought = httpx.post(f"{devnet.url}/one/packages/purchase", json={"package": "pro", "tx_hash": w3.to_hex(tx_hash)},
                        headers={"authorization": f"Bearer {session}"}, timeout=60).json()  # fmt: skip
    return bought["api_key"]


def one(*args: str, key: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250"}  # rich tables at full width
    return subprocess.run([sys.executable, "-m", "backend.cli", "agent", *args, "--url", url, "--key", key], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


def agents_page_shows(devnet, key: str, run: dict) -> None:
    """The Agents page (with the key in this browser's storage) lists the run and its receipt trail."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.web import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(devnet.url + "/agents")
        page.evaluate("k => localStorage.setItem('one.dedicated', JSON.stringify({api_key: k, package: 'pro', account: '', in_use: true}))", key)
        page.reload()
        card = page.locator(f"[data-run='{run['id']}']")
        expect(card).to_be_visible(timeout=30_000)
        expect(card.locator("[data-testid=trail-receipt]")).to_have_count(len(run["receipts"]))
        page.screenshot(path=str(REPO / "test-output" / "screenshots" / "agents.png"), full_page=True)
        browser.close()


def wait_runs(devnet, key: str, name: str, count: int, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.get(f"{devnet.url}/one/agents/{name}/runs", headers={"authorization": f"Bearer {key}"}).json()["runs"]
        finished = [r for r in runs if r["status"] != "running"]
        if len(finished) >= count:
            return finished
        time.sleep(1)
    pytest.fail(f"{name} did not finish {count} runs: {runs}")


def test_agent_runs_on_schedule_calls_tools_delivers_and_survives_a_restart(devnet, local_server, tmp_path, agent_key):
    key = agent_key
    devnet.coordinator_extra_env["ONE_SEARCH_URL"] = local_server + "/search"
    devnet.stop("coordinator")
    devnet.start_coordinator()
    from backend.dev.devnet import wait_for_workers

    wait_for_workers(devnet.url, 2)
    spec = tmp_path / "agent.yaml"
    spec.write_text(f"""agent: research-monitor
model: tiny-chat
trigger: {{ schedule: "every 5s" }}
tools: [ web_search, summarize ]
budget: {{ lane: dedicated, package: pro }}
output: {{ webhook: {local_server}/hook }}
""")
    plain = subprocess.run([sys.executable, "-m", "backend.cli", "agent", "validate", str(spec)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    deployed = one("deploy", str(spec), key=key, url=devnet.url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    secret = deployed.stdout.split("verify x-one-signature with it): ")[1].split()[0]

    run = wait_runs(devnet, key, "research-monitor", 1)[-1]
    assert run["status"] == "done", run
    assert run["tools"] == ["web_search", "summarize"] and Recorder.searches
    # The trail (inference, web_search, inference, summarize's own inference, summarize, report): each the parent of the next.
    receipts = [httpx.get(f"{devnet.url}/one/receipts/{h}").json() for h in run["receipts"]]
    assert receipts[0]["parent"] is None and all(b["parent"] == a["hash"] for a, b in zip(receipts, receipts[1:]))
    assert [r["kind"] for r in receipts].count("tool") == 2 and verify_chain(receipts[:1]).ok
    assert all(verify_chain([r]).ok for r in receipts)
    assert sum(r["charge"]["amount"] for r in receipts) == run["spent"] > 0 and {r["lane"] for r in receipts} == {"dedicated"}
    body, signature = next((b, s) for b, s in Recorder.hooks if json.loads(b)["run"] == run["id"])
    assert signature == sign_webhook(secret, body)
    delivered = json.loads(body)
    assert delivered["receipts"] == run["receipts"] and delivered["status"] == "done" and isinstance(delivered["report"], str)

    listed = one("list", key=key, url=devnet.url)
    assert "research-monitor" in listed.stdout
    logs = one("logs", "research-monitor", key=key, url=devnet.url)
    assert run["receipts"][0] in logs.stdout
    agents_page_shows(devnet, key, run)

    # A restart keeps the schedule: more runs follow without deploying again.
    before = len(wait_runs(devnet, key, "research-monitor", 1))
    devnet.stop("coordinator")
    devnet.start_coordinator()
    wait_for_workers(devnet.url, 2)
    assert len(wait_runs(devnet, key, "research-monitor", before + 1, timeout=90)) > before
    assert one("pause", "research-monitor", key=key, url=devnet.url).returncode == 0


def test_a_spent_budget_stops_the_run_cleanly_without_overdraft(devnet, tmp_path, agent_key):
    key = agent_key
    spec = tmp_path / "thrifty.yaml"
    spec.write_text("""agent: thrifty
model: tiny-chat
trigger: { manual: true }
tools: [ summarize ]
budget: { lane: dedicated, package: pro, max_spend: 150 }
""")
    assert one("deploy", str(spec), key=key, url=devnet.url).returncode == 0
    assert one("run", "thrifty", key=key, url=devnet.url).returncode == 0
    run = wait_runs(devnet, key, "thrifty", 1)[-1]
    assert run["status"] == "budget_exhausted" and "max_spend" in run["error"]
    assert 0 < run["spent"] <= 150 and run["steps"] == 1  # one 64-token step (at most 128) fits, the next would not
    receipts = [httpx.get(f"{devnet.url}/one/receipts/{h}").json() for h in run["receipts"]]
    assert sum(r["charge"]["amount"] for r in receipts) == run["spent"]


def test_an_agent_pauses_when_its_package_expires(devnet, tmp_path, agent_key):
    """Last in this module: it lets the module's Pro package lapse (its key's expiry moved into the past)."""
    import hashlib

    spec = tmp_path / "lapsing.yaml"
    spec.write_text("""agent: lapsing
model: tiny-chat
trigger: { schedule: "every 2s" }
tools: [ summarize ]
budget: { lane: dedicated, package: pro }
""")
    assert one("deploy", str(spec), key=agent_key, url=devnet.url).returncode == 0
    lapse = (  # through the coordinator's own database layer, as `one settle` writes beside it
        "import sys, time\n"
        "from sqlalchemy import text\n"
        "from backend.db import session\n"
        "with session() as db:\n"
        "    account = db.connection().execute(text('SELECT account FROM api_key WHERE key_hash = :h'), {'h': sys.argv[1]}).scalar_one()\n"
        "    db.connection().execute(text(\"UPDATE api_key SET expires_at = :t WHERE account = :a AND lane = 'dedicated'\"), {'t': time.time() - 1, 'a': account})\n"
        "    db.commit()\n"
        "print(account)\n"
    )
    env = coordinator_env(devnet.port, devnet.data_dir, {**devnet.chain_env, **devnet.coordinator_extra_env})
    done = subprocess.run([sys.executable, "-c", lapse, hashlib.sha256(agent_key.encode()).hexdigest()], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    account = done.stdout.strip()
    with read_only_db(devnet.data_dir) as db:
        deadline, runs = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            runs = db.execute("SELECT status, spent, receipts, error FROM agent_run WHERE agent = ? AND status != 'running' ORDER BY started_at",
                              (f"{account}:lapsing",)).fetchall()  # fmt: skip
            if runs and runs[-1][0] == "package_expired":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no run ended with package_expired: {runs}")
        status, spent, receipts, error = runs[-1]
        assert spent == 0 and json.loads(receipts) == [] and "expired" in error
        assert db.execute("SELECT status FROM agent WHERE id = ?", (f"{account}:lapsing",)).fetchone()[0] == "paused"
        count = len(runs)
        time.sleep(5)  # paused: the schedule starts nothing more
        assert db.execute("SELECT count(*) FROM agent_run WHERE agent = ?", (f"{account}:lapsing",)).fetchone()[0] == count
        assert httpx.get(f"{devnet.url}/one/agents", headers={"authorization": f"Bearer {agent_key}"}).status_code == 401
