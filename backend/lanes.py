"""Lanes: who pays for a request and how much may it cost before it runs.

Included lane: every epoch (a UTC day by default) a signed-in wallet's $ONE holdings are read on
chain at its first request; the tier it reaches sets its allotment of micro-credits for that epoch
(no rollover). A request holds its maximum cost (the quote) while it runs; the receipt's exact charge
replaces the hold. When the quote does not fit: HTTP 402 with a machine-readable Dedicated offer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from backend import auth, ledger
from backend.catalog import CatalogModel, Packages
from backend.config import Settings

CREDIT = "credit"


@dataclass
class Hold:
    """What `settle=` needs when the receipt is written, and the bound its charge must respect."""

    account: str
    epoch: int | None
    amount: int


def quote(model: CatalogModel, body: dict[str, Any], task: str) -> int:
    """The most a request can cost, in integer micro-units, from its own limits and the catalog rate."""
    n = int(body.get("n") or 1)
    if task == "completion" and isinstance(body.get("prompt"), list):
        n *= max(len(body["prompt"]), 1)
    if model.billing == "per_image":
        return n * model.rate
    if model.billing == "per_1k_input_tokens":
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        return model.charge({"input_tokens": count * model.context})
    max_out = int(body.get("max_completion_tokens") or body.get("max_tokens") or model.context)
    usage = {"output_tokens": n * max_out, "images": n if model.billing == "per_image_plus_output_tokens" else 0}
    return model.charge(usage)


class Lanes:
    def __init__(self, settings: Settings, holdings: Callable[[str], int] | None):
        self.settings = settings
        self.holdings = holdings  # $ONE base units (18 decimals) held by an address, read on chain
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
            held = self.holdings(account) if self.holdings else 0
            ledger.grant(key, account, CREDIT, self.allotment_for(held), "allotment", epoch)
        return epoch

    def open_hold(self, account: str, lane: str, amount: int, job_id: str) -> Hold:
        """Reserve a request's quote or raise InsufficientBalance (the caller answers 402)."""
        epoch = self.ensure_allotment(account) if lane == "included" else None
        ledger.hold(job_id, account, CREDIT if lane == "included" else "usdc", amount, epoch)
        return Hold(account, epoch, amount)

    def headers(self, account: str, lane: str) -> dict[str, str]:
        unit = CREDIT if lane == "included" else "usdc"
        epoch = self.epoch() if lane == "included" else None
        return {
            "x-one-lane": lane,
            "x-one-balance": str(ledger.balance(account, unit, epoch)),
            "x-one-balance-unit": unit,
            "x-one-refresh-in": str(self.refresh_in() if lane == "included" else 0),
        }

    def summary(self, account: str, lane: str) -> dict[str, Any]:
        """Balance, what it was topped up to and when it refreshes: the web app's balance view."""
        unit = CREDIT if lane == "included" else "usdc"
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


def chain_holdings(settings: Settings) -> Callable[[str], int] | None:
    """Read $ONE balances from the configured chain; None when no chain is configured."""
    if not (settings.chain_rpc_url and settings.one_token_address):
        return None
    from web3 import Web3

    from backend.chain import connect, token_at

    token = token_at(connect(settings.chain_rpc_url), settings.one_token_address)
    return lambda account: int(token.functions.balanceOf(Web3.to_checksum_address(account)).call())
