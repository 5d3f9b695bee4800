"""Running one inference job for a caller: quote, queue, relay, check the worker's claim, write the receipt.

Both the OpenAI API and the web app call `InferenceService.chat`, so a chat from the UI and one from
an SDK take the same path and leave the same receipt. A receipt is written only after the whole
output was relayed and the worker's attestation checked; any failure before that charges nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, AsyncIterator

from backend.access.clusters import private_model
from backend.access.limits import request_problem
from backend.api.errors import ApiError
from backend.catalog import Catalog, CatalogModel
from backend.config import Settings
from backend.money import ledger
from backend.money.lanes import Hold, Lanes, quote
from backend.money.sla import SlaMeter
from backend.protocol import frames, sampler
from backend.protocol import receipt as rc
from backend.protocol.body import charge_unit
from backend.protocol.signing import verify_hex
from backend.scheduler import ANY_WORKER, CLIENT_FAULT_CODES, PRIORITY_INCLUDED, Job, Scheduler, Steering
from backend.serving.routing import FALLBACK_STATUSES, RouteProblem, preferences_of
from backend.serving.usage import INLINE_COUNT_CHARS, bill, text_volume
from backend.trust.audits import AUDIT_PRIORITY, Auditor, record_overclaim
from backend.trust.receipts import ReceiptLog

log = logging.getLogger("one.inference")


class InferenceError(ApiError):
    """A job that failed or was refused: the API's error, raised where requests are served."""


@dataclass
class Delta:
    """Part of the answer: the `data` of each delta frame that was waiting (stream chunk `choices`, or embedding/image
    items), in the order the worker sent them. Relaying every frame already queued in one step lets the API write them
    in one send: at thousands of tokens a second, the per-write cost of the server, not the bytes, is the relay's limit."""

    chunks: list[list[dict[str, Any]]]
    model: str  # the model answering (a fallback's, when the first could not)
    job_id: str


@dataclass
class Finished:
    """The job completed and its receipt is in the log."""

    receipt: dict[str, Any]
    request_salt: str
    usage: dict[str, int]
    output: rc.OutputAssembler  # assembled choices (text tasks) or data items (embedding, image)
    tokens: list[list[int]] | None = None  # a text answer's token ids per choice, as its worker committed to them

    @property
    def model(self) -> str:
        return self.receipt["model"]

    @property
    def job_id(self) -> str:
        return self.receipt["job"]


@dataclass
class Caller:
    account_id: str
    lane: str = "included"
    parent: str | None = None
    metered: bool = False  # signed-in callers pay; the anonymous dev-mode caller does not
    priority: int = PRIORITY_INCLUDED  # Dedicated packages run ahead (lower first)
    package: str | None = None  # the Dedicated package paying (its SLA and, for a Cluster, its nodes)
    cluster: str | None = None  # a Cluster holder's account: its nodes run its jobs first, its private models are callable


@dataclass
class Completed:
    """One finished job's timing, kept in memory for the operator dashboard's plots (no content)."""

    at: float  # wall clock
    model: str
    lane: str
    latency_ms: float
    first_delta_ms: float | None


class InferenceService:
    def __init__(self, settings: Settings, catalog: Catalog, scheduler: Scheduler, receipts: ReceiptLog, lanes: Lanes):
        self.settings, self.catalog, self.scheduler, self.receipts, self.lanes = settings, catalog, scheduler, receipts, lanes
        self.completed: deque[Completed] = deque(maxlen=5000)
        self.auditor: Auditor | None = None  # set by the runtime (the auditor runs its re-runs through this service)
        self.sla: SlaMeter | None = None  # set by the runtime: metered Dedicated jobs' timings for their package's SLA

    async def resolve_model(self, model_id: str, task: str, caller: Caller, param: str = "model") -> CatalogModel:
        """The catalog model, or the caller's Cluster's private model, of that id serving `task`; else 404 (400 for a
        fallback named in `route`)."""
        model = self.catalog.get(model_id) or await asyncio.to_thread(private_model, model_id, caller.cluster)
        if model is None or task not in model.tasks:
            status, code = (404, "model_not_found") if param == "model" else (400, "invalid_route")
            raise InferenceError(status, f"The model `{model_id}` does not exist or does not serve {task}.", code, param=param)
        return model

    def check_available(self, model: CatalogModel, caller: Caller, steering: Steering = ANY_WORKER) -> None:
        """503 while no worker that may run this caller's job serves the model (offline, or none meets the caller's
        routing preferences); 429 while too many jobs wait."""
        if not self.scheduler.advertises(model.id, caller.cluster, steering, nodes_only=model.private):
            online = self.scheduler.advertises(model.id, caller.cluster, nodes_only=model.private)
            why = "that meets the request's route preferences" if online else "right now"
            raise InferenceError(503, f"No worker is serving `{model.id}` {why}; try again shortly.", "model_unavailable", type_="server_error")
        if self.scheduler.queue_depth() >= self.settings.max_queue_depth:
            raise InferenceError(
                429, "Too many requests are waiting for workers; retry shortly.", "rate_limit_exceeded", type_="rate_limit_error"
            )

    async def run(self, task: str, body: dict[str, Any], caller: Caller, job_id: str | None = None) -> AsyncIterator[Delta | Finished]:
        """Yield Delta events as a worker streams, then one Finished; raise InferenceError on failure. The request's
        `route` (backend/serving/routing.py) steers the workers and names fallback models, tried in order while a
        model cannot answer before its first token; only the job that answered is charged."""
        try:
            route = preferences_of(body)
        except RouteProblem as exc:
            raise InferenceError(400, str(exc), "invalid_route", param="route") from None
        models = [await self.resolve_model(body["model"], task, caller)]
        for i, fallback in enumerate(dict.fromkeys(route.fallbacks)):
            if fallback != models[0].id:
                models.append(await self.resolve_model(fallback, task, caller, param=f"route.fallbacks.{i}"))
        if route.sort == "price":  # cheapest quote first (stable: the caller's order among equals)
            models.sort(key=lambda m: quote(m, body, task))
        for i, model in enumerate(models):
            answered = False
            try:
                async for event in self.attempt(model, task, body, caller, job_id=job_id if i == 0 else None, steering=route.steering):
                    answered = True
                    yield event
                return
            except InferenceError as exc:
                if answered or i == len(models) - 1 or exc.status not in FALLBACK_STATUSES:
                    raise
                log.info("%s could not answer (%s); trying %s", model.id, exc.code, models[i + 1].id)

    async def attempt(
        self, model: CatalogModel, task: str, body: dict[str, Any], caller: Caller, job_id: str | None = None,
        exclude: frozenset[str] = frozenset(), audit_of: dict[str, Any] | None = None, pin: str | None = None,
        steering: Steering = ANY_WORKER, sampling_seed: str | None = None,
    ) -> AsyncIterator[Delta | Finished]:
        """One model's job: Delta events, then one Finished; InferenceError on failure. `audit_of`: this job re-executes
        that receipt's request (kind "audit", no charge); `pin`: only that worker may run it (the auditor drawn);
        `exclude`: workers that must not."""  # fmt: skip
        await self.scheduler.ready()
        self.check_available(model, caller, steering)
        if (problem := request_problem(task, body, model.context, self.settings)) is not None:
            raise InferenceError(400, problem.message, "limit_exceeded", param=problem.param)
        salt = secrets.token_hex(16)
        now = time.monotonic()
        job = Job(
            job_id=job_id or uuid.uuid4().hex,
            task=task,
            model=model.id,
            body=body,
            request_salt=salt,
            request_digest=rc.request_digest(body, salt),
            deadline_s=now + self.settings.job_deadline_s,
            priority=caller.priority,
            exclude=exclude,
            pin=pin,
            cluster=caller.cluster,
            nodes_only=model.private,
            steering=steering,
            sampling_seed=(sampling_seed or sampler.seed_for(body)) if task in rc.TEXT_TASKS else None,
        )
        hold = await self._hold(caller, model, body, task, job.job_id)
        self.scheduler.submit(job)
        output = rc.OutputAssembler(task)
        settled = False
        first_delta: float | None = None
        failure: Exception | None = None
        try:
            held: tuple | None = None  # the event after a run of deltas, taken from the queue while gathering them
            while True:
                event, held = held or await self._next_event(job), None
                if event[0] == "delta":
                    first_delta = first_delta or time.monotonic()
                    frames_here = [event[1]]
                    while not job.events.empty():  # every delta already waiting goes out in this step
                        held = job.events.get_nowait()
                        if held[0] != "delta":
                            break
                        frames_here.append(held[1])
                        held = None
                    try:
                        chunks = [data for frame in frames_here for data in frames.delta_chunks(frame)]
                        for data in chunks:
                            output.add(data)
                    except (ValueError, TypeError, KeyError):
                        raise InferenceError(502, "Worker sent a malformed delta.", "worker_protocol_error", type_="server_error") from None
                    yield Delta(chunks, model.id, job.job_id)
                elif event[0] == "done":
                    finished = await self._finish(job, event[1], output, model, caller, salt, hold, audit_of)
                    settled = True
                    done = time.monotonic()
                    self.completed.append(Completed(time.time(), model.id, caller.lane, (done - now) * 1000,
                                                    (first_delta - now) * 1000 if first_delta else None))  # fmt: skip
                    if self.sla is not None:
                        await self.sla.served(caller, now, first_delta, own_node=job.on_own_node)
                    yield finished
                    return
                else:
                    raise _worker_error(*event[1:])
        except Exception as exc:
            failure = exc
            raise
        finally:
            # A client that hangs up cancels this task, and the server's cancel scope cancels every await made after
            # it: the clean-up runs as a task of its own, so the worker is told to stop and the hold always comes back.
            closing = asyncio.ensure_future(self._close(job, caller, hold, settled, now, failure))
            await asyncio.shield(closing)

    async def _close(self, job: Job, caller: Caller, hold: Hold | None, settled: bool, started: float, failure: Exception | None) -> None:
        """After a job, however it ended: stop it if it still runs, give back an unsettled hold, note a failure."""
        if not job.finished:
            await self.scheduler.cancel(job)
        self.scheduler.done_with(job)
        if hold is not None and not settled:  # no receipt, no charge: give the hold back
            await asyncio.to_thread(ledger.release, job.job_id)
        if hold is not None and self.scheduler.broker is not None:
            self.scheduler.broker.untrack_hold(job.job_id)
        if self.sla is not None and not settled:  # a closed generator (client went away) leaves failure None
            await self.sla.failed(caller, started, failure, own_node=job.on_own_node)

    async def rerun(self, job: Job, receipt: dict[str, Any], worker: str) -> dict[str, Any] | None:
        """An audit: the audited receipt's request again on `worker` only, as an `audit` receipt (no charge). Returns
        that receipt, or None when the re-run failed (an audit without it stays inconclusive)."""
        caller = Caller(account_id="audit", lane="included", priority=AUDIT_PRIORITY, cluster=job.cluster)
        model = self.catalog.get(job.model) or await asyncio.to_thread(private_model, job.model, job.cluster)
        if model is None:
            return None
        try:
            async for event in self.attempt(model, job.task, job.body, caller, pin=worker, audit_of=receipt, sampling_seed=receipt.get("sampling_seed")):
                if isinstance(event, Finished):
                    return event.receipt
        except InferenceError as exc:
            log.info("audit re-run of %s failed: %s", receipt["hash"][:12], exc.message)
        return None

    async def score(self, job: Job, receipt: dict[str, Any], body: dict[str, Any], worker: str) -> tuple[list[float], dict[str, Any]] | None:
        """An audit of a text answer: `worker` re-scores the answer's tokens with the claimed model in one teacher-forced
        pass (a `score` job: body = {"task", "request", "sampling_seed", "choices": [{"index", "tokens", "content"}]}).
        Returns the per-token margins (backend.protocol.sampler) and the `audit` receipt of that work (no charge), or None
        when the auditor failed or answered out of form (the audit then stays inconclusive)."""
        salt = secrets.token_hex(16)
        scoring = Job(
            job_id=uuid.uuid4().hex, task="score", model=job.model, body=body, request_salt=salt,
            request_digest=rc.request_digest(body, salt), deadline_s=time.monotonic() + self.settings.job_deadline_s,
            priority=AUDIT_PRIORITY, pin=worker, cluster=job.cluster, nodes_only=job.nodes_only,
        )  # fmt: skip
        await self.scheduler.ready()
        self.scheduler.submit(scoring)
        output = rc.OutputAssembler("score")
        try:
            while True:
                event = await self._next_event(scoring)
                if event[0] == "delta":
                    for data in frames.delta_chunks(event[1]):
                        output.add(data)
                elif event[0] == "done":
                    break
                else:
                    raise _worker_error(*event[1:])
            done, auditor = event[1], scoring.worker
            usage, digest = rc.normalize_usage(done["usage"]), output.digest()
            statement = rc.attestation(scoring.job_id, job.model, scoring.request_digest, digest, usage)
            if auditor is None or done["output_digest"] != digest or not verify_hex(auditor.worker_id, rc.jcs(statement), done["attestation_sig"]):
                raise ValueError("the auditor's attestation does not match what it sent")
            margins = _claimed_margins(output.ordered_items(), body["choices"])
        except (InferenceError, ValueError, TypeError, KeyError) as exc:
            log.info("scoring audit of %s on %s… failed: %s", receipt["hash"][:12], worker[:12], getattr(exc, "message", exc))
            return None
        finally:
            if not scoring.finished:
                await self.scheduler.cancel(scoring)
            self.scheduler.done_with(scoring)
        stored = await self.receipts.append(
            job=scoring.job_id, kind="audit", lane="included", account=self.receipts.account_ref("audit"), model=job.model,
            request_digest=scoring.request_digest, output_digest=digest, usage=usage, charge_unit=charge_unit("included"),
            charge_amount=0, worker_id=auditor.worker_id, worker_sig=done["attestation_sig"], parent=receipt["hash"],
        )  # fmt: skip
        return margins, stored

    async def outcome(self, receipt: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
        """An audit's outcome in the public log: an `audit` receipt the coordinator signs in the worker slot (as for
        tool calls), whose request digest is the audited receipt's hash and whose output digest is sha256(JCS(document))."""
        return await self.receipts.append_own(
            job=uuid.uuid4().hex, kind="audit", lane="included", account=self.receipts.account_ref("audit"), model=receipt["model"],
            request_digest=receipt["hash"], output_digest=rc.sha256hex(rc.jcs(document)), parent=receipt["hash"],
        )  # fmt: skip

    async def _hold(self, caller: Caller, model: CatalogModel, body: dict[str, Any], task: str, job_id: str) -> Hold | None:
        """Reserve the request's quote on its lane, or answer 402 with a Dedicated offer."""
        if not caller.metered:
            return None
        if caller.lane not in model.lanes:  # e.g. a Dedicated-only model asked for on the Included lane
            raise InferenceError(
                402, f"`{model.id}` is not served on the {caller.lane} lane.", "lane_not_allowed", type_="insufficient_quota",
                param="model", extra={"offer": self.lanes.offer()},
            )  # fmt: skip
        amount = quote(model, body, task)
        if self.scheduler.broker is not None:  # before the hold: if this replica dies, the others release it
            await self.scheduler.broker.track_hold(job_id)
        try:
            return await asyncio.to_thread(self.lanes.open_hold, caller.account_id, caller.lane, amount, job_id)
        except ledger.InsufficientBalance as exc:
            raise InferenceError(
                402,
                f"This request may cost {amount} micro-units; {exc.balance} left on the {caller.lane} lane.",
                "insufficient_quota",
                type_="insufficient_quota",
                extra={"offer": self.lanes.offer()},
            ) from None

    async def _next_event(self, job: Job) -> tuple:
        while True:
            now = time.monotonic()
            if now >= job.deadline_s:
                if job.worker is not None:  # a worker that sits on jobs loses routing weight as if it had failed them
                    self.scheduler.note_failure(job.worker)
                raise InferenceError(504, "The request ran past its deadline.", "timeout", type_="server_error")
            if job.worker is None and not job.started and now - job.enqueued_at > self.settings.queue_timeout_s:
                raise InferenceError(503, "All workers for this model are busy; try again shortly.", "no_capacity", type_="server_error")
            try:
                return await asyncio.wait_for(job.events.get(), timeout=min(1.0, job.deadline_s - now))
            except asyncio.TimeoutError:
                self.scheduler.tick()
                continue

    async def _finish(
        self, job: Job, done: dict[str, Any], output: rc.OutputAssembler, model: CatalogModel, caller: Caller, salt: str, hold: Hold | None,
        audit_of: dict[str, Any] | None = None,
    ) -> Finished:
        """Check the worker's attestation against what was relayed, then write the receipt."""
        worker = job.worker
        try:
            usage = rc.normalize_usage(done["usage"])
        except ValueError as exc:
            raise InferenceError(502, f"Worker reported bad usage: {exc}", "worker_bad_usage", type_="server_error") from None
        try:
            output_digest = output.digest()
        except (ValueError, TypeError, KeyError):
            raise InferenceError(502, "Worker's output cannot be digested.", "worker_protocol_error", type_="server_error") from None
        if done["output_digest"] != output_digest:
            raise InferenceError(502, "Worker's output digest does not match the streamed output.", "worker_output_mismatch", type_="server_error")
        committed = rc.logprobs_digest(output.ordered_choices()) if job.task in rc.TEXT_TASKS else None
        if done.get("logprobs_digest") != committed:
            raise InferenceError(502, "Worker's logprobs digest does not match the streamed logprobs.", "worker_output_mismatch", type_="server_error")
        tokens = done.get("tokens")
        if tokens is not None and not rc.valid_tokens(tokens, len(output.ordered_choices()), usage["output_tokens"]):
            raise InferenceError(502, "Worker's token ids do not match its answer's choices and usage.", "worker_output_mismatch", type_="server_error")
        tokens = tokens if job.task in rc.TEXT_TASKS else None  # only a text answer's ids are committed to
        tokens_digest = rc.tokens_digest(tokens) if tokens is not None else None
        attestation = rc.attestation(job.job_id, model.id, job.request_digest, output_digest, usage, committed,
                                     sampling_seed=job.sampling_seed, tokens_digest=tokens_digest)  # fmt: skip
        if worker is None or not verify_hex(worker.worker_id, rc.jcs(attestation), done["attestation_sig"]):
            raise InferenceError(502, "Worker's attestation signature does not verify.", "worker_bad_attestation", type_="server_error")
        # The receipt keeps the worker's signed claim; the charge is the rate on what the coordinator counted
        # itself (never more than the claim). Unmetered work (dev-mode key-less callers) and audits charge
        # nothing, so settlement, which pays only debited charges, never pays for them.
        if hold is not None and model.charge(usage) > hold.amount:  # a claim the request's own limits rule out
            raise InferenceError(502, "Worker reported more usage than the request allows.", "worker_bad_usage", type_="server_error")
        if text_volume(job.task, job.body, output) <= INLINE_COUNT_CHARS:  # a short answer counts faster than a thread hop
            count = bill(model, job.task, job.body, output, usage)
        else:  # tokenizing a long prompt or answer is CPU work: off the loop
            count = await asyncio.to_thread(bill, model, job.task, job.body, output, usage)
        if count.overclaimed:
            await asyncio.to_thread(record_overclaim, worker.worker_id, self.scheduler)
        charge = model.charge(count.billed) if hold is not None and audit_of is None else 0
        stored = await self.receipts.append(
            job=job.job_id,
            kind="audit" if audit_of else job.task,
            lane=caller.lane,
            account=self.receipts.account_ref(caller.account_id),
            model=model.id,
            request_digest=job.request_digest,
            output_digest=output_digest,
            usage=usage,
            charge_unit=charge_unit(caller.lane),
            charge_amount=charge,
            worker_id=worker.worker_id,
            worker_sig=done["attestation_sig"],
            parent=audit_of["hash"] if audit_of else caller.parent,
            logprobs_digest=committed,
            sampling_seed=job.sampling_seed,
            tokens_digest=tokens_digest,
            settle=(hold.account, hold.epoch) if hold is not None else None,
        )
        if self.auditor is not None and audit_of is None:
            self.auditor.consider(job, stored, output, tokens)
        return Finished(receipt=stored, request_salt=salt, usage=usage, output=output, tokens=tokens)


def _claimed_margins(items: list[dict[str, Any]], choices: list[dict[str, Any]]) -> list[float]:
    """An auditor's margins, one per claimed token of every choice, checked against the choices it was given."""
    by_index = {item.get("index"): item.get("margins") for item in items}
    margins: list[float] = []
    for choice in choices:
        values = by_index.get(choice["index"])
        if not isinstance(values, list) or len(values) != len(choice["tokens"]) or not all(
            isinstance(m, (int, float)) and not isinstance(m, bool) for m in values
        ):
            raise ValueError(f"no margin for every token of choice {choice['index']}")
        margins += [float(m) for m in values]
    return margins


def _worker_error(code: str, message: str) -> InferenceError:
    if code in CLIENT_FAULT_CODES:  # the caller's fault: the request itself cannot be served as sent
        return InferenceError(400, message, code, param="messages" if code == "context_length_exceeded" else None)
    return InferenceError(502, f"Inference failed: {message}", code, type_="server_error")
