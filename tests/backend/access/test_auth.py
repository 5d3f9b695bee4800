"""Sign-In with Ethereum and API keys on a real database, signed with real eth-account keys."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from backend.access import auth
from tests.conftest import files_containing

DOMAIN, CHAIN = "one.example", 31337


def _signed(account, nonce, *, domain=DOMAIN, chain_id=CHAIN, issued=None, expires=None, signer=None):
    message = auth.siwe_message(
        domain=domain, address=account.address, uri=f"https://{domain}", chain_id=chain_id, nonce=nonce,
        issued_at=auth.rfc3339(issued or time.time()), expiration_time=auth.rfc3339(expires) if expires else None,
    )  # fmt: skip
    signature = (signer or account).sign_message(encode_defunct(text=message)).signature.hex()
    return message, "0x" + signature.removeprefix("0x")


def test_a_signed_message_signs_in_once(sqlite_db):
    wallet = Account.create()
    message, signature = _signed(wallet, auth.issue_nonce(), expires=time.time() + 300)
    assert auth.parse_siwe(message)["address"] == wallet.address
    assert auth.verify_siwe(message, signature, domain=DOMAIN, chain_id=CHAIN) == wallet.address
    with pytest.raises(auth.AuthError) as err:  # the nonce is burnt
        auth.verify_siwe(message, signature, domain=DOMAIN, chain_id=CHAIN)
    assert err.value.code == "invalid_nonce"


@pytest.mark.parametrize(
    "change, code",
    [
        ({"domain": "evil.example"}, "invalid_siwe"),
        ({"chain_id": 1}, "invalid_siwe"),
        ({"expires": time.time() - 5}, "expired_siwe"),
        ({"issued": time.time() + 3600}, "invalid_siwe"),
        ({"signer": Account.create()}, "invalid_siwe"),
        ({"nonce": "deadbeefdeadbeef"}, "invalid_nonce"),
    ],
)
def test_bad_sign_ins_are_refused(sqlite_db, change, code):
    wallet = Account.create()
    nonce = change.pop("nonce", None) or auth.issue_nonce()
    message, signature = _signed(wallet, nonce, **change)
    with pytest.raises(auth.AuthError) as err:
        auth.verify_siwe(message, signature, domain=DOMAIN, chain_id=CHAIN)
    assert err.value.code == code


def test_unsigned_or_garbled_input_is_refused(sqlite_db):
    wallet = Account.create()
    message, _ = _signed(wallet, auth.issue_nonce())
    with pytest.raises(auth.AuthError):
        auth.verify_siwe(message, "0x" + "00" * 65, domain=DOMAIN, chain_id=CHAIN)
    with pytest.raises(auth.AuthError):
        auth.verify_siwe("hello, sign me in", "0x" + "00" * 65, domain=DOMAIN, chain_id=CHAIN)


def test_keys_are_stored_hashed_and_expire(sqlite_db):
    key = auth.create_key("0xabc", "included", ttl_s=60)
    assert key.startswith(auth.KEY_PREFIX)
    assert auth.principal_for(key).account == "0xabc"
    assert auth.principal_for(key, now=time.time() + 61) is None
    assert auth.principal_for(auth.KEY_PREFIX + "not-a-key") is None
    scanned, holding = files_containing([sqlite_db.parent], key.encode())
    assert scanned >= 2 and holding == []  # one.db and its WAL, read in a child (this process holds connections)
