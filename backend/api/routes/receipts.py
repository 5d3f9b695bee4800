"""The receipt log over HTTP: a receipt, its inclusion proof, a page of the log, audit outcomes, and OneVerify as an API."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Query

from backend.access.limits import SAFE_INT
from backend.api.deps import RuntimeDep
from backend.api.errors import ApiError
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import VerifyBody
from backend.api.schemas.responses import AuditPage, InclusionProof, ReceiptPage, StoredReceipt, VerifyReport
from backend.money.settlement import inclusion_proof
from backend.trust.audits import published_outcomes
from backend.trust.verify import verify_with_output

router = ReplyRouter(prefix="/one", tags=["receipts"])


@router.get("/receipts/{receipt_hash}", response_model=StoredReceipt)
async def get_receipt(receipt_hash: str, rt: RuntimeDep) -> dict[str, Any]:
    stored = rt.receipts.get(receipt_hash.lower())
    if stored is None:
        raise ApiError(404, f"No receipt with hash {receipt_hash}.", "receipt_not_found", param="hash")
    return stored


@router.get("/receipts/{receipt_hash}/proof", response_model=InclusionProof)
async def receipt_proof(receipt_hash: str, rt: RuntimeDep) -> dict[str, Any]:
    """RFC 9162 inclusion proof of a receipt in its settlement epoch, with the signed head and anchor tx."""
    proof = await asyncio.to_thread(inclusion_proof, receipt_hash.lower())
    if proof is None:
        raise ApiError(404, f"Receipt {receipt_hash} is unknown or its epoch is not closed yet.", "proof_not_available", param="hash")
    return {**proof, "anchor": {"address": rt.settings.anchor_address, "chain_id": rt.settings.chain_id}}


@router.post("/verify", response_model=VerifyReport)
async def verify_api(body: VerifyBody, rt: RuntimeDep) -> dict[str, Any]:
    """OneVerify as an API: the checks of `one verify` (and the output against its digest). Nothing is stored.
    Signature checks are CPU work: capped in count and run off the event loop."""
    cap = rt.settings.verify_max_receipts
    if len(body.receipts) > cap:
        raise ApiError(400, f"At most {cap} receipts per call; page through the log.", "limit_exceeded", param="receipts")
    return (await asyncio.to_thread(verify_with_output, body.receipts, body.coordinator, body.output)).as_json()


@router.get("/receipts", response_model=ReceiptPage)
async def list_receipts(rt: RuntimeDep, from_seq: int = Query(0, ge=0, le=SAFE_INT), limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """The log in seq order, for `one verify <url>` and mirrors."""
    return {"receipts": rt.receipts.chain(from_seq, limit)}


@router.get("/audits", response_model=AuditPage)
async def list_audits(worker: str | None = Query(None, pattern="^[0-9a-f]{64}$"), receipt: str | None = Query(None, pattern="^[0-9a-f]{64}$"),
                      limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:  # fmt: skip
    """Audit outcomes, newest first (of one audited worker, or of one audited receipt): with the receipts log, what anyone
    needs to recompute reliability and slashing."""
    return {"audits": await asyncio.to_thread(published_outcomes, worker, receipt, limit)}
