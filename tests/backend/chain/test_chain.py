"""The test tokens: the committed artifact is what the source compiles to; they behave as ERC-20s on
web3's in-process EVM; the dev chain (anvil from npm) deploys once and keeps its state across restarts."""

from __future__ import annotations

import pytest

from backend.chain import (
    CONTRACTS,
    ONE_DECIMALS,
    USDC_DECIMALS,
    anchor_at,
    artifact,
    compile_contract,
    deploy_dev_tokens,
    token_at,
)
from backend.chain.devchain import TREASURY_FLOAT, DevChain, dev_accounts
from tests.conftest import free_port


@pytest.mark.parametrize("name", CONTRACTS)
def test_committed_artifact_matches_a_fresh_compile(name):
    assert compile_contract(name) == artifact(name)


@pytest.fixture
def tester_w3():
    from web3 import EthereumTesterProvider, Web3

    return Web3(EthereumTesterProvider())


def test_tokens_on_the_in_process_evm(tester_w3):
    w3 = tester_w3
    deployer, treasury, alice, bob = w3.eth.accounts[:4]
    deployment = deploy_dev_tokens(w3, deployer=deployer, treasury=treasury, demo_wallets=[alice], one_grant=5 * 10**18, usdc_grant=7 * 10**6)
    one, usdc = token_at(w3, deployment.one_token), token_at(w3, deployment.usdc_token)
    assert (one.functions.decimals().call(), usdc.functions.decimals().call()) == (ONE_DECIMALS, USDC_DECIMALS)
    assert usdc.functions.balanceOf(alice).call() == 7 * 10**6
    w3.eth.wait_for_transaction_receipt(usdc.functions.transfer(bob, 2_500_000).transact({"from": alice}))
    assert usdc.functions.balanceOf(bob).call() == 2_500_000 and usdc.functions.balanceOf(alice).call() == 4_500_000
    with pytest.raises(Exception, match="balance too low"):
        usdc.functions.transfer(bob, 10**12).transact({"from": alice})
    with pytest.raises(Exception, match="only the minter"):
        usdc.functions.mint(bob, 1).transact({"from": alice})


def test_dev_chain_deploys_once_and_keeps_state(tmp_path):
    chain = DevChain(port=free_port(), data_dir=tmp_path)
    chain.start()
    try:
        deployment = chain.ensure_deployed()
        w3 = chain.web3()
        assert deployment.chain_id == 31337
        usdc = token_at(w3, deployment.usdc_token)
        wallet = deployment.demo_wallets[0]
        assert wallet == dev_accounts(3)[2].address
        assert usdc.functions.balanceOf(wallet).call() == 1_000 * 10**USDC_DECIMALS
        w3.eth.wait_for_transaction_receipt(usdc.functions.transfer(deployment.treasury, 5 * 10**6).transact({"from": wallet}))
    finally:
        chain.stop()
    again = DevChain(port=free_port(), data_dir=tmp_path)
    again.start()
    try:
        assert again.ensure_deployed() == deployment  # same addresses: nothing redeployed
        usdc = token_at(again.web3(), deployment.usdc_token)
        assert usdc.functions.balanceOf(deployment.treasury).call() == TREASURY_FLOAT + 5 * 10**6
        assert anchor_at(again.web3(), deployment.anchor).functions.owner().call() == deployment.treasury
    finally:
        again.stop()


def test_the_pool_swaps_as_x_times_y_with_its_fee_and_keeps_min_out(tester_w3):
    """Pool.vy on the in-process EVM: what a swap pays is pool_amount_out (the Python the trading tools quote
    with), reserves move by exactly the amounts, and a min_out above the quote reverts with nothing moved."""
    from backend.chain import deploy_pool, pool_amount_out

    w3 = tester_w3
    deployer, treasury, trader = w3.eth.accounts[:3]
    d = deploy_dev_tokens(w3, deployer=deployer, treasury=treasury, demo_wallets=[trader], one_grant=0, usdc_grant=10 * 10**6)
    one, usdc = token_at(w3, d.one_token), token_at(w3, d.usdc_token)
    pool = deploy_pool(w3, deployer, d.one_token, d.usdc_token, 30)
    for token, amount in ((one, 1_000 * 10**18), (usdc, 500 * 10**6)):
        token.functions.mint(deployer, amount).transact({"from": deployer})
        token.functions.approve(pool.address, amount).transact({"from": deployer})
    pool.functions.add_liquidity(1_000 * 10**18, 500 * 10**6).transact({"from": deployer})
    with pytest.raises(Exception, match="only the owner"):
        pool.functions.add_liquidity(1, 1).transact({"from": trader})

    quoted = pool_amount_out(2_000_000, 500 * 10**6, 1_000 * 10**18, 30)
    assert pool.functions.amount_out(usdc.address, 2_000_000).call() == quoted
    usdc.functions.approve(pool.address, 2_000_000).transact({"from": trader})
    with pytest.raises(Exception, match="price moved"):
        pool.functions.swap(usdc.address, 2_000_000, quoted + 1).transact({"from": trader})
    assert usdc.functions.balanceOf(trader).call() == 10 * 10**6
    pool.functions.swap(usdc.address, 2_000_000, quoted).transact({"from": trader})
    assert one.functions.balanceOf(trader).call() == quoted and usdc.functions.balanceOf(trader).call() == 8 * 10**6
    assert (pool.functions.reserve_one().call(), pool.functions.reserve_usdc().call()) == (1_000 * 10**18 - quoted, 500 * 10**6 + 2_000_000)
    assert quoted < 2_000_000 * 10**18 // (500_000)  # the fee and the curve: less than the spot price buys
    with pytest.raises(Exception, match="not a token of this pool"):
        pool.functions.swap(trader, 1, 0).transact({"from": trader})


def test_the_dev_chain_seeds_the_pool_and_adds_it_to_an_older_chain(tmp_path):
    """A chain from before the pool (its deployment.json has none) gets one at the next start; nothing else moves."""
    import json

    from backend.chain import pool_at
    from backend.chain.devchain import POOL_ONE, POOL_USDC

    chain = DevChain(port=free_port(), data_dir=tmp_path)
    chain.start()
    try:
        first = chain.ensure_deployed()
        older = json.loads(chain.deployment_file.read_text())
        older.pop("pool")
        chain.deployment_file.write_text(json.dumps(older))
        again = chain.ensure_deployed()
        assert again.pool and again.pool != first.pool and (again.one_token, again.anchor) == (first.one_token, first.anchor)
        pool = pool_at(chain.web3(), again.pool)
        assert (pool.functions.reserve_one().call(), pool.functions.reserve_usdc().call(), pool.functions.fee_bps().call()) == (POOL_ONE, POOL_USDC, 30)
    finally:
        chain.stop()
