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
