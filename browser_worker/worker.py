"""The browser worker, run by Pyodide inside a module Web Worker: MiniLM embeddings on the tab's GPU, served
through the worker session every worker runs (backend.protocol.session).

`one_host` is the JS side (assets/web/browser-worker.js): the WebSocket, the Ed25519 key (WebCrypto,
non-extractable, kept in IndexedDB), the WebGPU kernels and status reports to the page. This module only
adapts it: the host's socket as the session's transport, its key as the session's signer, MiniLM as its
engine, and session events as status reports."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator

from backend.protocol import outputs
from backend.protocol.jobs import embedding_inputs
from backend.protocol.session import Finished, Identity, Job, Output, Refused, SessionEvents, WorkerSession, stay_joined
from browser_worker.minilm import MiniLM

MODEL_ID = "all-minilm-l6-v2"
VERSION = "browser-0.1.0"


class MiniLMEngine:
    """all-MiniLM-L6-v2 embeddings, the one model a browser tab serves."""

    def __init__(self, model: MiniLM):
        self.model = model
        self.models = [{"id": MODEL_ID, "max_context": model.max_context, "tasks": ["embedding"]}]

    async def run(self, job: Job, cancel: threading.Event) -> AsyncIterator[Output | Finished]:
        embedded = await self.model.embed(embedding_inputs(job.body, MODEL_ID, self.model.hidden))
        yield outputs.embedding_items(embedded.vectors)
        yield Finished(input_tokens=embedded.input_tokens)


class HostTransport:
    """The host's WebSocket: frames arrive through `nextFrame()`, which gives null once the socket closed."""

    def __init__(self, host: Any):
        self.host = host

    async def send(self, text: str) -> None:
        self.host.send(text)

    async def recv(self) -> str | None:
        text = await self.host.nextFrame()
        return text if isinstance(text, str) else None


class StatusReports(SessionEvents):
    """Session events as the page's status messages, with the tab's running totals."""

    def __init__(self, host: Any):
        self.host = host
        self.stats = {"served": 0, "failed": 0, "tokens": 0}

    def report(self, **fields: Any) -> None:
        self.host.report(json.dumps({**fields, **self.stats}))

    def joined(self, worker_id: str) -> None:
        self.report(state="joined", worker_id=worker_id)

    def served(self, job: Job, finished: Finished) -> None:
        self.stats["served"] += 1
        self.stats["tokens"] += finished.input_tokens
        self.report(state="joined", last_job=job.job_id)

    def failed(self, job: Job, error: Exception) -> None:
        self.stats["failed"] += 1
        self.report(state="joined", error=str(error))

    def retrying(self, problem: Exception | None, wait_s: float) -> None:
        if isinstance(problem, Refused):
            self.report(state="refused", reason=str(problem))
        else:
            self.report(state="reconnecting", **({"error": f"{type(problem).__name__}: {problem}"} if problem else {}))


async def main() -> None:
    """Load the model onto the GPU, then stay joined (rejoining with backoff) until the tab leaves."""
    import one_host as host  # registered by assets/web/browser-worker.js; exists only inside the tab

    status = StatusReports(host)
    status.report(state="loading", step="weights")
    model = await MiniLM.load(host.gpu, str(host.weightsUrl))
    if str(host.batchTokens).isdigit():  # the page's ?batch_tokens= (bench/browser_worker.py's one-sentence-per-pass run)
        model.batch_tokens = int(str(host.batchTokens))

    async def sign(message: bytes) -> str:
        return str(await host.sign(message.hex()))

    identity = Identity(kind="browser", pubkey=str(host.pubkey), payout_address=str(host.payout), version=VERSION, sign=sign,
                        hardware={"adapter": str(host.adapter)})  # fmt: skip
    session = WorkerSession(identity, MiniLMEngine(model), slots=1, events=status)
    left = asyncio.Event()

    async def join() -> None:
        try:
            await host.connect()
            await session.run(HostTransport(host))
        finally:
            if host.leaving:
                left.set()

    await stay_joined(join, left, status.retrying, first_delay_s=1.0, max_delay_s=30.0)
    status.report(state="left")
