"""A worker's side of protocol v1, written once for every worker.

Join (a challenge, answered by a hello signed over its nonce), answer pings, check each job's request digest
before anything is signed, run the job on the worker's engine while streaming its deltas, fold them into the
output the receipt commits to, sign the attestation and send `done`, or an `error` frame; stop a job on
`cancel`. Workers differ only in how frames travel (`Transport`: websockets for the node worker, the tab's
WebSocket for the browser worker), how their key signs (`Identity.sign`: PyNaCl, WebCrypto) and what computes
answers (`Engine`). Stdlib plus rfc8785: the browser worker runs this inside Pyodide.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from backend.protocol import frames, sampler
from backend.protocol import receipt as rc
from backend.protocol.jobs import JobRefused

log = logging.getLogger("one.worker")
JOIN_TIMEOUT_S = 10.0

# The `data` of one delta frame: stream-chunk choices, or embedding / image items (backend.protocol.outputs).
Output = list[dict[str, Any]]


class Refused(Exception):
    """The coordinator would not take this worker (a bad signature, an unsupported protocol); its reason."""


class Transport(Protocol):
    """One open connection to the coordinator's worker socket, carrying frames as JSON text."""

    async def send(self, text: str) -> None: ...

    async def recv(self) -> str | None:
        """The next frame, or None once the connection has closed."""
        ...


@dataclass(frozen=True)
class Identity:
    """What a worker's hello says about it, and how its key signs (a coroutine: WebCrypto signs asynchronously)."""

    kind: str  # "node" or "browser"
    pubkey: str
    payout_address: str
    version: str
    sign: Callable[[bytes], Awaitable[str]]  # Ed25519 signature (hex) of the bytes, by the key of `pubkey`
    hardware: dict[str, Any] = field(default_factory=dict)
    cluster: str | None = None  # the Cluster this node is dedicated to (it consents on the coordinator first)


@dataclass(frozen=True)
class Job:
    """A job frame's fields, as the coordinator sent them."""

    job_id: str
    task: str
    model: str
    body: dict[str, Any]  # the OpenAI request, exactly as the client sent it
    request_salt: str
    request_digest: str
    deadline_ms: int
    sampling_seed: str | None = None  # text jobs: what the ONE sampler draws with (backend.protocol.sampler)

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Job:
        job = cls(**{f.name: frame[f.name] for f in fields(cls) if f.name in frame})
        if job.sampling_seed is not None and not sampler.valid_seed(job.sampling_seed):
            raise JobRefused("invalid_request", "sampling_seed must be 64 lowercase hex digits")
        return job


@dataclass(frozen=True)
class Finished:
    """An engine's last event for a job: what the job used, in the receipt's usage counters."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    tokens: list[list[int]] | None = None  # a text job's token ids per choice (EOS included), committed to for audits

    @property
    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "images": self.images}


class Engine(Protocol):
    """What computes a worker's answers: every model it serves, behind one call."""

    models: list[frames.ModelOffer]  # what the hello advertises; jobs for anything else are refused unseen

    def run(self, job: Job, cancel: threading.Event) -> AsyncIterator[Output | Finished]:
        """Yield the data of each delta in order, then one Finished; stop early once `cancel` is set. Raise
        JobRefused for a request the engine cannot serve (its code goes into the error frame)."""
        ...


class SessionEvents:
    """What happens in a session besides frames, for a worker that shows it (the browser tab's status). No-ops."""

    def joined(self, worker_id: str) -> None:
        """The coordinator welcomed this worker."""

    def served(self, job: Job, finished: Finished) -> None:
        """A job's `done` went out."""

    def failed(self, job: Job, error: Exception) -> None:
        """A job broke on this worker (not a request it refused): it got a `worker_error` frame."""


class WorkerSession:
    """Protocol v1 over one connection at a time; `run` it again on a new connection to rejoin."""

    def __init__(self, identity: Identity, engine: Engine, slots: int = 1, events: SessionEvents | None = None):
        self.identity, self.engine, self.slots = identity, engine, slots
        self.events = events or SessionEvents()
        self._running: dict[str, tuple[asyncio.Task, threading.Event]] = {}
        self._stopping = False
        self._batches = False  # the coordinator takes batched delta frames (its welcome says so)

    def stop(self) -> None:
        """Leave after the next frame (ping interval at most), dropping any job still running."""
        self._stopping = True

    async def run(self, transport: Transport) -> None:
        """Join over an open connection and serve jobs until it closes or `stop()`. Raises Refused if the
        coordinator turns this worker away, frames.ProtocolError on a frame that breaks protocol v1."""
        send_lock = asyncio.Lock()

        async def send(frame: dict[str, Any] | str) -> None:  # a frame, or one already encoded
            text = frame if isinstance(frame, str) else frames.encode(frame)
            async with send_lock:  # frames from concurrent jobs go out whole, one after another
                await transport.send(text)

        worker_id = await self._join(transport, send)
        log.info("joined as %s… serving %s", worker_id[:12], sorted(offer["id"] for offer in self.engine.models))
        self.events.joined(worker_id)
        try:
            while not self._stopping and (text := await transport.recv()) is not None:
                await self._on_frame(frames.parse_frame(text), send)
        finally:
            for task, cancel in self._running.values():
                cancel.set()
                task.cancel()
            self._running.clear()

    async def _join(self, transport: Transport, send: Callable[[dict[str, Any]], Awaitable[None]]) -> str:
        challenge = await self._next_frame(transport)
        if challenge["type"] != "challenge":
            raise frames.ProtocolError(f"expected a challenge, got {challenge['type']}")
        me = self.identity
        await send(frames.hello(kind=me.kind, pubkey=me.pubkey, payout_address=me.payout_address, models=self.engine.models,
                                slots=self.slots, hardware=me.hardware, version=me.version,
                                sig=await me.sign(bytes.fromhex(challenge["nonce"])), cluster=me.cluster))  # fmt: skip
        answer = await self._next_frame(transport)
        if answer["type"] == "refused":
            raise Refused(answer["reason"])
        if answer["type"] != "welcome":
            raise frames.ProtocolError(f"expected welcome or refused, got {answer['type']}")
        self._batches = answer.get("delta_batches") is True
        return answer["worker_id"]

    @staticmethod
    async def _next_frame(transport: Transport) -> dict[str, Any]:
        text = await asyncio.wait_for(transport.recv(), JOIN_TIMEOUT_S)
        if text is None:
            raise ConnectionError("the coordinator closed the connection while joining")
        return frames.parse_frame(text)

    async def _on_frame(self, frame: dict[str, Any], send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        kind = frame["type"]
        if kind == "ping":
            busy = len(self._running)
            await send(frames.pong(frame["t"], busy / self.slots, max(busy - self.slots, 0)))
        elif kind == "job":
            try:
                job, cancel = Job.from_frame(frame), threading.Event()
            except JobRefused as exc:
                await send(frames.error(frame["job_id"], exc.code, str(exc)))
                return
            task = asyncio.ensure_future(self._serve(job, cancel, send))
            self._running[job.job_id] = (task, cancel)
            task.add_done_callback(lambda _task, job_id=job.job_id: self._running.pop(job_id, None))
        elif kind == "cancel" and (running := self._running.get(frame["job_id"])):
            running[1].set()

    async def _serve(self, job: Job, cancel: threading.Event, send: Callable[[dict[str, Any] | str], Awaitable[None]]) -> None:
        """Run one job to its `done` or `error` frame; a cancelled job just stops (the coordinator forgot it)."""
        deltas: DeltaSender | None = None
        try:
            if rc.request_digest(job.body, job.request_salt) != job.request_digest:
                raise JobRefused("digest_mismatch", "request digest does not match body and salt")
            if not any(offer["id"] == job.model and job.task in offer["tasks"] for offer in self.engine.models):
                raise JobRefused("model_not_served", f"this worker does not serve {job.model} for {job.task}")
            output, finished = rc.OutputAssembler(job.task), None
            deltas = DeltaSender(job.job_id, send, cancel, batches=self._batches)
            async for event in self.engine.run(job, cancel):
                if isinstance(event, Finished):
                    finished = event
                elif not cancel.is_set():
                    output.add(event)
                    await deltas.put(event)
            await deltas.flush()
            if cancel.is_set():
                return
            if finished is None:
                raise RuntimeError(f"the engine for {job.model} ended without its usage")
            digest = output.digest()
            text = job.task in rc.TEXT_TASKS  # a text answer also commits to its logprobs, seed and token ids
            committed = rc.logprobs_digest(output.ordered_choices()) if text else None
            tokens = finished.tokens if text else None
            statement = rc.attestation(job.job_id, job.model, job.request_digest, digest, finished.usage, committed,
                                       sampling_seed=job.sampling_seed if text else None,
                                       tokens_digest=rc.tokens_digest(tokens) if tokens is not None else None)  # fmt: skip
            signature = await self.identity.sign(rc.jcs(statement))
            await send(frames.done(job.job_id, finished.usage, digest, signature, committed, tokens=tokens))
            self.events.served(job, finished)
        except JobRefused as exc:
            if not cancel.is_set():
                await send(frames.error(job.job_id, exc.code, str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave the coordinator waiting on a job
            log.exception("job %s failed", job.job_id)
            self.events.failed(job, exc)
            if not cancel.is_set():
                await send(frames.error(job.job_id, "worker_error", type(exc).__name__))
        finally:
            if deltas is not None:
                deltas.stop()


class DeltaSender:
    """Sends one job's deltas in order. With `batches`, a delta is handed to a sending task and the producer goes on:
    the deltas that pile up while a frame is on its way go out together in the next frame (frames.delta_batch), so a
    fast stream costs a WebSocket message per batch, not per token. Nothing waits to fill a batch: a delta is sent as
    soon as the previous frame is out."""

    MAX_BATCH = 256  # deltas in one frame; past that the producer waits for the sender (memory stays bounded)

    def __init__(self, job_id: str, send: Callable[[dict[str, Any] | str], Awaitable[None]], cancel: threading.Event, batches: bool):
        self.job_id, self.send, self.cancel, self.batches = job_id, send, cancel, batches
        self.n = 0  # frames sent
        self.pending: list[Output] = []
        self.sending: asyncio.Task | None = None

    async def put(self, data: Output) -> None:
        if not self.batches:
            await self._send_frame([data])
            return
        self.pending.append(data)
        if self.sending is None or self.sending.done():
            if self.sending is not None:
                self.sending.result()  # a send that failed fails the job
            self.sending = asyncio.ensure_future(self._drain())
        elif len(self.pending) >= self.MAX_BATCH:
            await self.sending

    async def flush(self) -> None:
        """Wait until every delta put is sent (before the `done` frame); raise what a send raised."""
        if self.sending is not None:
            await self.sending

    def stop(self) -> None:
        """Drop what is still unsent (the job failed or was cancelled: the coordinator ignores its late deltas)."""
        self.pending.clear()
        if self.sending is not None and not self.sending.done():
            self.sending.cancel()

    async def _drain(self) -> None:
        while self.pending and not self.cancel.is_set():
            chunks, self.pending = self.pending[: self.MAX_BATCH], self.pending[self.MAX_BATCH :]
            await self._send_frame(chunks)

    async def _send_frame(self, chunks: list[Output]) -> None:
        text = frames.encode(frames.delta_batch(self.job_id, self.n, chunks))
        if len(text) > frames.MAX_FRAME_BYTES and len(chunks) > 1:  # too big together: one frame each
            for data in chunks:
                await self._send_frame([data])
            return
        await self.send(text)
        self.n += 1


async def stay_joined(join: Callable[[], Awaitable[None]], stop: asyncio.Event, on_retry: Callable[[Exception | None, float], None],
                      first_delay_s: float, max_delay_s: float) -> None:  # fmt: skip
    """Run `join` (connect, then WorkerSession.run) again and again until `stop` is set, backing off exponentially
    with jitter while the coordinator is away; a session that ended cleanly starts over at the first delay.
    `on_retry(problem, wait_s)` hears why each session ended (None: the coordinator closed it)."""
    delay = first_delay_s
    while not stop.is_set():
        problem: Exception | None = None
        try:
            await join()
            delay = first_delay_s
        except Exception as exc:  # unreachable, refused, cut off: try again later
            problem = exc
        if stop.is_set():
            break
        wait_s = delay * (0.75 + random.random() / 2)
        on_retry(problem, wait_s)
        try:
            await asyncio.wait_for(stop.wait(), wait_s)
        except asyncio.TimeoutError:
            pass
        delay = min(delay * 2, max_delay_s)
