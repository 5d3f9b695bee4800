"""Packages and bonds are paid the same way and checked by the same function (purchases.verify_payment): one
transfer refused for the same reason gets the same answer from both routes, and an unconfirmed one the same 202."""

from __future__ import annotations

from tests.adversarial.money import WALLET_USDC, Money, database, money  # noqa: F401  (fixtures)


def _transfer(money: Money, sender: str, to: str, amount: int) -> str:
    tx = money.usdc.functions.transfer(to, amount).transact({"from": sender})
    money.w3.eth.wait_for_transaction_receipt(tx)
    return "0x" + bytes(tx).hex().removeprefix("0x")


def test_a_bad_transfer_is_refused_alike_as_a_purchase_and_as_a_bond(money):
    alice, bob = money.wallets[:2]
    session = money.sign_in(alice)
    worker = money.worker(alice.address)
    price = money.packages.get("pro").price
    cases = {
        "wrong_recipient": _transfer(money, alice.address, bob.address, price),  # not to the treasury
        "wrong_sender": money.pay(bob, price),  # bob paid; alice claims it
    }
    for code, tx in cases.items():
        bought, bonded = money.buy(session, tx), money.bond(worker, tx, payer=alice)
        assert (bought.status_code, bonded.status_code) == (400, 400), (code, bought.text, bonded.text)
        assert bought.json()["error"]["code"] == bonded.json()["error"]["code"] == code
        assert bought.json()["error"]["param"] == bonded.json()["error"]["param"] == "tx_hash"
    assert money.usdc.functions.balanceOf(alice.address).call() == WALLET_USDC - price


def test_an_unconfirmed_transfer_is_pending_for_both(money):
    alice = money.wallets[0]
    unknown = "0x" + "cd" * 32  # not mined (yet): nothing is recorded, ask again later
    bought, bonded = money.buy(money.sign_in(alice), unknown), money.bond(money.worker(alice.address), unknown, payer=alice)
    assert bought.status_code == bonded.status_code == 202
    assert bought.json() == bonded.json() == {"status": "pending", "confirmations": 0, "required": 1}
