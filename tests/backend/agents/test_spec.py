"""Agent files: the example is valid; ten kinds of mistakes each get an error naming the line and field."""

from __future__ import annotations

import pytest

from backend.agents.spec import AgentSpecError, next_run, parse_agent, shortest_interval

MODELS, TOOLS, PACKAGES = {"tiny-chat", "tiny-vision"}, {"web_search", "summarize", "http_get"}, {"starter", "pro", "cluster"}
EXAMPLE = """agent: research-monitor
model: tiny-chat
trigger: { schedule: "every 6h" }
tools: [ web_search, summarize ]
budget: { lane: dedicated, package: pro }
output: { webhook: https://hooks.example.com/one }
"""


def parse(text: str):
    return parse_agent(text, models=MODELS, tools=TOOLS, packages=PACKAGES)


def test_the_example_is_valid_and_schedules():
    spec = parse(EXAMPLE)
    assert spec.agent == "research-monitor" and spec.tools == ["web_search", "summarize"] and spec.budget.package == "pro"
    assert next_run(spec.trigger.schedule, 1000.0) == 1000.0 + 6 * 3600
    assert next_run("0 */6 * * *", 0.0) == 6 * 3600  # cron: the next 6-hour boundary after the epoch


MISTAKES = [
    ("agent: research-monitor\nmodel: tiny-chat\ntrigger: { schedule: \"every 6h\" \ntools: []\n", 4, "", "not valid YAML"),
    (EXAMPLE.replace("agent: research-monitor", "agent: Research Monitor"), 1, "agent", "pattern"),
    (EXAMPLE.replace("model: tiny-chat", "model: chat-huge"), 2, "model", "no model `chat-huge`"),
    (EXAMPLE.replace('"every 6h"', '"every six hours"'), 3, "trigger.schedule", "neither"),
    (EXAMPLE.replace('{ schedule: "every 6h" }', '{ schedule: "every 6h", manual: true }'), 3, "trigger", "either schedule or manual"),
    (EXAMPLE.replace("[ web_search, summarize ]", "[ web_search, translate ]"), 4, "tools[1]", "unknown tool `translate`"),
    (EXAMPLE.replace("lane: dedicated", "lane: premium"), 5, "budget.lane", "'included' or 'dedicated'"),
    (EXAMPLE.replace("{ lane: dedicated, package: pro }", "{ lane: dedicated }"), 5, "budget", "names its package"),
    (EXAMPLE.replace("https://hooks.example.com/one", "not a url"), 6, "output.webhook", "URL"),
    (EXAMPLE.replace("budget: { lane: dedicated, package: pro }\n", ""), 1, "budget", "is required"),
    (EXAMPLE + "retries: 5\n", 7, "retries", "not a field"),
    (EXAMPLE.replace("package: pro", "package: platinum"), 5, "budget.package", "no package `platinum`"),
]


@pytest.mark.parametrize(("schedule", "seconds"), [("every 90s", 90), ("every 2h", 7200), ("*/5 * * * *", 300), ("0 9 * * 1-5", 86400),
                                                   ("* * * * * */10", 10), ("0 0 29 2 *", 4 * 365 * 86400 + 86400)])  # fmt: skip
def test_the_shortest_interval_of_a_schedule(schedule, seconds):
    assert shortest_interval(schedule) == seconds


def test_a_schedule_faster_than_the_network_allows_names_its_line():
    with pytest.raises(AgentSpecError) as err:
        parse_agent(EXAMPLE.replace("every 6h", "every 30s"), min_interval_s=60)
    problem = err.value.problems[0]
    assert (problem.line, problem.field) == (3, "trigger.schedule") and "60 s" in problem.message
    assert parse_agent(EXAMPLE.replace("every 6h", "every 1m"), min_interval_s=60).trigger.schedule == "every 1m"


def test_a_cron_date_that_never_comes_is_refused():
    with pytest.raises(AgentSpecError, match="never fires"):
        parse(EXAMPLE.replace('"every 6h"', '"0 0 31 2 *"'))
    assert next_run("0 0 31 2 *", 0.0) is None


# ---- fixed tool arguments, monitors' watch, traders' wallet caps ----

SEED = """agent: research-monitor
model: chat-large
trigger: { schedule: "every 6h" }      # also cron expressions and manual
tools: [ web_search, summarize ]
budget: { lane: dedicated, package: pro }
output: { webhook: https://... }
"""

MONITOR = """agent: status-watch
model: tiny-chat
trigger: { schedule: "every 5m" }
tools:
  - http_get: { url: "https://status.example.com/" }
  - summarize
watch: { tool: http_get, when: changed }
budget: { lane: included }
"""

TRADER = """agent: trader
model: tiny-chat
trigger: { manual: true }
tools:
  - pool_price
  - swap: { sell: USDC, amount: 1_000_000 }
wallet: { max_per_run: 2_000_000, max_per_day: 5_000_000 }
budget: { lane: included }
"""


def registry_parse(text: str):
    from backend.agents.tools import REGISTRY

    return parse_agent(text, models=MODELS, tools=REGISTRY, packages=PACKAGES)


def test_the_seed_agent_file_validates_as_written_against_the_real_catalog():
    """The product's own example names `chat-large`: the production catalog (no dev overlay) must know it."""
    from backend.agents.tools import REGISTRY
    from backend.catalog import load_catalog, load_packages
    from backend.config import Settings

    settings = Settings(env="production")
    spec = parse_agent(SEED, models={m.id for m in load_catalog(*settings.catalog_files).models}, tools=REGISTRY,
                       packages={p.id for p in load_packages(settings.packages_path).packages})  # fmt: skip
    assert spec.model == "chat-large" and spec.tool_names == ["web_search", "summarize"]


def test_fixed_arguments_are_kept_per_tool_and_the_names_still_read_plainly():
    spec = registry_parse(MONITOR)
    assert spec.tool_names == ["http_get", "summarize"]
    assert spec.fixed_arguments(0) == {"url": "https://status.example.com/"} and spec.fixed_arguments(1) == {}
    assert spec.watch.tool == "http_get" and spec.watch.holds("anything")
    trader = registry_parse(TRADER)
    assert trader.fixed_arguments(1) == {"sell": "USDC", "amount": 1_000_000} and trader.wallet.max_per_day == 5_000_000


@pytest.mark.parametrize(("when", "result", "holds"), [('{ contains: "outage" }', "major outage", True), ('{ contains: "outage" }', "all good", False),
                                                       ('{ absent: "in stock" }', "sold out", True), ('{ absent: "in stock" }', "in stock: 3", False)])  # fmt: skip
def test_a_text_condition_on_the_watched_result(when, result, holds):
    assert registry_parse(MONITOR.replace("when: changed", f"when: {when}")).watch.holds(result) is holds


SPEC_MISTAKES = [
    (MONITOR.replace('{ url: "https://status.example.com/" }', '{ url: "https://a.example/", depth: 3 }'), 5, "tools[0].http_get.depth", "no argument `depth`"),
    (MONITOR.replace('http_get: { url: "https://status.example.com/" }', "http_get: [ one, two ]"), 5, "tools[0]", "a tool is a name"),
    (MONITOR.replace('http_get: { url: "https://status.example.com/" }', 'http_get: { url: "https://a.example/" }\n    summarize: {}'), 5, "tools[0]", "a tool is a name"),
    (MONITOR.replace("watch: { tool: http_get, when: changed }", "watch: { tool: web_search }"), 7, "watch.tool", "not one of this agent's tools"),
    (MONITOR.replace("when: changed", 'when: { contains: "a", absent: "b" }'), 7, "watch.when", "either contains: or absent:"),
    (TRADER.replace("amount: 1_000_000", "amount: 1.5"), 6, "tools[1]", "integers"),
    (TRADER.replace("wallet: { max_per_run: 2_000_000, max_per_day: 5_000_000 }\n", ""), 6, "tools[1]", "add wallet:"),
    (TRADER.replace("max_per_run: 2_000_000", "max_per_run: 2.5"), 7, "wallet.max_per_run", "integer"),
    (TRADER.replace("max_per_day: 5_000_000", "max_per_day: -1"), 7, "wallet.max_per_day", "greater than 0"),
    (TRADER.replace("max_per_day: 5_000_000", "max_per_day: 5_000_000, max_per_week: 9"), 7, "wallet.max_per_week", "not a field"),
]


CASES = [(parse, *m) for m in MISTAKES] + [(registry_parse, *m) for m in SPEC_MISTAKES]  # registry_parse: tools, watch, wallet


@pytest.mark.parametrize(("parser", "text", "line", "field", "words"), CASES, ids=[c[4] for c in CASES])
def test_each_mistake_names_its_line_and_field(parser, text, line, field, words):
    with pytest.raises(AgentSpecError) as err:
        parser(text)
    problem = err.value.problems[0]
    assert (problem.line, problem.field) == (line, field), err.value.problems
    assert words in problem.message, problem.message
    assert f"line {line}" in str(err.value)


def test_the_example_agent_files_validate():
    """examples/agents/: one file per use (research, monitoring, trading), each valid against the dev catalog."""
    from pathlib import Path

    from backend.agents.tools import REGISTRY
    from backend.catalog import load_catalog, load_packages
    from backend.config import Settings

    settings = Settings(env="dev", catalog_overlays=None)
    examples = sorted((Path(__file__).resolve().parents[3] / "examples" / "agents").glob("*.yaml"))
    assert [p.stem for p in examples] == ["monitoring", "research", "trading"]
    for path in examples:
        parse_agent(path.read_text(), models={m.id for m in load_catalog(*settings.catalog_files).models}, tools=REGISTRY,
                    packages={p.id for p in load_packages(settings.packages_path).packages}, min_interval_s=settings.agent_min_interval_s)  # fmt: skip
