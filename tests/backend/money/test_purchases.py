"""Buying Dedicated packages with USDC on web3's in-process EVM: the happy path and every refusal."""

from __future__ import annotations

import pytest
from web3 import EthereumTesterProvider, Web3

from backend.access import auth
from backend.catalog import load_packages
from backend.chain import deploy_dev_tokens, token_at
from backend.config import Settings
from backend.money import ledger
from backend.money.purchases import PurchaseError, purchase, verify_payment

PRO = load_packages(Settings().packages_path).get("pro")


@pytest.fixture
def chain(sqlite_db):
    w3 = Web3(EthereumTesterProvider())
    deployer, treasury, alice, bob = w3.eth.accounts[:4]
    d = deploy_dev_tokens(w3, deployer=deployer, treasury=treasury, demo_wallets=[alice, bob], one_grant=10**21, usdc_grant=100 * 10**6)

    def pay(sender, to, amount, token="usdc"):
        contract = token_at(w3, d.usdc_token if token == "usdc" else d.one_token)
        tx = contract.functions.transfer(to, amount).transact({"from": sender})
        w3.eth.wait_for_transaction_receipt(tx)
        return "0x" + bytes(tx).hex().removeprefix("0x")

    return {"w3": w3, "d": d, "alice": alice, "bob": bob, "treasury": treasury, "pay": pay}


def _buy(chain, tx, account=None, confirmations=1):
    d = chain["d"]
    return purchase(chain["w3"], account=account or chain["alice"], package=PRO, tx_hash=tx, usdc=d.usdc_token, treasury=d.treasury,
                    confirmations=confirmations)  # fmt: skip


def test_paying_the_treasury_buys_pro_once(chain):
    tx = chain["pay"](chain["alice"], chain["treasury"], PRO.price)
    result = _buy(chain, tx)
    assert result.status == "confirmed" and result.amount == PRO.price
    principal = auth.principal_for(result.api_key)
    assert principal.lane == "dedicated" and principal.package == "pro" and principal.account == chain["alice"]
    assert ledger.balance(chain["alice"], "usdc") == PRO.balance
    assert [package for package, _ in auth.live_packages()] == ["pro"]
    again = _buy(chain, tx)  # the buyer asking again gets a fresh key for the same package, not a second one
    assert again.api_key != result.api_key and auth.principal_for(result.api_key) is None
    with pytest.raises(PurchaseError) as err:
        _buy(chain, tx, account=chain["bob"])
    assert err.value.code == "tx_already_used"
    assert ledger.balance(chain["alice"], "usdc") == PRO.balance  # credited once
    assert [package for package, _ in auth.live_packages()] == ["pro"]


@pytest.mark.parametrize(
    "case, code",
    [("wrong_token", "wrong_token"), ("wrong_recipient", "wrong_recipient"), ("short", "short_amount"), ("someone_else", "wrong_sender")],
)
def test_bad_payments_are_refused_and_nothing_is_credited(chain, case, code):
    pay, alice, bob, treasury = chain["pay"], chain["alice"], chain["bob"], chain["treasury"]
    tx = {
        "wrong_token": lambda: pay(alice, treasury, PRO.price * 10**12, token="one"),
        "wrong_recipient": lambda: pay(alice, bob, PRO.price),
        "short": lambda: pay(alice, treasury, PRO.price - 1),
        "someone_else": lambda: pay(bob, treasury, PRO.price),
    }[case]()
    with pytest.raises(PurchaseError) as err:
        _buy(chain, tx)
    assert err.value.code == code
    assert ledger.balance(alice, "usdc") == 0 and auth.live_packages() == []


def test_too_few_confirmations_is_pending_not_refused(chain):
    tx = chain["pay"](chain["alice"], chain["treasury"], PRO.price)
    pending = _buy(chain, tx, confirmations=3)
    assert pending.status == "pending" and pending.confirmations == 1 and pending.api_key is None
    assert ledger.balance(chain["alice"], "usdc") == 0
    for _ in range(2):
        chain["w3"].testing.mine()
    assert _buy(chain, tx, confirmations=3).status == "confirmed"


def test_unknown_tx_is_pending(chain):
    d = chain["d"]
    status, seen, paid = verify_payment(chain["w3"], "0x" + "ab" * 32, usdc=d.usdc_token, treasury=d.treasury, buyer=chain["alice"],
                                        price=1, confirmations=1)  # fmt: skip
    assert (status, seen, paid) == ("pending", 0, 0)
