"""The agent YAML schema, validated with errors that name the line and the field.

    agent: research-monitor
    model: tiny-chat
    trigger: { schedule: "every 6h" }      # "every N s|m|h|d", a cron expression, or { manual: true }
    tools: [ web_search, summarize ]       # called in this order, then the model writes the report
    budget: { lane: dedicated, package: pro }   # optional: max_spend (micro-units per run), max_steps
    output: { webhook: https://... }       # optional: results + receipt hashes, HMAC-signed
    goal: Track new research on ...        # optional instructions

A tool may fix its arguments: `tools: [ { http_get: { url: "https://example.com/status" } } ]`; what the file
fixes overrides what the model writes. Monitors add `watch: { tool: http_get, when: changed }` (or
`when: { contains: "text" }` / `{ absent: "text" }`): the run stops after that tool and posts nothing unless the
result changed since the last run (and, with a text, now contains or lacks it). Agents that trade add
`wallet: { max_per_run: 2000000, max_per_day: 5000000 }`: micro-USDC their own wallet may spend.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Mapping

import yaml
from croniter import CroniterBadDateError, croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

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


def _tool_item(value: Any) -> str | dict[str, dict[str, str | int | bool]]:
    """A tool is its name, or a one-key mapping of its name to the arguments the file fixes. Fixed values are
    strings, integers or booleans: never floats (amounts are integer micro-units or base units)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and len(value) == 1:
        [(name, arguments)] = value.items()
        arguments = {} if arguments is None else arguments
        if isinstance(name, str) and name and isinstance(arguments, dict):
            for key, fixed in arguments.items():
                if not isinstance(key, str):
                    raise ValueError(f"argument names are strings, not {key!r}")
                if isinstance(fixed, float):
                    raise ValueError(f"argument `{key}`: numbers are integers (micro-units or base units), not {fixed!r}")
                if not isinstance(fixed, (str, int, bool)):
                    raise ValueError(f"argument `{key}`: a fixed value is a string, an integer or a boolean")
            return {name: arguments}
    raise ValueError("a tool is a name, or { name: { argument: value } } fixing its arguments")


ToolItem = Annotated[str | dict[str, dict[str, Any]], BeforeValidator(_tool_item)]


class WatchText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contains: str | None = Field(None, min_length=1, max_length=200)
    absent: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one(self) -> "WatchText":
        if (self.contains is None) == (self.absent is None):
            raise ValueError("give either contains: or absent:")
        return self


def _when(value: Any) -> Any:
    """`changed` (None here) or a text condition's mapping."""
    if value is None or value == "changed":
        return None
    if isinstance(value, dict):
        return value
    raise ValueError('when is `changed`, { contains: "text" } or { absent: "text" }')


class Watch(BaseModel):
    """Fire only when the watched tool's result changed since the last run (and, with a text, now holds or lacks it)."""

    model_config = ConfigDict(extra="forbid")
    tool: str
    when: Annotated[WatchText | None, BeforeValidator(_when)] = None  # None: `changed`

    def holds(self, result: str) -> bool:
        """The text condition on a changed result (always true for `changed`)."""
        if self.when is None:
            return True
        return self.when.contains in result if self.when.contains is not None else self.when.absent not in result


class Wallet(BaseModel):
    """What the agent's own wallet may spend, in micro-USDC ($ONE valued at the pool's price)."""

    model_config = ConfigDict(extra="forbid")
    max_per_run: StrictInt = Field(gt=0, le=10**15)
    max_per_day: StrictInt = Field(gt=0, le=10**15)


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    model: str = Field(min_length=1)
    trigger: Trigger
    tools: list[ToolItem] = Field(default_factory=list, max_length=16)
    budget: Budget
    output: Output | None = None
    goal: str | None = Field(None, max_length=4000)
    watch: Watch | None = None
    wallet: Wallet | None = None

    @property
    def tool_names(self) -> list[str]:
        return [t if isinstance(t, str) else next(iter(t)) for t in self.tools]

    def fixed_arguments(self, index: int) -> dict[str, Any]:
        """The arguments the file fixes for its `index`-th tool (they override the model's)."""
        item = self.tools[index]
        return {} if isinstance(item, str) else dict(next(iter(item.values())))


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


def key_lines(text: str) -> dict[tuple, int]:
    """YAML path -> line of a file parse_agent accepted (checks after parsing name their line with it)."""
    return _lines(yaml.compose(text))


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


def parse_agent(text: str, *, models: set[str] | None = None, tools: set[str] | Mapping[str, Any] | None = None, packages: set[str] | None = None,
                min_interval_s: float | None = None) -> AgentSpec:  # fmt: skip
    """Validate an agent file; with the catalog's models, the registered tools and the packages, also check names;
    with `min_interval_s`, that the schedule does not fire more often. Given the tool registry itself (name ->
    Tool), also check fixed argument names and that tools which spend name the wallet's caps."""
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
            problems.append(SpecProblem(line_of(loc), "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip("."), message))
        raise AgentSpecError(problems) from None
    problems = []
    if models is not None and spec.model not in models:
        problems.append(SpecProblem(lines.get(("model",), 1), "model", f"no model `{spec.model}` in the catalog ({', '.join(sorted(models))})"))
    for i, tool in enumerate(spec.tool_names):
        if tools is not None and tool not in tools:
            problems.append(SpecProblem(lines.get(("tools", i), 1), f"tools[{i}]", f"unknown tool `{tool}` (known: {', '.join(sorted(tools))})"))
        elif isinstance(tools, Mapping):
            known = set(tools[tool].parameters.get("properties", {}))
            for name in spec.fixed_arguments(i):
                if name not in known:
                    problems.append(SpecProblem(lines.get(("tools", i, tool, name), 1), f"tools[{i}].{tool}.{name}",
                                                f"`{tool}` has no argument `{name}` (it takes: {', '.join(sorted(known)) or 'none'})"))  # fmt: skip
            if tools[tool].spends and spec.wallet is None:
                problems.append(SpecProblem(lines.get(("tools", i), 1), f"tools[{i}]",
                                            f"`{tool}` spends from the agent's wallet: add wallet: {{ max_per_run: .., max_per_day: .. }} (micro-USDC)"))  # fmt: skip
    if spec.watch is not None and spec.watch.tool not in spec.tool_names:
        problems.append(SpecProblem(lines.get(("watch", "tool"), 1), "watch.tool", f"`{spec.watch.tool}` is not one of this agent's tools"))
    if packages is not None and spec.budget.package and spec.budget.package not in packages:
        problems.append(SpecProblem(lines.get(("budget", "package"), 1), "budget.package", f"no package `{spec.budget.package}`"))
    if min_interval_s is not None and spec.trigger.schedule and shortest_interval(spec.trigger.schedule) < min_interval_s:
        problems.append(SpecProblem(lines.get(("trigger", "schedule"), 1), "trigger.schedule",
                                    f"runs may be at least {min_interval_s:g} s apart on this network"))  # fmt: skip
    if len(set(spec.tool_names)) != len(spec.tool_names):
        problems.append(SpecProblem(lines.get(("tools",), 1), "tools", "a tool is listed twice"))
    if problems:
        raise AgentSpecError(problems)
    return spec
