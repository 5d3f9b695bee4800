"""Audits on the session devnet: a worker that serves a different tiny model while claiming `tiny-chat`, or the same
model rounded to 8 bits, is caught by re-scoring its sampled answers (one teacher-forced pass under the seed its
attestation commits to), slashed and routed around; honest workers are never slashed; every outcome is a receipt in the
public log with its document at /one/audits. Then the cheater's unaudited work is withheld at settlement."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from backend.chain import token_at
from backend.chain.devchain import dev_accounts
from backend.dev.demo import sign_in
from tests.conftest import REPO, read_only_db

pytestmark = [pytest.mark.e2e, pytest.mark.holds_capacity]  # runs late: it adds (then quarantines) a third worker


def worker_record(devnet, wid: str) -> dict:
    import sqlite3

    with read_only_db(devnet.data_dir) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM worker WHERE id = ?", (wid,)).fetchone()
        return dict(row) if row else {}


def bond(devnet, name: str, payer, amount: int) -> None:
    """Stake from a dev wallet (an unlocked anvil account), then `one worker bond` with it signing the claim."""
    w3, d = devnet.chain.web3(), devnet.deployment
    usdc = token_at(w3, d.usdc_token)
    w3.eth.wait_for_transaction_receipt(usdc.functions.mint(payer.address, amount).transact({"from": d.deployer}))
    tx = usdc.functions.transfer(d.treasury, amount).transact({"from": payer.address})
    w3.eth.wait_for_transaction_receipt(tx)
    payer_key = devnet.data_dir / f"{name}-payer.key"
    payer_key.write_text(payer.key.hex())
    claim = [sys.executable, "-m", "backend.cli", "worker", "--coordinator", devnet.url, "--key-file", str(devnet.data_dir / f"{name}.key"),
             "bond", "--tx-hash", w3.to_hex(tx), "--payer-key-file", str(payer_key)]  # fmt: skip
    cli = subprocess.run(claim, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and "bonded" in cli.stdout + cli.stderr, cli.stdout + cli.stderr
    again = subprocess.run(claim, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "already" in again.stdout + again.stderr


def test_model_substitution_is_caught_slashed_and_routed_around(devnet, tmp_path):
    from gpu_worker.tiny_models import build_tiny_chat

    fake = build_tiny_chat(tmp_path / "fake", seed=7)  # same architecture and name, other weights
    cheater_wallet = dev_accounts(8)[7]
    devnet.start_worker("cheater", "--engine", f"transformers:tiny-chat={fake}", "--payout-address", cheater_wallet.address,
                        models_dir=devnet.models_dir)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = httpx.get(f"{devnet.url}/one/workers").json()["workers"]
        if len(workers) >= 3:
            break
        time.sleep(0.5)
    honest = {w["id"] for w in workers if w["kind"] == "node" and set(w["models"]) > {"tiny-chat"}}
    cheater = next(w["id"] for w in workers if w["models"] == ["tiny-chat"])
    assert len(honest) == 2
    bond(devnet, "cheater", cheater_wallet, 40 * 10**6)
    assert worker_record(devnet, cheater)["bond"] == 40 * 10**6

    audited_cheater = 0
    metered = {"authorization": f"Bearer {sign_in(devnet.url, dev_accounts(5)[4])}"}  # paid work, so settlement has earnings to withhold
    for i in range(200):  # sampled requests: re-scored under the seed the worker committed to
        body = {"model": "tiny-chat", "messages": [{"role": "user", "content": f"audit me {i}"}], "max_tokens": 16, "temperature": 0.8}
        reply = httpx.post(f"{devnet.url}/v1/chat/completions", json=body, headers=metered, timeout=120)
        assert reply.status_code == 200, reply.text
        time.sleep(0.3)
        record = worker_record(devnet, cheater)
        audited_cheater = record["audits_passed"] + record["audits_failed"]
        if record["quarantined"]:
            break
    record = worker_record(devnet, cheater)
    assert record["quarantined"] == 1 and record["audits_failed"] >= 1, record
    assert record["slashed"] == 20 * 10**6 and record["bond"] == 20 * 10**6  # ONE_SLASH_BPS 5000 of 40 USDC
    assert audited_cheater <= 50
    for wid in honest:  # never slashed
        r = worker_record(devnet, wid)
        assert r["audits_failed"] == 0 and r["slashed"] == 0 and not r["quarantined"], r

    # Routed around: nothing more goes to the cheater.
    receipts = []
    for i in range(6):
        body = {"model": "tiny-chat", "messages": [{"role": "user", "content": f"after {i}"}], "max_tokens": 4}
        receipts.append(httpx.post(f"{devnet.url}/v1/chat/completions", json=body, timeout=120).json()["receipt"])
    assert all(r["worker"]["id"] != cheater for r in receipts)
    assert next(w for w in httpx.get(f"{devnet.url}/one/workers").json()["workers"] if w["id"] == cheater)["reliability"] < 0.5

    # Audit receipts are in the log, linked to what they audited, and the log verifies.
    log = httpx.get(f"{devnet.url}/one/receipts", params={"limit": 1000}).json()["receipts"]
    audits = [r for r in log if r["kind"] == "audit"]
    assert audits and all(r["charge"]["amount"] == 0 and r["parent"] for r in audits)
    from backend.trust.verify import verify_chain

    assert verify_chain(log).ok
    assert_outcomes_published(devnet, cheater)

    # Settlement withholds the cheater's unaudited earnings.
    from tests.e2e.test_settlement import run_settle

    run_settle(devnet)
    epoch = httpx.get(f"{devnet.url}/one/epochs").json()["epochs"][0]
    rows = {r["worker"]: r for r in httpx.get(f"{devnet.url}/one/payouts", params={"epoch": epoch["epoch"]}).json()["payouts"]}
    assert rows[cheater]["withheld"] > 0 and rows[cheater]["withheld"] <= rows[cheater]["gross"]
    assert all(rows[w]["withheld"] == 0 for w in honest if w in rows)
    devnet.processes.pop("cheater").terminate()


def assert_outcomes_published(devnet, cheater: str) -> None:
    """The failed audit's outcome is public: its document hashes to a coordinator-signed receipt in the log that names
    the audited receipt, and says which auditors scored what."""
    from backend.protocol import receipt as rc

    outcomes = httpx.get(f"{devnet.url}/one/audits", params={"worker": cheater}).json()["audits"]
    failed = [a for a in outcomes if a["outcome"]["verdict"] == "fail" and a["outcome"]["culprit"] == cheater]
    assert failed, outcomes
    doc, receipt = failed[0]["outcome"], failed[0]["receipt"]
    assert doc["method"] == "score" and len(doc["auditors"]) == 2 and all(a["verdict"] == "fail" and a["honest_odds"] < doc["rule"]["false_fail_odds"] for a in doc["auditors"])
    assert rc.sha256hex(rc.jcs(doc)) == receipt["output_digest"] and receipt["request_digest"] == doc["audited"] == receipt["parent"]
    assert receipt["worker"]["id"] == receipt["coordinator"] and httpx.get(f"{devnet.url}/one/receipts/{receipt['hash']}").json() == receipt
    audited = httpx.get(f"{devnet.url}/one/receipts/{doc['audited']}").json()
    assert audited["worker"]["id"] == cheater and audited["sampling_seed"] and audited["tokens_digest"]


def test_a_model_rounded_to_8_bits_is_caught_by_rescoring_sampled_answers(devnet, tmp_path):
    from gpu_worker.tiny_models import build_rounded

    rounded = build_rounded(devnet.models_dir / "tiny-chat", tmp_path / "rounded", bits=8)
    devnet.start_worker("rounded", "--engine", f"transformers:tiny-chat={rounded}", models_dir=devnet.models_dir)
    deadline = time.monotonic() + 120
    cheater = None
    while time.monotonic() < deadline and cheater is None:
        workers = httpx.get(f"{devnet.url}/one/workers").json()["workers"]
        cheater = next((w["id"] for w in workers if w["models"] == ["tiny-chat"] and not w.get("quarantined")), None)
        time.sleep(0.5)
    assert cheater, workers
    honest = {w["id"] for w in workers if w["kind"] == "node" and set(w["models"]) > {"tiny-chat"}}
    for i in range(300):  # sampled answers, as most real traffic is
        body = {"model": "tiny-chat", "messages": [{"role": "user", "content": f"round me {i}"}], "max_tokens": 48, "temperature": 1.0, "top_p": 0.95}
        reply = httpx.post(f"{devnet.url}/v1/chat/completions", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        time.sleep(0.2)
        if worker_record(devnet, cheater)["quarantined"]:
            break
    record = worker_record(devnet, cheater)
    assert record["quarantined"] == 1 and record["audits_failed"] >= 1, record
    for wid in honest:
        r = worker_record(devnet, wid)
        assert r["audits_failed"] == 0 and r["slashed"] == 0 and not r["quarantined"], r
    assert_outcomes_published(devnet, cheater)
    devnet.processes.pop("rounded").terminate()


def test_an_honest_worker_unbonds_and_settlement_pays_the_bond_back(devnet):
    payer = dev_accounts(10)[8]  # worker-a's payout address (tests/conftest.py), and the bond's payer
    wallet = payer.address
    worker_a = next(w["id"] for w in httpx.get(f"{devnet.url}/one/workers").json()["workers"] if worker_record(devnet, w["id"]).get("payout_address") == wallet)
    bond(devnet, "worker-a", payer, 5 * 10**6)
    assert worker_record(devnet, worker_a)["bond"] == 5 * 10**6
    cli = subprocess.run([sys.executable, "-m", "backend.cli", "worker", "--coordinator", devnet.url, "--key-file", str(devnet.data_dir / "worker-a.key"),
                          "unbond"], cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    usdc = token_at(devnet.chain.web3(), devnet.deployment.usdc_token)
    before = usdc.functions.balanceOf(wallet).call()
    old_epochs = {e["epoch"] for e in httpx.get(f"{devnet.url}/one/epochs").json()["epochs"]}
    from tests.e2e.test_settlement import run_settle

    run_settle(devnet)
    with read_only_db(devnet.data_dir) as db:
        refunds = db.execute("SELECT net, status FROM bond_refund WHERE worker = ?", (worker_a,)).fetchall()
        assert refunds == [(5 * 10**6, "paid")]
        new_epochs = {e["epoch"] for e in httpx.get(f"{devnet.url}/one/epochs").json()["epochs"]} - old_epochs
        earned = sum(r["net"] for e in new_epochs for r in httpx.get(f"{devnet.url}/one/payouts", params={"epoch": e}).json()["payouts"] if r["payout_address"] == wallet)
        assert usdc.functions.balanceOf(wallet).call() - before == 5 * 10**6 + earned
        assert worker_record(devnet, worker_a)["bond"] == 0
        run_settle(devnet)  # refunded once
        assert db.execute("SELECT count(*) FROM bond_refund WHERE worker = ?", (worker_a,)).fetchone()[0] == 1
