"""The Verify page checks the answer a receipt badge carried exactly as it was answered: it travels JSON-encoded in
a hidden field, since a textarea would turn "\r" into "\n" and drop NUL (which a model may emit) and so fail an
honest answer's output check."""

from __future__ import annotations

import json

from app.pages.verify import carried_or_typed


def test_a_carried_answer_keeps_every_character():
    answer = "line one\r\nline two\x00 and a\rlone return"
    assert carried_or_typed({"output_json": json.dumps(answer), "output": "line one\nline two and a\nlone return"}) == answer


def test_typed_text_is_checked_when_nothing_was_carried_or_the_carried_field_is_not_a_string():
    for carried in ("", None, "not json", json.dumps(["a list"]), json.dumps(7)):
        assert carried_or_typed({"output_json": carried, "output": "typed"}) == "typed"
    assert carried_or_typed({}) == ""
