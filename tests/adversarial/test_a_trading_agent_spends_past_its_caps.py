"""Attack: a trading agent's tool arguments come from a model (or a file) that someone else may steer: send more
than the file's caps, a negative, fractional, huge or string amount, to a malformed, mistyped or zero address,
in a token the pool does not trade; or start two runs at once so that each fits under the day's cap alone.

Every such trade is refused as a tool error before anything is signed: the wallet's nonce and balances stay as
they were, and the day's spend in the database never passes `wallet.max_per_day`. Real parts throughout: anvil
with the dev tokens and pool, the coordinator's runtime and receipt log on SQLite, the agent's derived wallet.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account

from backend.agents.runner import RunContext
from backend.agents.spec import parse_agent
from backend.agents.tools import REGISTRY, ToolError
from backend.agents.trading import agent_wallet, spent_on, today
from backend.chain import ONE_DECIMALS, token_at
from backend.chain.devchain import DevChain
from backend.db.models import AgentRecord, AgentRun
from tests.backend.agents.coordinator import AgentCoordinator
from tests.backend.conftest import postgres_db, sqlite_db  # noqa: F401  (fixtures)
from tests.conftest import free_port

CAPS = "wallet: { max_per_run: 2_000_000, max_per_day: 3_000_000 }\n"
TRADER = """agent: trader
model: tiny-chat
trigger: { manual: true }
tools: [ swap, transfer ]
budget: { lane: included }
"""


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    dev = DevChain(port=free_port(), data_dir=tmp_path_factory.mktemp("chain"))
    dev.start()
    try:
        yield dev, dev.ensure_deployed()
    finally:
        dev.stop()


@pytest.fixture(params=["sqlite_db", "postgres_db"])
def trader(request, monkeypatch, chain):
    """A run context of a trading agent whose wallet holds ETH, 10 USDC and 100 $ONE, on either database; returns a
    factory of its runs, the wallet's (nonce, USDC, $ONE) reader and the agent's record."""
    request.getfixturevalue(request.param)
    dev, d = chain
    coordinator = AgentCoordinator(monkeypatch, chain_rpc_url=dev.rpc_url, one_token_address=d.one_token, usdc_token_address=d.usdc_token,
                                   pool_address=d.pool)  # fmt: skip
    account = "0x" + "ab" * 20
    record = AgentRecord(id=f"{account}:trader-{time.time_ns()}", name="trader", account=account, lane="included", spec=TRADER + CAPS,
                         webhook_secret="s", status="active", created_at=time.time())  # fmt: skip
    w3 = dev.web3()
    wallet = agent_wallet(coordinator.runtime.receipts, record.id).address
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": d.deployer, "to": wallet, "value": 10**18}))
    w3.eth.wait_for_transaction_receipt(token_at(w3, d.usdc_token).functions.mint(wallet, 10_000_000).transact({"from": d.deployer}))
    w3.eth.wait_for_transaction_receipt(token_at(w3, d.one_token).functions.mint(wallet, 100 * 10**ONE_DECIMALS).transact({"from": d.deployer}))

    def new_run() -> RunContext:
        run = AgentRun(id=str(time.time_ns()), agent=record.id, trigger="manual", status="running", started_at=time.time())
        return RunContext(coordinator.runner, record, parse_agent(record.spec), run)

    def state() -> tuple[int, int, int]:
        return w3.eth.get_transaction_count(wallet), token_at(w3, d.usdc_token).functions.balanceOf(wallet).call(), token_at(w3, d.one_token).functions.balanceOf(wallet).call()

    return new_run, state, record


def transfer(ctx, **args):
    return asyncio.run(REGISTRY["transfer"].run(args, ctx))


FRIEND = Account.from_key(b"\x01" * 32).address


@pytest.mark.parametrize("amount", [-1, 0, 1.5, 1e6, 10**40, "1000000", True, None], ids=repr)
def test_an_amount_that_is_not_a_positive_integer_of_base_units_sends_nothing(trader, amount):
    new_run, state, _ = trader
    before = state()
    with pytest.raises(ToolError, match="amount"):
        transfer(new_run(), token="USDC", to=FRIEND, amount=amount)
    assert state() == before


@pytest.mark.parametrize("to", ["0x1234", "0x" + "0" * 40, FRIEND.lower()[:-1] + "g", FRIEND[:2] + FRIEND[2:].swapcase(), 12345, None],
                         ids=["short", "zero", "not-hex", "bad-checksum", "a-number", "missing"])  # fmt: skip
def test_a_bad_recipient_address_sends_nothing(trader, to):
    new_run, state, _ = trader
    before = state()
    with pytest.raises(ToolError, match="`to`"):
        transfer(new_run(), token="USDC", to=to, amount=1_000)
    assert state() == before


def test_a_token_the_pool_does_not_trade_is_refused(trader):
    new_run, state, _ = trader
    before = state()
    for token in ("ETH", "usdt", None):
        with pytest.raises(ToolError, match="ONE or USDC"):
            transfer(new_run(), token=token, to=FRIEND, amount=1_000)
    with pytest.raises(ToolError, match="ONE or USDC"):
        asyncio.run(REGISTRY["swap"].run({"sell": "WBTC", "amount": 1_000}, new_run()))
    assert state() == before


def test_a_transfer_over_the_per_run_cap_is_refused_before_signing(trader):
    new_run, state, record = trader
    ctx = new_run()
    before = state()
    with pytest.raises(ToolError, match="max_per_run"):
        transfer(ctx, token="USDC", to=FRIEND, amount=2_000_001)
    assert state() == before and spent_on(record.id, today()) == 0
    transfer(ctx, token="USDC", to=FRIEND, amount=1_500_000)  # within the cap: it goes
    with pytest.raises(ToolError, match="max_per_run"):  # ...and counts: 1.5 + 0.6 is over 2
        transfer(ctx, token="USDC", to=FRIEND, amount=600_000)
    nonce, usdc, _ = state()
    assert (nonce, usdc) == (before[0] + 1, before[1] - 1_500_000) and ctx.traded == 1_500_000
    assert spent_on(record.id, today()) == 1_500_000


def test_one_is_valued_at_the_pool_price_against_the_cap(trader):
    """5 $ONE is 5 * 10^18 base units but worth about 2.5 USDC at the dev pool's 0.5: over the 2 USDC run cap."""
    new_run, state, _ = trader
    before = state()
    with pytest.raises(ToolError, match="max_per_run"):
        transfer(new_run(), token="ONE", to=FRIEND, amount=5 * 10**ONE_DECIMALS)
    assert state() == before
    transfer(new_run(), token="ONE", to=FRIEND, amount=3 * 10**ONE_DECIMALS)  # about 1.5 USDC: within it
    assert state()[2] == before[2] - 3 * 10**ONE_DECIMALS


def test_runs_side_by_side_cannot_both_fit_under_the_day_cap(trader):
    """Each of two runs asks for 2 USDC (each within max_per_run); together they would pass max_per_day (3 USDC):
    the database's compare-and-set lets exactly one through."""
    new_run, state, record = trader
    before = state()

    async def both():
        return await asyncio.gather(*(REGISTRY["transfer"].run({"token": "USDC", "to": FRIEND, "amount": 2_000_000}, new_run()) for _ in range(2)),
                                    return_exceptions=True)  # fmt: skip

    results = asyncio.run(both())
    refused = [r for r in results if isinstance(r, ToolError)]
    assert len(refused) == 1 and "max_per_day" in str(refused[0]), results
    assert state()[:2] == (before[0] + 1, before[1] - 2_000_000)
    assert spent_on(record.id, today()) == 2_000_000
    with pytest.raises(ToolError, match="max_per_day"):  # a third run: 1.5 more would pass the day's 3
        transfer(new_run(), token="USDC", to=FRIEND, amount=1_500_000)
    assert spent_on(record.id, today()) == 2_000_000


def test_a_file_without_caps_cannot_spend(trader):
    new_run, state, record = trader
    ctx = new_run()
    ctx.spec = parse_agent(TRADER)  # as if the file had been stored before caps were required
    before = state()
    with pytest.raises(ToolError, match="no wallet caps"):
        transfer(ctx, token="USDC", to=FRIEND, amount=1)
    assert state() == before
