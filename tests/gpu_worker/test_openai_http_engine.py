"""The OpenAI-HTTP engine against a real OpenAI-compatible server process: our own coordinator,
whose CPU workers play the part `vllm serve` plays on a GPU box. What the coordinator cannot play, vLLM's own
extensions behind the ONE sampler (token ids in the stream, prompt logprobs, /tokenize), a stand-in vLLM server
plays below: the tiny chat model run through our logits processor the way vLLM v1 drives it."""

from __future__ import annotations

import json
import math
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import aiohttp
import pytest

from backend.protocol import sampler
from gpu_worker.engines import End, EngineError, Piece
from gpu_worker.engines.openai_http import ONE_SAMPLER, OpenAIHTTPEngine, VLLMProcess, vllm_command
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
    cmd = vllm_command("/models/x", 8001, "x", max_model_len=4096, extra=("--tensor-parallel-size", "2"))
    assert cmd[1:] == ["serve", "/models/x", "--host", "127.0.0.1", "--port", "8001", "--served-model-name", "x", "--dtype", "auto", "--max-model-len", "4096",
                       "--logits-processors", ONE_SAMPLER, "--tensor-parallel-size", "2"]  # fmt: skip
    assert "--logits-processors" not in vllm_command("/models/x", 8001, "x", one_sampler=False)


def test_vllm_can_import_the_one_sampler_from_its_own_python(monkeypatch, tmp_path):
    """vLLM runs in its own environment: the processor must import there from what VLLMProcess puts on PYTHONPATH
    alone (this fake `vllm` is a Python with no site-packages and nothing of this checkout on its path)."""
    record = tmp_path / "seen.json"
    fake = tmp_path / "vllm"
    fake.write_text(f"#!{sys.executable} -IS\nimport json, os, sys\nsys.path[:0] = os.environ['PYTHONPATH'].split(os.pathsep)\n"
                    "from gpu_worker.engines.vllm_sampler import OneSamplerLogitsProcessor\n"
                    f"json.dump({{'argv': sys.argv[1:], 'ok': OneSamplerLogitsProcessor().is_argmax_invariant() is False}}, open({str(record)!r}, 'w'))\n"
                    "sys.exit(3)\n")  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(EngineError, match="exited with 3"):
        VLLMProcess("/models/x", "x").__enter__()
    seen = json.loads(record.read_text())
    assert seen["ok"] and seen["argv"][seen["argv"].index("--logits-processors") + 1] == ONE_SAMPLER


# --- the ONE sampler over HTTP ----------------------------------------------------------------------


def _recording(engine: OpenAIHTTPEngine) -> list[dict]:
    """The JSON bodies the engine sends upstream, in order."""
    sent: list[dict] = []

    async def record(session, context, params):
        sent.append(json.loads(params.chunk))

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(record)
    engine.trace_configs.append(trace)
    return sent


async def test_one_sampler_sends_each_choice_alone_with_the_seed(devnet):
    """Against the coordinator (an upstream that ignores vLLM's extras and returns no token ids): one request per
    choice, n=1, greedy upstream, the seed and choice index in vllm_xargs; no token ids to claim, so none are."""
    seed = sampler.new_seed()
    engine = OpenAIHTTPEngine("relay", devnet.url + "/v1", upstream_model="tiny-chat", max_context=2048, one_sampler=True)
    assert "score" in engine.tasks
    sent = _recording(engine)
    body = {"messages": MESSAGES, "max_tokens": 4, "n": 2, "temperature": 0.7, "top_p": 0.9, "seed": 5}
    events = [e async for e in engine.generate("chat", body, threading.Event(), seed)]
    ends = [e for e in events if isinstance(e, End)]
    assert [e.index for e in ends] == [0, 1] and all(e.tokens is None for e in ends) and all(e.output_tokens > 0 for e in ends)
    assert ends[0].input_tokens > 0 and ends[1].input_tokens == 0  # the prompt is counted once
    assert len(sent) == 2
    for i, payload in enumerate(sent):
        assert payload["n"] == 1 and payload["temperature"] == 0.0 and payload["return_token_ids"] is True and "seed" not in payload
        assert payload["vllm_xargs"] == {"one_seed": seed, "one_choice": i, "one_temperature": 0.7, "one_top_p": 0.9}
    sent.clear()
    events = [e async for e in engine.generate("completion", {"prompt": ["Once", "Twice"], "max_tokens": 3}, threading.Event(), seed)]
    assert [e.index for e in events if isinstance(e, End)] == [0, 1]
    assert [(p["prompt"], p["vllm_xargs"]["one_choice"]) for p in sent] == [("Once", 0), ("Twice", 1)]
    plain = OpenAIHTTPEngine("relay", devnet.url + "/v1", upstream_model="tiny-chat", max_context=2048)
    sent = _recording(plain)
    events = [e async for e in plain.generate("chat", {"messages": MESSAGES, "max_tokens": 3, "n": 2}, threading.Event(), seed)]
    assert len(sent) == 1 and sent[0]["n"] == 2 and "vllm_xargs" not in sent[0] and "return_token_ids" not in sent[0]
    assert all(e.tokens is None for e in events if isinstance(e, End)) and "score" not in plain.tasks


class StandInVLLM(BaseHTTPRequestHandler):
    """Plays `vllm serve --logits-processors gpu_worker.engines.vllm_sampler:OneSamplerLogitsProcessor` for the tiny chat
    model, one request at a time: vllm_xargs become SamplingParams.extra_args, the processor sees vLLM's batch updates
    and the live output-token list, min_tokens bans EOS before it, temperature 0 samples greedily; the stream carries
    choices[].token_ids (return_token_ids), /v1/completions answers prompt_logprobs, /tokenize and /detokenize sit
    at the root. Only vLLM's model runner is missing: it needs a GPU."""

    model = tokenizer = processor = None
    eos: set[int] = set()
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.lock:
            if self.path == "/tokenize":
                return self._json({"tokens": self._prompt(body), "count": 0, "max_model_len": 2048})
            if self.path == "/detokenize":
                if not all(0 <= t < len(self.tokenizer) for t in body["tokens"]):
                    return self._json({"error": {"message": "token id out of vocabulary"}}, 400)
                return self._json({"prompt": self.tokenizer.decode(body["tokens"])})
            if "prompt_logprobs" in body:
                return self._json({"choices": [{"index": 0, "text": "", "prompt_logprobs": self._prompt_logprobs(body["prompt"], body["prompt_logprobs"])}]})
            self._stream(body, "chat" if self.path.endswith("/chat/completions") else "completion")

    def _prompt(self, body) -> list[int]:
        if "messages" in body:
            text = self.tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=False)
            return self.tokenizer.encode(text, add_special_tokens=False)
        return self.tokenizer.encode(body["prompt"], add_special_tokens=False)

    def _stream(self, body, task):
        import torch

        assert body["n"] == 1 and body["temperature"] == 0.0 and body["return_token_ids"] is True
        prompt, out = self._prompt(body), []
        params = SimpleNamespace(extra_args=body.get("vllm_xargs"))  # vLLM's SamplingParams
        self.processor.update_state(SimpleNamespace(batch_size=1, removed=[], added=[(0, params, prompt, out)], moved=[]))  # vLLM's BatchUpdate
        chunks, ids, cache, shown = [], prompt, None, ""
        with torch.no_grad():
            for _ in range(body["max_tokens"]):
                result = self.model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
                cache, logits = result.cache, result.logits[:, -1].float()
                if len(out) < int(body.get("min_tokens") or 0):
                    logits[0, sorted(self.eos)] = -math.inf
                self.processor.update_state(None)
                token = int(self.processor.apply(logits)[0].argmax())
                out.append(token)
                text = self.tokenizer.decode([t for t in out if t not in self.eos], skip_special_tokens=True)
                finish = "stop" if token in self.eos else ("length" if len(out) == body["max_tokens"] else None)
                piece = "" if text.endswith("\ufffd") and not finish else text[len(shown) :]  # vLLM holds half characters back
                shown += piece
                field = {"text": piece} if task == "completion" else {"delta": {"content": piece}}
                chunks.append({"choices": [{"index": 0, **field, "finish_reason": finish, "token_ids": [token]}]})
                if finish:
                    break
                ids = [token]
        self.processor.update_state(SimpleNamespace(batch_size=0, removed=[0], added=[], moved=[]))
        chunks.append({"choices": [], "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(out)}})
        self._reply("text/event-stream", "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")

    def _prompt_logprobs(self, ids, k):
        import torch

        with torch.no_grad():
            logprobs = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
        rows = [None]
        for j in range(1, len(ids)):
            top = set(logprobs[j - 1].topk(k).indices.tolist()) | {ids[j]}
            rows.append({str(v): {"logprob": float(logprobs[j - 1, v]), "rank": 1, "decoded_token": ""} for v in top})
        return rows

    def _json(self, payload, status=200):
        self._reply("application/json", json.dumps(payload), status)

    def _reply(self, kind, text, status=200):
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def stand_in(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpu_worker.engines.vllm_sampler import OneSamplerLogitsProcessor

    path = tiny_models / "tiny-chat"
    StandInVLLM.tokenizer = AutoTokenizer.from_pretrained(path)
    StandInVLLM.model = AutoModelForCausalLM.from_pretrained(path).eval()
    eos = StandInVLLM.model.generation_config.eos_token_id
    StandInVLLM.eos = set(eos if isinstance(eos, list) else [eos])
    StandInVLLM.processor = OneSamplerLogitsProcessor(None, "cpu", False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInVLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def _answers(engine, task, body, seed):
    """Per choice: (token ids, text, output tokens)."""
    texts: dict[int, str] = {}
    ends = {}
    async for event in engine.generate(task, body, threading.Event(), seed):
        if isinstance(event, Piece):
            texts[event.index] = texts.get(event.index, "") + event.text
        else:
            ends[event.index] = event
    return {i: (e.tokens, texts.get(i, ""), e.output_tokens) for i, e in sorted(ends.items())}


async def test_one_sampler_over_vllm_picks_what_the_transformers_engine_picks_and_rescores(stand_in, tiny_models):
    """The same model, seed and request give the same token ids through vLLM's processor as through the transformers
    engine; the vLLM engine's top-k re-scoring passes the honest answer and never scores a token above the full
    vocabulary's margin (a lower bound), yet still fails an answer the seed did not produce."""
    from gpu_worker.engines.transformers_engine import TransformersTextEngine

    vllm = OpenAIHTTPEngine("tiny-chat", stand_in + "/v1", upstream_model="tiny-chat", max_context=2048, one_sampler=True)
    reference = TransformersTextEngine("tiny-chat", tiny_models / "tiny-chat")
    seed = sampler.new_seed()
    cases = [
        ("chat", {"messages": MESSAGES, "n": 2, "max_tokens": 16, "min_tokens": 3, "temperature": 0.8, "top_p": 0.9}),
        ("completion", {"prompt": ["Once upon", "The sky"], "max_tokens": 10, "temperature": 0}),
    ]
    for task, body in cases:
        got, want = await _answers(vllm, task, body, seed), await _answers(reference, task, body, seed)
        assert [(ids, n) for ids, _, n in got.values()] == [(ids, n) for ids, _, n in want.values()]
        assert all(ids is not None and len(ids) == n for ids, _, n in got.values())
        claimed = [{"index": i, "tokens": ids, "content": text} for i, (ids, text, _) in got.items()]
        score = {"task": task, "request": body, "sampling_seed": seed, "choices": claimed}
        items, read = await vllm.score(score)
        assert read > sum(len(c["tokens"]) for c in claimed)
        assert all(0 <= m <= sampler.DEFAULT_RULE.margin_tolerance for item in items for m in item["margins"]), items
        # another answer: each choice claims the other's tokens (the same model, but not this seed's draw)
        swapped = [{"index": c["index"], "tokens": claimed[1 - c["index"]]["tokens"]} for c in claimed]
        low, _ = await vllm.score({**score, "choices": swapped})
        full, _ = await reference.score({**score, "choices": swapped})
        for lo, hi in zip(low, full):
            assert lo["index"] == hi["index"] and all(a <= b + 1e-3 for a, b in zip(lo["margins"], hi["margins"])), (lo, hi)
        assert sampler.judge(m for item in low for m in item["margins"]).verdict == "fail"
    wrong = {"task": "chat", "request": cases[0][1], "sampling_seed": seed}
    items, _ = await vllm.score({**wrong, "choices": [{"index": 0, "tokens": [10**7]}, {"index": 1, "tokens": [5, 6], "content": "z" * 40}]})
    assert [item["margins"] for item in items] == [[sampler.MARGIN_CAP], [sampler.MARGIN_CAP] * 2]
