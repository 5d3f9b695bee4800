"""Attack: a phishing site gets a wallet to sign in to *it*, then trades that signature for a session here.

The victim visits evil.example, which fetches a nonce from our coordinator and shows a Sign-In with Ethereum
message naming evil.example: the wallet checks that domain against the page, finds it matches and signs.
The site posts message and signature to our /one/auth/siwe with `Host: evil.example`. When the coordinator
took the domain to check from the request's Host header, the message passed and the attacker got a session
key spending the victim's Included credits. The domain now comes from configuration (ONE_PUBLIC_URL, else
the coordinator's own address), so that signature is worth nothing here.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient

from backend.access import auth
from backend.config import Settings

PHISHING = "evil.example"


def sign(wallet, challenge: dict, domain: str, uri: str) -> dict:
    message = auth.siwe_message(domain=domain, address=wallet.address, uri=uri, chain_id=challenge["chain_id"],
                                nonce=challenge["nonce"], issued_at=auth.rfc3339(time.time()))  # fmt: skip
    return {"message": message, "signature": "0x" + bytes(wallet.sign_message(encode_defunct(text=message)).signature).hex()}


def test_a_signature_for_a_phishing_domain_buys_no_session_here(sqlite_db, monkeypatch):
    from backend.api import create_api, deps

    settings = Settings(port=3456)
    monkeypatch.setattr(deps, "get_runtime", lambda: SimpleNamespace(settings=settings))
    http = TestClient(create_api())
    victim = Account.create()

    challenge = http.get("/one/auth/nonce", params={"address": victim.address}, headers={"host": PHISHING}).json()
    assert challenge["domain"] == "127.0.0.1:3456"  # ours, whatever Host the phishing site sends
    assert challenge["message"].startswith("127.0.0.1:3456 wants you to sign in") and "\nURI: http://127.0.0.1:3456\n" in challenge["message"]

    stolen = http.post("/one/auth/siwe", json=sign(victim, challenge, PHISHING, f"https://{PHISHING}"), headers={"host": PHISHING})
    assert stolen.status_code == 401, stolen.text
    assert stolen.json()["error"]["code"] == "invalid_siwe" and "api_key" not in stolen.json()

    fresh = http.get("/one/auth/nonce").json()
    mine = http.post("/one/auth/siwe", json=sign(victim, fresh, fresh["domain"], "http://127.0.0.1:3456"))
    assert mine.status_code == 200 and mine.json()["account"] == victim.address  # signing in for our domain still works


def test_behind_a_proxy_the_domain_is_the_public_urls_host(sqlite_db, monkeypatch):
    from backend.api import create_api, deps

    settings = Settings(public_url="https://one.example.org")
    monkeypatch.setattr(deps, "get_runtime", lambda: SimpleNamespace(settings=settings))
    http = TestClient(create_api())
    challenge = http.get("/one/auth/nonce", params={"address": Account.create().address}, headers={"host": "127.0.0.1:3000"}).json()
    assert challenge["domain"] == "one.example.org" and "\nURI: https://one.example.org\n" in challenge["message"]
