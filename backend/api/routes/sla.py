"""SLAs over HTTP: each Dedicated package's targets and what its jobs measured, period by period."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Query

from backend.api.deps import RuntimeDep
from backend.api.routing import ReplyRouter
from backend.api.schemas.responses import SlaReply
from backend.money import sla

router = ReplyRouter(prefix="/one", tags=["sla"])


@router.get("/sla", response_model=SlaReply)
async def sla_figures(rt: RuntimeDep, periods: int = Query(24, ge=1, le=sla.MAX_REPORT_PERIODS)) -> dict[str, Any]:
    """Per package and period (newest first, the running one included): jobs, time to first token p50/p99,
    availability, the targets missed and the credits given (micro-USDC). Timings only: no content."""
    report = await asyncio.to_thread(sla.report, rt.packages, rt.settings, None, periods)
    return {"period_s": rt.settings.sla_period_s, "packages": [sla.as_dict(entry) for entry in report]}
