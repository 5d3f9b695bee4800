"""The CPU transformers engine on the tiny chat model built from configs."""

from __future__ import annotations

import threading

import pytest

from gpu_worker.client import worker_url
from gpu_worker.engines import End, EngineError, Piece
from gpu_worker.engines.transformers_engine import TransformersTextEngine


@pytest.fixture(scope="module")
def engine(tiny_models):
    return TransformersTextEngine("tiny-chat", tiny_models / "tiny-chat")


async def _run(engine, body, cancel=None):
    events = [e async for e in engine.generate("chat", body, cancel or threading.Event())]
    return events[:-1], events[-1]


async def test_streams_pieces_then_an_end_with_usage(engine):
    pieces, end = await _run(engine, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20, "min_tokens": 20})
    assert all(isinstance(p, Piece) for p in pieces) and len(pieces) >= 2
    assert isinstance(end, End) and end.output_tokens == 20 and end.finish_reason == "length"
    expected_prompt = engine.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert end.input_tokens == len(expected_prompt["input_ids"])


async def test_same_seed_same_text_greedy_is_deterministic(engine):
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 15, "seed": 7}
    first = "".join(p.text for p in (await _run(engine, body))[0])
    second = "".join(p.text for p in (await _run(engine, body))[0])
    assert first == second
    greedy = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 15, "temperature": 0}
    assert "".join(p.text for p in (await _run(engine, greedy))[0]) == "".join(p.text for p in (await _run(engine, greedy))[0])


async def test_cancel_stops_generation_early(engine):
    cancel = threading.Event()
    cancel.set()
    _, end = await _run(engine, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 500, "min_tokens": 500}, cancel)
    assert end.output_tokens < 500


async def test_prompt_longer_than_context_is_refused(engine):
    with pytest.raises(EngineError) as err:
        await _run(engine, {"messages": [{"role": "user", "content": "word " * 5000}]})
    assert err.value.code == "context_length_exceeded"


@pytest.mark.parametrize(
    "given, expected",
    [
        ("http://127.0.0.1:3000", "ws://127.0.0.1:3000/worker/ws"),
        ("https://one.example/", "wss://one.example/worker/ws"),
        ("127.0.0.1:3000", "ws://127.0.0.1:3000/worker/ws"),
    ],
)
def test_worker_url(given, expected):
    assert worker_url(given) == expected
