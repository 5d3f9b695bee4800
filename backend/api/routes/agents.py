"""Agents over HTTP: validate or deploy a YAML file, list, run now, pause/resume, read runs. A bearer key (SIWE session or
Dedicated package) owns its agents and pays for them. Every refusal is in the OpenAI error shape."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request

from backend.agents.runner import agent_of, agents_of, runs_of
from backend.agents.spec import AgentSpec, AgentSpecError, parse_agent
from backend.agents.trading import wallet_address
from backend.api.deps import PrincipalDep, RuntimeDep, signed_in
from backend.api.errors import ApiError
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import DeployBody
from backend.api.schemas.responses import AgentCheck, AgentInfo, AgentList, AgentRuns, AgentRunStarted
from backend.db.models import AgentRecord
from backend.runtime import Runtime

router = ReplyRouter(prefix="/one/agents", tags=["agents"])
RECENT_RUNS = 10  # the runs whose spend an agent's card sums


async def owned_agent(name: str, principal: PrincipalDep) -> AgentRecord:
    """The caller's agent of that name, else 404."""
    record = await asyncio.to_thread(agent_of, principal.account, name)
    if record is None:
        raise ApiError(404, f"No agent `{name}` for this account.", "agent_not_found", param="name")
    return record


AgentDep = Annotated[AgentRecord, Depends(owned_agent)]


def _plan(text: str) -> dict[str, Any]:
    """What the stored file makes the agent do, as its card shows it: model, tools, goal, trigger, caps. Stored
    files passed the checks when deployed; one a later, stricter check refuses shows none of this."""
    try:
        spec: AgentSpec = parse_agent(text)
    except AgentSpecError:
        return {}
    when = spec.watch and spec.watch.when
    return {"model": spec.model, "tools": spec.tool_names, "goal": spec.goal, "schedule": spec.trigger.schedule,
            "watch": spec.watch and {"tool": spec.watch.tool, "when": "changed" if when is None else
                                     f"contains: {when.contains}" if when.contains is not None else f"absent: {when.absent}"},
            "webhook_host": spec.output and spec.output.webhook.host, "max_spend": spec.budget.max_spend,
            "max_steps": spec.budget.max_steps, "wallet_caps": spec.wallet and spec.wallet.model_dump()}  # fmt: skip


def _public(record: AgentRecord, rt: Runtime) -> dict[str, Any]:
    """An agent as its owner sees it: what its file makes it do, its recent spend, and its own wallet's address
    (derived, so the owner can fund it)."""
    runs = runs_of(record.id, RECENT_RUNS)
    return {"name": record.name, "status": record.status, "lane": record.lane, "package": record.package,
            "next_run_at": record.next_run_at, "last_run": runs[0] if runs else None,
            "recent_runs": len(runs), "recent_spent": sum(r["spent"] for r in runs),
            "wallet": wallet_address(rt.receipts, record.id), **_plan(record.spec)}  # fmt: skip


def _problems(exc: AgentSpecError) -> list[dict[str, Any]]:
    return [{"line": p.line, "field": p.field, "message": p.message} for p in exc.problems]


@router.post("/validate", response_model=AgentCheck)
async def validate(body: DeployBody, principal: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """Check a file exactly as deploy would for this key, storing nothing: every problem with its line and field,
    or the warnings deploy would give (a refusal to pay included)."""
    try:
        warnings = await asyncio.to_thread(rt.agents.dry_run, body.yaml, principal.account, principal.lane, principal.package)
    except AgentSpecError as exc:
        return {"ok": False, "problems": _problems(exc), "warnings": []}
    return {"ok": True, "problems": [], "warnings": warnings}


@router.post("", response_model=AgentInfo)
async def deploy(body: DeployBody, principal: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """Validate and store an agent; 400 lists every problem with its line and field (402: the account cannot pay,
    403: it has its most agents). `warnings` names what may stop its runs (a model no worker serves right now)."""
    try:
        record, secret, warnings = await asyncio.to_thread(rt.agents.deploy, body.yaml, principal.account, principal.lane, principal.package)
    except AgentSpecError as exc:
        problems = _problems(exc)
        raise ApiError(400, str(exc), "invalid_agent", param=problems[0]["field"] or None, extra={"problems": problems}) from None
    return {**_public(record, rt), "webhook_secret": secret, "warnings": warnings}


@router.get("", response_model=AgentList)
async def list_agents(principal: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return {"agents": [_public(r, rt) for r in await asyncio.to_thread(agents_of, principal.account)]}


@router.post("/{name}/run", response_model=AgentRunStarted)
async def run_now(name: str, record: AgentDep, rt: RuntimeDep) -> dict[str, Any]:
    """Start a run now: 409 if the agent is paused or already running, 429 over the account's runs at once."""
    if record.status != "active":
        raise ApiError(409, f"`{name}` is {record.status}; resume it first (POST /one/agents/{name}/resume).", "agent_paused")
    return {"run": rt.agents.start(record.id, "manual")}


@router.post("/{name}/{action}", response_model=AgentInfo)
async def pause_or_resume(name: str, action: str, request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """Pause or resume (resuming a scheduled agent sets its next run from now); an unknown action is a 404 first."""
    if action not in ("pause", "resume"):
        raise ApiError(404, f"Unknown action `{action}`.", "not_found", param="action")
    record = await owned_agent(name, await signed_in(request))
    record = await asyncio.to_thread(rt.agents.set_status, record.id, "paused" if action == "pause" else "active")
    if record is None:  # deleted in between
        raise ApiError(404, f"No agent `{name}` for this account.", "agent_not_found", param="name")
    return _public(record, rt)


@router.get("/{name}/runs", response_model=AgentRuns)
async def runs(record: AgentDep) -> dict[str, Any]:
    return {"runs": runs_of(record.id)}
