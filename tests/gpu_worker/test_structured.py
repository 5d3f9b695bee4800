"""The shared layer: stop strings and Hermes tool-call tags across arbitrary chunk boundaries."""

from __future__ import annotations

import json

import pytest

from gpu_worker import structured
from gpu_worker.structured import ChoiceStream, RequestError

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def _run(stream: ChoiceStream, text: str, step: int) -> list[dict]:
    out = []
    for i in range(0, len(text), step):
        out += stream.feed(text[i : i + step])
    return out + stream.finish()


def _content(deltas) -> str:
    return "".join(d.get("content", "") for d in deltas)


@pytest.mark.parametrize("step", [1, 2, 3, 7, 100])
def test_stop_strings_cut_exactly_whatever_the_chunking(step):
    stream = ChoiceStream({"stop": ["STOP", "\n\n"]})
    deltas = _run(stream, "Hello wor\nld STOP and more", step)
    assert _content(deltas) == "Hello wor\nld " and stream.stopped


@pytest.mark.parametrize("step", [1, 4, 9, 1000])
def test_tool_call_tags_become_tool_call_deltas(step):
    text = 'Let me check.<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call><tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    stream = ChoiceStream({"tools": TOOLS})
    deltas = _run(stream, text, step)
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert _content(deltas) == "Let me check."
    assert [c["index"] for c in calls] == [0, 1] and stream.made_tool_calls
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Rome"}, {"city": "Oslo"}]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)


def test_text_that_only_looks_like_a_tag_is_not_held_forever():
    stream = ChoiceStream({"tools": TOOLS})
    assert _content(_run(stream, "a <tool_ b <tool_call>not json", 2)) == "a <tool_ b <tool_call>not json"
    assert not stream.made_tool_calls


def test_without_tools_or_with_tool_choice_none_tags_are_plain_text():
    text = '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>'
    assert _content(_run(ChoiceStream({}), text, 5)) == text
    assert _content(_run(ChoiceStream({"tools": TOOLS, "tool_choice": "none"}), text, 5)) == text


def test_forced_call_turns_the_whole_output_into_one_call():
    stream = ChoiceStream({"tools": TOOLS, "tool_choice": "required"}, forced_call=True)
    deltas = _run(stream, '{"name": "get_weather", "arguments": {"city": "Lagos"}}', 3)
    assert len(deltas) == 1 and deltas[0]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_constraint_schemas():
    assert structured.constraint_schema({}) is None
    assert structured.constraint_schema({"response_format": {"type": "json_object"}}) == {"type": "object"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert structured.constraint_schema({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}) == schema
    forced = structured.constraint_schema({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert forced["properties"]["name"]["enum"] == ["get_weather"]
    with pytest.raises(RequestError):
        structured.constraint_schema({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    with pytest.raises(RequestError):
        structured.constraint_schema({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})
