"""The coordinator's money routes (/one/packages/purchase, /one/bonds) over HTTP, against web3's in-process
EVM with USDC deployed and wallets funded: the surface an attacker with a wallet and a worker key reaches.

Fixtures (made visible to the attack tests by conftest.py): `database` (SQLite unless a test parametrizes
it indirectly with "postgres_db") and `money`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from web3 import EthereumTesterProvider, Web3

from backend.access import auth
from backend.catalog import load_packages
from backend.chain import deploy_dev_tokens, token_at
from backend.config import Settings
from backend.money.settlement import remember_worker
from backend.protocol.signing import public_hex, sign_hex

WALLET_USDC = 10_000 * 10**6


@dataclass
class Wallet:
    address: str
    key: bytes  # the private key: signs bond claims (EIP-191)

    def sign(self, text: str) -> str:
        from eth_account import Account
        from eth_account.messages import encode_defunct

        return "0x" + Account.sign_message(encode_defunct(text=text), self.key).signature.hex().removeprefix("0x")


@dataclass
class Worker:
    key: SigningKey

    @property
    def id(self) -> str:
        return public_hex(self.key)


class Money:
    """One coordinator's purchase and bond routes, a chain, and the wallets on it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from backend.api import create_api, deps

        provider = EthereumTesterProvider()
        self.w3 = Web3(provider)
        keys = provider.ethereum_tester.backend.account_keys
        deployer, self.treasury = self.w3.eth.accounts[:2]
        self.wallets = [Wallet(address, key.to_bytes()) for address, key in zip(self.w3.eth.accounts[2:6], keys[2:6])]
        d = deploy_dev_tokens(self.w3, deployer=deployer, treasury=self.treasury, demo_wallets=[w.address for w in self.wallets],
                              one_grant=0, usdc_grant=WALLET_USDC)  # fmt: skip
        self.usdc = token_at(self.w3, d.usdc_token)
        settings = Settings(usdc_token_address=d.usdc_token, treasury_address=self.treasury, confirmations=1, unbond_delay_s=0)
        self.packages = load_packages(settings.packages_path)
        runtime = SimpleNamespace(settings=settings, packages=self.packages, web3=lambda: self.w3, refresh_reserved=lambda: None)
        monkeypatch.setattr(deps, "get_runtime", lambda: runtime)
        self.http = TestClient(create_api())

    def pay(self, wallet: Wallet, amount: int) -> str:
        """A USDC transfer from `wallet` to the treasury; its tx hash."""
        tx = self.usdc.functions.transfer(self.treasury, amount).transact({"from": wallet.address})
        self.w3.eth.wait_for_transaction_receipt(tx)
        return "0x" + bytes(tx).hex()

    def sign_in(self, wallet: Wallet) -> str:
        """A session key for `wallet`, as Sign-In with Ethereum would issue."""
        return auth.create_key(wallet.address, "included")

    def buy(self, session_key: str, tx_hash: str, package: str = "pro") -> httpx.Response:
        return self.http.post("/one/packages/purchase", json={"package": package, "tx_hash": tx_hash},
                              headers={"authorization": f"Bearer {session_key}"})  # fmt: skip

    def worker(self, payout_address: str) -> Worker:
        """A worker key that said hello with `payout_address` (a hello proves nothing about that address)."""
        worker = Worker(SigningKey.generate())
        remember_worker(worker.id, "node", payout_address)
        return worker

    def bond(self, worker: Worker, tx_hash: str, payer: Wallet) -> httpx.Response:
        """Claim `tx_hash` as `worker`'s bond: the worker key signs the tx hash, `payer` signs the bond claim."""
        from backend.protocol.claims import bond_claim

        return self.http.post("/one/bonds", json={
            "worker_id": worker.id, "tx_hash": tx_hash, "sig": sign_hex(worker.key, bytes.fromhex(tx_hash[2:])),
            "payer_sig": payer.sign(bond_claim(worker.id, tx_hash)),
        })  # fmt: skip

    def unbond(self, worker: Worker) -> httpx.Response:
        sig = sign_hex(worker.key, b"unbond" + bytes.fromhex(worker.id))
        return self.http.post("/one/bonds/unbond", json={"worker_id": worker.id, "sig": sig})


@pytest.fixture
def database(request):
    """The database the coordinator uses: SQLite, or what the test names (indirect parametrization)."""
    return request.getfixturevalue(getattr(request, "param", "sqlite_db"))


@pytest.fixture
def money(database, monkeypatch) -> Money:
    return Money(monkeypatch)
