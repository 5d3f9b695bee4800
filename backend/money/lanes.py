"""Lanes: who pays for a request and how much may it cost before it runs.

Included lane: every epoch (a UTC day by default) a signed-in wallet's $ONE holdings as they stood when
the epoch began are read on chain at its first request; the tier it reaches sets its allotment of
micro-credits for that epoch (no rollover). A request holds its maximum cost (the quote) while it runs; the receipt's exact charge
replaces the hold. When the quote does not fit: HTTP 402 with a machine-readable Dedicated offer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from backend import chain
from backend.access import auth
from backend.catalog import CatalogModel, Packages
from backend.config import Settings
from backend.money import ledger
from backend.protocol.body import OpenAIBody, charge_unit
from backend.scheduler import PRIORITY_INCLUDED


@dataclass
class Hold:
    """What `settle=` needs when the receipt is written, and the bound its charge must respect."""

    account: str
    epoch: int | None
    amount: int


def quote(model: CatalogModel, body: dict[str, Any], task: str) -> int:
    """The most a request can cost, in integer micro-units, from its own limits and the catalog rate."""
    view = OpenAIBody(body)
    n = view.outputs(task)
    if model.billing == "per_image":
        return n * model.rate
    if model.billing == "per_1k_input_tokens":
        return model.charge({"input_tokens": max(len(view.inputs), 1) * model.context})
    usage = {"output_tokens": n * view.max_tokens(model.context), "images": len(view.image_parts())}
    return model.charge(usage)


def priority_of(packages: Packages, package_id: str | None) -> int:
    """Where a caller's jobs queue (lower runs first): its Dedicated package's priority, else the Included lane's."""
    package = packages.get(package_id) if package_id else None
    return package.priority if package else PRIORITY_INCLUDED


class Lanes:
    def __init__(self, settings: Settings, holdings: Callable[[str, int], int] | None):
        self.settings = settings
        self.holdings = holdings  # (address, epoch start) -> $ONE base units (18 decimals) it held then, read on chain
        self.tiers = sorted(settings.included_tiers, reverse=True)

    def epoch(self, now: float | None = None) -> int:
        return int((time.time() if now is None else now) // self.settings.included_epoch_s)

    def refresh_in(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int((self.epoch(now) + 1) * self.settings.included_epoch_s - now)

    def allotment_for(self, one_base_units: int) -> int:
        for min_tokens, allotment in self.tiers:
            if one_base_units >= min_tokens * 10**18:
                return allotment
        return 0

    def ensure_allotment(self, account: str, now: float | None = None) -> int:
        """Grant this epoch's allotment at the account's first use in it; returns the epoch."""
        epoch = self.epoch(now)
        key = f"allot:{account}:{epoch}"
        if not ledger.has_key(key):
            held = self.holdings(account, epoch * self.settings.included_epoch_s) if self.holdings else 0
            ledger.grant(key, account, charge_unit("included"), self.allotment_for(held), "allotment", epoch)
        return epoch

    def open_hold(self, account: str, lane: str, amount: int, job_id: str) -> Hold:
        """Reserve a request's quote or raise InsufficientBalance (the caller answers 402)."""
        epoch = self.ensure_allotment(account) if lane == "included" else None
        ledger.hold(job_id, account, charge_unit(lane), amount, epoch)
        return Hold(account, epoch, amount)

    def headers(self, account: str, lane: str) -> dict[str, str]:
        unit = charge_unit(lane)
        epoch = self.epoch() if lane == "included" else None
        return {
            "x-one-lane": lane,
            "x-one-balance": str(ledger.balance(account, unit, epoch)),
            "x-one-balance-unit": unit,
            "x-one-refresh-in": str(self.refresh_in() if lane == "included" else 0),
        }

    def summary(self, account: str, lane: str) -> dict[str, Any]:
        """Balance, what it was topped up to and when it refreshes: the web app's balance view."""
        unit = charge_unit(lane)
        epoch = self.ensure_allotment(account) if lane == "included" else None
        return {
            "lane": lane,
            "unit": unit,
            "balance": ledger.balance(account, unit, epoch),
            "allotment": ledger.granted(account, unit, epoch),
            "refresh_in": self.refresh_in() if lane == "included" else None,
        }

    def offer(self) -> dict[str, Any]:
        """The machine-readable way out of a soft-stop."""
        return {"lane": "dedicated", "packages_url": "/one/packages", "refresh_in": self.refresh_in()}


def reservations(packages: Packages, now: float | None = None) -> tuple[dict[str, int], float]:
    """Slots per model kept for live Dedicated packages ("*" for a package that reserves on every model), and
    when that next changes (the first expiry), so the scheduler recomputes it then instead of at a restart."""
    now = time.time() if now is None else now
    reserved: dict[str, int] = {}
    live = auth.live_packages(now)
    for package_id, _ in live:
        package = packages.get(package_id)
        if package is None or not package.reserved:
            continue
        for model in package.models or ["*"]:
            reserved[model] = reserved.get(model, 0) + package.reserved
    return reserved, min((expires for _, expires in live if expires is not None), default=math.inf)


def chain_holdings(settings: Settings) -> ChainHoldings | None:
    """Read $ONE balances from the configured chain; None when no chain is configured."""
    if not (settings.chain_rpc_url and settings.one_token_address):
        return None
    return ChainHoldings(chain.connect(settings.chain_rpc_url), settings.one_token_address)


class ChainHoldings:
    """$ONE balances as they stood when an epoch began.

    All allotments of an epoch read the chain at one snapshot block: the last block whose timestamp is before
    the epoch's start, i.e. the state at the epoch's first instant. Tokens sent to another wallet during the
    epoch therefore count once, and for the receiver from the next epoch on. The block follows from the chain
    alone (a restarted coordinator or another replica finds the same one); it is found by binary search over
    block timestamps and cached per epoch, so it also stays put while the chain has no block of the new epoch
    yet. The RPC must serve state that old (an archive node; the dev chain keeps its history)."""

    def __init__(self, w3, token_address: str):
        self.w3, self.token = w3, chain.token_at(w3, token_address)
        self.snapshots: dict[int, int | None] = {}  # epoch start -> snapshot block (None: the token did not exist yet)

    def __call__(self, account: str, epoch_start: int) -> int:
        block = self.snapshot(epoch_start)
        if block is None:
            return 0
        try:
            return int(self.token.functions.balanceOf(self.w3.to_checksum_address(account)).call(block_identifier=block))
        except Exception as exc:
            raise RuntimeError(f"cannot read $ONE balances at block {block}, where this Included epoch began "
                               f"(the chain RPC must serve historical state, as an archive node does): {exc}") from exc  # fmt: skip

    def snapshot(self, epoch_start: int) -> int | None:
        if epoch_start not in self.snapshots:
            block = last_block_before(self.w3, epoch_start)
            exists = block is not None and self.w3.eth.get_code(self.token.address, block_identifier=block)
            self.snapshots.setdefault(epoch_start, block if exists else None)  # racing threads all keep the first
        return self.snapshots[epoch_start]


def last_block_before(w3, timestamp: int) -> int | None:
    """The number of the last block whose timestamp is before `timestamp` (None when the chain began later).
    While no block has reached `timestamp` yet (a dev chain mines only on transactions), that is the latest."""
    latest = w3.eth.get_block("latest")
    if latest["timestamp"] < timestamp:
        return latest["number"]
    if w3.eth.get_block(0)["timestamp"] >= timestamp:
        return None
    low, high = 0, latest["number"]  # block low is before `timestamp`, block high is not
    while high - low > 1:
        middle = (low + high) // 2
        if w3.eth.get_block(middle)["timestamp"] < timestamp:
            low = middle
        else:
            high = middle
    return low
