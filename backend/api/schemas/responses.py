"""The replies we send (pydantic), in one module beside the requests: the OpenAI wire types with ONE's extra
top-level `receipt` and `request_salt` (last, as OpenAI's own keys come first), then ONE's own /one replies,
and the error shape every route shares.

They are the routes' `response_model`s, so /openapi.json documents every reply. Every reply model allows
extra fields and routes serialize with `exclude_unset` (backend/api/routing.py), so a reply carries exactly the
keys its builder set: validation never drops a key and never adds a `null` one (receipts are signed: not one
key may change). A field with a default is one a reply may leave out; every other field must be set.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.catalog import Package, SlaTargets

TOKEN_IDS = ("the answer's token ids per choice (EOS included), as the worker committed to them (receipt tokens_digest): "
             "with the receipt's sampling_seed, what `one verify-audit` re-scores with the model's weights")


class Reply(BaseModel):
    """Base of every reply: open to fields a newer coordinator or worker adds."""

    model_config = ConfigDict(extra="allow")


# ---- errors (every route, in the OpenAI shape) ----


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(Reply):
    """`error`, plus top-level extras where a refusal has them (`offer` on a 402, `problems` for an agent file)."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {"4XX": {"model": ErrorResponse}, "5XX": {"model": ErrorResponse}}


# ---- receipts (backend/protocol/receipt.py defines the form) ----


class Charge(BaseModel):
    unit: Literal["credit", "usdc"]
    amount: int


class ReceiptWorker(BaseModel):
    id: str
    sig: str


class StoredReceipt(Reply):
    """A receipt as the log stores and serves it: the signed receipt plus `hash` and the coordinator's `sig`."""

    v: int
    seq: int
    prev: str
    ts: str
    job: str
    kind: str
    lane: str
    account: str
    model: str
    request_digest: str
    output_digest: str
    usage: dict[str, int]
    charge: Charge
    worker: ReceiptWorker
    parent: str | None
    coordinator: str
    logprobs_digest: str | None = Field(None, description="present only when the worker committed to logprobs")
    sampling_seed: str | None = Field(None, description="text jobs: the seed the worker sampled with (ONE sampler v1), committed in its attestation")
    tokens_digest: str | None = Field(None, description="text jobs: sha256 of JCS of the answer's token ids per choice, committed in the attestation")
    hash: str
    sig: str


SALT = "hex; the receipt's request_digest = sha256hex(salt || JCS(request body))"


# ---- OpenAI: models ----


class ModelServe(Reply):
    engine: str
    repo: str
    args: list[str]


class ModelCard(Reply):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    name: str
    tasks: list[str]
    context_length: int
    billing: str
    rate: int = Field(description="integer micro-units per billing unit")
    image_rate: int | None = Field(None, description="per_image_plus_output_tokens: integer micro-units per input image")
    lanes: list[str]
    available: bool
    status: Literal["online", "offline"] = Field(description="online: a worker serves it now; offline models still quote")
    free_slots: int
    serve: ModelServe | None = Field(None, description="how a node worker runs it (`one worker --engine vllm:<id>`)")
    private: bool = Field(False, description="a Cluster's own model: only its keys may call it")


class ModelList(Reply):
    object: Literal["list"]
    data: list[ModelCard]


# ---- OpenAI: chat and legacy completions ----


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(Reply):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(Reply):
    index: int
    message: AssistantMessage
    logprobs: dict[str, Any] | None
    finish_reason: str


class ChatCompletion(Reply):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    receipt: StoredReceipt
    request_salt: str = Field(description=SALT)
    token_ids: list[list[int]] | None = Field(None, description=TOKEN_IDS)


class CompletionChoice(Reply):
    index: int
    text: str
    logprobs: dict[str, Any] | None
    finish_reason: str


class Completion(Reply):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    receipt: StoredReceipt
    request_salt: str = Field(description=SALT)
    token_ids: list[list[int]] | None = Field(None, description=TOKEN_IDS)


class ChatCompletionChunk(Reply):
    """One `data:` event of a stream (chat: object chat.completion.chunk; completions: text_completion). `choices`
    is a worker delta's data as relayed; the last chunk has no choices and carries `receipt`, `request_salt` and
    `token_ids` (and `usage` when stream_options.include_usage)."""

    id: str
    object: Literal["chat.completion.chunk", "text_completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]
    receipt: StoredReceipt | None = None
    request_salt: str | None = Field(None, description=SALT)
    usage: Usage | None = None
    token_ids: list[list[int]] | None = Field(None, description=TOKEN_IDS)


# ---- OpenAI: embeddings and images ----


class Embedding(Reply):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of float32 little-endian with encoding_format=base64")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(Reply):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    receipt: StoredReceipt
    request_salt: str = Field(description=SALT)


class Image(Reply):
    url: str | None = Field(None, description="a data: URL (response_format=url)")
    b64_json: str | None = Field(None, description="base64 PNG (response_format=b64_json)")


class ImagesResponse(Reply):
    created: int
    data: list[Image]
    receipt: StoredReceipt
    request_salt: str = Field(description=SALT)


# ---- ONE: receipts, epochs, payouts ----


class ReceiptPage(Reply):
    receipts: list[StoredReceipt]


class AuditOutcome(Reply):
    """One audit's published outcome: the document (sha256 of its JCS form is the outcome receipt's output_digest)
    and that coordinator-signed `audit` receipt. No content: hashes, worker keys and scores."""

    outcome: dict[str, Any]
    receipt: StoredReceipt


class AuditPage(Reply):
    audits: list[AuditOutcome]


class EpochHead(Reply):
    """A closed settlement epoch's signed head (hash and sig as for receipts), with its anchor transaction."""

    v: int
    epoch: int
    first_seq: int
    last_seq: int
    size: int
    root: str
    prev: str
    closed_at: str
    coordinator: str
    hash: str
    sig: str
    anchor_tx: str | None = None


class Anchor(BaseModel):
    address: str | None
    chain_id: int


class InclusionProof(Reply):
    """RFC 9162 audit path of a receipt in its epoch's Merkle tree, with the signed head and where it is anchored."""

    receipt: str
    epoch: int
    leaf_index: int
    tree_size: int
    audit_path: list[str]
    head: EpochHead
    anchor_tx: str | None
    anchor: Anchor


class ReceiptVerdict(Reply):
    seq: Any
    hash: str
    ok: bool
    checks: dict[str, bool]
    problems: list[str]


class VerifyReport(Reply):
    ok: bool
    receipts: list[ReceiptVerdict]


class EpochList(Reply):
    epochs: list[EpochHead]


class PayoutRow(Reply):
    """One worker's pay for one epoch, in micro-USDC."""

    epoch: int
    worker: str
    payout_address: str
    receipts: int
    gross: int
    fee: int = Field(description="tau: the network's cut")
    withheld: int
    net: int
    status: str
    tx_hash: str | None
    failure: str | None


class PayoutList(Reply):
    payouts: list[PayoutRow]


# ---- ONE: sign-in and account ----


class SigninNonce(Reply):
    nonce: str
    domain: str
    chain_id: int
    expires_in: int
    message: str | None = Field(None, description="the EIP-4361 message to sign (when `address` was given)")


class SessionKey(Reply):
    account: str
    lane: str
    api_key: str = Field(description="shown once")
    expires_in: int


class Me(Reply):
    account: str
    lane: str
    package: str | None


class ModelUsage(Reply):
    model: str
    unit: str
    requests: int
    charged: int
    input_tokens: int
    output_tokens: int
    images: int


class DayUsage(Reply):
    day: str = Field(description="UTC date, YYYY-MM-DD")
    unit: str
    requests: int
    charged: int


class AccountSummary(Reply):
    account: str
    package: str | None
    expires_at: float | None = Field(None, description="when the key this was read with expires (Unix seconds): a package's end")
    lane: str
    unit: str
    balance: int
    allotment: int
    refresh_in: int | None
    usage: list[ModelUsage]
    usage_by_day: list[DayUsage] = Field(default_factory=list)
    operator: bool


# ---- ONE: catalog, quotes, packages ----


class CatalogList(Reply):
    models: list[ModelCard]


class ClusterNodeState(Reply):
    worker_id: str
    online: bool
    busy: int | None = None


class ClusterReply(Reply):
    cluster: str = Field(description="the Cluster's account (lowercase): what `one worker --cluster` names")
    nodes: list[ClusterNodeState]
    models: list[ModelCard]


class QuoteReply(Reply):
    model: str
    max_amount: int
    unit: str
    billing: str
    rate: int
    image_rate: int | None = None
    prompt_tokens: int | None = Field(None, description="the prompt's tokens counted with the model's tokenizer (text tasks)")
    message_tokens: list[int] | None = Field(None, description="each message's share of prompt_tokens, in order")
    context: int | None = Field(None, description="the model's context length in tokens")


class PackageList(Reply):
    packages: list[Package]
    usdc: str | None
    treasury: str | None
    chain_id: int
    confirmations: int
    dev_wallets: list[str]
    dev_operators: list[str] = Field(default_factory=list, description="the dev wallets that operate this coordinator (dev chain only)")
    settlement_fee_bps: int = Field(description="the network's cut tau of what workers billed, basis points (credits count 1:1 as micro-USDC)")
    settlement_epoch_s: int = Field(description="seconds between settlements: workers are paid in USDC at each")


class SlaPeriod(Reply):
    """One SLA period of one package: what its Dedicated jobs measured against the package's targets."""

    period: int = Field(description="unix time // period_s")
    start: int
    end: int
    closed: bool = Field(description="false for the period still running (its figures still move)")
    jobs: int
    served: int
    failed: int = Field(description="failures that were the network's (no capacity, timeout, worker error); 4xx do not count")
    ttft_p50_ms: int | None = Field(description="time to first token from submit (queue wait included), nearest rank")
    ttft_p99_ms: int | None
    availability_bps: int | None = Field(description="served / (served + failed), basis points rounded down")
    breached: list[str] = Field(description="targets missed: ttft_p50, ttft_p99, availability")
    credits: int = Field(description="holders credited for this period")
    credited: int = Field(description="micro-USDC credited for this period")


class PackageSla(Reply):
    package: str
    name: str
    targets: SlaTargets | None
    periods: list[SlaPeriod] = Field(description="periods with jobs, newest first")


class SlaReply(Reply):
    period_s: int
    packages: list[PackageSla]


class PurchaseReply(Reply):
    status: Literal["confirmed"]
    package: str
    api_key: str = Field(description="shown once")
    lane: Literal["dedicated"]
    paid: int


class PaymentPending(Reply):
    """202: the transfer has too few confirmations yet; nothing was recorded, ask again later."""

    status: Literal["pending"]
    confirmations: int
    required: int


# ---- ONE: workers and bonds ----


class WorkerInfo(Reply):
    id: str
    kind: str
    models: list[str]
    slots: int
    claimed_slots: int
    busy: int
    served: int
    failed: int
    latency_ewma_ms: float
    reliability: float
    version: str
    replica: str | None = Field(None, description="the coordinator replica it is connected to (null: a lone coordinator)")


class WorkerList(Reply):
    workers: list[WorkerInfo]
    queue_depth: int


class WorkerStats(Reply):
    """A worker's record: its live state while connected (the WorkerInfo fields), and what its receipts billed."""

    id: str
    online: bool
    kind: str | None = None
    models: list[str] | None = None
    slots: int | None = None
    claimed_slots: int | None = None
    busy: int | None = None
    served: int | None = None
    failed: int | None = None
    latency_ewma_ms: float | None = None
    reliability: float | None = None
    version: str | None = None
    replica: str | None = None
    receipts: int = Field(description="receipts the worker signed")
    billed: dict[str, int] = Field(description="what they charged, per unit")


class BondReply(Reply):
    status: Literal["confirmed"]
    worker_id: str
    added: int
    bond: int


class UnbondReply(Reply):
    worker_id: str
    refund_after: float = Field(description="unix time after which settlement refunds the bond")


class JsonRpcReply(Reply):
    """The dev chain's JSON-RPC answer, as it gave it."""

    jsonrpc: str | None = None
    id: Any = None


# ---- ONE: agents ----


class AgentRunInfo(Reply):
    id: str
    agent: str
    trigger: str
    status: str
    steps: int
    spent: int
    receipts: list[str]
    tools: list[str]
    delivered: bool
    error: str | None
    started_at: float
    finished_at: float | None
    traded: int = Field(0, description="micro-USDC of trades the run's wallet tools sent")


class AgentWatch(Reply):
    tool: str
    when: str = Field(description='"changed", "contains: <text>" or "absent: <text>"')


class AgentWalletCaps(Reply):
    """What the agent's own wallet may spend, micro-USDC."""

    max_per_run: int
    max_per_day: int


class AgentInfo(Reply):
    name: str
    status: str
    lane: str
    package: str | None
    next_run_at: float | None
    last_run: AgentRunInfo | None
    webhook_secret: str | None = Field(None, description="on first deploy only: signs the webhook's posts (shown once)")
    wallet: str = Field(description="the agent's own wallet (derived, never stored): fund it for trading tools")
    warnings: list[str] = Field(default_factory=list, description="on deploy: what may keep its runs waiting (no worker serves the model now...)")
    recent_runs: int = Field(0, description="its latest runs (at most 10) that recent_spent sums")
    recent_spent: int = Field(0, description="what those runs spent, micro-units of its lane (credits on Included, USDC on Dedicated)")
    model: str | None = None
    tools: list[str] = Field(default_factory=list, description="called in this order, then the model writes the report")
    goal: str | None = Field(None, description="the file's own instructions (shown to its owner only)")
    schedule: str | None = Field(None, description='"every N s|m|h|d" or a cron expression (UTC); none: it runs on demand only')
    watch: AgentWatch | None = None
    webhook_host: str | None = Field(None, description="where results are posted")
    max_spend: int | None = Field(None, description="micro-units per run")
    max_steps: int | None = None
    wallet_caps: AgentWalletCaps | None = None


class AgentProblem(Reply):
    line: int
    field: str = Field(description='the YAML path ("budget.lane", "tools[1]"); empty for the whole document')
    message: str


class AgentCheck(Reply):
    ok: bool
    problems: list[AgentProblem]
    warnings: list[str] = Field(description="what deploy would warn about, or why it would be refused now")


class AgentList(Reply):
    agents: list[AgentInfo]


class AgentRunStarted(Reply):
    run: str


class AgentRuns(Reply):
    runs: list[AgentRunInfo]


class DedicatedKey(Reply):
    id: str = Field(description="the SHA-256 of the key (hex): names it for revoking; the secret itself is never stored")
    package: str | None
    created_at: float
    expires_at: float | None
    expired: bool


class DedicatedKeys(Reply):
    account: str
    balance: int = Field(description="micro-USDC left on the account's packages (shared by its keys)")
    unit: Literal["usdc"]
    data: list[DedicatedKey]


class RevokedKey(Reply):
    id: str
    revoked: Literal[True]


class ReplacedKey(RevokedKey):
    api_key: str = Field(description="the new key, shown this once")
    new_id: str
