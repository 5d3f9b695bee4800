"""Attack: a worker's hello declares a victim's wallet as its payout address, then claims the victim's USDC
transfer to the treasury as its own bond. The victim's purchase with that transfer would then be refused
as already used, and unbonding would pay the victim's money out to the attacker.

Defence: the wallet that sent the transfer signs the bond claim; the bond records that payer, and refunds
go only to it."""

from __future__ import annotations

import time

from sqlmodel import select

from backend.db import session
from backend.db.models import BondRefund, WorkerRecord
from backend.money.settlement import plan_refunds, remember_worker


def _worker(worker_id: str) -> WorkerRecord:
    with session() as db:
        return db.get(WorkerRecord, worker_id)


def test_a_bond_claim_can_take_someone_elses_payment(money):
    victim, attacker = money.wallets[0], money.wallets[1]
    price = money.packages.get("pro").price
    tx = money.pay(victim, price)  # the victim is about to buy Pro with this transfer
    thief = money.worker(payout_address=victim.address)  # the hello claims the victim's address; nothing checks it

    claim = money.bond(thief, tx, payer=attacker)  # the attacker cannot sign as the victim: it signs with its own wallet
    assert claim.status_code != 200, claim.json()
    assert claim.json()["error"]["code"] == "wrong_sender"
    assert _worker(thief.id).bond == 0

    bought = money.buy(money.sign_in(victim), tx)
    assert bought.status_code == 200, bought.json()
    assert bought.json()["package"] == "pro"


def test_a_bond_is_paid_back_only_to_the_wallet_that_paid_it(money):
    payer, attacker = money.wallets[0], money.wallets[1]
    worker = money.worker(payout_address=payer.address)
    assert money.bond(worker, money.pay(payer, 7 * 10**6), payer=payer).status_code == 200

    remember_worker(worker.id, "node", attacker.address)  # the worker key reconnects with the attacker's payout address
    assert money.unbond(worker).status_code == 200
    assert plan_refunds(now=time.time() + 1) == 1
    with session() as db:
        refunds = db.exec(select(BondRefund).where(BondRefund.worker == worker.id)).all()
    assert [(r.payout_address, r.net) for r in refunds] == [(payer.address, 7 * 10**6)]

    assert money.bond(worker, money.pay(payer, 10**6), payer=payer).status_code == 200
    second = money.bond(worker, money.pay(attacker, 10**6), payer=attacker)  # another wallet adds to a bond it did not pay
    assert second.status_code == 409 and second.json()["error"]["code"] == "bond_payer_mismatch"
    assert payer.address in second.json()["error"]["message"]
    assert _worker(worker.id).bond == 10**6 and _worker(worker.id).bond_payer == payer.address


def test_one_worker_bond_signs_the_claim_with_the_paying_wallet(money, tmp_path, monkeypatch):
    """`one worker bond`: the paying wallet signs from a key file, or elsewhere over the text --print-claim shows."""
    import httpx
    from typer.testing import CliRunner

    from backend.cli import app
    from backend.protocol.signing import load_or_create_key, public_hex

    payer = money.wallets[2]
    key_file, payer_key = tmp_path / "worker.key", tmp_path / "payer.key"
    payer_key.write_text(payer.key.hex())
    remember_worker(public_hex(load_or_create_key(key_file)), "node", "0x" + "00" * 20)  # its hello (the address plays no part)
    coordinator = "http://coordinator"  # the CLI's requests go to the in-process routes
    monkeypatch.setattr(httpx, "post", lambda url, json, timeout: money.http.post(url.removeprefix(coordinator), json=json))

    def one(*args: str):
        worker = ["worker", "--coordinator", coordinator, "--key-file", str(key_file)]
        return CliRunner().invoke(app, [*worker, "bond", *args])

    by_file = one("--tx-hash", money.pay(payer, 10**6), "--payer-key-file", str(payer_key))
    assert by_file.exit_code == 0 and "bonded: 1000000" in by_file.output, by_file.output
    tx = money.pay(payer, 10**6)
    claim = one("--tx-hash", tx, "--print-claim").stdout.rstrip("\n")
    by_sig = one("--tx-hash", tx, "--payer-sig", payer.sign(claim))
    assert by_sig.exit_code == 0 and "bonded: 2000000" in by_sig.output, by_sig.output
