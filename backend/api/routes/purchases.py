"""Buying a Dedicated package: prove a USDC payment by its tx hash, get the package's API key."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.responses import JSONResponse

from backend.api.deps import PrincipalDep, RuntimeDep, chain_of
from backend.api.errors import ApiError
from backend.api.replies import payment_pending
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import PurchaseBody
from backend.api.schemas.responses import PaymentPending, PurchaseReply
from backend.money.purchases import purchase

router = ReplyRouter(prefix="/one", tags=["packages"])


@router.post("/packages/purchase", response_model=PurchaseReply, responses={202: {"model": PaymentPending}})
async def buy_package(body: PurchaseBody, principal: PrincipalDep, rt: RuntimeDep) -> dict[str, Any] | JSONResponse:
    """Prove a USDC payment to the treasury by its tx hash; get the package's API key (shown once)."""
    package = rt.packages.get(body.package)
    if package is None:
        raise ApiError(404, f"No package `{body.package}`.", "package_not_found", param="package")
    settings = rt.settings
    result = await asyncio.to_thread(
        purchase, chain_of(rt), account=principal.account, package=package, tx_hash=body.tx_hash,
        usdc=settings.usdc_token_address, treasury=settings.treasury_address, confirmations=settings.confirmations,
    )  # fmt: skip
    rt.refresh_reserved()
    if result.status == "pending":
        return payment_pending(result.confirmations, settings.confirmations)
    return {"status": "confirmed", "package": result.package, "api_key": result.api_key, "lane": "dedicated", "paid": result.amount}
