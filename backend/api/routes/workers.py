"""The worker pool over HTTP: live workers, one worker's record, and bonds (stake, unbond)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.responses import JSONResponse

from backend.api.deps import RuntimeDep, chain_of
from backend.api.replies import payment_pending
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import BondBody, UnbondBody
from backend.api.schemas.responses import BondReply, PaymentPending, UnbondReply, WorkerList, WorkerStats
from backend.money.bonds import claim_bond, request_unbond

router = ReplyRouter(prefix="/one", tags=["workers"])


@router.get("/workers/{worker_id}", response_model=WorkerStats)
async def worker_stats(worker_id: str, rt: RuntimeDep) -> dict[str, Any]:
    """One worker's record: live state while connected, and what its receipts billed (its earnings basis)."""
    await rt.scheduler.ready()
    live = next((w for w in rt.scheduler.listed() if w["id"] == worker_id), None)
    billed = await asyncio.to_thread(rt.receipts.billed_by_worker, worker_id)
    return {"id": worker_id, "online": live is not None, **(live or {}), **billed}


@router.get("/workers", response_model=WorkerList)
async def list_workers(rt: RuntimeDep) -> dict[str, Any]:
    """Every worker of the network, whichever replica it is connected to (`replica`: null for a lone coordinator)."""
    await rt.scheduler.ready()
    return {"workers": rt.scheduler.listed(), "queue_depth": rt.scheduler.queue_depth()}


@router.post("/bonds", response_model=BondReply, responses={202: {"model": PaymentPending}})
async def post_bond(body: BondBody, rt: RuntimeDep) -> dict[str, Any] | JSONResponse:
    """Stake: a USDC transfer to the treasury, claimed by the wallet that sent it (payer_sig) for this worker
    (sig). Refunds go back to that wallet only."""
    settings = rt.settings
    result = await asyncio.to_thread(
        claim_bond, chain_of(rt), worker_id=body.worker_id, tx_hash=body.tx_hash, sig=body.sig, payer_sig=body.payer_sig,
        usdc=settings.usdc_token_address, treasury=settings.treasury_address, confirmations=settings.confirmations,
    )  # fmt: skip
    if result.status == "pending":
        return payment_pending(result.confirmations, settings.confirmations)
    return {"status": "confirmed", "worker_id": body.worker_id, "added": result.added, "bond": result.bond}


@router.post("/bonds/unbond", response_model=UnbondReply)
async def post_unbond(body: UnbondBody, rt: RuntimeDep) -> dict[str, Any]:
    """Ask for the bond back: settlement refunds it after ONE_UNBOND_DELAY_S, if no audit slashes it first."""
    at = await asyncio.to_thread(request_unbond, body.worker_id, body.sig, rt.settings.unbond_delay_s)
    return {"worker_id": body.worker_id, "refund_after": at}
