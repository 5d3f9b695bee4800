"""The README's settlement walk-through, run as a user would beside a running `make run`: in another shell, in the
same directory, with none of `one up`'s environment. `one settle` and `one verify-proof --rpc` find the dev
chain, the anchor and the treasury key through <data dir>/network.env, so the epoch is anchored and every
payout is paid (before, they only lived in `one up`'s child environment: "anchored FAIL", payouts "due")."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import openai
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]


def one(*args: str, cwd) -> subprocess.CompletedProcess:
    """`.venv/bin/one ARGS` typed in a fresh shell in `cwd`: no ONE_ variable set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONE_")}
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_settle_and_verify_proof_beside_a_running_network(tmp_path, tiny_models, test_output):
    from backend.chain.devchain import dev_accounts
    from backend.dev.demo import ensure_demo_key
    from backend.dev.devnet import Devnet, wait_for_workers

    net = Devnet(port=free_port(), data_dir=tmp_path / ".one", log_dir=test_output / "logs-walkthrough")  # `make run` in tmp_path
    try:
        deployment = net.start_chain(free_port())
        net.start_coordinator()
        net.start_worker("worker-0", "--payout-address", dev_accounts(10)[9].address, models_dir=tiny_models)
        wait_for_workers(net.url, 1)
        key = ensure_demo_key(net.url, net.chain.web3(), deployment, dev_accounts(3)[2], tmp_path / "demo-key")
        client = openai.OpenAI(base_url=net.url + "/v1", api_key=key, max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        receipt = reply.model_extra["receipt"]
        assert receipt["charge"]["amount"] > 0

        settled = one("settle", cwd=tmp_path)
        assert settled.returncode == 0, settled.stdout + settled.stderr
        assert "anchored 1 epoch root" in settled.stdout, settled.stdout
        proof = one("verify-proof", receipt["hash"], "--url", net.url, "--rpc", net.chain.rpc_url, cwd=tmp_path)
        assert proof.returncode == 0 and "anchored" in proof.stdout and "FAIL" not in proof.stdout, proof.stdout + proof.stderr
        payouts = httpx.get(net.url + "/one/payouts", timeout=10).json()["payouts"]
        assert payouts and {p["status"] for p in payouts} == {"paid"}, payouts
    finally:
        net.stop_all()
