"""The one reading of an OpenAI request body (backend/protocol/body.py) that quotes, caps, bills and workers share."""

from __future__ import annotations

import pytest

from backend.protocol.body import ImagePart, OpenAIBody, charge_unit

PNG = "data:image/png;base64,AAAA"


@pytest.mark.parametrize("raw, cap", [
    ({"max_completion_tokens": 7, "max_tokens": 99}, 7),  # the newer name wins
    ({"max_tokens": 12}, 12),
    ({"max_tokens": 12.0}, 12),  # request validation lets integral floats and digit strings through as integers
    ({"max_tokens": "12"}, 12),
    ({}, 2048),  # nothing asked: the default (a model's context, a worker's own cap)
    ({"max_tokens": True}, 2048),  # not a number
    ({"max_tokens": 1.5}, 2048),
])  # fmt: skip
def test_max_tokens_falls_back_from_max_completion_tokens_to_max_tokens_to_the_default(raw, cap):
    assert OpenAIBody(raw).max_tokens(2048) == cap


def test_outputs_count_choices_times_the_prompts_of_a_completion():
    assert OpenAIBody({}).outputs("chat") == 1
    assert OpenAIBody({"n": 3}).outputs("chat") == 3
    assert OpenAIBody({"n": 2, "prompt": ["a", "b", "c"]}).outputs("completion") == 6
    assert OpenAIBody({"n": 2, "prompt": ["a", "b", "c"]}).outputs("chat") == 2  # a chat body's stray `prompt` counts for nothing


def test_embedding_inputs_are_a_list_whatever_the_client_sent():
    assert OpenAIBody({"input": "one"}).inputs == ["one"]
    assert OpenAIBody({"input": ["a", "b"]}).inputs == ["a", "b"]
    assert OpenAIBody({}).inputs == []


def test_image_parts_say_where_they_sit_and_make_a_chat_a_vision_job():
    body = {"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": PNG}},
                                     {"type": "image_url", "image_url": "https://example.org/cat.png"}]},
        "not a message",
    ]}  # fmt: skip
    parts = OpenAIBody(body).image_parts()
    assert parts == [ImagePart(1, 1, PNG), ImagePart(1, 2, "https://example.org/cat.png")]
    assert parts[0].param == "messages[1].content[1].image_url"
    assert OpenAIBody(body).chat_task() == "vision"
    assert OpenAIBody({"messages": [{"role": "user", "content": "hi"}]}).chat_task() == "chat"


def test_each_lane_bills_in_its_own_unit():
    assert charge_unit("included") == "credit"
    assert charge_unit("dedicated") == "usdc"
