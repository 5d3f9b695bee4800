"""The stream's delta events are written without building a pydantic chunk per token: the bytes must stay those of the
typed chunk (backend/api/schemas/responses.py), for chat and completions, whatever the choices hold."""

import json

import pytest

from backend.api.replies import TextReply, _sse


@pytest.mark.parametrize("task", ["chat", "completion"])
@pytest.mark.parametrize("choices", [
    [{"index": 0, "delta": {"role": "assistant", "content": "Hé \"[]\" \u2028 ok"}, "finish_reason": None}],
    [{"index": 1, "text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": [-0.125]}, "finish_reason": "stop"}],
    [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}}],
    [],
])  # fmt: skip
def test_a_delta_event_is_the_typed_chunk_as_sent(task, choices):
    reply = TextReply(task, "job[]1", "model-[]")
    expected = _sse(reply.chunk(choices).model_dump(exclude_unset=True))
    assert reply.delta_event(choices) == expected
    assert reply.delta_event(choices) == expected  # the cached head serves every later event
    assert json.loads(expected[len("data: "):])["choices"] == choices
