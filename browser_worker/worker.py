"""The browser worker's protocol loop, run by Pyodide inside a module Web Worker.

`one_host` is the JS side (assets/web/browser-worker.js): the WebSocket, the Ed25519 key (WebCrypto,
non-extractable, kept in IndexedDB), the WebGPU kernels and status reports to the page. Frames,
digests and attestations come from `backend.protocol`, the same code the coordinator and node
workers run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from backend.protocol import frames
from backend.protocol import receipt as rc
from backend.protocol.jobs import JobRefused, embedding_inputs
from browser_worker.minilm import MiniLM

MODEL_ID = "all-minilm-l6-v2"
VERSION = "browser-0.1.0"


class BrowserWorker:
    def __init__(self, host: Any, model: MiniLM):
        self.host, self.model = host, model
        self.stats = {"served": 0, "failed": 0, "tokens": 0}
        self.cancelled: set[str] = set()
        self.busy = 0

    def report(self, **fields: Any) -> None:
        self.host.report(json.dumps({**fields, **self.stats}))

    def send(self, frame: dict[str, Any]) -> None:
        self.host.send(frames.encode(frame))

    async def session(self) -> None:
        """One connection: challenge -> hello -> serve until the socket closes."""
        await self.host.connect()
        challenge = frames.parse_frame(await self.host.nextFrame())
        if challenge["type"] != "challenge":
            raise frames.ProtocolError("expected a challenge first")
        model = {"id": MODEL_ID, "max_context": self.model.max_context, "tasks": ["embedding"]}
        self.send(frames.hello(
            kind="browser", pubkey=str(self.host.pubkey), payout_address=str(self.host.payout), models=[model], slots=1,
            hardware={"adapter": str(self.host.adapter)}, version=VERSION, sig=await self.host.sign(challenge["nonce"]),
        ))  # fmt: skip
        answer = frames.parse_frame(await self.host.nextFrame())
        if answer["type"] != "welcome":
            self.report(state="refused", reason=answer.get("reason", "refused"))
            return
        self.report(state="joined", worker_id=answer["worker_id"])
        while (text := await self.host.nextFrame()) is not None:
            frame = frames.parse_frame(text)
            if frame["type"] == "ping":
                self.send(frames.pong(frame["t"], float(self.busy), 0))
            elif frame["type"] == "job":
                asyncio.ensure_future(self.serve(frame))
            elif frame["type"] == "cancel":
                self.cancelled.add(frame["job_id"])

    async def serve(self, job: dict[str, Any]) -> None:
        job_id = job["job_id"]
        self.busy += 1
        try:
            if rc.request_digest(job["body"], job["request_salt"]) != job["request_digest"]:
                raise JobRefused("digest_mismatch", "request digest does not match body and salt")
            if job["model"] != MODEL_ID or job["task"] != "embedding":
                raise JobRefused("model_not_served", f"this browser worker serves {MODEL_ID} embeddings only")
            texts = embedding_inputs(job["body"], MODEL_ID, self.model.hidden)
            result = await self.model.embed(texts)
            if job_id in self.cancelled:
                return
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.vectors)]
            output = rc.OutputAssembler("embedding")
            output.add(data)
            self.send(frames.delta(job_id, 0, data))
            usage = {"input_tokens": result.input_tokens, "output_tokens": 0, "images": 0}
            digest = output.digest()
            statement = rc.attestation(job_id, job["model"], job["request_digest"], digest, usage)
            self.send(frames.done(job_id, usage, digest, await self.host.sign(rc.jcs(statement).hex())))
            self.stats["served"] += 1
            self.stats["tokens"] += result.input_tokens
            self.report(state="joined", last_job=job_id)
        except JobRefused as exc:
            self.send(frames.error(job_id, exc.code, str(exc)))
        except Exception as exc:  # never leave the coordinator waiting on a job
            self.stats["failed"] += 1
            self.send(frames.error(job_id, "worker_error", f"{type(exc).__name__}: {exc}"))
            self.report(state="joined", error=str(exc))
        finally:
            self.busy -= 1
            self.cancelled.discard(job_id)


async def main() -> None:
    """Load the model onto the GPU, then stay connected (reconnecting with backoff) until the tab leaves."""
    import one_host as host  # registered by assets/web/browser-worker.js

    host.report(json.dumps({"state": "loading", "step": "weights"}))
    model = await MiniLM.load(host.gpu, str(host.weightsUrl))
    worker = BrowserWorker(host, model)
    delay = 1.0
    while not host.leaving:
        try:
            await worker.session()
            delay = 1.0
        except Exception as exc:
            worker.report(state="reconnecting", error=f"{type(exc).__name__}: {exc}")
        if host.leaving:
            break
        worker.report(state="reconnecting")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
    worker.report(state="left")
