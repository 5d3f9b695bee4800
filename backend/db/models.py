"""Tables. SQLModel classes are the one source for the schema; Alembic migrations follow them.

Nothing here holds prompt or output text: receipts carry digests only.
"""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class ReceiptRecord(SQLModel, table=True):
    """One signed receipt of the hash-linked log, stored as its canonical JSON (receipt + hash + sig)."""

    __tablename__ = "receipt"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    hash: str = Field(index=True, unique=True, max_length=64)
    job: str = Field(index=True, max_length=64)
    account: str = Field(index=True, max_length=64)
    ts: str = Field(max_length=40)
    stored: str = Field(description="JSON of the receipt with its hash and coordinator sig")


class SiweNonce(SQLModel, table=True):
    """A Sign-In with Ethereum nonce: issued by us, good for one sign-in before it expires."""

    __tablename__ = "siwe_nonce"

    nonce: str = Field(primary_key=True, max_length=64)
    issued_at: float
    used_at: float | None = None


class ApiKey(SQLModel, table=True):
    """An API key or sign-in session, stored as the SHA-256 of the secret (shown to its owner once)."""

    __tablename__ = "api_key"

    key_hash: str = Field(primary_key=True, max_length=64)
    account: str = Field(index=True, max_length=64, description="wallet address (checksummed) the key acts for")
    lane: str = Field(max_length=16)
    package: str | None = Field(default=None, max_length=32)
    created_at: float
    expires_at: float | None = None


class LedgerEntry(SQLModel, table=True):
    """One movement of an account's money, in integer micro-units (micro-credits or micro-USDC).

    `key` makes every movement idempotent: "allot:<account>:<epoch>", "hold:<job>",
    "charge:<receipt hash>", "purchase:<tx hash>"; a second insert with the same key fails.
    Holds reserve a request's maximum cost while it runs and are deleted when it settles.
    """

    __tablename__ = "ledger_entry"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=160)
    account: str = Field(index=True, max_length=64)
    unit: str = Field(max_length=8)
    epoch: int | None = Field(default=None, index=True)
    amount: int = Field(sa_type=BigInteger, description="micro-units; positive credits, negative debits")
    kind: str = Field(max_length=16)
    created_at: float


class WorkerRecord(SQLModel, table=True):
    """A worker key the coordinator has seen: where its payouts go (from its hello)."""

    __tablename__ = "worker"

    id: str = Field(primary_key=True, max_length=64, description="Ed25519 public key, hex")
    kind: str = Field(max_length=16)
    payout_address: str = Field(max_length=64)
    first_seen: float
    last_seen: float
    audits_passed: int = 0
    audits_failed: int = 0
    quarantined: bool = False
    bond: int = Field(default=0, sa_type=BigInteger, description="micro-USDC staked and not slashed")
    slashed: int = Field(default=0, sa_type=BigInteger, description="micro-USDC taken by failed audits")
    unbond_at: float | None = Field(default=None, description="when the bond may be paid back (after an unbond request)")
    bond_payer: str | None = Field(default=None, max_length=64, description="the wallet that paid the bond: refunds go only there")
    overclaims: int = Field(default=0, description="jobs whose claimed usage was far above what the coordinator counted")


class Bond(SQLModel, table=True):
    """A USDC transfer to the treasury a worker claimed as stake: each transaction counts once."""

    __tablename__ = "bond"

    tx_hash: str = Field(primary_key=True, max_length=66)
    worker: str = Field(index=True, max_length=64)
    amount: int = Field(sa_type=BigInteger)
    at: float
    payer: str | None = Field(default=None, max_length=64, description="the wallet that sent the USDC and signed the claim")


class ConsumedTx(SQLModel, table=True):
    """A USDC transfer to the treasury that bought something: a package or a bond, never both, never twice.

    Written in the same database transaction as the package credit or the bond, so the primary key on
    the transaction hash decides every race. A purchase remembers the key it issued, so the same wallet
    can get a fresh key for the same package if the first answer was lost (the old key is revoked)."""

    __tablename__ = "consumed_tx"

    tx_hash: str = Field(primary_key=True, max_length=66)
    use: str = Field(max_length=16, description="purchase | bond")
    payer: str = Field(index=True, max_length=64, description="the wallet that sent the transfer (checksummed)")
    amount: int = Field(sa_type=BigInteger, description="micro-USDC moved to the treasury")
    package: str | None = Field(default=None, max_length=32)
    key_hash: str | None = Field(default=None, max_length=64, description="the API key this purchase issued last")
    worker: str | None = Field(default=None, max_length=64, description="the worker a bond stakes")
    at: float


class AuditRecord(SQLModel, table=True):
    """One audit of a receipt (re-scored or re-run): who audited it, what was decided, and its public outcome."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    receipt: str = Field(index=True, max_length=64, description="hash of the audited receipt")
    worker: str = Field(index=True, max_length=64, description="the audited worker")
    auditors: str = Field(description="JSON list of the re-running workers and their audit receipts")
    verdict: str = Field(max_length=16, description="pass | fail | inconclusive")
    culprit: str | None = Field(default=None, max_length=64, description="the worker whose output was the odd one out")
    at: float
    outcome: str | None = Field(default=None, description="the published outcome document (JSON; no content: hashes, keys, scores)")
    outcome_receipt: str | None = Field(default=None, max_length=64, index=True, description="hash of the coordinator's outcome receipt")


class EpochHead(SQLModel, table=True):
    """A closed settlement epoch: the receipts seq first..last, their RFC 9162 Merkle root, the signed
    head and the transaction that anchored the root on chain."""

    __tablename__ = "epoch_head"

    epoch: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    first_seq: int
    last_seq: int
    root: str = Field(max_length=64)
    head: str = Field(description="JSON of the signed head: the head fields + hash + sig")
    anchor_tx: str | None = Field(default=None, max_length=66)


class Payout(SQLModel, table=True):
    """What one worker earned in one epoch, in micro-USDC, and the payment's progress.

    One row per (epoch, worker): a second settlement run finds it and pays nothing twice. The signed
    transaction is stored before it is broadcast, so a crash mid-batch resends the same transaction
    (same nonce) instead of paying again."""

    __tablename__ = "payout"

    epoch: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    worker: str = Field(primary_key=True, max_length=64)
    payout_address: str = Field(max_length=64)
    receipts: int
    gross: int = Field(sa_type=BigInteger, description="micro-USDC: the worker's receipts' charges")
    fee: int = Field(sa_type=BigInteger, description="tau: the network's cut")
    withheld: int = Field(sa_type=BigInteger, description="unverified work of a quarantined worker")
    net: int = Field(sa_type=BigInteger, description="gross - fee - withheld: what is paid")
    status: str = Field(max_length=16, description="due | signed | paid | failed | nothing")
    tx_hash: str | None = Field(default=None, max_length=66)
    raw_tx: str | None = Field(default=None)
    failure: str | None = Field(default=None, max_length=500, description="why the last payment attempt failed (retried next run)")


class BondRefund(SQLModel, table=True):
    """A bond paid back after its unbonding delay: paid like a payout (signed, stored, then sent)."""

    __tablename__ = "bond_refund"

    id: int | None = Field(default=None, primary_key=True)
    worker: str = Field(index=True, max_length=64)
    payout_address: str = Field(max_length=64)
    net: int = Field(sa_type=BigInteger, description="micro-USDC returned")
    status: str = Field(max_length=16, description="due | signed | paid | failed")
    tx_hash: str | None = Field(default=None, max_length=66)
    raw_tx: str | None = Field(default=None)
    at: float
    failure: str | None = Field(default=None, max_length=500, description="why the last payment attempt failed (retried next run)")


class AgentRecord(SQLModel, table=True):
    """A deployed agent: its YAML, whose budget it spends, and when it runs next (kept across restarts)."""

    __tablename__ = "agent"

    id: str = Field(primary_key=True, max_length=140, description="<owner account>:<agent name>")
    name: str = Field(max_length=64)
    account: str = Field(index=True, max_length=64)
    lane: str = Field(max_length=16)
    package: str | None = Field(default=None, max_length=32)
    spec: str = Field(description="the agent's YAML as deployed")
    webhook_secret: str = Field(max_length=64)
    status: str = Field(max_length=16, description="active | paused")
    next_run_at: float | None = None
    created_at: float
    watch_digest: str | None = Field(default=None, max_length=64, description="a monitor's last watched result: its tool receipt's output_digest")


class AgentRun(SQLModel, table=True):
    """One run of an agent: status and its receipt trail (hashes only; results go to the webhook)."""

    __tablename__ = "agent_run"

    id: str = Field(primary_key=True, max_length=32)
    agent: str = Field(index=True, max_length=140)
    trigger: str = Field(max_length=16)
    status: str = Field(max_length=24, description="running | done | failed | budget_exhausted | baseline | unchanged | not_matched")
    steps: int = 0
    spent: int = Field(default=0, sa_type=BigInteger)
    traded: int = Field(default=0, sa_type=BigInteger, description="micro-USDC its trades from the agent's wallet were worth")
    receipts: str = Field(default="[]", description="JSON list of receipt hashes, in order (each the parent of the next)")
    tools: str = Field(default="[]", description="JSON list of the tools called")
    delivered: bool = False
    error: str | None = Field(default=None, max_length=500)
    started_at: float
    finished_at: float | None = None


class AgentSpend(SQLModel, table=True):
    """What an agent's own wallet spent on one UTC day, in micro-USDC, against its file's `wallet.max_per_day`.

    Trades reserve their value here with one compare-and-set before anything is signed (and give it back when
    nothing moved), so concurrent runs cannot both fit under the cap."""

    __tablename__ = "agent_spend"

    agent: str = Field(primary_key=True, max_length=140)
    day: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False}, description="unix time // 86400")
    spent: int = Field(default=0, sa_type=BigInteger)


class SlaJob(SQLModel, table=True):
    """One Dedicated job's outcome and timing, for its package's SLA (no content: times and an error code).

    `period` is the SLA period the job ended in (its end time // ONE_SLA_PERIOD_S), so a closed period gets no
    new rows. Failed jobs count only when the network was at fault (backend/money/sla.py)."""

    __tablename__ = "sla_job"

    id: int | None = Field(default=None, primary_key=True)
    period: int = Field(index=True)
    package: str = Field(index=True, max_length=32)
    account: str = Field(index=True, max_length=64)
    submitted_at: float = Field(description="unix time the job was queued")
    ended_at: float = Field(description="unix time it was served or failed")
    ttft_ms: int | None = Field(default=None, description="submit to first delta, queue wait included (served jobs)")
    served: bool
    code: str | None = Field(default=None, max_length=40, description="the failure's error code (failed jobs)")
    own_node: bool = Field(default=False, description="it ran on one of the holder's own Cluster nodes (not the network's)")


class SlaCredit(SQLModel, table=True):
    """A breached period credited to one account, written in the same transaction as its ledger credit: the primary
    key makes the credit once per (period, account) across replicas and restarts."""

    __tablename__ = "sla_credit"

    period: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    account: str = Field(primary_key=True, max_length=64)
    package: str = Field(index=True, max_length=32)
    breached: str = Field(max_length=80, description="comma-separated targets missed: ttft_p50, ttft_p99, availability")
    jobs: int
    amount: int = Field(sa_type=BigInteger, description="micro-USDC credited")
    at: float


class ClusterNode(SQLModel, table=True):
    """A Cluster's consent to a worker key as one of its dedicated nodes. Consent is per (Cluster, worker): one
    Cluster consenting to a key takes nothing from another; the worker's hello names the one it joins."""

    __tablename__ = "cluster_node"

    worker_id: str = Field(primary_key=True, max_length=64)
    cluster: str = Field(primary_key=True, index=True, max_length=64, description="the Cluster's account")
    added_at: float


class PrivateModel(SQLModel, table=True):
    """A Cluster's own model id (its fine-tune, served by its nodes): only that Cluster's keys may call it."""

    __tablename__ = "private_model"

    id: str = Field(primary_key=True, max_length=64)
    cluster: str = Field(index=True, max_length=64)
    card: str = Field(description="JSON of its catalog entry (tasks, billing, rate, context)")
    created_at: float
