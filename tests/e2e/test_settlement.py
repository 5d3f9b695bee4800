"""Settlement on anvil: close an epoch (Merkle root anchored on chain), pay each worker its earnings net
of tau in USDC exactly once — also when run twice, and when killed mid-batch and run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from backend.chain import anchor_at, token_at
from backend.chain.devchain import dev_accounts
from backend.dev.demo import sign_in
from backend.dev.devnet import coordinator_env
from backend.trust.verify import verify_proof
from tests.conftest import REPO, read_only_db

pytestmark = pytest.mark.e2e
FEE_BPS = 1000  # the default tau


def settle_cmd(devnet) -> list[str]:
    return [sys.executable, "-m", "backend.cli", "settle"]  # `one settle`, against the devnet's database and chain


def env(devnet) -> dict[str, str]:
    return coordinator_env(devnet.port, devnet.data_dir, {**devnet.chain_env, **devnet.coordinator_extra_env})


def run_settle(devnet) -> str:
    done = subprocess.run(settle_cmd(devnet), cwd=REPO, env=env(devnet), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def traffic(devnet, n: int = 4) -> None:
    """Metered requests from a demo wallet's Included credits: only work an account paid for is paid out."""
    headers = {"authorization": f"Bearer {sign_in(devnet.url, dev_accounts(5)[4])}"}
    for i in range(n):
        body = {"model": "tiny-chat", "messages": [{"role": "user", "content": f"settle {i}"}], "max_tokens": 8}
        assert httpx.post(f"{devnet.url}/v1/chat/completions", json=body, headers=headers, timeout=60).status_code == 200


def expected_gross(devnet, epoch: dict) -> dict[str, int]:
    """Our own tally from the public log: per worker, the charges of its receipts."""
    receipts = httpx.get(f"{devnet.url}/one/receipts", params={"from_seq": epoch["first_seq"], "limit": 1000}).json()["receipts"]
    gross: dict[str, int] = {}
    for r in receipts:
        if r["seq"] <= epoch["last_seq"] and r["kind"] != "audit":
            gross[r["worker"]["id"]] = gross.get(r["worker"]["id"], 0) + r["charge"]["amount"]
    return gross


def balances(devnet, addresses) -> dict[str, int]:
    usdc = token_at(devnet.chain.web3(), devnet.deployment.usdc_token)
    return {a: usdc.functions.balanceOf(a).call() for a in addresses}


def rpc(devnet, method: str, params: list | None = None):
    return httpx.post(devnet.chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).json()


def test_epoch_is_anchored_and_each_worker_is_paid_once(devnet):
    traffic(devnet)
    run_settle_output = run_settle(devnet)
    epoch = httpx.get(f"{devnet.url}/one/epochs").json()["epochs"][0]
    assert f"closed epoch {epoch['epoch']}" in run_settle_output
    rows = httpx.get(f"{devnet.url}/one/payouts", params={"epoch": epoch["epoch"]}).json()["payouts"]
    assert {r["worker"]: r["gross"] for r in rows} == expected_gross(devnet, epoch)
    for r in rows:  # paid net of tau; a worker that gave no payout address has it all withheld
        if r["payout_address"] in {a.address for a in dev_accounts(10)[8:10]}:
            assert r["withheld"] == 0 and r["net"] == r["gross"] - r["gross"] * FEE_BPS // 10_000
        else:
            assert r["net"] == 0 and r["withheld"] == r["gross"]
    # Every micro-unit is accounted for: charges == payouts + tau + withheld.
    assert sum(r["gross"] for r in rows) == sum(r["net"] + r["fee"] + r["withheld"] for r in rows)
    assert all(r["status"] == "paid" for r in rows if r["net"] > 0)
    addresses = {r["worker"]: r["payout_address"] for r in rows}

    # The chain shows it: the root is anchored, and paying again pays nothing.
    w3 = devnet.chain.web3()
    assert anchor_at(w3, devnet.deployment.anchor).functions.roots(epoch["epoch"]).call().hex() == epoch["root"]
    before = balances(devnet, addresses.values())
    assert "no new receipts to close" in run_settle(devnet)
    assert balances(devnet, addresses.values()) == before

    # Any receipt of the epoch has an inclusion proof that checks against the anchored root.
    receipt = httpx.get(f"{devnet.url}/one/receipts", params={"from_seq": epoch["first_seq"], "limit": 1}).json()["receipts"][0]
    proof = httpx.get(f"{devnet.url}/one/receipts/{receipt['hash']}/proof").json()
    assert all(verify_proof(proof, anchored_root=epoch["root"]).values())
    forged = {**proof, "leaf_index": (proof["leaf_index"] + 1) % proof["tree_size"]}
    assert proof["tree_size"] == 1 or not verify_proof(forged)["inclusion"]
    cli = subprocess.run([sys.executable, "-m", "backend.cli", "verify-proof", receipt["hash"], "--url", devnet.url, "--rpc", devnet.chain.rpc_url],
                         cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert cli.returncode == 0 and "verified" in cli.stdout, cli.stdout + cli.stderr


def test_settlement_killed_mid_batch_pays_each_worker_once(devnet):
    traffic(devnet, 6)
    addresses = [w.address for w in dev_accounts(10)[8:10]]  # the session workers' payout addresses (conftest)
    before = balances(devnet, addresses)
    with read_only_db(devnet.data_dir) as db:
        last_epoch = db.execute("SELECT coalesce(max(epoch), -1) FROM epoch_head").fetchone()[0]
        assert rpc(devnet, "evm_setAutomine", [False]).get("error") is None
        proc = subprocess.Popen(settle_cmd(devnet), cwd=REPO, env=env(devnet), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # mine the anchor, then kill as soon as a payment is signed and sent
                signed = db.execute("SELECT count(*) FROM payout WHERE epoch > ? AND status = 'signed'", (last_epoch,)).fetchone()[0]
                if signed:
                    time.sleep(0.5)
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                if db.execute("SELECT count(*) FROM epoch_head WHERE epoch > ? AND anchor_tx IS NULL", (last_epoch,)).fetchone()[0]:
                    rpc(devnet, "evm_mine")
                time.sleep(0.2)
            else:
                pytest.fail("settlement never signed a payment")
            proc.wait(10)
        finally:
            rpc(devnet, "evm_setAutomine", [True])
            rpc(devnet, "evm_mine")
        epoch = httpx.get(f"{devnet.url}/one/epochs").json()["epochs"][0]
        assert epoch["epoch"] == last_epoch + 1
        run_settle(devnet)  # resumes: resends the stored transaction, pays the rest
        rows = httpx.get(f"{devnet.url}/one/payouts", params={"epoch": epoch["epoch"]}).json()["payouts"]
        assert rows and all(r["status"] in ("paid", "nothing") for r in rows)
        after = balances(devnet, addresses)
        paid_to = {}
        for r in rows:
            paid_to[r["payout_address"]] = paid_to.get(r["payout_address"], 0) + r["net"]
        assert {a: after[a] - before[a] for a in addresses} == {a: paid_to.get(a, 0) for a in addresses}
        assert sum(r["gross"] for r in rows) == sum(expected_gross(devnet, epoch).values())
        assert sum(paid_to.values()) > 0
        run_settle(devnet)
        assert balances(devnet, addresses) == after


LOCK_HOLDER = (
    "from backend.config import get_settings\n"
    "from backend.money.settlement import settlement_lock\n"
    "import sys\n"
    "with settlement_lock(get_settings(), wait_s=0):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.readline()\n"
)


def test_two_settlers_take_turns_and_pay_each_worker_once(devnet):
    """While one settler holds the lock (the coordinator's loop, or another `one settle`), `one settle`
    refuses after --wait or waits its turn; it never closes, signs or pays beside the other."""
    traffic(devnet, 3)
    addresses = [w.address for w in dev_accounts(10)[8:10]]
    before = balances(devnet, addresses)
    last_epoch = httpx.get(f"{devnet.url}/one/epochs").json()["epochs"]
    last_epoch = last_epoch[0]["epoch"] if last_epoch else -1
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER], cwd=REPO, env=env(devnet), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    waiting = None
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = subprocess.run([*settle_cmd(devnet), "--wait", "1"], cwd=REPO, env=env(devnet), capture_output=True, text=True, timeout=120)
        assert refused.returncode == 3 and "another settlement run is in progress" in refused.stdout, refused.stdout + refused.stderr
        waiting = subprocess.Popen(settle_cmd(devnet), cwd=REPO, env=env(devnet), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert "waiting for it to finish" in waiting.stdout.readline()
        time.sleep(1)
        assert waiting.poll() is None
        epochs = httpx.get(f"{devnet.url}/one/epochs").json()["epochs"]
        assert not epochs or epochs[0]["epoch"] == last_epoch  # nothing closed while the other holds the lock
    finally:
        holder.communicate("done\n", timeout=30)
    out, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, out
    epoch = httpx.get(f"{devnet.url}/one/epochs").json()["epochs"][0]
    assert epoch["epoch"] == last_epoch + 1 and f"closed epoch {epoch['epoch']}" in out
    rows = httpx.get(f"{devnet.url}/one/payouts", params={"epoch": epoch["epoch"]}).json()["payouts"]
    paid_to: dict[str, int] = {}
    for r in rows:
        paid_to[r["payout_address"]] = paid_to.get(r["payout_address"], 0) + r["net"]
    assert {a: v - before[a] for a, v in balances(devnet, addresses).items()} == {a: paid_to.get(a, 0) for a in addresses}
