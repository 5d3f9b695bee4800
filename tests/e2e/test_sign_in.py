"""Sign-In with Ethereum over HTTP against the running coordinator, then the session key on /v1."""

from __future__ import annotations

import httpx
import openai
import pytest
from eth_account import Account

from backend.access import auth
from backend.dev.demo import signed_challenge
from backend.protocol import receipt as rc

pytestmark = pytest.mark.e2e


def _sign_in(devnet, wallet, *, expires_in=300, signer=None):
    message, signature = signed_challenge(devnet.url, wallet, expires_in, signer)
    return message, signature, httpx.post(f"{devnet.url}/one/auth/siwe", json={"message": message, "signature": signature})


def test_a_holder_signs_in_chats_on_its_allotment_and_sees_its_balance(devnet):
    from backend.chain.devchain import dev_accounts

    wallet = dev_accounts(3)[2]  # a demo wallet: the dev chain gave it 10,000 $ONE
    assert wallet.address in devnet.deployment.demo_wallets
    message, signature, response = _sign_in(devnet, wallet)
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["account"] == wallet.address and session["lane"] == "included"
    client = openai.OpenAI(base_url=devnet.url + "/v1", api_key=session["api_key"], max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    reply = raw.parse()
    receipt = reply.model_extra["receipt"]
    secret = bytes.fromhex((devnet.data_dir / "account.secret").read_text())  # the coordinator's own: not public
    assert receipt["account"] == rc.account_digest(wallet.address, secret) and receipt["lane"] == "included"
    assert receipt["account"] != rc.sha256hex(wallet.address.encode())  # nobody without the secret can link it
    top_tier = 20_000_000  # 10,000 $ONE reaches the top tier
    assert raw.headers["x-one-lane"] == "included" and raw.headers["x-one-balance-unit"] == "credit"
    assert int(raw.headers["x-one-balance"]) == top_tier - receipt["charge"]["amount"]
    assert 0 < int(raw.headers["x-one-refresh-in"]) <= 86400
    replay = httpx.post(f"{devnet.url}/one/auth/siwe", json={"message": message, "signature": signature})
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_nonce"


def test_a_wallet_without_one_gets_402_with_a_dedicated_offer(devnet):
    _, _, response = _sign_in(devnet, Account.create())
    client = openai.OpenAI(base_url=devnet.url + "/v1", api_key=response.json()["api_key"], max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert err.value.status_code == 402
    body = err.value.response.json()
    assert body["error"]["code"] == "insufficient_quota" and body["offer"]["lane"] == "dedicated"


def test_expired_or_foreign_signatures_are_401(devnet):
    _, _, expired = _sign_in(devnet, Account.create(), expires_in=-10)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "expired_siwe"
    _, _, response = _sign_in(devnet, Account.create(), signer=Account.create())
    assert response.status_code == 401 and response.json()["error"]["param"] == "message"


def test_an_unknown_one_key_is_401_in_the_openai_shape(devnet):
    client = openai.OpenAI(base_url=devnet.url + "/v1", api_key=auth.KEY_PREFIX + "made-up", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="all-minilm-l6-v2", input="x")
