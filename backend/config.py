"""Coordinator settings: one pydantic-settings class, `ONE_` environment prefix, embedded defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONE_", env_file=".env", extra="ignore")

    # Where keys, the SQLite file and dev state live.
    data_dir: Path = Path(".one")
    # Empty -> SQLite file under data_dir; set to postgresql+psycopg://... at scale.
    database_url: str = ""
    # The model catalog (ids, task families, rates, context limits).
    catalog_path: Path = Path(__file__).resolve().parent / "catalog" / "catalog.yaml"
    # Dedicated packages (prices in micro-USDC).
    packages_path: Path = Path(__file__).resolve().parent / "catalog" / "packages.yaml"
    # How long a request waits for a free worker slot before a 503.
    queue_timeout_s: float = 30.0
    # Deadline handed to workers for a whole job.
    job_deadline_s: float = 120.0
    # Jobs waiting for a worker beyond this get 429 with retry-after instead of queueing.
    max_queue_depth: int = 256
    # How many different workers a job may be dispatched to before the first delta.
    max_dispatch_attempts: int = 3
    # The most jobs at once one worker is given, whatever its hello claims.
    max_worker_slots: int = 64

    # Receipts name accounts by HMAC-SHA256 under this secret (hex, >= 16 bytes). Empty: a random one kept in
    # data_dir/account.secret. Replicas that share one receipt log must share it (set it for all of them).
    account_secret: str = ""
    # Dev mode: requests without a ONE key run as one anonymous account. Off in production.
    open_access: bool = True
    # Sign-In with Ethereum: the domain in messages (default: the request's Host) and the chain id.
    siwe_domain: str = ""
    chain_id: int = 31337

    # Chain: RPC URL and token/treasury addresses (make run fills these from the dev chain's deployment).
    chain_rpc_url: str = ""
    one_token_address: str = ""
    usdc_token_address: str = ""
    treasury_address: str = ""
    confirmations: int = 1
    # Dev chain only: wallets the web app's "dev wallet" may sign with through /one/dev/rpc (anvil
    # holds their keys). Empty (the default, and always in production) turns the dev wallet off.
    dev_wallets: list[str] = []
    # Settlement: epoch length, the network's cut tau in basis points, the EpochAnchor contract, and the
    # treasury's private key (hex) that anchors epoch roots and pays workers (make run: a dev account's).
    settlement_epoch_s: int = 21600
    settlement_fee_bps: int = 1000
    anchor_address: str = ""
    treasury_key: str = ""
    # Audits: the share of deterministic jobs re-run on another worker (new or unreliable workers get the
    # higher rate), the share of a bond a failed audit slashes, and how long an unbonding waits.
    audit_rate: float = 0.02
    audit_new_rate: float = 0.3
    # Passed audits before a worker counts as established: only established workers settle a dispute.
    audit_warmup: int = 10
    slash_bps: int = 5000
    unbond_delay_s: int = 86400
    # Agents: the SearxNG-compatible JSON search endpoint of the web_search tool, and Python modules that
    # register more tools with @backend.agents.tools.tool.
    search_url: str = ""
    agent_tool_modules: list[str] = []
    # Wallet addresses allowed into the operator dashboard (after Sign-In with Ethereum).
    operators: list[str] = []
    # Included lane: epoch length in seconds (a UTC day) and tiers as (min whole $ONE held, micro-credits per epoch).
    included_epoch_s: int = 86400
    included_tiers: list[tuple[int, int]] = [(100, 1_000_000), (1_000, 5_000_000), (10_000, 20_000_000)]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'one.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
