"""The requests we accept (pydantic), in one module: the OpenAI wire types, then ONE's own /one bodies.

Unknown fields are allowed through the OpenAI types (clients send vendor extras); known ones are checked so
bad input gets a 400 naming the offending `param` instead of failing later on a worker.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.access.clusters import MODEL_ID, WORKER_ID
from backend.access.limits import SAFE_INT
from backend.serving.routing import RoutePreferences


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "image_url", "input_audio", "file"]
    text: str | None = None
    image_url: dict[str, Any] | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDef


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: dict[str, str]


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class _Sampling(BaseModel):
    """Parameters shared by chat and legacy completions."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    route: RoutePreferences | None = Field(None, description="ONE: steer the workers and name fallback models")
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    seed: int | None = Field(default=None, ge=-SAFE_INT, le=SAFE_INT)
    min_tokens: int | None = Field(default=None, ge=0, description="vLLM extra: no end-of-sequence before this many tokens")
    stop: str | list[str] | None = Field(default=None, max_length=4)
    user: str | None = None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(min_length=1)
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    route: RoutePreferences | None = Field(None, description="ONE: steer the workers and name fallback models")
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    route: RoutePreferences | None = Field(None, description="ONE: steer the workers and name fallback models")
    prompt: str = Field(min_length=1, max_length=4000)
    n: int = Field(default=1, ge=1, le=16)
    size: str | None = Field(default=None, pattern=r"^\d{2,4}x\d{2,4}$")
    response_format: Literal["url", "b64_json"] = "url"
    quality: str | None = None
    style: str | None = None
    seed: int | None = Field(default=None, ge=-SAFE_INT, le=SAFE_INT)
    user: str | None = None


# ---- ONE's own requests (/one) ----


class VerifyBody(BaseModel):
    receipts: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
    output: str | None = Field(None, description="the answer text (or embedding vectors as JSON) of a single receipt")
    coordinator: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="pin the coordinator key")


class SiweBody(BaseModel):
    message: str = Field(min_length=1, max_length=4096)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class QuoteBody(BaseModel):
    model: str
    task: str = Field(default="chat", pattern="^(chat|completion|embedding|image|vision)$")
    body: dict[str, Any] = Field(default_factory=dict, description="the request you are about to send")


class PurchaseBody(BaseModel):
    package: str
    tx_hash: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")


class BondBody(BaseModel):
    worker_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    tx_hash: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$", description="the worker key's Ed25519 signature over backend.protocol.claims.bond_consent(tx_hash)")
    payer_sig: str = Field(pattern=r"^(0x)?[0-9a-fA-F]{130}$",
                           description="the paying wallet's EIP-191 signature over backend.protocol.claims.bond_claim(worker_id, tx_hash)")  # fmt: skip


class UnbondBody(BaseModel):
    worker_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$", description="the worker key's signature over backend.protocol.claims.unbond_request(worker_id)")


class DeployBody(BaseModel):
    yaml: str = Field(min_length=1, max_length=20_000)


class NodeBody(BaseModel):
    worker_id: str = Field(pattern=WORKER_ID.pattern, description="the worker's Ed25519 public key (hex)")


class PrivateModelBody(BaseModel):
    """A Cluster's own model: its catalog entry. It runs on the Dedicated lane, on the Cluster's nodes."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=MODEL_ID.pattern)
    name: str = Field("", max_length=200)
    tasks: list[Literal["chat", "completion", "embedding", "image", "vision"]] = Field(min_length=1, max_length=5)
    billing: str = "per_1k_output_tokens"
    rate: int = Field(0, ge=0, le=SAFE_INT, description="micro-USDC per billing unit, what its nodes earn")
    image_rate: int = Field(0, ge=0, le=SAFE_INT)
    context: int = Field(gt=0, le=10_000_000)
