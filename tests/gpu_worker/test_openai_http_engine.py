"""The OpenAI-HTTP engine against a real OpenAI-compatible server process: our own coordinator,
whose CPU workers play the part `vllm serve` plays on a GPU box."""

from __future__ import annotations

import shutil
import threading

import pytest

from gpu_worker.engines import End, EngineError, Piece
from gpu_worker.engines.openai_http import OpenAIHTTPEngine, VLLMProcess, vllm_command
from gpu_worker.engines.registry import EngineSpec, parse_engine_spec

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def engine(devnet):
    return OpenAIHTTPEngine("relay", devnet.url + "/v1", upstream_model="tiny-chat", tasks=["chat", "completion", "embedding"])


async def _events(engine, task, body, cancel=None):
    return [e async for e in engine.generate(task, body, cancel or threading.Event())]


async def test_streamed_chat_maps_to_pieces_and_usage(engine):
    events = await _events(engine, "chat", {"messages": MESSAGES, "max_tokens": 12, "min_tokens": 12})
    pieces, ends = [e for e in events if isinstance(e, Piece)], [e for e in events if isinstance(e, End)]
    assert len(pieces) >= 2 and len(ends) == 1
    assert ends[0].output_tokens == 12 and ends[0].input_tokens > 0 and ends[0].finish_reason == "length"


async def test_n_choices_and_completions(engine):
    events = await _events(engine, "chat", {"messages": MESSAGES, "max_tokens": 4, "n": 2})
    ends = [e for e in events if isinstance(e, End)]
    assert sorted(e.index for e in ends) == [0, 1] and sum(e.output_tokens for e in ends) <= 8
    events = await _events(engine, "completion", {"prompt": "Once", "max_tokens": 5, "min_tokens": 5})
    assert [e.output_tokens for e in events if isinstance(e, End)] == [5]


async def test_embeddings_pass_through(devnet):
    relay = OpenAIHTTPEngine("relay-emb", devnet.url + "/v1", upstream_model="all-minilm-l6-v2", max_context=256, tasks=["embedding"])
    result = await relay.embed({"model": "relay-emb", "input": ["a", "b"]})
    assert len(result.vectors) == 2 and len(result.vectors[0]) == 384 and result.input_tokens > 0


async def test_upstream_errors_keep_their_code(devnet):
    missing = OpenAIHTTPEngine("relay", devnet.url + "/v1", upstream_model="no-such-model", max_context=100)
    with pytest.raises(EngineError) as err:
        await _events(missing, "chat", {"messages": MESSAGES})
    assert err.value.code == "model_not_found"


async def test_cancel_closes_the_stream_early(engine):
    cancel = threading.Event()
    events = []
    async for event in engine.generate("chat", {"messages": MESSAGES, "max_tokens": 1500, "min_tokens": 1500}, cancel):
        events.append(event)
        cancel.set()
    assert len(events) == 1


def test_engine_spec_and_vllm_command(monkeypatch, tmp_path):
    assert parse_engine_spec("openai:relay=http://127.0.0.1:8000/v1#served") == EngineSpec("openai", "relay", "http://127.0.0.1:8000/v1#served")
    if shutil.which("vllm") is None:
        with pytest.raises(EngineError, match="vllm"):
            vllm_command("/models/x", 8001, "x")
        with pytest.raises(EngineError, match="vllm"):
            VLLMProcess("/models/x", "x")
    fake = tmp_path / "vllm"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    cmd = vllm_command("/models/x", 8001, "x", max_model_len=4096)
    assert cmd[1:] == ["serve", "/models/x", "--host", "127.0.0.1", "--port", "8001", "--served-model-name", "x", "--dtype", "auto", "--max-model-len", "4096"]
