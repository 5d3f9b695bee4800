"""Chain tools for agents that trade: read the agent wallet's balances and the $ONE/USDC pool's price, swap on the
pool, transfer $ONE or USDC, from the agent's own wallet.

The wallet is derived, never stored: its key is HMAC-SHA256(account secret, "agent-wallet:" + agent id), the same
keyed digest receipts name accounts by, under a prefix no account id has, so replicas sharing the secret sign
for the same wallet and the key is never written anywhere. The owner funds it (USDC or $ONE to trade, ETH for gas).

Money paths: every amount is an integer in the token's base units (USDC: micro-USDC; $ONE: 10^-18), above zero;
the token is ONE or USDC; a recipient is a checked address. Before anything is signed, the trade's value in
micro-USDC ($ONE at the pool's price, rounded up) must fit what is left of the file's `wallet.max_per_run` and
`wallet.max_per_day`: the day's spend is reserved in the database with one compare-and-set, so two runs cannot
both fit under the same cap. A refused trade is a tool error the agent reads; each transaction sent is a `tool`
receipt in the run's trail whose `job` is the transaction hash (without 0x).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from web3.logs import DISCARD

from backend.agents.tools import ToolError, tool
from backend.chain import ONE_DECIMALS, address_problem, connect, pool_amount_out, pool_at, token_at
from backend.db import session
from backend.db.models import AgentSpend
from backend.money.ledger import BPS

WALLET_DOMAIN = "agent-wallet:"
TOKENS = ("ONE", "USDC")
MAX_AMOUNT = 2**128  # far above any real balance, far below uint256: nothing overflows on the way to the chain
SLIPPAGE_BPS = 100  # a swap reverts if the pool pays 1% less than it quoted
DAY_S = 86400
TX_TIMEOUT_S = 60


def agent_wallet(receipts: Any, agent_id: str):
    """The agent's own eth account (a LocalAccount), derived from the coordinator's account secret."""
    return Account.from_key(bytes.fromhex(receipts.account_ref(WALLET_DOMAIN + agent_id)))


def wallet_address(receipts: Any, agent_id: str) -> str:
    return agent_wallet(receipts, agent_id).address


# ---- checks on what the model (or the file) asks for ----


def token_argument(value: Any, field: str) -> str:
    if not isinstance(value, str) or value.upper() not in TOKENS:
        raise ToolError(f"`{field}` is ONE or USDC, not {value!r}")
    return value.upper()


def amount_argument(value: Any) -> int:
    """A positive integer of base units: never a float, a string, a boolean or something past MAX_AMOUNT."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolError(f"`amount` is an integer of the token's base units (micro-USDC, or 10^-18 $ONE), not {value!r}")
    if not 0 < value <= MAX_AMOUNT:
        raise ToolError(f"`amount` must be above 0 and at most {MAX_AMOUNT}, not {value}")
    return value


def recipient_argument(value: Any) -> str:
    problem = "is not a string" if not isinstance(value, str) else address_problem(value)
    if problem:
        raise ToolError(f"`to` {problem}")
    return value


# ---- the chain ----


@dataclass
class Market:
    """The configured chain, tokens and (when there is one) pool, with the reserves read now."""

    w3: Any
    one: Any
    usdc: Any
    pool: Any = None
    reserve_one: int = 0
    reserve_usdc: int = 0
    fee_bps: int = 0

    def token(self, symbol: str):
        return self.one if symbol == "ONE" else self.usdc

    def usdc_value(self, symbol: str, amount: int) -> int:
        """Micro-USDC an amount is worth: USDC as it is, $ONE at the pool's spot price, rounded up."""
        if symbol == "USDC":
            return amount
        if self.pool is None:
            raise ToolError("$ONE is valued at the pool's price, and this network has no pool (ONE_POOL_ADDRESS)")
        if self.reserve_one == 0:
            raise ToolError("the pool is empty: $ONE has no price")
        return -(-amount * self.reserve_usdc // self.reserve_one)


def market(settings: Any, need_pool: bool) -> Market:
    if not settings.chain_rpc_url or not settings.one_token_address or not settings.usdc_token_address:
        raise ToolError("this network has no chain configured (ONE_CHAIN_RPC_URL and the token addresses)")
    w3 = connect(settings.chain_rpc_url)
    found = Market(w3, token_at(w3, settings.one_token_address), token_at(w3, settings.usdc_token_address))
    if settings.pool_address:
        found.pool = pool_at(w3, settings.pool_address)
        found.reserve_one = found.pool.functions.reserve_one().call()
        found.reserve_usdc = found.pool.functions.reserve_usdc().call()
        found.fee_bps = found.pool.functions.fee_bps().call()
    elif need_pool:
        raise ToolError("this network has no pool to trade on (ONE_POOL_ADDRESS is not set)")
    return found


class NotSent(ToolError):
    """Refused before it reached the chain: nothing was signed into a block, nothing was spent."""


def send(w3: Any, account: Any, call: Any) -> tuple[str, Any]:
    """Sign a contract call with the agent's key, send it and wait for it: (tx hash 0x.., receipt). Gas is estimated
    first, so a call the chain would revert is refused unsent."""
    try:
        tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"), "chainId": w3.eth.chain_id})
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    except Exception as exc:  # the node's refusal (a revert in estimation, no ETH for gas): not sent
        raise NotSent(f"the chain refused the transaction before sending: {exc}") from None
    return w3.to_hex(tx_hash), w3.eth.wait_for_transaction_receipt(tx_hash, timeout=TX_TIMEOUT_S)


# ---- the day's spend (database) ----


def today() -> int:
    return int(time.time() // DAY_S)


def spent_on(agent_id: str, day: int) -> int:
    with session() as db:
        row = db.get(AgentSpend, (agent_id, day))
        return row.spent if row else 0


def reserve_day_spend(agent_id: str, day: int, value: int, cap: int) -> bool:
    """Add `value` to the agent's spend for `day` only if the total stays within `cap` (one compare-and-set)."""
    with session() as db:
        if db.get(AgentSpend, (agent_id, day)) is None:
            db.add(AgentSpend(agent=agent_id, day=day, spent=0))
            try:
                db.commit()
            except IntegrityError:  # another run created it first
                db.rollback()
        moved = db.connection().execute(update(AgentSpend).where(col(AgentSpend.agent) == agent_id, col(AgentSpend.day) == day,
                                                                 col(AgentSpend.spent) + value <= cap)
                                        .values(spent=col(AgentSpend.spent) + value))  # fmt: skip
        db.commit()
        return moved.rowcount == 1


def release_day_spend(agent_id: str, day: int, value: int) -> None:
    """A reserved trade that moved nothing (refused unsent, or reverted) gives its value back."""
    with session() as db:
        db.connection().execute(update(AgentSpend).where(col(AgentSpend.agent) == agent_id, col(AgentSpend.day) == day)
                                .values(spent=col(AgentSpend.spent) - value))  # fmt: skip
        db.commit()


class Spend:
    """A trade's value held against both caps while its transaction is sent; given back unless `kept()`."""

    def __init__(self, ctx: Any, value: int):
        self.ctx, self.value, self.day, self.keep = ctx, value, today(), False

    async def __aenter__(self) -> "Spend":
        caps, agent_id = self.ctx.spec.wallet, self.ctx.record.id
        if caps is None:
            raise ToolError("this agent's file sets no wallet caps (wallet: { max_per_run, max_per_day }): it may not spend")
        if self.ctx.traded + self.value > caps.max_per_run:
            raise ToolError(f"refused: worth {self.value} micro-USDC, and this run may spend {caps.max_per_run - self.ctx.traded} more (wallet.max_per_run)")
        if not await asyncio.to_thread(reserve_day_spend, agent_id, self.day, self.value, caps.max_per_day):
            left = caps.max_per_day - await asyncio.to_thread(spent_on, agent_id, self.day)
            raise ToolError(f"refused: worth {self.value} micro-USDC, and today this agent may spend {max(left, 0)} more (wallet.max_per_day)")
        self.ctx.traded += self.value
        return self

    def kept(self) -> None:
        """The transaction went through: the spend stands."""
        self.keep = True

    async def __aexit__(self, kind, exc, tb) -> None:
        if not self.keep and (kind is None or issubclass(kind, ToolError)):  # moved nothing; other errors may have sent: kept
            self.ctx.traded -= self.value
            await asyncio.to_thread(release_day_spend, self.ctx.record.id, self.day, self.value)


def _wallet(ctx: Any):
    return agent_wallet(ctx.runner.runtime.receipts, ctx.record.id)


# ---- the tools ----

_NONE = {"type": "object", "properties": {}}
_SWAP = {"type": "object", "properties": {"sell": {"type": "string", "enum": list(TOKENS)},
                                          "amount": {"type": "integer", "description": "base units of the token sold"}},
         "required": ["sell", "amount"]}  # fmt: skip
_TRANSFER = {"type": "object", "properties": {"token": {"type": "string", "enum": list(TOKENS)}, "to": {"type": "string"},
                                              "amount": {"type": "integer", "description": "base units of the token"}},
             "required": ["token", "to", "amount"]}  # fmt: skip


@tool("wallet_balance", "This agent's wallet: its address, ETH for gas (wei), $ONE (10^-18) and USDC (micro) balances, and today's spend.", _NONE)
async def wallet_balance(args: dict[str, Any], ctx: Any) -> str:
    found = await asyncio.to_thread(market, ctx.settings, False)
    address = _wallet(ctx).address

    def read() -> dict[str, Any]:
        return {"address": address, "eth_wei": found.w3.eth.get_balance(address), "one": found.one.functions.balanceOf(address).call(),
                "usdc": found.usdc.functions.balanceOf(address).call(), "spent_today_usdc": spent_on(ctx.record.id, today())}  # fmt: skip

    return json.dumps(await asyncio.to_thread(read))


@tool("pool_price", "The $ONE/USDC pool: reserves, fee, and the price of one whole $ONE in micro-USDC.", _NONE)
async def pool_price(args: dict[str, Any], ctx: Any) -> str:
    found = await asyncio.to_thread(market, ctx.settings, True)
    price = found.reserve_usdc * 10**ONE_DECIMALS // found.reserve_one if found.reserve_one else 0
    return json.dumps({"pool": found.pool.address, "reserve_one": found.reserve_one, "reserve_usdc": found.reserve_usdc,
                       "fee_bps": found.fee_bps, "usdc_per_one": price})  # fmt: skip


@tool("swap", "Sell `amount` base units of ONE or USDC on the pool for the other token, from this agent's wallet.", _SWAP, spends=True)
async def swap(args: dict[str, Any], ctx: Any) -> str:
    sell, amount = token_argument(args.get("sell"), "sell"), amount_argument(args.get("amount"))
    buy = "USDC" if sell == "ONE" else "ONE"
    found = await asyncio.to_thread(market, ctx.settings, True)
    reserves = (found.reserve_one, found.reserve_usdc) if sell == "ONE" else (found.reserve_usdc, found.reserve_one)
    quoted = pool_amount_out(amount, *reserves, found.fee_bps)
    if quoted == 0:
        raise ToolError(f"selling {amount} {sell} buys nothing at this price")
    account, token_in = _wallet(ctx), found.token(sell)
    async with Spend(ctx, found.usdc_value(sell, amount)) as spend:
        if await asyncio.to_thread(token_in.functions.allowance(account.address, found.pool.address).call) < amount:
            tx_hash, mined = await asyncio.to_thread(send, found.w3, account, token_in.functions.approve(found.pool.address, amount))
            await ctx.tool_receipt("approve", {"token": sell, "spender": found.pool.address, "amount": amount},
                                   json.dumps({"tx": tx_hash, "status": mined["status"]}), job=tx_hash[2:], called=False)  # fmt: skip
            if mined["status"] != 1:
                raise ToolError(f"the approval {tx_hash} reverted")
        min_out = quoted * (BPS - SLIPPAGE_BPS) // BPS
        tx_hash, mined = await asyncio.to_thread(send, found.w3, account, found.pool.functions.swap(token_in.address, amount, min_out))
        ctx.job = tx_hash[2:]
        if mined["status"] != 1:
            raise ToolError(f"the swap {tx_hash} reverted")
        spend.kept()
    [event] = found.pool.events.Swap().process_receipt(mined, errors=DISCARD)
    return json.dumps({"tx": tx_hash, "sold": {"token": sell, "amount": amount}, "bought": {"token": buy, "amount": event["args"]["amount_out"]},
                       "value_usdc": spend.value})  # fmt: skip


@tool("transfer", "Send `amount` base units of ONE or USDC from this agent's wallet to the address `to`.", _TRANSFER, spends=True)
async def transfer(args: dict[str, Any], ctx: Any) -> str:
    symbol, amount, to = token_argument(args.get("token"), "token"), amount_argument(args.get("amount")), recipient_argument(args.get("to"))
    found = await asyncio.to_thread(market, ctx.settings, symbol == "ONE")
    account, token = _wallet(ctx), found.token(symbol)
    async with Spend(ctx, found.usdc_value(symbol, amount)) as spend:
        tx_hash, mined = await asyncio.to_thread(send, found.w3, account, token.functions.transfer(found.w3.to_checksum_address(to), amount))
        ctx.job = tx_hash[2:]
        if mined["status"] != 1:
            raise ToolError(f"the transfer {tx_hash} reverted")
        spend.kept()
    return json.dumps({"tx": tx_hash, "token": symbol, "to": to, "amount": amount, "value_usdc": spend.value})
