"""The node worker's connection: protocol v1 (backend.protocol.session) over websockets, its local engines as the
session's engine, rejoining with backoff while the coordinator is away."""

from __future__ import annotations

import asyncio
import logging
import platform
import threading
from typing import Any, AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import websockets
from nacl.signing import SigningKey

from backend.protocol import frames, outputs
from backend.protocol import receipt as rc
from backend.protocol.body import OpenAIBody
from backend.protocol.session import Finished, Identity, Job, Output, Refused, WorkerSession, stay_joined
from backend.protocol.signing import public_hex, sign_hex
from gpu_worker import __version__, structured
from gpu_worker.engines import End, Engine, EngineError

log = logging.getLogger("one.worker")
# Errors that mean "the coordinator is away or cut us off": logged without a traceback, then retried.
_CONNECTION_ERRORS = (OSError, websockets.WebSocketException, asyncio.TimeoutError, ConnectionError, Refused)


def worker_url(coordinator: str) -> str:
    """http(s)://host:port[/...] -> ws(s)://host:port/worker/ws."""
    parts = urlsplit(coordinator if "://" in coordinator else f"http://{coordinator}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, frames.WORKER_PATH, "", ""))


class LocalEngines:
    """This machine's engines, one per model id, as the session's engine: text goes through the shared layer
    (gpu_worker.structured) so every text engine streams the same OpenAI choices."""

    def __init__(self, engines: dict[str, Engine]):
        self.engines = engines
        self.models: list[frames.ModelOffer] = [
            {"id": m, "max_context": e.max_context, "tasks": list(e.tasks)} for m, e in engines.items()
        ]

    async def run(self, job: Job, cancel: threading.Event) -> AsyncIterator[Output | Finished]:
        engine = self.engines[job.model]
        if job.task in rc.TEXT_TASKS:
            async for event in stream_text(engine, job.task, job.body, cancel, job.sampling_seed):
                yield event
        elif job.task == "score" and hasattr(engine, "score"):
            items, read = await engine.score(job.body)
            yield items
            yield Finished(input_tokens=read)
        elif job.task == "embedding":
            embedded = await engine.embed(job.body)
            yield outputs.embedding_items(embedded.vectors)
            yield Finished(input_tokens=embedded.input_tokens)
        elif job.task == "image":
            made = await engine.images(job.body, cancel)
            yield outputs.image_items(made.pngs)
            yield Finished(output_tokens=made.output_tokens, images=len(made.pngs))
        else:
            raise EngineError("task_not_supported", f"unknown task {job.task!r}")


class WebSocketTransport:
    """The session's transport over a `websockets` connection."""

    def __init__(self, ws: websockets.ClientConnection):
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> str | None:
        try:
            return await self.ws.recv()
        except websockets.ConnectionClosedOK:
            return None


class WorkerClient:
    def __init__(self, coordinator: str, engines: dict[str, Engine], key: SigningKey, payout_address: str, slots: int = 1,
                 cluster: str | None = None):  # fmt: skip
        self.url = worker_url(coordinator)
        self.pubkey = public_hex(key)

        async def sign(message: bytes) -> str:
            return sign_hex(key, message)

        identity = Identity(kind="node", pubkey=self.pubkey, payout_address=payout_address, version=__version__, sign=sign,
                            hardware={"machine": platform.machine(), "system": platform.system()}, cluster=cluster)  # fmt: skip
        self.session = WorkerSession(identity, LocalEngines(engines), slots)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()
        self.session.stop()

    async def run_forever(self) -> None:
        """Stay joined until stop(): back off exponentially (with jitter) while the coordinator is away."""
        await stay_joined(self._join, self._stop, self._retrying, first_delay_s=0.5, max_delay_s=10.0)

    async def _join(self) -> None:
        async with websockets.connect(self.url, max_size=frames.MAX_FRAME_BYTES, ping_interval=None) as ws:
            await self.session.run(WebSocketTransport(ws))

    def _retrying(self, problem: Exception | None, wait_s: float) -> None:
        if isinstance(problem, Refused):
            log.error("coordinator refused this worker: %s; retrying in %.1fs", problem, wait_s)
        elif problem is not None:
            log.warning(
                "coordinator unreachable (%s); retrying in %.1fs",
                problem,
                wait_s,
                exc_info=not isinstance(problem, _CONNECTION_ERRORS),
            )
        else:
            log.info("the coordinator closed the connection; rejoining in %.1fs", wait_s)


async def stream_text(
    engine: Engine, task: str, body: dict[str, Any], cancel: threading.Event, sampling_seed: str | None = None
) -> AsyncIterator[Output | Finished]:
    """Run a text engine through the shared layer: yield OpenAI stream choices (one choice a chunk), then the usage
    and, when the engine knows them, every choice's token ids (what the attestation commits to); nothing more once
    cancelled."""
    try:
        forced = bool(structured.forced_tools(body))
    except structured.RequestError as exc:
        raise EngineError("invalid_request", str(exc)) from None
    streams: dict[int, structured.ChoiceStream] = {}
    started: set[int] = set()
    input_tokens = output_tokens = 0
    tokens: dict[int, list[int] | None] = {}

    def choice(index: int, delta: dict[str, Any], finish: str | None = None, logprobs=None) -> dict[str, Any]:
        if task == "completion":
            return outputs.completion_choice(index, delta.get("content") or "", finish, logprobs)
        if index not in started:
            started.add(index)
            delta = {"role": "assistant", **delta}
        return outputs.chat_choice(index, delta, finish, logprobs)

    async for event in engine.generate(task, body, cancel, sampling_seed):
        stream = streams.setdefault(event.index, structured.ChoiceStream(body, forced_call=forced))
        if isinstance(event, End):
            input_tokens += event.input_tokens
            output_tokens += event.output_tokens
            tokens[event.index] = event.tokens
            for delta in stream.finish():
                yield [choice(event.index, delta)]
            finish = "tool_calls" if stream.made_tool_calls else ("stop" if stream.stopped else event.finish_reason)
            yield [choice(event.index, {}, finish)]
            continue
        deltas = stream.feed(event.text)  # engines stop at stop strings themselves; this cuts the text exactly
        if deltas or event.logprobs:
            deltas = deltas or [{}]
            last = len(deltas) - 1
            for i, delta in enumerate(deltas):  # one chunk per delta: clients expect each index once a chunk
                yield [choice(event.index, delta, logprobs=event.logprobs if i == last else None)]
    if not cancel.is_set():  # a vision job is billed per image it read, too: claim them (the coordinator counts them as well)
        known = tokens and all(ids is not None for ids in tokens.values())
        yield Finished(input_tokens=input_tokens, output_tokens=output_tokens, images=len(OpenAIBody(body).image_parts()),
                       tokens=[tokens[i] for i in sorted(tokens)] if known else None)  # fmt: skip
