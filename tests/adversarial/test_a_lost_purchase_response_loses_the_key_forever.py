"""Attack (on the buyer, by a flaky network): the answer carrying a package's API key is lost; asking again
with the same transaction says tx_already_used, and the paid package can never be used.

Defence: the wallet that bought it asking again gets a fresh key for the same package and expiry (the key
issued before is revoked); never a second credit or package. Any other wallet still gets tx_already_used."""

from __future__ import annotations

from sqlmodel import select

from backend.access import auth
from backend.db import session
from backend.db.models import ApiKey
from backend.money import ledger


def _dedicated_keys(account: str) -> list[ApiKey]:
    with session() as db:
        return db.exec(select(ApiKey).where(ApiKey.account == account, ApiKey.lane == "dedicated")).all()


def test_a_lost_purchase_response_loses_the_key_forever(money):
    buyer, other = money.wallets[0], money.wallets[1]
    pro = money.packages.get("pro")
    tx = money.pay(buyer, pro.price)
    signed_in = money.sign_in(buyer)
    first = money.buy(signed_in, tx)
    assert first.status_code == 200
    first_key = first.json()["api_key"]  # ...and this answer never reaches the buyer
    [first_row] = _dedicated_keys(buyer.address)

    retry = money.buy(signed_in, tx)
    assert retry.status_code == 200, retry.json()
    fresh = retry.json()["api_key"]
    assert fresh != first_key and retry.json()["package"] == "pro"
    assert auth.principal_for(first_key) is None  # the lost key no longer works
    assert auth.principal_for(fresh).package == "pro"
    [row] = _dedicated_keys(buyer.address)  # one package, same expiry, one credit
    assert row.expires_at == first_row.expires_at
    assert ledger.balance(buyer.address, "usdc") == pro.balance

    again = money.buy(signed_in, tx)  # and again: still one live key
    assert again.status_code == 200 and auth.principal_for(fresh) is None
    assert len(_dedicated_keys(buyer.address)) == 1

    stranger = money.buy(money.sign_in(other), tx)
    assert stranger.status_code == 400 and stranger.json()["error"]["code"] == "tx_already_used"
    assert _dedicated_keys(other.address) == [] and ledger.balance(other.address, "usdc") == 0
    assert ledger.balance(buyer.address, "usdc") == pro.balance
