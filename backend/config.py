"""Coordinator settings: one pydantic-settings class, `ONE_` environment prefix, embedded defaults."""

from __future__ import annotations

import os
import socket
import stat
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal
from urllib.parse import urlsplit

from eth_account import Account
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.protocol.jobs import MAX_IMAGE_BYTES

# What `one up` generated (dev chain, its addresses, key files, port), under the data dir: every `one` command and the
# coordinator read it, so `one settle` beside `make run` sees the same chain. Real environment variables still win.
NETWORK_ENV = "network.env"
DEV_CHAIN_ID = 31337  # anvil's (and hardhat's): never a chain that holds real money
DEV_CATALOG = Path(__file__).resolve().parent / "catalog" / "dev.yaml"  # the tiny CPU models make run serves


class UnsafeSettings(RuntimeError):
    """Production mode refused the settings; the message lists every problem at once."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONE_", env_file=".env", extra="ignore")

    # "dev" (make run's default) or "production": production refuses to start on unsafe settings (README "Deploying").
    env: Literal["dev", "production"] = "dev"
    # The address users reach the network at (https://one.example); the SIWE domain and URI come from it.
    public_url: str = ""
    # The interface the coordinator listens on: loopback unless told otherwise.
    host: str = "127.0.0.1"
    # The port of the coordinator, API and UI (`one up --port` writes it to network.env).
    port: int = 3000
    # Where keys, the SQLite file and dev state live.
    data_dir: Path = Path(".one")
    # Empty -> SQLite file under data_dir; set to postgresql+psycopg://... at scale.
    database_url: str = ""
    # The model catalog (ids, task families, rates, context limits).
    catalog_path: Path = Path(__file__).resolve().parent / "catalog" / "catalog.yaml"
    # Catalog files laid over it (same-id entries replaced). Unset: the tiny dev models (catalog/dev.yaml) in dev
    # mode, nothing in production.
    catalog_overlays: list[Path] | None = None
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

    # Several coordinator replicas, one network (README "Running several coordinators"): the Redis URL of the broker
    # that queues jobs network-wide and relays their events between replicas (empty: this coordinator is the whole
    # network), and this replica's name in /one/workers (default: host:port).
    broker_url: str = ""
    replica: str = ""
    # Proxies in front of the coordinator (CIDRs; the front door of `make run-scale`: 127.0.0.1/32). A request from
    # one of them is counted against the address its X-Forwarded-For names, not the proxy's.
    trusted_proxies: list[str] = []

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
    # The $ONE/USDC pool trading agents read prices from and swap on (backend/chain/contracts/Pool.vy). Empty: the
    # trading tools say there is none (production may leave it empty).
    pool_address: str = ""
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
    # Audits: the share of text jobs re-scored (or, without token ids, deterministic jobs re-run) on another worker
    # (new or unreliable workers get the higher rate), the share of a bond a failed audit slashes, and how long an
    # unbonding waits.
    audit_rate: float = 0.02
    audit_new_rate: float = 0.3
    # Passed audits before a worker counts as established: only established workers settle a dispute.
    audit_warmup: int = 10
    # Re-scoring audits (backend.protocol.sampler.AuditRule, published with every outcome): a token's margin up to the
    # tolerance is numerics; an answer fails when an honest worker, missing tokens at the honest rate (other GPUs'
    # kernels flip near-ties: Token-DiFR measured < 2%), would miss that many with odds below false_fail_odds.
    audit_margin_tolerance: float = Field(0.01, ge=0, le=10)
    audit_honest_miss_rate: float = Field(0.02, gt=0, lt=1)
    audit_false_fail_odds: float = Field(1e-6, gt=0, le=0.01)
    slash_bps: int = 5000
    unbond_delay_s: int = 86400
    # Agents: the SearxNG-compatible JSON search endpoint of the web_search tool, and Python modules that
    # register more tools with @backend.agents.tools.tool.
    search_url: str = ""
    agent_tool_modules: list[str] = []
    # Dev and test networks only (production refuses any): private networks (CIDRs such as "127.0.0.1/32") that
    # agents' http_get and webhooks and workers' image_url fetches may reach besides public addresses.
    fetch_allow_networks: list[str] = []
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
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_job_bytes: int = 16 * 1024 * 1024
    # Requests per minute: per key, per account (all its keys), and per client address without a key.
    rate_limit_per_key: int = 600
    rate_limit_per_account: int = 1200
    rate_limit_open: int = 120
    # Sign-in nonces per client address per minute (unused nonces expire and are pruned).
    nonce_rate_per_minute: int = 30
    # Receipts one /one/verify call may check.
    verify_max_receipts: int = 1000

    # SLAs (backend/money/sla.py): the measuring period, how long after a period ends its credits are judged (jobs
    # still being recorded by other replicas), and how many closed periods back the judge looks for unjudged ones.
    sla_period_s: int = 3600
    sla_grace_s: float = 5.0
    sla_lookback_periods: int = 48
    # Periods of SLA job rows kept (at least the lookback and what /one/sla shows); older rows are deleted.
    sla_retention_periods: int = 720

    # Wallet addresses allowed into the operator dashboard (after Sign-In with Ethereum).
    operators: list[str] = []
    # Included lane: epoch length in seconds (a UTC day) and tiers as (min whole $ONE held, micro-credits per epoch).
    included_epoch_s: int = 86400
    included_tiers: list[tuple[int, int]] = [(100, 1_000_000), (1_000, 5_000_000), (10_000, 20_000_000)]

    @property
    def catalog_files(self) -> tuple[Path, ...]:
        """The catalog and its overlays, in the order they are laid (`load_catalog(*settings.catalog_files)`)."""
        if self.catalog_overlays is not None:
            overlays = self.catalog_overlays
        else:
            overlays = [DEV_CATALOG] if self.env == "dev" else []
        return (self.catalog_path, *overlays)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'one.db').resolve()}"

    @property
    def replica_name(self) -> str:
        return self.replica or f"{socket.gethostname()}:{self.port}"

    @property
    def local_url(self) -> str:
        """The coordinator as seen from this machine: what `one` commands beside it talk to."""
        return local_url(self.host, self.port)

    @property
    def url(self) -> str:
        """Where users reach the network: public_url, else (dev) the coordinator's own address."""
        return (self.public_url or self.local_url).rstrip("/")

    @property
    def signin_domain(self) -> str:
        """The domain SIWE messages must name: configured, never taken from a request (a phishing site's Host)."""
        return self.siwe_domain or urlsplit(self.url).netloc

    def treasury_private_key(self) -> str:
        """The treasury's hex key: from treasury_key_file when set (production's only way), else treasury_key."""
        return self.treasury_key_file.read_text().strip() if self.treasury_key_file else self.treasury_key

    def production_problems(self) -> list[str]:
        """Every setting production mode refuses (README "Deploying"), all at once so one start lists them all."""
        problems = []
        if self.open_access:
            problems.append("ONE_OPEN_ACCESS is on: requests without a key would run unmetered (set ONE_OPEN_ACCESS=false)")
        if self.dev_wallets:
            problems.append("ONE_DEV_WALLETS is set: it opens the dev wallet's RPC (/one/dev/rpc) to anyone; leave it empty")
        if self.fetch_allow_networks:
            problems.append("ONE_FETCH_ALLOW_NETWORKS is set: agents and workers could fetch from private networks; leave it empty")
        if not self.chain_rpc_url:
            problems.append("ONE_CHAIN_RPC_URL is not set: holdings, purchases and payouts need the chain")
        if self.chain_id == DEV_CHAIN_ID:
            problems.append(f"ONE_CHAIN_ID is {DEV_CHAIN_ID}, the dev chain's (anvil): its keys are public")
        missing = [f"ONE_{name.upper()}" for name in ("one_token_address", "usdc_token_address", "treasury_address", "anchor_address")
                   if not getattr(self, name)]  # fmt: skip
        if missing:
            problems.append(f"{', '.join(missing)} not set")
        if self.confirmations < self.production_min_confirmations:
            problems.append(f"ONE_CONFIRMATIONS is {self.confirmations}: production needs at least {self.production_min_confirmations}")
        public = urlsplit(self.public_url)
        if public.scheme != "https" or not public.hostname:
            problems.append(f"ONE_PUBLIC_URL {self.public_url!r} is not an https:// address: the SIWE domain and URI come from it")
        elif self.siwe_domain and self.siwe_domain != public.netloc:
            problems.append(f"ONE_SIWE_DOMAIN {self.siwe_domain!r} is not the host of ONE_PUBLIC_URL ({public.netloc})")
        if self.treasury_key:
            problems.append("ONE_TREASURY_KEY is set inline: put the key in a file only you can read and name it in ONE_TREASURY_KEY_FILE")
        if not self.treasury_key_file:
            problems.append("ONE_TREASURY_KEY_FILE is not set")
        elif problem := owner_only_problem(self.treasury_key_file, "ONE_TREASURY_KEY_FILE", required=True):
            problems.append(problem)
        elif self.treasury_address and not _is_key_of(self.treasury_private_key, self.treasury_address):
            problems.append(f"ONE_TREASURY_KEY_FILE {self.treasury_key_file} does not hold the key of ONE_TREASURY_ADDRESS")
        if problem := owner_only_problem(self.data_dir / "coordinator.key", "the coordinator key", required=False):
            problems.append(problem)
        return problems

    def refuse_if_unsafe(self) -> None:
        """Production mode's gate, where the coordinator starts: raise UnsafeSettings naming every problem."""
        if self.env == "production" and (problems := self.production_problems()):
            raise UnsafeSettings("ONE_ENV=production refuses to start:\n" + "\n".join(f"  - {p}" for p in problems)
                                 + '\n(README: "Deploying"; `one check-config` lists these again)')  # fmt: skip


def local_url(host: str, port: int) -> str:
    """How a process on this machine reaches a coordinator listening on host:port (a wildcard: by loopback)."""
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def owner_only_problem(path: Path, what: str, required: bool) -> str | None:
    """Why `path` is not a file that only this user can read (None when it is, or is absent and not `required`)."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return f"{what} {path} does not exist" if required else None
    if not stat.S_ISREG(st.st_mode):
        return f"{what} {path} is not a file"
    if st.st_uid != os.getuid():
        return f"{what} {path} belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}: others can read it (chmod 600)"
    return None


def _is_key_of(read_key: Callable[[], str], address: str) -> bool:

    try:
        return Account.from_key(read_key()).address.lower() == address.lower()
    except Exception:  # unreadable, or not a key at all
        return False


def network_env_path(data_dir: Path) -> Path:
    return Path(data_dir) / NETWORK_ENV


@lru_cache
def get_settings() -> Settings:
    """The environment (wins), then data_dir/network.env (what `one up` generated), then .env."""
    return Settings(_env_file=(".env", network_env_path(Settings().data_dir)))
