"""Attack: use POST /one/agents/validate, which stores nothing, as a free parser: without a key, or with a file
far over deploy's size cap (the YAML checker's cost grows with the file), or to learn whether a webhook address
resolves inside the network while nothing is deployed.

Validate takes deploy's body (20,000 characters at most, refused before any parsing), needs a signed-in key
like deploy, and refuses webhooks at non-public addresses exactly as deploy does.
"""

from __future__ import annotations

import pytest

import backend.agents.runner as runner_mod
from tests.backend.agents.coordinator import AgentCoordinator, openai_error, spec
from tests.backend.agents.net import dns  # noqa: F401  (fixture)


async def test_validate_needs_a_signed_in_key(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    reply = await coordinator.http.post("/one/agents/validate", json={"yaml": spec("anon")})
    assert reply.status_code == 401, reply.text


async def test_an_oversized_file_is_refused_before_it_is_parsed(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    _, headers = coordinator.wallet("included", one=150)

    def never(*args, **kwargs):
        raise AssertionError("an oversized file reached the YAML checker")

    monkeypatch.setattr(runner_mod, "parse_agent", never)
    huge = spec("huge") + "goal: " + "x" * 20_000 + "\n"
    error = openai_error(await coordinator.http.post("/one/agents/validate", json={"yaml": huge}, headers=headers), 400)
    assert error["param"] == "yaml", error


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://inward.example/hook"])
async def test_validate_refuses_inward_webhooks_like_deploy(sqlite_db, monkeypatch, dns, url):  # noqa: F811  (the dns fixture)
    coordinator = AgentCoordinator(monkeypatch)
    _, headers = coordinator.wallet("included", one=150)
    dns.answer("inward.example", "10.0.0.7")
    body = (await coordinator.http.post("/one/agents/validate", json={"yaml": spec("hooked", webhook=url)}, headers=headers)).json()
    assert body["ok"] is False and [(p["line"], p["field"]) for p in body["problems"]] == [(6, "output.webhook")], body
    assert "public" in body["problems"][0]["message"]
    assert (await coordinator.http.get("/one/agents", headers=headers)).json()["agents"] == []
