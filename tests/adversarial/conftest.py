"""Attack tests: each names an attack on the money path and fails on the code before its fix.

The coordinator's own parts run for real (scheduler, inference service, ledger, receipt log, audits,
settlement, on SQLite or the machine's Postgres); the attackers are protocol peers: workers that speak
the worker protocol through the scheduler's frame interface and lie where a real attacker would.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
from nacl.signing import SigningKey

from backend.catalog import load_catalog
from backend.config import Settings
from backend.money.lanes import Lanes
from backend.money.settlement import remember_worker
from backend.protocol import frames
from backend.protocol import receipt as rc
from backend.protocol.signing import public_hex, sign_hex
from backend.scheduler import Scheduler, WorkerConnection
from backend.serving.inference import Caller, InferenceService
from backend.trust.receipts import ReceiptLog
from tests.adversarial.money import database, money  # noqa: F401  (fixtures: the money routes over HTTP)
from tests.backend.conftest import ACCOUNT_SECRET, postgres_db, sqlite_db  # noqa: F401  (fixtures)

TINY_CHAT = {"id": "tiny-chat", "max_context": 2048, "tasks": ["chat", "completion"]}


class Peer:
    """A worker on the protocol's frame interface. By default honest; `usage` and `answer_text` let a test
    make it lie the way an attacker's worker would (it still signs what it claims)."""

    def __init__(self, scheduler: Scheduler, slots: int = 4, payout_address: str = "0x" + "11" * 20, models: list[dict] | None = None):
        self.key = SigningKey.generate()
        self.id = public_hex(self.key)
        self.scheduler = scheduler
        self.jobs: asyncio.Queue = asyncio.Queue()
        self.usage: Callable[[dict, str], dict[str, int]] = lambda job, text: {"input_tokens": 5, "output_tokens": 3, "images": 0}
        self.conn = WorkerConnection(
            worker_id=self.id, kind="node", payout_address=payout_address, models={m["id"]: m for m in models or [TINY_CHAT]},
            slots=slots, hardware={}, version="attack-test", send=self._receive,
        )  # fmt: skip
        self.auto: Callable[[dict], Any] | None = None  # answer every job with this (called with the job frame)

    async def _receive(self, frame: dict[str, Any]) -> None:
        if frame["type"] != "job":
            return
        if self.auto is not None:
            asyncio.get_running_loop().call_soon(self.auto, frame)
        else:
            await self.jobs.put(frame)

    async def join(self) -> "Peer":
        await asyncio.to_thread(remember_worker, self.id, "node", self.conn.payout_address)
        await self.scheduler.register(self.conn)
        return self

    async def next_job(self) -> dict:
        return await asyncio.wait_for(self.jobs.get(), 10)

    def answer(self, job: dict, text: str) -> None:
        """Stream `text` as one delta, then a signed done claiming `self.usage(job, text)`."""
        choice = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        self.scheduler.on_frame(self.conn, frames.delta(job["job_id"], 0, [choice]))
        usage = self.usage(job, text)
        out = rc.OutputAssembler(job["task"])
        out.add([choice])
        statement = rc.attestation(job["job_id"], job["model"], job["request_digest"], out.digest(), usage, sampling_seed=job.get("sampling_seed"))
        self.scheduler.on_frame(self.conn, frames.done(job["job_id"], usage, out.digest(), sign_hex(self.key, rc.jcs(statement))))

    def fail(self, job: dict, code: str = "engine_error") -> None:
        self.scheduler.on_frame(self.conn, frames.error(job["job_id"], code, "no"))


def make_service(**overrides: Any) -> InferenceService:
    settings = Settings(**{"queue_timeout_s": 3, **overrides})
    scheduler = Scheduler(max_attempts=settings.max_dispatch_attempts, max_slots=settings.max_worker_slots)
    return InferenceService(settings, load_catalog(*settings.catalog_files), scheduler, ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET),
                            Lanes(settings, None))  # fmt: skip


async def run_chat(service: InferenceService, caller: Caller, text: str = "hi", **body: Any) -> list:
    request = {"model": "tiny-chat", "messages": [{"role": "user", "content": text}], **body}
    return [event async for event in service.run("chat", request, caller)]


@pytest.fixture
def api(sqlite_db):
    """The coordinator's HTTP API with its real runtime on this test's SQLite, as a TestClient. Settings
    come from the environment: set ONE_* with monkeypatch before asking for this fixture."""
    from fastapi.testclient import TestClient

    from backend.api import create_api
    from backend.config import get_settings
    from backend.runtime import get_runtime

    get_settings.cache_clear()
    get_runtime.cache_clear()
    with TestClient(create_api()) as client:
        yield client
    get_runtime.cache_clear()
