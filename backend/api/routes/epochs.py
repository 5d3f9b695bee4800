"""Settlement over HTTP: closed epochs (signed heads, anchors) and what each worker was paid."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Query

from backend.access.limits import SAFE_INT
from backend.api.routing import ReplyRouter
from backend.api.schemas.responses import EpochList, PayoutList
from backend.money.settlement import epochs, payouts

router = ReplyRouter(prefix="/one", tags=["settlement"])


@router.get("/epochs", response_model=EpochList)
async def list_epochs(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """Closed settlement epochs, newest first: signed heads and their anchor transactions."""
    return {"epochs": await asyncio.to_thread(epochs, limit)}


@router.get("/payouts", response_model=PayoutList)
async def list_payouts(epoch: int | None = Query(None, ge=0, le=SAFE_INT), limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    """Per-worker payouts (micro-USDC): gross, tau, withheld, net, status and transaction."""
    return {"payouts": await asyncio.to_thread(payouts, epoch, limit)}
