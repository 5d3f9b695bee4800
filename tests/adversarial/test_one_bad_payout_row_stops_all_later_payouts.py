"""Attack: one payout row that cannot be paid (a payout address that is no address, or a transfer that
reverts) aborted the whole settlement run, and every run after it: no worker after that row was paid again.
A worker could stop everyone's payouts by saying hello with a bad payout address.

Defence: the hello refuses a payout address USDC cannot be sent to, and says why. Paying, a row that cannot
be paid is marked `failed` with its reason and the run goes on; every later run retries it, signing a new
transaction only when the last one provably moved nothing (never signed, reverted, or its nonce went to
another transaction). A transaction whose outcome is unknown keeps its row `signed` and is sent again as
the same transaction: never two live transactions for one row."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from nacl.signing import SigningKey
from sqlmodel import select
from web3 import EthereumTesterProvider, Web3

from backend.catalog import Packages
from backend.chain import deploy_dev_tokens, token_at
from backend.config import Settings
from backend.db import session
from backend.db.models import Payout, WorkerRecord
from backend.money.settlement import Treasury, failed_payments, pay, remember_worker
from backend.protocol import frames
from backend.protocol.signing import public_hex, sign_hex
from backend.scheduler import Scheduler
from backend.scheduler.socket import serve_worker

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # the EIP-55 example address
USDC = 10**6
FLOAT = 10 * USDC  # what the treasury holds
WORKERS = ["a" * 64, "b" * 64, "c" * 64]  # paid in this order; "b" is the row that cannot be paid


# ---- the hello: a payout address USDC cannot reach is refused, with the reason ----


def _hello(payout_address: str) -> tuple[dict, str]:
    """Say hello through the real `/worker/ws` handler; the coordinator's answer and the worker id."""
    api = FastAPI()

    @api.websocket("/worker/ws")
    async def worker_ws(ws: WebSocket) -> None:
        await serve_worker(ws, Scheduler(), "00" * 32, Packages(packages=[]))

    key = SigningKey.generate()
    with TestClient(api).websocket_connect("/worker/ws") as ws:
        nonce = json.loads(ws.receive_text())["nonce"]
        ws.send_text(frames.encode(frames.hello(
            kind="node", pubkey=public_hex(key), payout_address=payout_address, slots=1, hardware={}, version="test",
            models=[{"id": "tiny-chat", "max_context": 2048, "tasks": ["chat"]}], sig=sign_hex(key, bytes.fromhex(nonce)),
        )))  # fmt: skip
        return json.loads(ws.receive_text()), public_hex(key)


@pytest.mark.parametrize("address, why", [
    ("0x1234", "40 hex digits"),
    ("0x" + "zz" * 20, "40 hex digits"),
    (CHECKSUMMED.removeprefix("0x"), "40 hex digits"),
    (CHECKSUMMED[:-1] + "D", "checksum"),
])  # fmt: skip
def test_one_bad_payout_row_stops_all_later_payouts_so_the_hello_refuses_bad_addresses(sqlite_db, address, why):
    answer, worker = _hello(address)
    assert answer["type"] == "refused", answer
    assert "payout_address" in answer["reason"] and why in answer["reason"]
    with session() as db:
        assert db.get(WorkerRecord, worker) is None  # nothing remembered, so nothing is ever planned for it


@pytest.mark.parametrize("address", ["0x", "", "0x" + "0" * 40, CHECKSUMMED, CHECKSUMMED.lower()])
def test_a_worker_without_payouts_or_with_a_good_address_is_welcome(sqlite_db, address):
    answer, worker = _hello(address)  # the zero address is what `one worker` sends by default: work without payouts
    assert answer["type"] == "welcome", answer
    with session() as db:
        assert db.get(WorkerRecord, worker).payout_address == address


# ---- paying: one row that cannot be paid does not stop the others ----


class Chain:
    """web3's in-process EVM with USDC, a treasury that holds FLOAT, and three payees."""

    def __init__(self):
        provider = EthereumTesterProvider()
        self.tester = provider.ethereum_tester
        self.w3 = w3 = Web3(provider)
        self.deployer, treasury, *payees = w3.eth.accounts[:5]
        self.payees = dict(zip(WORKERS, payees))
        d = deploy_dev_tokens(w3, deployer=self.deployer, treasury=treasury, demo_wallets=[], one_grant=0, usdc_grant=0)
        self.usdc = token_at(w3, d.usdc_token)
        self.mint(treasury, FLOAT)
        key = provider.ethereum_tester.backend.account_keys[1]
        self.settings = Settings(chain_id=w3.eth.chain_id, treasury_key=key.to_hex(), treasury_address=treasury, usdc_token_address=d.usdc_token,
                                 confirmations=1)  # fmt: skip

    def mint(self, to: str, amount: int) -> None:
        self.w3.eth.wait_for_transaction_receipt(self.usdc.functions.mint(to, amount).transact({"from": self.deployer}))

    def balances(self) -> dict[str, int]:
        return {w: self.usdc.functions.balanceOf(a).call() for w, a in self.payees.items()}

    def plan(self, nets: dict[str, int], addresses: dict[str, str] | None = None) -> None:
        """Payout rows of epoch 0, as plan_payouts writes them, for workers whose hello gave `addresses`."""
        addresses = {**self.payees, **(addresses or {})}
        with session() as db:
            for worker, net in nets.items():
                db.add(Payout(epoch=0, worker=worker, payout_address=addresses[worker], receipts=1, gross=net, fee=0, withheld=0, net=net, status="due"))
            db.commit()
        for worker in nets:
            remember_worker(worker, "node", addresses[worker])

    def sign_reverting_transfer(self, worker: str, amount: int) -> None:
        """A run that crashed after signing `worker`'s row: its stored transfer (gas fixed, so not estimated) reverts on chain."""
        treasury = Treasury(self.settings, self.w3)
        tx = self.usdc.functions.transfer(self.payees[worker], amount).build_transaction({
            "from": treasury.account.address, "chainId": self.settings.chain_id, "gas": 200_000,
            "nonce": self.w3.eth.get_transaction_count(treasury.account.address, "pending"),
        })  # fmt: skip
        signed = treasury.account.sign_transaction(tx)
        self._store_signed(worker, "0x" + bytes(signed.hash).hex(), "0x" + bytes(signed.raw_transaction).hex())

    def sign_then_lose_the_nonce(self, worker: str, amount: int) -> None:
        """A run that crashed after signing `worker`'s row, before sending it; another treasury transaction then took its nonce."""
        treasury = Treasury(self.settings, self.w3)
        self._store_signed(worker, *treasury.sign(self.usdc.functions.transfer(self.payees[worker], amount)))
        self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction({"from": treasury.account.address, "to": self.deployer, "value": 1}))

    def _store_signed(self, worker: str, tx_hash: str, raw_tx: str) -> None:
        with session() as db:
            row = db.exec(select(Payout).where(Payout.worker == worker)).one()
            row.status, row.tx_hash, row.raw_tx = "signed", tx_hash, raw_tx
            db.add(row)
            db.commit()


def _rows() -> dict[str, Payout]:
    with session() as db:
        return {r.worker: r for r in db.exec(select(Payout)).all()}


@pytest.fixture(params=["sqlite_db", "postgres_db"])
def chain(request, monkeypatch) -> Chain:
    request.getfixturevalue(request.param)
    monkeypatch.setattr(Treasury, "RECEIPT_WAIT_S", 2, raising=False)  # the in-process chain mines at once; don't wait minutes
    return Chain()


@pytest.mark.parametrize("cause", ["bad_address", "treasury_short", "reverted_on_chain", "nonce_taken"])
def test_one_bad_payout_row_stops_all_later_payouts(chain, cause):
    a, b, c = WORKERS
    nets = {a: 1 * USDC, b: 2 * USDC, c: 3 * USDC}
    if cause in ("treasury_short", "reverted_on_chain"):
        nets[b] = 2 * FLOAT  # more than the treasury holds
    chain.plan(nets, {b: "0x" + "zz" * 20} if cause == "bad_address" else None)  # an old row, from before hellos were checked
    if cause == "reverted_on_chain":
        chain.sign_reverting_transfer(b, nets[b])
    if cause == "nonce_taken":
        chain.sign_then_lose_the_nonce(b, nets[b])
    before = chain.balances()

    pay(chain.settings, chain.w3)
    rows, paid = _rows(), chain.balances()
    assert {w: paid[w] - before[w] for w in WORKERS} == {a: nets[a], b: 0, c: nets[c]}  # the others are paid in the same run
    assert rows[a].status == rows[c].status == "paid" and rows[a].failure is rows[c].failure is None
    assert rows[b].status == "failed" and rows[b].failure, rows[b]
    assert {"bad_address": "payout address", "treasury_short": "balance too low", "reverted_on_chain": "reverted",
            "nonce_taken": "nonce"}[cause] in rows[b].failure  # fmt: skip
    old_tx = rows[b].tx_hash

    if cause != "nonce_taken":  # (a transaction that lost its nonce is simply signed anew next run)
        pay(chain.settings, chain.w3)  # the cause is still there: still failed, nothing sent twice
        assert chain.balances() == paid and _rows()[b].status == "failed"
    if cause == "bad_address":  # the worker reconnects with a good address
        remember_worker(b, "node", chain.payees[b])
    else:  # the operator tops the treasury up
        chain.mint(chain.settings.treasury_address, 100 * FLOAT)
    pay(chain.settings, chain.w3)
    pay(chain.settings, chain.w3)  # and once more: exactly once
    rows, after = _rows(), chain.balances()
    assert {w: after[w] - before[w] for w in WORKERS} == nets
    assert all(r.status == "paid" and r.failure is None for r in rows.values())
    assert rows[b].payout_address == chain.payees[b]
    if cause in ("reverted_on_chain", "nonce_taken"):  # the transaction that moved nothing was replaced, never sent beside it
        assert rows[b].tx_hash != old_tx
        assert cause == "nonce_taken" or chain.w3.eth.get_transaction_receipt(old_tx)["status"] == 0


def test_a_payout_whose_outcome_is_unknown_is_sent_again_never_signed_twice(chain):
    a = WORKERS[0]
    chain.plan({a: USDC})
    chain.tester.disable_auto_mine_transactions()  # the transfer is broadcast but not mined in time
    pay(chain.settings, chain.w3)
    row = _rows()[a]
    assert row.status == "signed" and row.tx_hash and "unknown" in row.failure
    assert chain.balances()[a] == 0

    chain.tester.enable_auto_mine_transactions()  # mines what waits in the pool
    pay(chain.settings, chain.w3)
    pay(chain.settings, chain.w3)
    again = _rows()[a]
    assert again.status == "paid" and again.tx_hash == row.tx_hash and again.failure is None  # the same transaction, not a second one
    assert chain.balances()[a] == USDC


def test_one_settle_and_the_operator_dashboard_show_failed_rows_with_their_reasons(chain, monkeypatch):
    from typer.testing import CliRunner

    from backend.cli import app

    a, b, c = WORKERS
    chain.plan({a: USDC, b: 2 * FLOAT, c: USDC})
    pay(chain.settings, chain.w3)
    failed = failed_payments()  # what the dashboard's "Not paid yet" table and `one settle` list
    assert [(f["kind"], f["worker"], f["status"]) for f in failed] == [("payout", b, "failed")]
    assert "balance too low" in failed[0]["failure"]

    result = {"closed": None, "anchored": 0, "planned": 0, "paid": 2, "failed": 1, "unsettled": 0}
    monkeypatch.setattr("backend.money.settlement.settle", lambda *args, **kwargs: result)  # this run's outcome; the rows are the real ones
    monkeypatch.setattr("backend.cli.console.width", 400)
    out = CliRunner().invoke(app, ["settle", "--wait", "0"])
    assert out.exit_code == 0, out.output
    assert "paid 2, failed 1" in out.output and "Not paid yet" in out.output and "balance too low" in out.output
