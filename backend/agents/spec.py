"""The agent YAML schema, validated with errors that name the line and the field.

    agent: research-monitor
    model: tiny-chat
    trigger: { schedule: "every 6h" }      # "every N s|m|h|d", a cron expression, or { manual: true }
    tools: [ web_search, summarize ]       # called in this order, then the model writes the report
    budget: { lane: dedicated, package: pro }   # optional: max_spend (micro-units per run), max_steps
    output: { webhook: https://... }       # optional: results + receipt hashes, HMAC-signed
    goal: Track new research on ...        # optional instructions
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import yaml
from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator, model_validator

_EVERY = re.compile(r"^every\s+(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DEPTH = 8  # nested mappings and lists; an agent file needs 2
CRON_SAMPLES = 64  # firings looked at to find a cron expression's shortest gap


def schedule_interval(schedule: str) -> int | None:
    """Seconds of an "every N unit" schedule; None for a cron expression."""
    match = _EVERY.match(schedule.strip())
    return int(match.group(1)) * _UNITS[match.group(2)] if match else None


def shortest_interval(schedule: str) -> float:
    """The shortest time between two runs: the interval itself, or the smallest gap among a cron expression's
    first firings (croniter also takes a sixth field, seconds)."""
    interval = schedule_interval(schedule)
    if interval is not None:
        return interval
    firings = [next_run(schedule, 0.0)]
    while len(firings) <= CRON_SAMPLES and firings[-1] is not None:
        firings.append(next_run(schedule, firings[-1]))
    return min((b - a for a, b in zip(firings, firings[1:]) if b is not None), default=math.inf)


def next_run(schedule: str, after: float) -> float | None:
    """When the schedule fires next after `after`; None if it never does again (a cron date that never comes)."""
    interval = schedule_interval(schedule)
    if interval is not None:
        return after + interval

    try:
        return croniter(schedule, datetime.fromtimestamp(after, timezone.utc)).get_next(float)
    except CroniterBadDateError:
        return None


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: str | None = None
    manual: bool = False

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        interval = schedule_interval(value)
        if interval is not None:
            if interval < 1:
                raise ValueError("the interval must be at least 1 second")
            return value

        if not croniter.is_valid(value):
            raise ValueError(f'"{value}" is neither "every N s|m|h|d" nor a cron expression')
        if next_run(value, time.time()) is None:
            raise ValueError(f'"{value}" never fires')
        return value

    @model_validator(mode="after")
    def _one(self) -> "Trigger":
        if (self.schedule is None) == (not self.manual):
            raise ValueError("give either schedule or manual: true")
        return self


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lane: Literal["included", "dedicated"]
    package: str | None = None
    max_spend: int | None = Field(None, gt=0, description="micro-units per run")
    max_steps: int = Field(8, ge=1, le=32)

    @model_validator(mode="after")
    def _package(self) -> "Budget":
        if self.lane == "dedicated" and not self.package:
            raise ValueError("a dedicated budget names its package")
        if self.lane == "included" and self.package:
            raise ValueError("an included budget has no package")
        return self


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook: HttpUrl


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    model: str = Field(min_length=1)
    trigger: Trigger
    tools: list[str] = Field(default_factory=list, max_length=16)
    budget: Budget
    output: Output | None = None
    goal: str | None = Field(None, max_length=4000)


@dataclass
class SpecProblem:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field or '(document)'}: {self.message}"


class AgentSpecError(ValueError):
    def __init__(self, problems: list[SpecProblem]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _lines(node: Any, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """YAML path -> 1-based line of its key (or item), from the composed node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            out[child] = key.start_mark.line + 1
            _lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _lines(item, (*path, i), out)
    return out


def refuse_unsafe_yaml(text: str) -> None:
    """Refuse anchors, aliases and deep nesting from the parser's events, before any node is built: aliases let a
    few hundred bytes expand into billions of nodes (or into a loop), and deep nesting exhausts the recursion of
    the node builder. An agent file needs none of them."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            problem = "YAML anchors and aliases (&name, *name) are not allowed in an agent file"
        elif depth > MAX_DEPTH:
            problem = f"the file nests deeper than {MAX_DEPTH} levels"
        else:
            continue
        raise AgentSpecError([SpecProblem(event.start_mark.line + 1, "", problem)])


def parse_agent(text: str, *, models: set[str] | None = None, tools: set[str] | None = None, packages: set[str] | None = None,
                min_interval_s: float | None = None) -> AgentSpec:  # fmt: skip
    """Validate an agent file; with the catalog's models, the registered tools and the packages, also check names;
    with `min_interval_s`, that the schedule does not fire more often."""
    try:
        refuse_unsafe_yaml(text)
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise AgentSpecError([SpecProblem(mark.line + 1 if mark else 1, "", f"not valid YAML: {exc.problem}")]) from None
    if not isinstance(data, dict):
        raise AgentSpecError([SpecProblem(1, "", "an agent file is a mapping (agent:, model:, trigger:, budget: ...)")])
    lines = _lines(node)

    def line_of(loc: tuple) -> int:
        for end in range(len(loc), 0, -1):
            if loc[:end] in lines:
                return lines[loc[:end]]
        return 1

    try:
        spec = AgentSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "url"))))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "is required"
            elif err["type"] == "extra_forbidden":
                message = "is not a field of an agent file"
            problems.append(SpecProblem(line_of(loc), ".".join(str(p) for p in loc), message))
        raise AgentSpecError(problems) from None
    problems = []
    if models is not None and spec.model not in models:
        problems.append(SpecProblem(lines.get(("model",), 1), "model", f"no model `{spec.model}` in the catalog ({', '.join(sorted(models))})"))
    for i, tool in enumerate(spec.tools):
        if tools is not None and tool not in tools:
            problems.append(SpecProblem(lines.get(("tools", i), 1), f"tools[{i}]", f"unknown tool `{tool}` (known: {', '.join(sorted(tools))})"))
    if packages is not None and spec.budget.package and spec.budget.package not in packages:
        problems.append(SpecProblem(lines.get(("budget", "package"), 1), "budget.package", f"no package `{spec.budget.package}`"))
    if min_interval_s is not None and spec.trigger.schedule and shortest_interval(spec.trigger.schedule) < min_interval_s:
        problems.append(SpecProblem(lines.get(("trigger", "schedule"), 1), "trigger.schedule",
                                    f"runs may be at least {min_interval_s:g} s apart on this network"))  # fmt: skip
    if len(set(spec.tools)) != len(spec.tools):
        problems.append(SpecProblem(lines.get(("tools",), 1), "tools", "a tool is listed twice"))
    if problems:
        raise AgentSpecError(problems)
    return spec
