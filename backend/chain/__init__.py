"""The chain side: the test ERC-20s ($ONE and USDC, one Vyper contract), the epoch anchor, the $ONE/USDC pool
trading agents use, deployment, and the dev chain.

The compiled artifacts are committed (`artifacts/<name>.json`) so the coordinator never needs the Vyper
compiler at run time; a test recompiles the sources and compares byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import is_checksum_address, is_checksum_formatted_address, is_hex_address
from web3 import HTTPProvider, Web3

HERE = Path(__file__).resolve().parent
CONTRACTS = ("Token", "EpochAnchor", "Pool")

ONE_DECIMALS = 18
USDC_DECIMALS = 6
# The well-known anvil / hardhat development mnemonic: its keys are public, never use them elsewhere.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def compile_contract(name: str) -> dict[str, Any]:
    """Compile contracts/<name>.vy with the pinned Vyper (a dev/test dependency) into {abi, bytecode, compiler}."""
    import vyper

    out = vyper.compile_code((HERE / "contracts" / f"{name}.vy").read_text(), output_formats=["abi", "bytecode"])
    return {"contract": name, "compiler": f"vyper {vyper.__version__}", "abi": out["abi"], "bytecode": out["bytecode"]}


def artifact(name: str) -> dict[str, Any]:
    return json.loads((HERE / "artifacts" / f"{name}.json").read_text())


def deploy_contract(w3, name: str, deployer: str, *constructor_args: Any):
    """Deploy one of our committed contracts from `deployer` and wait for it; returns the web3 contract object."""
    spec = artifact(name)
    factory = w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*constructor_args).transact({"from": deployer}))
    return w3.eth.contract(address=receipt["contractAddress"], abi=spec["abi"])


def contract_at(w3, name: str, address: str):
    """One of our contracts, already deployed at `address`."""
    return w3.eth.contract(address=w3.to_checksum_address(address), abi=artifact(name)["abi"])


def deploy_anchor(w3, owner: str):
    """The EpochAnchor contract, owned by (anchored from) the coordinator's settlement account."""
    return deploy_contract(w3, "EpochAnchor", owner)


def anchor_at(w3, address: str):
    return contract_at(w3, "EpochAnchor", address)


def deploy_pool(w3, deployer: str, one_token: str, usdc_token: str, fee_bps: int):
    """The $ONE/USDC constant-product pool (owned by `deployer`, who seeds it with add_liquidity)."""
    return deploy_contract(w3, "Pool", deployer, one_token, usdc_token, fee_bps)


def pool_at(w3, address: str):
    return contract_at(w3, "Pool", address)


def pool_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """What Pool.vy's swap pays out (x * y = k, the fee taken from the amount in), in the same integer math."""
    with_fee = amount_in * (10_000 - fee_bps)
    return with_fee * reserve_out // (reserve_in * 10_000 + with_fee)


def deploy_token(w3, deployer: str, name: str, symbol: str, decimals: int):
    """Deploy one Token and wait for it; returns the web3 contract object."""
    return deploy_contract(w3, "Token", deployer, name, symbol, decimals)


def connect(rpc_url: str):
    """A web3 client for a JSON-RPC URL (the dev chain, or ONE_CHAIN_RPC_URL in production)."""

    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))


def token_at(w3, address: str):
    return contract_at(w3, "Token", address)


# What a worker sends to work without payouts (`one worker`'s default is the zero address): its earnings are
# withheld, never sent there.
NO_PAYOUT_ADDRESS = ("", "0x", "0x" + "0" * 40)


def address_problem(address: str) -> str | None:
    """Why USDC cannot be paid to `address`, or None when it can. It must be 0x and 40 hex digits, carry a
    matching EIP-55 checksum when it is mixed-case (so a typo shows instead of paying a stranger), and not be
    the zero address (a transfer there burns the money or reverts)."""

    if not (address.startswith("0x") and is_hex_address(address)):
        return "is not 0x followed by 40 hex digits"
    if is_checksum_formatted_address(address) and not is_checksum_address(address):
        return "is mixed-case but its EIP-55 checksum does not match (a typo?)"
    if int(address, 16) == 0:
        return "is the zero address"
    return None


@dataclass
class Deployment:
    """Where the dev chain's contracts and wallets are (written to the data dir as deployment.json)."""

    chain_id: int
    one_token: str
    usdc_token: str
    treasury: str
    deployer: str
    demo_wallets: list[str] = field(default_factory=list)
    anchor: str = ""  # EpochAnchor (settlement epochs' Merkle roots)
    pool: str = ""  # the $ONE/USDC Pool trading agents swap on

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> "Deployment":
        return cls(**json.loads(Path(path).read_text()))


def deploy_dev_tokens(w3, *, deployer: str, treasury: str, demo_wallets: list[str], one_grant: int, usdc_grant: int) -> Deployment:
    """$ONE and USDC, with every demo wallet funded (integer base units: wei-like, never floats)."""
    one = deploy_token(w3, deployer, "ONE Network", "ONE", ONE_DECIMALS)
    usdc = deploy_token(w3, deployer, "USD Coin (dev)", "USDC", USDC_DECIMALS)
    for wallet in demo_wallets:
        for token, amount in ((one, one_grant), (usdc, usdc_grant)):
            w3.eth.wait_for_transaction_receipt(token.functions.mint(wallet, amount).transact({"from": deployer}))
    return Deployment(
        chain_id=int(w3.eth.chain_id), one_token=one.address, usdc_token=usdc.address,
        treasury=treasury, deployer=deployer, demo_wallets=list(demo_wallets),
    )  # fmt: skip
