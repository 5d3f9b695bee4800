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


@pytest.mark.parametrize(("text", "line", "field", "words"), MISTAKES, ids=[m[3] for m in MISTAKES])
def test_each_mistake_names_its_line_and_field(text, line, field, words):
    with pytest.raises(AgentSpecError) as err:
        parse(text)
    problem = err.value.problems[0]
    assert (problem.line, problem.field) == (line, field), err.value.problems
    assert words in problem.message, problem.message
    assert f"line {line}" in str(err.value)


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
