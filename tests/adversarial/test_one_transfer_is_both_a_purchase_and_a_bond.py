"""Attack: one USDC transfer claimed at the same moment as a package purchase and as a worker's bond, so
each claim's "already used?" check runs before the other one writes and both are granted.

Defence: one consumed_tx row per transfer (primary key: the tx hash), written in the same database
transaction as the package credit or the bond; the database lets exactly one of them commit."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import func, select

from backend.db import session
from backend.db.models import ApiKey, ConsumedTx, WorkerRecord
from backend.money import ledger

RACES = 50


@pytest.mark.parametrize("database", ["sqlite_db", "postgres_db"], indirect=True)
def test_one_transfer_is_both_a_purchase_and_a_bond(money):
    wallet = money.wallets[0]  # the signed-in buyer and the bond payer (and the worker's payout address)
    pro = money.packages.get("pro")
    session_key = money.sign_in(wallet)
    worker = money.worker(payout_address=wallet.address)
    wins = {"purchase": 0, "bond": 0}
    for race in range(RACES):
        tx = money.pay(wallet, pro.price)  # enough for the package, and any amount makes a bond
        start = threading.Barrier(2)
        answers = {}

        def claim(use, send):
            start.wait()
            answers[use] = send()

        threads = [threading.Thread(target=claim, args=("purchase", lambda: money.buy(session_key, tx))),
                   threading.Thread(target=claim, args=("bond", lambda: money.bond(worker, tx, payer=wallet)))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [use for use, reply in answers.items() if reply.status_code == 200]
        assert len(ok) == 1, (race, {use: reply.json() for use, reply in answers.items()})
        loser = answers["bond" if ok == ["purchase"] else "purchase"]
        assert loser.status_code == 400 and loser.json()["error"]["code"] == "tx_already_used", loser.json()
        wins[ok[0]] += 1

    with session() as db:  # what the database holds matches the answers: each transfer bought one thing
        assert db.exec(select(func.count()).select_from(ConsumedTx)).one() == RACES
        assert db.exec(select(func.count()).select_from(ApiKey).where(ApiKey.lane == "dedicated")).one() == wins["purchase"]
        assert db.get(WorkerRecord, worker.id).bond == wins["bond"] * pro.price
    assert ledger.balance(wallet.address, "usdc") == wins["purchase"] * pro.balance
