"""Attack: sign in with a wallet that holds nothing and deploy agents that fire every second, as many as you
like, and start as many runs as you like: each run costs the coordinator a database row, a scheduler slot and
a webhook POST, and costs the attacker nothing.

Deploying needs an account that can pay for at least one step on its lane (402 otherwise); a schedule may not
fire more often than agent_min_interval_s (400, naming the line); an account has at most
max_agents_per_account agents (403) and max_agent_runs_per_account runs at once: a manual run over the cap
answers 429, a scheduled one is skipped.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import update
from sqlmodel import col, select

from backend.db import session
from backend.db.models import AgentRecord
from tests.adversarial.conftest import Peer
from tests.backend.agents.coordinator import AgentCoordinator, openai_error, spec


async def test_an_account_that_cannot_pay_cannot_deploy(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    _, empty = coordinator.wallet("included", one=0)  # no $ONE: no Included allotment
    _, spent = coordinator.wallet("dedicated", usdc=0)  # a live Pro key whose balance is gone
    for headers, lane in ((empty, "included"), (spent, "dedicated")):
        error = openai_error(await coordinator.deploy(headers, spec("free-ride", lane=lane)), 402)
        assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota", error
    _, paying = coordinator.wallet("included", one=150)
    assert (await coordinator.deploy(paying, spec("paid"))).status_code == 200


async def test_schedules_faster_than_the_minimum_are_refused(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch, agent_min_interval_s=60)
    _, headers = coordinator.wallet("included", one=150)
    for schedule in ("every 1s", "every 59s", "* * * * * */5", "* * * * * 0,30"):  # the last two: croniter's seconds field
        error = openai_error(await coordinator.deploy(headers, spec("hammer", schedule)), 400)
        assert error["param"] == "trigger.schedule" and "60" in error["message"], (schedule, error)
    for schedule in ("every 1m", "*/5 * * * *"):
        assert (await coordinator.deploy(headers, spec("steady", schedule))).status_code == 200, schedule


async def test_an_account_deploys_at_most_its_cap_of_agents(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch, max_agents_per_account=2)
    _, headers = coordinator.wallet("included", one=150)
    for name in ("first", "second"):
        assert (await coordinator.deploy(headers, spec(name))).status_code == 200
    error = openai_error(await coordinator.deploy(headers, spec("third")), 403)
    assert error["code"] == "too_many_agents" and "2" in error["message"]
    assert (await coordinator.deploy(headers, spec("first", "every 2h"))).status_code == 200  # replacing one is not a new one
    _, other = coordinator.wallet("included", one=150)
    assert (await coordinator.deploy(other, spec("third"))).status_code == 200  # the cap is per account


async def test_manual_runs_over_the_cap_answer_429(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch, max_agent_runs_per_account=2)
    await Peer(coordinator.runtime.scheduler).join()  # takes jobs and sits on them: runs stay running
    _, headers = coordinator.wallet("included", one=150)
    for name in ("a", "b", "c"):
        assert (await coordinator.deploy(headers, spec(name, schedule=""))).status_code == 200
    try:
        for name in ("a", "b"):
            assert (await coordinator.http.post(f"/one/agents/{name}/run", headers=headers)).status_code == 200
        reply = await coordinator.http.post("/one/agents/c/run", headers=headers)
        error = openai_error(reply, 429)
        assert error["code"] == "too_many_agent_runs" and "2" in error["message"]
        assert error["code"] == openai_error(await coordinator.http.post("/one/agents/c/run", headers=headers), 429)["code"]
        assert openai_error(await coordinator.http.post("/one/agents/a/run", headers=headers), 409)["code"] == "agent_running"
        _, other = coordinator.wallet("included", one=150)
        assert (await coordinator.deploy(other, spec("c", schedule=""))).status_code == 200
        assert (await coordinator.http.post("/one/agents/c/run", headers=other)).status_code == 200  # the cap is per account
    finally:
        await _stop(coordinator)


async def test_scheduled_runs_over_the_cap_are_skipped(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch, max_agent_runs_per_account=2)
    await Peer(coordinator.runtime.scheduler).join()
    account, headers = coordinator.wallet("included", one=150)
    for name in ("a", "b", "c"):
        assert (await coordinator.deploy(headers, spec(name, "every 1h"))).status_code == 200
    with session() as db:  # all three due now
        db.connection().execute(update(AgentRecord).where(col(AgentRecord.account) == account).values(next_run_at=time.time() - 1))
        db.commit()
    loop = asyncio.create_task(coordinator.runner.loop())
    try:
        await asyncio.sleep(1.5)
        going = [agent for agent, task in coordinator.runner.running.items() if not task.done()]
        assert len(going) == 2, going
    finally:
        loop.cancel()
        await _stop(coordinator)
    with session() as db:  # the skipped one waits for its next slot like the others
        assert all(at > time.time() + 3000 for at in db.exec(select(AgentRecord.next_run_at).where(AgentRecord.account == account)).all())


async def _stop(coordinator: AgentCoordinator) -> None:
    tasks = list(coordinator.runner.running.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
