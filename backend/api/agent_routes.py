"""Agents over HTTP: deploy a YAML file, list, run now, pause/resume, read runs. A bearer key (SIWE session or
Dedicated package) owns its agents and pays for them. Every refusal is in the OpenAI error shape."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from backend.api.errors import error_body, error_response
from backend.api.one_routes import _principal
from backend.serving.inference import InferenceError
from backend.runtime import get_runtime

router = APIRouter(prefix="/one/agents")


class DeployBody(BaseModel):
    yaml: str = Field(min_length=1, max_length=20_000)


def _public(record) -> dict[str, Any]:
    from backend.agents.runner import runs_of

    runs = runs_of(record.id, 1)
    return {"name": record.name, "status": record.status, "lane": record.lane, "package": record.package,
            "next_run_at": record.next_run_at, "last_run": runs[0] if runs else None}  # fmt: skip


def _record(request: Request, name: str):
    from backend.agents.runner import agent_id_of
    from backend.db import session
    from backend.db.models import AgentRecord

    principal = _principal(request)
    with session() as db:
        record = db.get(AgentRecord, agent_id_of(principal.account, name))
    if record is None:
        raise InferenceError(404, f"No agent `{name}` for this account.", "agent_not_found", param="name")
    return record


@router.post("", response_model=None)
async def deploy(body: DeployBody, request: Request):
    """Validate and store an agent; 400 lists every problem with its line and field (402: the account cannot pay,
    403: it has its most agents)."""
    from fastapi.responses import JSONResponse

    from backend.agents.spec import AgentSpecError

    principal = _principal(request)
    try:
        record, secret = await asyncio.to_thread(get_runtime().agents.deploy, body.yaml, principal.account, principal.lane, principal.package)
    except AgentSpecError as exc:
        problems = [{"line": p.line, "field": p.field, "message": p.message} for p in exc.problems]
        return JSONResponse({**error_body(str(exc), "invalid_request_error", problems[0]["field"] or None, "invalid_agent"), "problems": problems}, 400)
    return {**_public(record), "webhook_secret": secret}


@router.get("")
async def list_agents(request: Request) -> dict[str, Any]:
    from sqlmodel import select

    from backend.db import session
    from backend.db.models import AgentRecord

    principal = _principal(request)
    with session() as db:
        records = db.exec(select(AgentRecord).where(AgentRecord.account == principal.account)).all()
    return {"agents": [_public(r) for r in records]}


@router.post("/{name}/run")
async def run_now(name: str, request: Request) -> dict[str, Any]:
    """Start a run now: 409 if the agent is paused or already running, 429 over the account's runs at once."""
    record = _record(request, name)
    if record.status != "active":
        message = f"`{name}` is {record.status}; resume it first (POST /one/agents/{name}/resume)."
        raise InferenceError(409, message, "agent_paused")
    return {"run": get_runtime().agents.start(record.id, "manual")}


@router.post("/{name}/{action}", response_model=None)
async def pause_or_resume(name: str, action: str, request: Request):
    import time

    from backend.agents.spec import next_run, parse_agent
    from backend.db import session

    if action not in ("pause", "resume"):
        return error_response(InferenceError(404, f"Unknown action `{action}`.", "not_found", param="action"))
    record = _record(request, name)
    with session() as db:
        record.status = "paused" if action == "pause" else "active"
        schedule = parse_agent(record.spec).trigger.schedule
        if action == "resume" and schedule:
            record.next_run_at = next_run(schedule, time.time())
        db.add(record)
        db.commit()
        db.refresh(record)
    return _public(record)


@router.get("/{name}/runs")
async def runs(name: str, request: Request) -> dict[str, Any]:
    from backend.agents.runner import runs_of

    return {"runs": runs_of(_record(request, name).id)}
