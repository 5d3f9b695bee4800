"""The coordinator's singletons, built on first use inside whichever process serves the app."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property, lru_cache

from nacl.signing import SigningKey
from web3 import Web3

from backend.agents.runner import AgentRunner
from backend.catalog import Catalog, Packages, load_catalog, load_packages
from backend.chain import connect
from backend.config import Settings, get_settings
from backend.db import migrate
from backend.money.lanes import Lanes, chain_holdings, reservations
from backend.money.sla import SlaMeter
from backend.protocol.signing import load_or_create_key, load_or_create_secret, public_hex
from backend.scheduler import Scheduler
from backend.serving.inference import InferenceService
from backend.trust.audits import Auditor
from backend.trust.receipts import ReceiptLog


@dataclass
class Runtime:
    settings: Settings
    key: SigningKey
    catalog: Catalog
    scheduler: Scheduler
    receipts: ReceiptLog
    inference: InferenceService
    packages: Packages

    @property
    def coordinator_pubkey(self) -> str:
        return public_hex(self.key)

    def refresh_reserved(self) -> None:
        """Recompute Dedicated reservations now (after a purchase); the scheduler also does when one expires."""
        self.scheduler.refresh_reservations()

    @cached_property
    def agents(self) -> AgentRunner:
        """The agent runner (built on first use: it loads the tool plug-in modules)."""
        return AgentRunner(self)

    def web3(self) -> Web3 | None:
        """The configured chain (None without one)."""
        return connect(self.settings.chain_rpc_url) if self.settings.chain_rpc_url else None


def _log_to_stderr() -> None:
    """The coordinator's own log lines (never prompt or output text) next to Reflex's."""
    logger = logging.getLogger("one")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@lru_cache
def get_runtime() -> Runtime:
    settings = get_settings()
    settings.refuse_if_unsafe()  # production: never serve on unsafe settings (rxconfig.py stops `reflex run` the same way)
    _log_to_stderr()
    migrate()
    key = load_or_create_key(settings.data_dir / "coordinator.key")
    catalog = load_catalog(*settings.catalog_files)
    scheduler = Scheduler(max_attempts=settings.max_dispatch_attempts, max_slots=settings.max_worker_slots, max_job_bytes=settings.max_job_bytes)
    secret = bytes.fromhex(settings.account_secret) if settings.account_secret else load_or_create_secret(settings.data_dir / "account.secret")
    receipts = ReceiptLog(key, secret)
    lanes = Lanes(settings, chain_holdings(settings))
    inference = InferenceService(settings, catalog, scheduler, receipts, lanes)
    inference.auditor = Auditor(settings, scheduler, inference)
    inference.sla = SlaMeter(settings)
    runtime = Runtime(settings, key, catalog, scheduler, receipts, inference, load_packages(settings.packages_path))
    if settings.broker_url:  # one of several replicas: dispatch across them (backend/scheduler/broker.py)
        from backend.money.ledger import release
        from backend.scheduler.broker import Broker

        scheduler.broker = Broker(settings.broker_url, settings.replica_name, scheduler, release_hold=release)
    scheduler.reservations = lambda: reservations(runtime.packages)
    runtime.refresh_reserved()
    return runtime
