"""Attack: pause an agent (or let the coordinator pause it when its package lapses), then keep calling
`run`: the pause was only for the schedule, so every call starts a run anyway.

A paused agent does not run: `run` answers 409 in the OpenAI error shape and starts nothing; after resume it runs.
"""

from __future__ import annotations

from tests.backend.agents.coordinator import AgentCoordinator, openai_error, spec


async def test_a_paused_agent_is_not_run(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    account, headers = coordinator.wallet("included", one=150)
    assert (await coordinator.deploy(headers, spec("sleeper", schedule=""))).status_code == 200
    assert (await coordinator.http.post("/one/agents/sleeper/pause", headers=headers)).json()["status"] == "paused"
    error = openai_error(await coordinator.http.post("/one/agents/sleeper/run", headers=headers), 409)
    assert error["code"] == "agent_paused" and "resume" in error["message"], error
    assert coordinator.runner.running == {}
    assert (await coordinator.http.get("/one/agents/sleeper/runs", headers=headers)).json()["runs"] == []
    assert (await coordinator.http.post("/one/agents/sleeper/resume", headers=headers)).json()["status"] == "active"
    assert (await coordinator.http.post("/one/agents/sleeper/run", headers=headers)).status_code == 200
    await coordinator.runner.running[f"{account}:sleeper"]  # no worker serves tiny-chat here: it fails, and ends
