"""What is on offer: the catalog with live availability, the most a request can cost, the Dedicated packages."""

from __future__ import annotations

import asyncio
from typing import Any

from backend.access import auth
from backend.api.deps import RuntimeDep
from backend.api.errors import ApiError
from backend.api.replies import model_card
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import QuoteBody
from backend.api.schemas.responses import CatalogList, PackageList, QuoteReply
from backend.money.lanes import quote
from backend.serving.usage import prompt_fit

router = ReplyRouter(prefix="/one", tags=["catalog"])


@router.get("/catalog", response_model=CatalogList)
async def catalog(rt: RuntimeDep) -> CatalogList:
    """Every model with its rate (integer micro-units per billing unit), context limit and live availability."""
    return CatalogList(models=[model_card(m, rt.scheduler) for m in rt.catalog.models])


@router.post("/quote", response_model=QuoteReply)
async def quote_request(q: QuoteBody, rt: RuntimeDep) -> dict[str, Any]:
    """The most the next request can cost, before sending it (the Included lane holds this much while it runs)."""
    model = rt.catalog.get(q.model)
    if model is None:
        raise ApiError(404, f"The model `{q.model}` does not exist.", "model_not_found", param="model")
    fit = await asyncio.to_thread(prompt_fit, model, q.body) if q.task in ("chat", "vision", "completion") else {}
    return {"model": model.id, "max_amount": quote(model, q.body, q.task), "unit": "micro-units of the caller's lane", **model.prices(), **fit}


@router.get("/packages", response_model=PackageList)
async def packages(rt: RuntimeDep) -> dict[str, Any]:
    return {"packages": [p.model_dump() for p in rt.packages.packages], "usdc": rt.settings.usdc_token_address,
            "treasury": rt.settings.treasury_address, "chain_id": rt.settings.chain_id, "confirmations": rt.settings.confirmations,
            "dev_wallets": rt.settings.dev_wallets, "dev_operators": [a for a in rt.settings.dev_wallets if auth.is_operator(a, rt.settings.operators)],
            "settlement_fee_bps": rt.settings.settlement_fee_bps, "settlement_epoch_s": rt.settings.settlement_epoch_s}  # fmt: skip
