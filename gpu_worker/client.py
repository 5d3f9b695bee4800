"""The node worker's side of protocol v1: sign in, serve jobs, answer pings, reconnect with backoff."""

from __future__ import annotations

import asyncio
import base64
import logging
import platform
import random
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from nacl.signing import SigningKey

from backend.protocol import frames
from backend.protocol import receipt as rc
from backend.protocol.signing import public_hex, sign_hex
from gpu_worker import __version__, structured
from gpu_worker.engines import End, Engine, EngineError

log = logging.getLogger("one.worker")


def worker_url(coordinator: str) -> str:
    """http(s)://host:port[/...] -> ws(s)://host:port/worker/ws."""
    parts = urlsplit(coordinator if "://" in coordinator else f"http://{coordinator}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, frames.WORKER_PATH, "", ""))


class WorkerClient:
    def __init__(self, coordinator: str, engines: dict[str, Engine], key: SigningKey, payout_address: str, slots: int = 1):
        self.url = worker_url(coordinator)
        self.engines = engines
        self.key = key
        self.payout_address = payout_address
        self.slots = slots
        self._running: dict[str, tuple[asyncio.Task, threading.Event]] = {}
        self._stop = asyncio.Event()

    @property
    def pubkey(self) -> str:
        return public_hex(self.key)

    def stop(self) -> None:
        self._stop.set()

    async def run_forever(self) -> None:
        """Stay connected; back off exponentially (with jitter) while the coordinator is away."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self._session()
                delay = 0.5
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError) as exc:
                log.warning("coordinator unreachable (%s); retrying in %.1fs", exc, delay)
            except RefusedError as exc:
                log.error("coordinator refused this worker: %s", exc)
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay * (0.75 + random.random() / 2))
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 10.0)

    async def _session(self) -> None:
        async with websockets.connect(self.url, max_size=frames.MAX_FRAME_BYTES, ping_interval=None) as ws:
            challenge = frames.parse_frame(await asyncio.wait_for(ws.recv(), 10))
            if challenge["type"] != "challenge":
                raise RefusedError(f"expected a challenge, got {challenge['type']}")
            await ws.send(frames.encode(self._hello(challenge["nonce"])))
            answer = frames.parse_frame(await asyncio.wait_for(ws.recv(), 10))
            if answer["type"] == "refused":
                raise RefusedError(answer["reason"])
            log.info("joined %s as %s… serving %s", self.url, self.pubkey[:12], sorted(self.engines))
            send_lock = asyncio.Lock()

            async def send(frame: dict[str, Any]) -> None:
                async with send_lock:
                    await ws.send(frames.encode(frame))

            try:
                async for text in ws:
                    if self._stop.is_set():
                        break
                    self._on_frame(frames.parse_frame(text), send)
            finally:
                for task, cancel in self._running.values():
                    cancel.set()
                    task.cancel()
                self._running.clear()

    def _hello(self, nonce: str) -> dict[str, Any]:
        models = [{"id": m, "max_context": e.max_context, "tasks": list(e.tasks)} for m, e in self.engines.items()]
        return frames.hello(
            kind="node",
            pubkey=self.pubkey,
            payout_address=self.payout_address,
            models=models,
            slots=self.slots,
            hardware={"machine": platform.machine(), "system": platform.system()},
            version=__version__,
            sig=sign_hex(self.key, bytes.fromhex(nonce)),
        )

    def _on_frame(self, frame: dict[str, Any], send) -> None:
        ftype = frame["type"]
        if ftype == "ping":
            busy = len(self._running)
            asyncio.create_task(send(frames.pong(frame["t"], busy / self.slots, max(busy - self.slots, 0))))
        elif ftype == "job":
            cancel = threading.Event()
            task = asyncio.create_task(self._serve(frame, send, cancel))
            self._running[frame["job_id"]] = (task, cancel)
            task.add_done_callback(lambda _t, jid=frame["job_id"]: self._running.pop(jid, None))
        elif ftype == "cancel":
            running = self._running.get(frame["job_id"])
            if running:
                running[1].set()

    async def _serve(self, job: dict[str, Any], send, cancel: threading.Event) -> None:
        job_id, task = job["job_id"], job["task"]
        try:
            if rc.request_digest(job["body"], job["request_salt"]) != job["request_digest"]:
                raise EngineError("digest_mismatch", "request digest does not match body and salt")
            engine = self.engines.get(job["model"])
            if engine is None or task not in engine.tasks:
                raise EngineError("model_not_served", f"this worker does not serve {job['model']} for {task}")
            output = rc.OutputAssembler(task)
            n = 0

            async def emit(data: list[dict[str, Any]]) -> None:
                nonlocal n
                output.add(data)
                await send(frames.delta(job_id, n, data))
                n += 1

            if task in rc.TEXT_TASKS:
                usage = await stream_text(engine, task, job["body"], cancel, emit)
            elif task == "embedding":
                result = await engine.embed(job["body"])
                await emit([{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.vectors)])
                usage = {"input_tokens": result.input_tokens, "output_tokens": 0, "images": 0}
            elif task == "image":
                result = await engine.images(job["body"], cancel)
                await emit([{"index": i, "b64_json": base64.b64encode(png).decode()} for i, png in enumerate(result.pngs)])
                usage = {"input_tokens": 0, "output_tokens": result.output_tokens, "images": len(result.pngs)}
            else:
                raise EngineError("task_not_supported", f"unknown task {task!r}")
            if usage is None or cancel.is_set():
                return  # cancelled: the coordinator has forgotten this job
            digest = output.digest()
            committed = rc.logprobs_digest(output.ordered_choices()) if task in rc.TEXT_TASKS else None
            statement = rc.attestation(job_id, job["model"], job["request_digest"], digest, usage, committed)
            await send(frames.done(job_id, usage, digest, sign_hex(self.key, rc.jcs(statement)), committed))
        except EngineError as exc:
            await send(frames.error(job_id, exc.code, str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave the coordinator waiting on a job
            log.exception("job %s failed", job_id)
            await send(frames.error(job_id, "worker_error", type(exc).__name__))


async def stream_text(engine: Engine, task: str, body: dict[str, Any], cancel: threading.Event, emit) -> dict[str, int] | None:
    """Run a text engine through the shared layer; emit OpenAI stream choices; return usage (None if cancelled)."""
    try:
        forced = bool(structured.forced_tools(body))
    except structured.RequestError as exc:
        raise EngineError("invalid_request", str(exc)) from None
    streams: dict[int, structured.ChoiceStream] = {}
    started: set[int] = set()
    usage = {"input_tokens": 0, "output_tokens": 0, "images": 0}

    def choice(index: int, delta: dict[str, Any], finish: str | None = None, logprobs=None) -> dict[str, Any]:
        if task == "completion":
            out = {"index": index, "text": delta.get("content") or "", "finish_reason": finish}
            if logprobs:
                out["logprobs"] = completion_logprobs(logprobs)
            return out
        if index not in started:
            started.add(index)
            delta = {"role": "assistant", **delta}
        out = {"index": index, "delta": delta, "finish_reason": finish}
        if logprobs:
            out["logprobs"] = {"content": logprobs}
        return out

    async for event in engine.generate(task, body, cancel):
        stream = streams.setdefault(event.index, structured.ChoiceStream(body, forced_call=forced))
        if isinstance(event, End):
            usage["input_tokens"] += event.input_tokens
            usage["output_tokens"] += event.output_tokens
            for delta in stream.finish():
                await emit([choice(event.index, delta)])
            finish = "tool_calls" if stream.made_tool_calls else ("stop" if stream.stopped else event.finish_reason)
            await emit([choice(event.index, {}, finish)])
            continue
        deltas = stream.feed(event.text)  # engines stop at stop strings themselves; this cuts the text exactly
        if deltas or event.logprobs:
            deltas = deltas or [{}]
            last = len(deltas) - 1
            for i, delta in enumerate(deltas):  # one chunk per delta: clients expect each index once a chunk
                await emit([choice(event.index, delta, logprobs=event.logprobs if i == last else None)])
    return None if cancel.is_set() else usage


def completion_logprobs(content: list[dict[str, Any]]) -> dict[str, Any]:
    """Chat-style logprob entries in the legacy completions shape."""
    return {
        "tokens": [e["token"] for e in content],
        "token_logprobs": [e["logprob"] for e in content],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e.get("top_logprobs", [])} for e in content],
    }


class RefusedError(Exception):
    """The coordinator said no (bad signature, unsupported protocol)."""
