"""Coordinator settings: one pydantic-settings class, `ONE_` environment prefix, embedded defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONE_", env_file=".env", extra="ignore")

    # "dev" (make run's default) or "production": production refuses to start on unsafe settings (README "Deploying").
    env: Literal["dev", "production"] = "dev"
    # The address users reach the network at (https://one.example); the SIWE domain and URI come from it.
    public_url: str = ""
    # The interface the coordinator listens on: loopback unless told otherwise.
    host: str = "127.0.0.1"
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
    # Sign-In with Ethereum: the domain in messages (default: the host of public_url, else this machine's
    # loopback address; never the request's Host header) and the chain id.
    siwe_domain: str = ""
    chain_id: int = 31337

    # Chain: RPC URL and token/treasury addresses (make run fills these from the dev chain's deployment).
    chain_rpc_url: str = ""
    one_token_address: str = ""
    usdc_token_address: str = ""
    treasury_address: str = ""
    confirmations: int = 1
    # Production refuses fewer confirmations than this for purchases and bonds.
    production_min_confirmations: int = 3
    # Dev chain only: wallets the web app's "dev wallet" may sign with through /one/dev/rpc (anvil
    # holds their keys). Empty (the default, and always in production) turns the dev wallet off.
    dev_wallets: list[str] = []
    # Settlement: epoch length, the network's cut tau in basis points, the EpochAnchor contract, and the
    # treasury's private key (hex) that anchors epoch roots and pays workers (make run: a dev account's).
    settlement_epoch_s: int = 21600
    settlement_fee_bps: int = 1000
    anchor_address: str = ""
    treasury_key: str = ""
    # The treasury key read from a file instead (production: required, and readable by its owner only).
    treasury_key_file: Path | None = None
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
    # Agents: the shortest schedule interval, and per-account caps on deployed agents and runs at once.
    agent_min_interval_s: float = 60.0
    max_agents_per_account: int = 20
    max_agent_runs_per_account: int = 2

    # Limits at the door (checked before any work starts): request body bytes, chat messages, tools, inputs
    # (embedding inputs), n x max_tokens, decoded image bytes, and the bytes a worker may stream for one job.
    max_request_bytes: int = 8 * 1024 * 1024
    max_messages: int = 256
    max_tools: int = 64
    max_inputs: int = 256
    max_output_tokens: int = 32_768
    max_image_bytes: int = 5 * 1024 * 1024
    max_job_bytes: int = 16 * 1024 * 1024
    # Requests per minute: per key, per account (all its keys), and per client address without a key.
    rate_limit_per_key: int = 600
    rate_limit_per_account: int = 1200
    rate_limit_open: int = 120
    # Sign-in nonces per client address per minute (unused nonces expire and are pruned).
    nonce_rate_per_minute: int = 30
    # Receipts one /one/verify call may check.
    verify_max_receipts: int = 1000

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
