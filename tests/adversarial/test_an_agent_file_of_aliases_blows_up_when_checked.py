"""Attack: deploy a 450-byte agent file whose anchors nest aliases ("billion laughs"): checking it walks
billions of nodes and holds a coordinator thread for hours. A self-referencing alias, or brackets nested a
few thousand deep, answers 500 (the checker recurses until Python gives up).

Agent files need neither aliases nor depth: they are refused from the parser's event stream, before any
node graph is built. The proof is structural: the tests make building the document (PyYAML's compose and
load) fail loudly, so a checker that still builds it cannot pass, however fast the machine.
"""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from backend.agents.cli import agent_app
from backend.agents.spec import AgentSpecError, parse_agent
from tests.backend.agents.coordinator import AgentCoordinator, openai_error, spec

LAUGHS = "\n".join(
    ["agent: lol", "model: tiny-chat", "trigger: { manual: true }", "budget: { lane: included }", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]" for a, b in zip("abcdefgh", "bcdefghi")]
    + ["tools: *i"]
)  # fmt: skip
RECURSIVE = spec("loop") + "goal: &g [*g]\n"
DEEP = spec("deep") + "goal: " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.fixture
def unbuildable(monkeypatch):
    """Building an attack document in this test is an error: its refusal must come first. (Other YAML, such
    as the catalog, still loads.)"""
    attacks = {LAUGHS, RECURSIVE, DEEP}
    for name in ("compose", "compose_all", "load", "load_all", "safe_load", "safe_load_all", "full_load", "unsafe_load"):

        def guarded(stream, *args, real=getattr(yaml, name), **kwargs):
            if isinstance(stream, str) and stream in attacks:
                raise AssertionError("the YAML document was built before it was refused")
            return real(stream, *args, **kwargs)

        monkeypatch.setattr(yaml, name, guarded)


def test_the_bomb_is_small():
    assert len(LAUGHS) < 500 and LAUGHS.count("*") == 73


@pytest.mark.parametrize(("text", "line", "words"), [(LAUGHS, 5, "anchors and aliases"), (RECURSIVE, 6, "anchors and aliases"), (DEEP, 6, "nests")],
                         ids=["billion-laughs", "recursive-alias", "deep-nesting"])  # fmt: skip
def test_the_checker_refuses_before_building_the_document(unbuildable, text, line, words):
    with pytest.raises(AgentSpecError) as err:
        parse_agent(text)
    problem = err.value.problems[0]
    assert problem.line == line and words in problem.message, err.value.problems


async def test_the_deploy_route_answers_400_in_the_openai_shape(sqlite_db, monkeypatch, unbuildable):
    coordinator = AgentCoordinator(monkeypatch)
    _, headers = coordinator.wallet("included", one=150)
    for text in (LAUGHS, RECURSIVE, DEEP):
        reply = await coordinator.deploy(headers, text)
        error = openai_error(reply, 400)
        assert error["code"] == "invalid_agent" and error["type"] == "invalid_request_error"
        assert ("anchors and aliases" in error["message"] or "nests" in error["message"]) and reply.json()["problems"][0]["line"] in (5, 6)


def test_the_cli_says_why(unbuildable, tmp_path):
    bomb = tmp_path / "lol.yaml"
    bomb.write_text(LAUGHS)
    done = CliRunner().invoke(agent_app, ["validate", str(bomb)])
    assert done.exit_code == 1 and f"{bomb}:5" in done.output and "anchors and aliases" in done.output, done.output


def test_plain_files_still_pass():
    assert parse_agent(spec("plain", "every 6h")).trigger.schedule == "every 6h"
