"""The agent runner inside the coordinator.

Schedules live in the database (`agent.next_run_at`), so a restart keeps them. A run calls the agent's
tools in the order its file lists them: for each, the model writes the tool's arguments (the tool is
forced with `tool_choice`, through the normal scheduler and lanes), the coordinator runs the tool, and
the result goes back into the conversation (arguments the file fixes override what the model wrote); then the
model writes the report. Every inference step and
every tool call is a receipt whose `parent` is the receipt before it, so a run's whole history is one
verifiable trail. The budget is the owner's lane balance (402 stops the run), plus `max_spend` per run,
checked against each step's quote before it is sent: no overdraft. Results go to the webhook only
(HMAC-signed, retried, through the checked fetch: public addresses only), and only from runs that did some
work; the database keeps statuses and receipt hashes, never text.

A monitor (`watch:` in its file) keeps one digest per agent, its watched tool's last output digest: a run whose
result did not change (or, with a text condition, does not match) ends right after that tool as `unchanged` or
`not_matched` and posts nothing. The first run only records the baseline (`baseline`, nothing posted): there is
nothing to compare it with. Trading tools (backend/agents/trading.py) spend from the agent's own derived wallet
under the file's caps; each transaction is a `tool` receipt whose job is its hash.

Deploying is free, so it is where abuse is stopped: the account must be able to pay for a step, a schedule
may not fire more often than `agent_min_interval_s`, and an account has at most `max_agents_per_account`
agents and `max_agent_runs_per_account` runs going at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, update
from sqlmodel import col, select

from backend.access.auth import package_live
from backend.access.clusters import cluster_of
from backend.agents import tools as tools_mod
from backend.agents.spec import AgentSpec, AgentSpecError, SpecProblem, key_lines, next_run, parse_agent
from backend.db import session
from backend.db.models import AgentRecord, AgentRun
from backend.money.lanes import priority_of, quote
from backend.protocol import receipt as rc
from backend.protocol.safe_fetch import AddressRefused, FetchError, fetch, public_target
from backend.serving.inference import Caller, Finished, InferenceError

if TYPE_CHECKING:  # the runtime builds the runner: a runtime import here would be a cycle
    from backend.runtime import Runtime

log = logging.getLogger("one.agents")
STEP_MAX_TOKENS = 64
RETRIES = 3
WEBHOOK_TIMEOUT_S = 10.0
WEBHOOK_REPLY_BYTES = 64 * 1024  # read and dropped: a webhook's answer is only its status
DEFAULT_GOAL = "You are the unattended agent `{name}`. Use each tool you are given, then write a short report."


def agent_id_of(account: str, name: str) -> str:
    return f"{account}:{name}"


def account_of(agent_id: str) -> str:
    """The owner in an agent id (names have no colon)."""
    return agent_id.rpartition(":")[0]


def sign_webhook(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class BudgetExhausted(Exception):
    pass


class PackageExpired(Exception):
    """The Dedicated package the agent spends has run out: the agent pauses until a new one is bought."""


class WatchQuiet(Exception):
    """A monitor's watched result gives nothing to report: the run ends here with this status and posts nothing."""

    def __init__(self, status: str, why: str | None = None):
        super().__init__(why or status)
        self.status, self.why = status, why


class RunContext:
    """What a tool sees: settings, and `infer` for tools that need the model (their receipts join the trail)."""

    def __init__(self, runner: "AgentRunner", record: AgentRecord, spec: AgentSpec, run: AgentRun):
        self.runner, self.record, self.spec, self.run = runner, record, spec, run
        self.settings = runner.settings
        self.trail: list[str] = []
        self.tools_called: list[str] = []
        self.spent = 0
        self.traded = 0  # micro-USDC the agent's wallet spent this run (trading tools)
        self.job: str | None = None  # a tool that sent a transaction names it here: its receipt's job is the tx hash

    @property
    def parent(self) -> str | None:
        return self.trail[-1] if self.trail else None

    async def step(self, body: dict[str, Any]) -> Any:
        """One inference through the normal path, with the budget checked first and retries on capacity errors."""
        rt = self.runner.runtime
        model = rt.catalog.get(body["model"])
        if self.spec.budget.max_spend is not None and model is not None:
            if self.spent + quote(model, body, "chat") > self.spec.budget.max_spend:
                raise BudgetExhausted(f"the next step could cost more than what is left of max_spend ({self.spec.budget.max_spend - self.spent})")
        caller = Caller(account_id=self.record.account, lane=self.record.lane, parent=self.parent, metered=True,
                        priority=priority_of(rt.packages, self.record.package), package=self.record.package,
                        cluster=cluster_of(rt.packages, self.record.account, self.record.package))  # fmt: skip
        for attempt in range(RETRIES):
            try:
                async for event in rt.inference.run("chat", body, caller):
                    if isinstance(event, Finished):
                        self.trail.append(event.receipt["hash"])
                        self.spent += event.receipt["charge"]["amount"]
                        self.run.steps += 1
                        return event.output.ordered_choices()[0]
            except InferenceError as exc:
                if exc.status == 402:
                    raise BudgetExhausted(exc.message) from None
                if exc.status < 500 and exc.status != 429 or attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)
        raise RuntimeError("no answer")

    async def infer(self, messages: list[dict[str, Any]]) -> str:
        choice = await self.step({"model": self.spec.model, "messages": messages, "max_tokens": STEP_MAX_TOKENS})
        return choice.get("content") or ""

    async def tool_receipt(self, name: str, arguments: dict[str, Any], result: str, job: str | None = None, called: bool = True) -> dict[str, Any]:
        """The coordinator ran a tool (or sent a transaction for one: then `job` is its hash): it signs that as both
        worker and coordinator (kind "tool", no charge). `called`: a tool of the file, listed in the run's tools."""
        rt = self.runner.runtime
        job = job or secrets.token_hex(16)
        request_digest = rc.request_digest({"tool": name, "arguments": arguments}, secrets.token_hex(16))
        output_digest = rc.sha256hex(rc.jcs({"tool": name, "output": result}))
        stored = await rt.receipts.append_own(
            job=job, kind="tool", lane=self.record.lane, account=rt.receipts.account_ref(self.record.account), model=name,
            request_digest=request_digest, output_digest=output_digest, parent=self.parent,
        )  # fmt: skip
        self.trail.append(stored["hash"])
        if called:
            self.tools_called.append(name)
        return stored


class AgentRunner:
    def __init__(self, runtime: Runtime):
        self.runtime, self.settings = runtime, runtime.settings
        self.running: dict[str, asyncio.Task] = {}
        tools_mod.load_tool_modules(self.settings.agent_tool_modules)

    # ---- deploying ----
    def validate(self, text: str) -> AgentSpec:
        rt = self.runtime
        return parse_agent(text, models={m.id for m in rt.catalog.models}, tools=tools_mod.REGISTRY,
                           packages={p.id for p in rt.packages.packages}, min_interval_s=self.settings.agent_min_interval_s)  # fmt: skip

    def deploy(self, text: str, account: str, lane: str, package: str | None) -> tuple[AgentRecord, str | None, list[str]]:
        """Store (or replace) an agent for this account; returns it, its webhook secret (shown once, on create) and
        warnings (a model no worker serves right now). Refusals are InferenceErrors: 400 for the file, 402 when the
        account cannot pay, 403 over the agent cap. A changed file forgets a monitor's baseline."""
        spec = self.check(text, lane, package)
        self.check_can_pay(spec, account, lane, package)
        now = time.time()
        with session() as db:
            record = db.get(AgentRecord, agent_id_of(account, spec.agent))
            secret = None
            if record is None:
                owned = db.exec(select(func.count()).select_from(AgentRecord).where(AgentRecord.account == account)).one()
                if owned >= self.settings.max_agents_per_account:
                    raise InferenceError(403, f"This account has {owned} agents, the most one account may have ({self.settings.max_agents_per_account});"
                                              " replace one (deploy it again under its name) instead.", "too_many_agents")  # fmt: skip
                secret = secrets.token_hex(24)
                record = AgentRecord(id=agent_id_of(account, spec.agent), name=spec.agent, account=account, lane=lane, package=package,
                                     spec=text, webhook_secret=secret, status="active", created_at=now)  # fmt: skip
            if record.spec != text:
                record.watch_digest = None
            record.spec, record.lane, record.package = text, lane, package
            record.next_run_at = next_run(spec.trigger.schedule, now) if spec.trigger.schedule else None
            db.add(record)
            db.commit()
            db.refresh(record)
            return record, secret, self.warnings(spec, cluster_of(self.runtime.packages, account, package))

    def check(self, text: str, lane: str, package: str | None) -> AgentSpec:
        """Everything deploy checks of the file itself for this key (the spec, its budget against the key's lane, the
        webhook's address), each problem with its line (AgentSpecError); stores nothing."""
        spec = self.validate(text)
        lines, problems = key_lines(text), []
        if spec.budget.lane != lane or (spec.budget.package or None) != (package or None):
            problems.append(SpecProblem(lines.get(("budget",), 1), "budget", f"the budget ({spec.budget.lane}{' / ' + spec.budget.package if spec.budget.package else ''})"
                                        f" must be the key's lane ({lane}{' / ' + package if package else ''})"))  # fmt: skip
        if spec.output is not None:
            try:
                public_target(str(spec.output.webhook), self.settings.fetch_allow_networks)
            except FetchError as exc:
                problems.append(SpecProblem(lines.get(("output", "webhook"), 1), "output.webhook", str(exc)))
        if problems:
            raise AgentSpecError(problems)
        return spec

    def dry_run(self, text: str, account: str, lane: str, package: str | None) -> list[str]:
        """What deploy would say, storing nothing: AgentSpecError for the file, else its warnings, a refusal to pay
        first (that is the account's state, not the file's)."""
        spec = self.check(text, lane, package)
        try:
            self.check_can_pay(spec, account, lane, package)
            refused = []
        except InferenceError as exc:
            refused = [f"deploy would be refused now: {exc.message}"]
        return refused + self.warnings(spec, cluster_of(self.runtime.packages, account, package))

    def warnings(self, spec: AgentSpec, cluster: str | None = None) -> list[str]:
        """What will not stop a deploy but may stop its runs (a Cluster's agent also runs on the Cluster's nodes)."""
        found = []
        if not self.runtime.scheduler.advertises(spec.model, cluster):
            found.append(f"no worker serves `{spec.model}` right now: its runs wait for one (up to the queue timeout)")
        if any(tools_mod.REGISTRY[name].spends for name in spec.tool_names) and not self.settings.pool_address:
            found.append("this network has no pool (ONE_POOL_ADDRESS): swap and $ONE transfers will be refused")
        return found

    def check_can_pay(self, spec: AgentSpec, account: str, lane: str, package: str | None) -> None:
        """402 unless the account can pay for a step of this agent now: its model on the lane, a live package on the
        Dedicated lane, and a balance (Included: this epoch's allotment) that covers one step's quote."""
        lanes = self.runtime.inference.lanes
        model = self.runtime.catalog.get(spec.model)
        step = quote(model, {"max_tokens": STEP_MAX_TOKENS}, "chat")
        balance = lanes.summary(account, lane)["balance"]
        if lane not in model.lanes:
            why = f"`{model.id}` is not served on the {lane} lane"
        elif lane == "dedicated" and not package_live(account, package):
            why = f"its {package} package has expired"
        elif balance < step:
            why = f"one step of `{model.id}` may cost {step} micro-units, and it has {balance} left on the {lane} lane"
        else:
            return
        raise InferenceError(402, f"This account cannot pay for the agent's steps: {why}. Hold $ONE for an Included allotment, or buy a"
                                  " Dedicated package and deploy with its key.", "insufficient_quota", type_="insufficient_quota",
                             extra={"offer": lanes.offer()})  # fmt: skip

    # ---- scheduling ----
    async def loop(self) -> None:
        """Start every due agent; the next time is stored before the run starts, so a skipped run waits for its next slot."""
        while True:
            try:
                for agent_id in await asyncio.to_thread(claim_due, None, self.settings.agent_min_interval_s):
                    try:
                        self.start(agent_id, "schedule")
                    except InferenceError as exc:
                        log.info("agent %s: scheduled run skipped (%s)", agent_id, exc.code)
            except Exception:
                log.exception("agent scheduler tick failed")
            await asyncio.sleep(1.0)

    def set_status(self, agent_id: str, status: str) -> AgentRecord | None:
        """Pause or resume; resuming a scheduled agent sets its next run from now (no burst of missed runs)."""
        with session() as db:
            record = db.get(AgentRecord, agent_id)
            if record is not None:
                record.status = status
                schedule = parse_agent(record.spec).trigger.schedule
                if status == "active" and schedule:
                    record.next_run_at = next_run(schedule, time.time())
                db.add(record)
                db.commit()
                db.refresh(record)
            return record

    def start(self, agent_id: str, trigger: str) -> str:
        """Start a run now: one at a time per agent (409), at most max_agent_runs_per_account per account (429).
        The counts are this coordinator process's."""
        if agent_id in self.running and not self.running[agent_id].done():
            name = agent_id.rpartition(":")[2]
            raise InferenceError(409, f"`{name}` is already running; wait for this run to end.", "agent_running")
        cap, owner = self.settings.max_agent_runs_per_account, account_of(agent_id)
        going = sum(1 for other, task in self.running.items() if not task.done() and account_of(other) == owner)
        if going >= cap:
            raise InferenceError(429, f"This account has {going} agent runs going, the most it may have at once ({cap});"
                                      " try again when one ends.", "too_many_agent_runs", type_="requests")  # fmt: skip
        run_id = secrets.token_hex(8)
        self.running[agent_id] = asyncio.get_running_loop().create_task(self.run(agent_id, run_id, trigger))
        return run_id

    # ---- one run ----
    async def run(self, agent_id: str, run_id: str, trigger: str) -> AgentRun:
        with session() as db:
            record = AgentRecord(**db.get(AgentRecord, agent_id).model_dump())  # a plain copy, free of the session
            run = AgentRun(id=run_id, agent=agent_id, trigger=trigger, status="running", started_at=time.time())
            db.add(run)
            db.commit()
            db.refresh(run)
        spec = parse_agent(record.spec)
        ctx = RunContext(self, record, spec, run)
        report = ""
        try:
            if record.lane == "dedicated" and not await asyncio.to_thread(package_live, record.account, record.package):
                raise PackageExpired(f"the {record.package} package that pays for this agent has expired; buy one, deploy again, then resume")
            goal = spec.goal or DEFAULT_GOAL.format(name=spec.agent)
            messages: list[dict[str, Any]] = [{"role": "system", "content": goal}, {"role": "user", "content": f"Run {spec.agent} now."}]
            for index, name in enumerate(spec.tool_names):
                if run.steps >= spec.budget.max_steps:
                    raise BudgetExhausted(f"max_steps ({spec.budget.max_steps}) reached")
                tool = tools_mod.REGISTRY[name]
                choice = await ctx.step({"model": spec.model, "messages": messages, "max_tokens": STEP_MAX_TOKENS, "tools": [tool.schema()],
                                         "tool_choice": {"type": "function", "function": {"name": name}}})  # fmt: skip
                call = (choice.get("tool_calls") or [{}])[0]
                try:
                    written = json.loads(call.get("function", {}).get("arguments") or "{}")
                except ValueError:
                    written = {}
                arguments = {**(written if isinstance(written, dict) else {}), **spec.fixed_arguments(index)}
                failed = False
                try:
                    result = await tool.run(arguments, ctx)
                except (tools_mod.ToolError, httpx.HTTPError) as exc:
                    result, failed = f"tool error: {exc}", True
                job, ctx.job = ctx.job, None
                stored = await ctx.tool_receipt(name, arguments, result, job=job)
                if spec.watch is not None and name == spec.watch.tool:
                    await self.check_watch(record.id, spec, stored["output_digest"], result, failed)
                messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": call.get("id") or f"call_{name}", "type": "function",
                                                                                   "function": {"name": name, "arguments": json.dumps(arguments)}}]},
                             {"role": "tool", "tool_call_id": call.get("id") or f"call_{name}", "content": result[: tools_mod.RESULT_CHARS]}]  # fmt: skip
            choice = await ctx.step({"model": spec.model, "messages": messages + [{"role": "user", "content": "Write the report."}], "max_tokens": STEP_MAX_TOKENS})
            report = choice.get("content") or ""
            run.status = "done"
        except WatchQuiet as exc:
            run.status, run.error = exc.status, exc.why
        except BudgetExhausted as exc:
            run.status, run.error = "budget_exhausted", str(exc)[:500]
        except PackageExpired as exc:
            run.status, run.error = "package_expired", str(exc)
            await asyncio.to_thread(self.set_status, agent_id, "paused")
        except Exception as exc:
            log.exception("agent %s run %s failed", record.name, run_id)
            run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
        run.spent, run.receipts, run.tools, run.finished_at = ctx.spent, json.dumps(ctx.trail), json.dumps(ctx.tools_called), time.time()
        run.traded = ctx.traded
        quiet = spec.watch is not None and run.status != "done"  # a monitor posts only what it found
        if spec.output is not None and ctx.trail and not quiet:  # a run that did nothing sends nothing: no free POSTs to anyone
            run.delivered = await self.deliver(str(spec.output.webhook), record, run, report)
        with session() as db:
            db.add(run)
            db.commit()
            db.refresh(run)
        log.info("agent %s run %s: %s, %d receipts", record.name, run_id, run.status, len(ctx.trail))
        return run

    async def check_watch(self, agent_id: str, spec: AgentSpec, digest: str, result: str, failed: bool) -> None:
        """Compare the watched result with the last one (by digest) and remember it; raise WatchQuiet unless the run
        should go on to report (changed, and the text condition holds). A failed fetch changes nothing."""
        if failed:
            raise WatchQuiet("failed", f"the watched tool failed: {result.removeprefix('tool error: ')}"[:500])
        before = await asyncio.to_thread(remember_watch, agent_id, digest)
        if before is None:
            raise WatchQuiet("baseline")
        if before == digest:
            raise WatchQuiet("unchanged")
        if not spec.watch.holds(result):
            raise WatchQuiet("not_matched")

    async def deliver(self, url: str, record: AgentRecord, run: AgentRun, report: str) -> bool:
        """POST the results and receipt hashes, signed with the agent's secret, through the checked fetch (the address
        checked again each time: DNS may have changed since deploy); retried with backoff, unless refused."""
        body = json.dumps({"agent": record.name, "run": run.id, "status": run.status, "report": report, "error": run.error,
                           "receipts": json.loads(run.receipts), "tools": json.loads(run.tools), "spent": run.spent,
                           "traded": run.traded}).encode()  # fmt: skip
        headers = {"content-type": "application/json", "x-one-signature": sign_webhook(record.webhook_secret, body)}
        for attempt in range(RETRIES):
            if attempt:
                await asyncio.sleep(0.5 * 2**attempt)
            try:
                await fetch(url, method="POST", content=body, headers=headers, max_bytes=WEBHOOK_REPLY_BYTES,
                            timeout_s=WEBHOOK_TIMEOUT_S, allow_networks=self.settings.fetch_allow_networks)
                return True
            except AddressRefused as exc:
                log.warning("agent %s run %s: webhook refused: %s", record.name, run.id, exc)
                return False
            except FetchError:
                pass
        return False


def claim_due(now: float | None = None, min_interval_s: float = 0.0) -> list[str]:
    """The agents due now, each claimed by moving its next run time on (never less than `min_interval_s` ahead)
    with a compare-and-set, so coordinator replicas sharing one database never start the same run twice."""
    now = time.time() if now is None else now
    with session() as db:
        due = db.exec(select(AgentRecord.id, AgentRecord.spec, AgentRecord.next_run_at)
                      .where(AgentRecord.status == "active", col(AgentRecord.next_run_at) <= now)).all()  # fmt: skip
        claimed = []
        for agent_id, text, at in due:
            schedule = parse_agent(text).trigger.schedule
            following = next_run(schedule, now) if schedule else None
            moved = db.connection().execute(update(AgentRecord).where(col(AgentRecord.id) == agent_id, col(AgentRecord.next_run_at) == at)
                                            .values(next_run_at=None if following is None else max(following, now + min_interval_s)))  # fmt: skip
            if moved.rowcount == 1:
                claimed.append(agent_id)
        db.commit()
        return claimed


def remember_watch(agent_id: str, digest: str) -> str | None:
    """Store a monitor's latest watched digest; returns the one before it (None on the first run)."""
    with session() as db:
        record = db.get(AgentRecord, agent_id)
        before, record.watch_digest = record.watch_digest, digest
        db.add(record)
        db.commit()
        return before


def agent_of(account: str, name: str) -> AgentRecord | None:
    with session() as db:
        return db.get(AgentRecord, agent_id_of(account, name))


def agents_of(account: str) -> list[AgentRecord]:
    with session() as db:
        return list(db.exec(select(AgentRecord).where(AgentRecord.account == account)).all())


def runs_of(agent_id: str, limit: int = 50) -> list[dict[str, Any]]:
    with session() as db:
        rows = db.exec(select(AgentRun).where(AgentRun.agent == agent_id).order_by(col(AgentRun.started_at).desc()).limit(limit)).all()
    return [{**r.model_dump(), "receipts": json.loads(r.receipts), "tools": json.loads(r.tools)} for r in rows]
