"""The local dev chain: anvil from the npm registry, state kept under the data dir, tokens deployed once."""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eth_account import Account

from backend.chain import (
    DEV_MNEMONIC,
    ONE_DECIMALS,
    USDC_DECIMALS,
    Deployment,
    connect,
    deploy_anchor,
    deploy_dev_tokens,
    deploy_pool,
    token_at,
)
from backend.config import DEV_CHAIN_ID
from backend.dev.npm_tools import REPO, npm_tool

DEMO_WALLETS = 3  # dev accounts 2..4; account 0 deploys, account 1 is the treasury, account 5 is the dev operator wallet
DEV_ACCOUNTS = 24  # anvil unlocks this many (tests sign with their own, above the demo wallets)
TREASURY_FLOAT = 1_000_000 * 10**USDC_DECIMALS  # dev USDC the treasury pays Included-lane work from
# A fresh dev chain's history starts this far back: the demo wallets are funded then, so they held their $ONE
# when today's Included epoch began (allotments read balances at the epoch's start, backend/money/lanes.py).
BACKDATE_S = 7 * 86400
# The dev pool's seed liquidity: 1,000,000 $ONE against 500,000 USDC (0.5 USDC a $ONE), 0.3% fee.
POOL_ONE = 1_000_000 * 10**ONE_DECIMALS
POOL_USDC = 500_000 * 10**USDC_DECIMALS
POOL_FEE_BPS = 30


def anvil_path() -> str:
    """The platform binary the npm package ships (run directly, so signals reach anvil itself)."""

    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    return npm_tool("anvil", REPO / "node_modules" / "@foundry-rs" / f"anvil-{platform.system().lower()}-{arch}" / "bin" / "anvil")


def dev_accounts(count: int) -> list:
    """The first `count` accounts of the public dev mnemonic (anvil funds and unlocks them)."""

    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def seed_pool(w3, deployment: Deployment):
    """Deploy the $ONE/USDC pool and seed it with freshly minted liquidity from the deployer (its owner)."""
    one, usdc = token_at(w3, deployment.one_token), token_at(w3, deployment.usdc_token)
    pool = deploy_pool(w3, deployment.deployer, deployment.one_token, deployment.usdc_token, POOL_FEE_BPS)
    for token, amount in ((one, POOL_ONE), (usdc, POOL_USDC)):
        w3.eth.wait_for_transaction_receipt(token.functions.mint(deployment.deployer, amount).transact({"from": deployment.deployer}))
        w3.eth.wait_for_transaction_receipt(token.functions.approve(pool.address, amount).transact({"from": deployment.deployer}))
    w3.eth.wait_for_transaction_receipt(pool.functions.add_liquidity(POOL_ONE, POOL_USDC).transact({"from": deployment.deployer}))
    return pool


@dataclass
class DevChain:
    port: int
    data_dir: Path
    process: subprocess.Popen | None = None
    # Called with anvil's process as soon as it exists (Devnet hands it to its watchdog).
    on_start: Callable[[subprocess.Popen], None] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "anvil-state.json"

    @property
    def deployment_file(self) -> Path:
        return self.data_dir / "deployment.json"

    def start(self, timeout_s: float = 30) -> None:
        """Run anvil (state loaded from and saved to the data dir) and wait for its RPC."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        genesis = [] if self.state_file.exists() else ["--timestamp", str(int(time.time()) - BACKDATE_S)]
        with open(self.data_dir / "anvil.log", "ab") as log:
            self.process = subprocess.Popen(
                [anvil_path(), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(DEV_CHAIN_ID),
                 "--mnemonic", DEV_MNEMONIC, "--accounts", str(DEV_ACCOUNTS), "--state", str(self.state_file), "--state-interval", "2",
                 "--preserve-historical-states", *genesis],  # old state stays readable after a restart: allotments read it
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        if self.on_start is not None:
            self.on_start(self.process)
        w3 = self.web3()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.process.returncode}; see {self.data_dir / 'anvil.log'}")
            try:
                if w3.is_connected():
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise TimeoutError("anvil did not answer in time")

    def web3(self):
        return connect(self.rpc_url)

    def ensure_deployed(self, holders: dict[str, int] | None = None) -> Deployment:
        """Reuse the deployment when its contracts are on chain, else deploy the tokens and fund demo wallets;
        add the EpochAnchor (owned by the treasury, which anchors and pays) and the treasury's USDC float, and the
        $ONE/USDC pool with its seed liquidity (each also added to an existing chain that lacks it).
        `holders` (address -> whole $ONE) are minted while a fresh chain is still backdated, so they held
        their $ONE when today's Included epoch began (tests use it for wallets of a chosen tier)."""
        w3 = self.web3()
        accounts = dev_accounts(2 + DEMO_WALLETS)
        deployment = Deployment.load(self.deployment_file) if self.deployment_file.exists() else None
        if deployment is None or not (w3.eth.get_code(deployment.usdc_token) and w3.eth.get_code(deployment.one_token)):
            deployment = deploy_dev_tokens(
                w3,
                deployer=accounts[0].address,
                treasury=accounts[1].address,
                demo_wallets=[a.address for a in accounts[2:]],
                one_grant=10_000 * 10**ONE_DECIMALS,
                usdc_grant=1_000 * 10**USDC_DECIMALS,
            )
        if not deployment.anchor or not w3.eth.get_code(deployment.anchor):
            deployment.anchor = deploy_anchor(w3, deployment.treasury).address
            usdc = token_at(w3, deployment.usdc_token)
            w3.eth.wait_for_transaction_receipt(usdc.functions.mint(deployment.treasury, TREASURY_FLOAT).transact({"from": deployment.deployer}))
        if not deployment.pool or not w3.eth.get_code(deployment.pool):
            deployment.pool = seed_pool(w3, deployment).address
        deployment.save(self.deployment_file)
        backdated = w3.eth.get_block("latest")["timestamp"] < time.time() - 60
        if backdated and holders:
            one = token_at(w3, deployment.one_token)
            for address, tokens in holders.items():
                w3.eth.wait_for_transaction_receipt(one.functions.mint(address, tokens * 10**ONE_DECIMALS).transact({"from": deployment.deployer}))
        if backdated:  # a backdated fresh chain: from here on, block times are now
            w3.provider.make_request("evm_setNextBlockTimestamp", [int(time.time())])
            w3.provider.make_request("evm_mine", [])
        return deployment

    def stop(self) -> None:
        """SIGTERM lets anvil write its state file before it exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
