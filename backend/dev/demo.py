"""`make run`'s demo Dedicated key: a demo wallet signs in, pays the Starter price in dev USDC, buys it.

It goes through the public routes exactly as a person's wallet would, so a newcomer's `openai`
client works at once with the key written to `<data dir>/demo-key`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from eth_account.messages import encode_defunct

from backend.access import auth
from backend.chain import Deployment, token_at


def signed_challenge(url: str, wallet, expires_in: float | None = None, signer=None) -> tuple[str, str]:
    """Fetch a nonce from the coordinator and sign the SIWE message for it, as a wallet app would.

    `signer` signs instead of `wallet` (to show a forged signature is refused)."""
    challenge = httpx.get(f"{url}/one/auth/nonce", timeout=10).json()
    now = time.time()
    message = auth.siwe_message(
        domain=challenge["domain"], address=wallet.address, uri=url, chain_id=challenge["chain_id"], nonce=challenge["nonce"],
        issued_at=auth.rfc3339(now), expiration_time=auth.rfc3339(now + expires_in) if expires_in is not None else None,
    )  # fmt: skip
    signature = (signer or wallet).sign_message(encode_defunct(text=message)).signature
    return message, "0x" + bytes(signature).hex()


def sign_in(url: str, wallet) -> str:
    """The Included-lane session key of `wallet` (raises on refusal)."""
    message, signature = signed_challenge(url, wallet)
    response = httpx.post(f"{url}/one/auth/siwe", json={"message": message, "signature": signature}, timeout=10)
    return response.raise_for_status().json()["api_key"]


def ensure_demo_key(url: str, w3, deployment: Deployment, wallet, path: Path, package: str = "starter") -> str:
    """Reuse a demo key that still works; otherwise buy one and write it to `path` (mode 0600)."""
    if path.exists():  # still known to this coordinator? (a fresh database forgets old keys)
        key = path.read_text().strip()
        if httpx.get(f"{url}/one/auth/me", headers={"authorization": f"Bearer {key}"}, timeout=10).status_code == 200:
            return key
    session_key = sign_in(url, wallet)
    price = next(p["price"] for p in httpx.get(f"{url}/one/packages", timeout=10).json()["packages"] if p["id"] == package)
    usdc = token_at(w3, deployment.usdc_token)
    tx = usdc.functions.transfer(deployment.treasury, price).transact({"from": wallet.address})
    w3.eth.wait_for_transaction_receipt(tx)
    bought = httpx.post(
        f"{url}/one/packages/purchase",
        json={"package": package, "tx_hash": w3.to_hex(tx)},
        headers={"authorization": f"Bearer {session_key}"},
        timeout=30,
    ).raise_for_status().json()
    path.write_text(bought["api_key"] + "\n")
    os.chmod(path, 0o600)
    return bought["api_key"]
