"""POST /one/agents/validate checks a file exactly as deploy would for the caller's key, line by line, and stores
nothing; GET /one/agents shows what each stored file makes its agent do (model, tools, goal, trigger, caps, spend)."""

from __future__ import annotations

from tests.backend.agents.coordinator import AgentCoordinator, spec
from tests.backend.agents.net import PUBLIC, dns  # noqa: F401  (dns: fixture)


async def test_validate_names_every_problem_by_line_and_stores_nothing(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    _, headers = coordinator.wallet("included", one=150)
    broken = "agent: checker\nmodel: no-such-model\ntrigger: { schedule: \"every 6h\" }\ntools: [ summarize, nope ]\nbudget: { lane: included }\n"
    reply = await coordinator.http.post("/one/agents/validate", json={"yaml": broken}, headers=headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ok"] is False and body["warnings"] == []
    assert [(p["line"], p["field"]) for p in body["problems"]] == [(2, "model"), (4, "tools[1]")], body
    assert "no model `no-such-model`" in body["problems"][0]["message"]

    wrong_lane = spec("checker", lane="dedicated")  # an Included key cannot deploy a Dedicated budget
    body = (await coordinator.http.post("/one/agents/validate", json={"yaml": wrong_lane}, headers=headers)).json()
    assert body["ok"] is False and [(p["line"], p["field"]) for p in body["problems"]] == [(5, "budget")], body

    good = spec("checker", tools="[ summarize ]")
    body = (await coordinator.http.post("/one/agents/validate", json={"yaml": good}, headers=headers)).json()
    assert body == {"ok": True, "problems": [], "warnings": [body["warnings"][0]]} and "no worker serves `tiny-chat`" in body["warnings"][0]
    assert (await coordinator.http.get("/one/agents", headers=headers)).json()["agents"] == []  # nothing stored


async def test_validate_warns_when_the_account_cannot_pay(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    _, headers = coordinator.wallet("included", one=0)  # no $ONE: no Included allotment
    body = (await coordinator.http.post("/one/agents/validate", json={"yaml": spec("poor")}, headers=headers)).json()
    assert body["ok"] is True and body["warnings"][0].startswith("deploy would be refused now: This account cannot pay"), body


async def test_the_list_shows_what_each_agent_does(sqlite_db, monkeypatch, dns):  # noqa: F811  (the dns fixture)
    coordinator = AgentCoordinator(monkeypatch)
    _, headers = coordinator.wallet("included", one=150)
    dns.answer("hooks.example", PUBLIC)
    text = spec("watcher", webhook="http://hooks.example/hook", tools='[ { http_get: { url: "https://status.example/" } }, summarize ]')
    text += "goal: Tell me when the status page changes.\nwatch: { tool: http_get, when: { contains: outage } }\n"
    text = text.replace("budget: { lane: included }", "budget: { lane: included, max_spend: 2000, max_steps: 4 }")
    deployed = await coordinator.deploy(headers, text)
    assert deployed.status_code == 200, deployed.text
    [agent] = (await coordinator.http.get("/one/agents", headers=headers)).json()["agents"]
    assert {k: agent[k] for k in ("model", "tools", "goal", "schedule", "watch", "webhook_host", "max_spend", "max_steps", "wallet_caps",
                                  "recent_runs", "recent_spent")} == {
        "model": "tiny-chat", "tools": ["http_get", "summarize"], "goal": "Tell me when the status page changes.", "schedule": "every 1h",
        "watch": {"tool": "http_get", "when": "contains: outage"}, "webhook_host": "hooks.example", "max_spend": 2000, "max_steps": 4,
        "wallet_caps": None, "recent_runs": 0, "recent_spent": 0}  # fmt: skip
    assert "webhook_secret" not in agent or agent["webhook_secret"] is None  # shown on deploy only
