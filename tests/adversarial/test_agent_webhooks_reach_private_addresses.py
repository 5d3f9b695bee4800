"""Attack: give an agent a webhook at a loopback, private or cloud-metadata address, or at a name that resolves
to one (at deploy, or only later): the coordinator POSTs from inside its own network wherever it is told.

Webhooks pass the http_get tool's check: public addresses only, at deploy (400) and again at every delivery
(DNS may have changed since), the connection pinned to the address checked, no redirects. A run that did
nothing (no receipt: expired package, failed before any work) sends nothing at all, not even a DNS lookup.
"""

from __future__ import annotations

import asyncio

from sqlmodel import select

from backend.access.auth import hash_key
from backend.db import session
from backend.db.models import ApiKey
from tests.adversarial.conftest import Peer
from tests.backend.agents.coordinator import AgentCoordinator, openai_error, spec
from tests.backend.agents.net import PUBLIC, dns, recording_server  # noqa: F401  (dns: fixture)


async def test_deploy_refuses_webhooks_at_non_public_addresses(sqlite_db, monkeypatch, dns):
    coordinator = AgentCoordinator(monkeypatch)
    _, headers = coordinator.wallet("included", one=150)
    with recording_server() as (port, hits):
        dns.answer("inward.example", "127.0.0.1")
        for url in (f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook", f"http://inward.example:{port}/hook",
                    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook"):  # fmt: skip
            error = openai_error(await coordinator.deploy(headers, spec("hooked", webhook=url)), 400)
            assert error["param"] == "output.webhook" and "public" in error["message"], (url, error)
        assert hits == []
    dns.answer("hooks.example", PUBLIC)
    assert (await coordinator.deploy(headers, spec("hooked", webhook="http://hooks.example/hook"))).status_code == 200


async def test_each_delivery_checks_the_address_again(sqlite_db, monkeypatch, dns):
    """Deployed while its name was public; by the time a run ends, the name resolves to loopback."""
    coordinator = AgentCoordinator(monkeypatch)
    peer = await Peer(coordinator.runtime.scheduler).join()
    peer.auto = lambda job: peer.answer(job, "all quiet")
    _, headers = coordinator.wallet("included", one=150)
    with recording_server() as (port, hits):
        dns.answer("hooks.example", PUBLIC)
        assert (await coordinator.deploy(headers, spec("rebound", webhook=f"http://hooks.example:{port}/hook"))).status_code == 200
        dns.answer("hooks.example", "127.0.0.1")
        asked = len(dns.lookups)
        started = await coordinator.http.post("/one/agents/rebound/run", headers=headers)
        assert started.status_code == 200
        run = await _finished(coordinator, headers, "rebound")
        assert run["status"] == "done" and run["receipts"] and not run["delivered"]
        assert "hooks.example" in dns.lookups[asked:]  # it did look again, and refused what it found
        assert hits == []


async def test_a_run_that_did_nothing_delivers_nothing(sqlite_db, monkeypatch, dns):
    coordinator = AgentCoordinator(monkeypatch)
    dns.answer("victim.example", PUBLIC)
    _, headers = coordinator.wallet("dedicated", usdc=20_000_000)
    assert (await coordinator.deploy(headers, spec("lapsed", lane="dedicated", webhook="http://victim.example/hook"))).status_code == 200
    _, included = coordinator.wallet("included", one=150)
    assert (await coordinator.deploy(included, spec("idle", webhook="http://victim.example/hook"))).status_code == 200
    with session() as db:  # the Pro package lapses
        key = db.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(headers["authorization"].removeprefix("Bearer ")))).one()
        key.expires_at = 1.0
        db.add(key)
        db.commit()
    asked = len(dns.lookups)
    for name, status in (("lapsed", "package_expired"), ("idle", "failed")):  # idle: no worker serves its model
        run = await coordinator.runner.run(f"{_account(coordinator, name)}:{name}", f"run-{name}", "schedule")
        assert run.status == status and run.receipts == "[]" and not run.delivered
    assert "victim.example" not in dns.lookups[asked:]


def _account(coordinator: AgentCoordinator, name: str) -> str:
    from backend.db.models import AgentRecord

    with session() as db:
        return db.exec(select(AgentRecord.account).where(AgentRecord.name == name)).one()


async def _finished(coordinator: AgentCoordinator, headers: dict[str, str], name: str) -> dict:
    for _ in range(200):
        runs = (await coordinator.http.get(f"/one/agents/{name}/runs", headers=headers)).json()["runs"]
        if runs and runs[0]["status"] != "running":
            return runs[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} did not finish: {runs}")
