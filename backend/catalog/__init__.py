"""The model catalog: ids, task families, billing units and integer rates, read from a YAML file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

BILLING_UNITS = ("per_1k_output_tokens", "per_image_plus_output_tokens", "per_image", "per_1k_input_tokens")
# The node worker's engine kinds (gpu_worker/engines/registry.py) a catalog entry may name in `serve`.
ENGINES = ("vllm", "transformers", "sentence-transformers", "diffusers", "openai")


class Serve(BaseModel):
    """How a node worker runs a model: `one worker --engine vllm:chat-large` needs nothing more than this."""

    model_config = ConfigDict(extra="forbid")
    engine: str = Field(pattern="^(" + "|".join(ENGINES) + ")$")
    repo: str = Field(min_length=1, description="the model repo (Hugging Face id) or path the engine loads")
    args: list[str] = Field(default_factory=list, description="extra engine arguments (vllm serve flags)")


class CatalogModel(BaseModel):
    id: str
    name: str = ""
    tasks: list[str]
    billing: str = Field(pattern="^(" + "|".join(BILLING_UNITS) + ")$")
    rate: int = Field(ge=0, description="micro-credits per billing unit (per 1K tokens, or per image for per_image)")
    image_rate: int = Field(0, ge=0, description="per_image_plus_output_tokens: micro-credits per input image")
    context: int = Field(gt=0)
    lanes: list[str] = ["included", "dedicated"]
    # Where the coordinator gets the model's tokenizer to count relayed tokens (backend/serving/usage.py):
    # builtin:tiny, package:<module>/<file>, file:<path> or hf:<repo>. None: count UTF-8 bytes.
    tokenizer: str | None = None
    serve: Serve | None = None
    owner: str | None = Field(None, description="a Cluster's private model: its account; only its nodes serve it")

    @model_validator(mode="after")
    def _images_are_priced(self) -> CatalogModel:
        if self.billing == "per_image_plus_output_tokens" and self.image_rate == 0:
            raise ValueError(f"{self.id}: per_image_plus_output_tokens needs an image_rate (micro-credits per input image)")
        return self

    @property
    def private(self) -> bool:
        """A Cluster's own model: callable by its keys, served by its nodes only."""
        return self.owner is not None

    def prices(self) -> dict[str, str | int]:
        """The billing unit and rates as replies show them (/v1/models, quotes): `image_rate` only where it is used."""
        return {"billing": self.billing, "rate": self.rate, **({"image_rate": self.image_rate} if self.image_rate else {})}

    def charge(self, usage: dict[str, int]) -> int:
        """Integer micro-units for a receipt's usage; rounds up so a partial unit is never free."""
        out_tokens = usage.get("output_tokens", 0)
        if self.billing == "per_1k_output_tokens":
            return _ceil_div(out_tokens * self.rate, 1000)
        if self.billing == "per_1k_input_tokens":
            return _ceil_div(usage.get("input_tokens", 0) * self.rate, 1000)
        if self.billing == "per_image":
            return usage.get("images", 0) * self.rate
        return usage.get("images", 0) * self.image_rate + _ceil_div(out_tokens * self.rate, 1000)  # vision: images read


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Catalog(BaseModel):
    models: list[CatalogModel]

    def get(self, model_id: str) -> CatalogModel | None:
        return next((m for m in self.models if m.id == model_id), None)


@lru_cache
def load_catalog(path: Path, *overlays: Path) -> Catalog:
    """The catalog file, then each overlay on top (an overlay entry replaces the entry of the same id)."""
    models: dict[str, CatalogModel] = {}
    for source in (path, *overlays):
        for model in Catalog.model_validate(yaml.safe_load(Path(source).read_text())).models:
            models[model.id] = model
    return Catalog(models=list(models.values()))


class SlaTargets(BaseModel):
    """What a package promises, measured per period by backend/money/sla.py (integers: ms and basis points)."""

    ttft_p50_ms: int | None = Field(None, gt=0, description="median time to first token, queue wait included")
    ttft_p99_ms: int | None = Field(None, gt=0, description="99th percentile time to first token")
    availability_bps: int | None = Field(None, ge=0, le=10_000, description="served / (served + the network's failures)")
    credit_bps: int = Field(0, ge=0, le=10_000, description="share of the price credited to a holder per breached period")
    concurrency: int | None = Field(None, ge=1, description="a holder's jobs in flight the targets cover (default: reserved, >= 1)")


class Package(BaseModel):
    """A Dedicated package: bought with USDC, it buys priority, reserved concurrency and a usage balance."""

    id: str
    name: str
    price: int = Field(ge=0, description="micro-USDC")
    duration_s: int = Field(gt=0)
    reserved: int = Field(ge=0, description="concurrent jobs kept for this package's holders")
    priority: int = Field(ge=0, description="lower runs first; the Included lane is 100")
    balance: int = Field(ge=0, description="micro-USDC of usage included")
    models: list[str] | None = Field(None, description="models its reserved slots are kept on (None: every model)")
    nodes: bool = Field(False, description="Cluster: its holders get dedicated nodes (workers that opt in with their consent) "
                        "and may register private models")
    sla: SlaTargets | None = Field(None, description="targets measured per period; a breach may credit the holder")


class Packages(BaseModel):
    packages: list[Package]

    def get(self, package_id: str) -> Package | None:
        return next((p for p in self.packages if p.id == package_id), None)


@lru_cache
def load_packages(path: Path) -> Packages:
    return Packages.model_validate(yaml.safe_load(Path(path).read_text()))
