"""Monitors and wallets through the real runtime and API on SQLite: the watched digest decides whether a run
reports (first run = baseline, same digest = unchanged, a text condition filters changes, a failed fetch changes
nothing), a new file forgets the baseline, and each agent shows its own derived wallet."""

from __future__ import annotations

from sqlmodel import select

from backend.agents.runner import WatchQuiet, agent_id_of
from backend.agents.spec import parse_agent
from backend.agents.trading import agent_wallet
from backend.db import session
from backend.db.models import AgentRecord
from tests.backend.agents.coordinator import AgentCoordinator

MONITOR = """agent: watcher
model: tiny-chat
trigger: { manual: true }
tools: [ { http_get: { url: "https://status.example.com/" } } ]
watch: { tool: http_get, when: changed }
budget: { lane: included }
"""


def stored_digest(agent_id: str) -> str | None:
    with session() as db:
        return db.get(AgentRecord, agent_id).watch_digest


async def quiet(coordinator, agent_id, spec, digest, result="page", failed=False) -> str | None:
    """The status a watch check ends the run with, or None when the run goes on to report."""
    try:
        await coordinator.runner.check_watch(agent_id, spec, digest, result, failed)
    except WatchQuiet as exc:
        return exc.status
    return None


async def test_the_watched_digest_decides_and_a_new_file_forgets_it(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    account, headers = coordinator.wallet("included", one=150)
    reply = await coordinator.deploy(headers, MONITOR)
    assert reply.status_code == 200, reply.text
    assert any("no worker serves `tiny-chat`" in w for w in reply.json()["warnings"])
    agent_id, spec = agent_id_of(account, "watcher"), parse_agent(MONITOR)
    a, b, c = "a" * 64, "b" * 64, "c" * 64

    assert await quiet(coordinator, agent_id, spec, a) == "baseline"
    assert await quiet(coordinator, agent_id, spec, a) == "unchanged"
    assert await quiet(coordinator, agent_id, spec, c, "tool error: HTTP 503", failed=True) == "failed"
    assert stored_digest(agent_id) == a  # a failed fetch is not a change
    assert await quiet(coordinator, agent_id, spec, b) is None  # changed: the run reports
    assert stored_digest(agent_id) == b

    outage = parse_agent(MONITOR.replace("when: changed", 'when: { contains: "outage" }'))
    assert await quiet(coordinator, agent_id, outage, c, "all fine") == "not_matched"
    assert await quiet(coordinator, agent_id, outage, a, "partial outage") is None

    assert (await coordinator.deploy(headers, MONITOR)).status_code == 200  # the same file: the baseline stays
    assert stored_digest(agent_id) == a
    assert (await coordinator.deploy(headers, MONITOR.replace("status.example.com", "other.example.com"))).status_code == 200
    assert stored_digest(agent_id) is None  # another page: its first run is a baseline again


async def test_each_agent_shows_its_own_derived_wallet(sqlite_db, monkeypatch):
    coordinator = AgentCoordinator(monkeypatch)
    account, headers = coordinator.wallet("included", one=150)
    for name in ("first", "second"):
        assert (await coordinator.deploy(headers, MONITOR.replace("watcher", name))).status_code == 200
    listed = {a["name"]: a["wallet"] for a in (await coordinator.http.get("/one/agents", headers=headers)).json()["agents"]}
    expected = {name: agent_wallet(coordinator.runtime.receipts, agent_id_of(account, name)).address for name in listed}
    assert listed == expected and len(set(listed.values())) == 2
    with session() as db:  # derived, never stored: no column holds its key
        for record in db.exec(select(AgentRecord)):
            assert bytes(agent_wallet(coordinator.runtime.receipts, record.id).key).hex() not in record.model_dump_json()
