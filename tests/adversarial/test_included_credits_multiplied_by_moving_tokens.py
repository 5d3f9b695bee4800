"""Attack: the $ONE balance was read per wallet at its first request in an Included epoch. A holder took its
allotment, sent its tokens to a second wallet, and that wallet took an allotment too: the same tokens paid for
as many allotments a day as there were wallets to pass them through.

Defence: every allotment of an epoch reads balances at one snapshot block, the last block before the epoch
began (the state at its first instant). Tokens received during an epoch count from the next one on."""

from __future__ import annotations

from web3 import EthereumTesterProvider, Web3

from backend.chain import deploy_dev_tokens, token_at
from backend.config import Settings
from backend.money import ledger
from backend.money.lanes import Lanes, chain_holdings

EPOCH_S = 1_000
TIER = 50_000  # micro-credits for holding 100 $ONE or more
TOKENS = 150 * 10**18


def test_included_credits_multiplied_by_moving_tokens_between_wallets(sqlite_db, monkeypatch):
    provider = EthereumTesterProvider()
    w3 = Web3(provider)
    deployer, alice, bob = w3.eth.accounts[:3]
    d = deploy_dev_tokens(w3, deployer=deployer, treasury=deployer, demo_wallets=[], one_grant=0, usdc_grant=0)
    one = token_at(w3, d.one_token)
    w3.eth.wait_for_transaction_receipt(one.functions.mint(alice, TOKENS).transact({"from": deployer}))
    monkeypatch.setattr("backend.chain.connect", lambda url: w3)  # the coordinator's chain client is the in-process chain
    settings = Settings(chain_rpc_url="http://in-process", one_token_address=d.one_token, included_tiers=[(100, TIER)], included_epoch_s=EPOCH_S)
    lanes = Lanes(settings, chain_holdings(settings))

    start = (w3.eth.get_block("latest")["timestamp"] // EPOCH_S + 1) * EPOCH_S  # an epoch that begins after alice was funded
    epoch = start // EPOCH_S
    provider.ethereum_tester.time_travel(start + 10)  # the chain's clock moves into that epoch
    assert lanes.ensure_allotment(alice, now=start + 20) == epoch
    assert ledger.balance(alice, "credit", epoch) == TIER

    w3.eth.wait_for_transaction_receipt(one.functions.transfer(bob, TOKENS).transact({"from": alice}))  # same epoch
    assert w3.eth.get_block("latest")["timestamp"] >= start and one.functions.balanceOf(bob).call() == TOKENS
    lanes.ensure_allotment(bob, now=start + 30)
    assert ledger.balance(bob, "credit", epoch) == 0  # the same tokens buy one allotment per epoch, not one per wallet
    assert chain_holdings(settings)(bob, start) == 0  # a restarted coordinator (no cache) reads the same snapshot

    provider.ethereum_tester.time_travel(start + EPOCH_S + 10)
    for wallet, expected in ((bob, TIER), (alice, 0)):  # the next epoch sees where the tokens were when it began
        assert lanes.ensure_allotment(wallet, now=start + EPOCH_S + 20) == epoch + 1
        assert ledger.balance(wallet, "credit", epoch + 1) == expected
