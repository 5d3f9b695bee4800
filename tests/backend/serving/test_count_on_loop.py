"""Whether the coordinator counts a job's usage on its event loop (short jobs: a thread hop costs more) or off it
(long prompts and answers: tokenizing them would stall every other request)."""

from __future__ import annotations

from backend.protocol import receipt as rc
from backend.serving.usage import INLINE_COUNT_CHARS, text_volume

BIG = "x" * (INLINE_COUNT_CHARS + 1)


def _answer(content: str, tool_calls: list | None = None) -> rc.OutputAssembler:
    output = rc.OutputAssembler("chat")
    output.add([{"index": 0, "delta": {"content": content, **({"tool_calls": tool_calls} if tool_calls else {})}}])
    return output


def test_a_short_chat_is_counted_on_the_loop():
    body = {"messages": [{"role": "user", "content": "ping"}]}
    assert text_volume("chat", body, _answer("pong")) <= INLINE_COUNT_CHARS


def test_long_text_anywhere_is_counted_off_the_loop():
    long_bodies = [
        {"messages": [{"role": "user", "content": BIG}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": BIG}]}]},
        {"messages": [{"role": "user", "content": "a"}] * (INLINE_COUNT_CHARS + 1)},
        {"messages": [{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function"}]}]},
        {"messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function", "function": {"name": "f"}}]},
    ]
    for body in long_bodies:
        assert text_volume("chat", body, _answer("ok")) > INLINE_COUNT_CHARS, body
    assert text_volume("completion", {"prompt": BIG}, _answer("ok")) > INLINE_COUNT_CHARS
    assert text_volume("completion", {"prompt": ["a", BIG]}, _answer("ok")) > INLINE_COUNT_CHARS
    assert text_volume("chat", {"messages": [{"role": "user", "content": "hi"}]}, _answer(BIG)) > INLINE_COUNT_CHARS
    assert text_volume("embedding", {"input": [BIG]}, rc.OutputAssembler("embedding")) > INLINE_COUNT_CHARS


def test_hostile_shapes_do_not_break_the_estimate():
    body = {"messages": [None, 3, {"content": 5}, {"content": [None, {"text": 7}]}], "prompt": 9}
    assert text_volume("chat", body, _answer("")) == 0
