"""A coordinator's agent surface for tests: the real runtime parts (inference service, lanes, receipt log, agent
runner) behind the real API app, on the test's database and event loop. Only the chain is stood in for: the
$ONE a wallet held at the epoch's start is read from `holdings` instead of a node."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from backend.access import auth
from backend.catalog import load_catalog, load_packages
from backend.config import Settings
from backend.money import ledger
from backend.money.lanes import Lanes
from backend.runtime import Runtime
from backend.scheduler import Scheduler
from backend.serving.inference import InferenceService
from backend.trust.receipts import ReceiptLog
from tests.backend.conftest import ACCOUNT_SECRET

ONE = 10**18  # $ONE base units


def spec(name: str, schedule: str = "every 1h", lane: str = "included", webhook: str | None = None, tools: str = "[]") -> str:
    trigger = f'{{ schedule: "{schedule}" }}' if schedule else "{ manual: true }"
    budget = "{ lane: dedicated, package: pro }" if lane == "dedicated" else "{ lane: included }"
    hook = f'output: {{ webhook: "{webhook}" }}\n' if webhook else ""
    return f"agent: {name}\nmodel: tiny-chat\ntrigger: {trigger}\ntools: {tools}\nbudget: {budget}\n{hook}"


class AgentCoordinator:
    """`http` speaks to the app; `wallet()` signs a fresh wallet in on a lane, holding what it is given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **settings: Any):
        import backend.runtime
        from backend.api import create_api, deps

        self.settings = Settings(**{"queue_timeout_s": 3, **settings})
        self.holdings: dict[str, int] = {}
        catalog = load_catalog(*self.settings.catalog_files)
        scheduler = Scheduler(max_attempts=self.settings.max_dispatch_attempts, max_slots=self.settings.max_worker_slots)
        key = SigningKey.generate()
        receipts = ReceiptLog(key, ACCOUNT_SECRET)
        lanes = Lanes(self.settings, lambda account, epoch_start: self.holdings.get(account, 0))
        inference = InferenceService(self.settings, catalog, scheduler, receipts, lanes)
        self.runtime = Runtime(self.settings, key, catalog, scheduler, receipts, inference, load_packages(self.settings.packages_path))
        for module in (deps, backend.runtime):  # the routes and the API's door ask it for the runtime
            monkeypatch.setattr(module, "get_runtime", lambda: self.runtime)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api()), base_url="http://coordinator.test")

    @property
    def runner(self):
        return self.runtime.agents

    def wallet(self, lane: str = "included", one: int = 0, usdc: int = 0) -> tuple[str, dict[str, str]]:
        """(account, headers with its bearer key): an Included session holding `one` whole $ONE, or a Pro key with `usdc`."""
        account = "0x" + uuid.uuid4().hex + secrets.token_hex(4)
        self.holdings[account] = one * ONE
        key = auth.create_key(account, lane, "pro" if lane == "dedicated" else None)
        if usdc:
            ledger.grant(f"purchase:test:{account}", account, "usdc", usdc, "purchase")
        return account, {"authorization": f"Bearer {key}"}

    async def deploy(self, headers: dict[str, str], text: str) -> httpx.Response:
        return await self.http.post("/one/agents", json={"yaml": text}, headers=headers)


def openai_error(reply: httpx.Response, status: int) -> dict[str, Any]:
    """The reply's error object, after checking the status and the OpenAI error shape."""
    assert reply.status_code == status, (reply.status_code, reply.text)
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    return error
