"""How MiniLM packs a request into GPU passes, against a recording stand-in for assets/web/gpu.js: sentences share
passes up to `batch_tokens` rows (so a huge request never allocates GPU memory in proportion to its size), each pass
carries the right segment table, one readback per pass, and outputs keep the inputs' order. The maths itself is
checked against sentence-transformers in tests/e2e/test_browser_worker.py (real Chromium, WebGPU)."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from browser_worker.minilm import MiniLM, batches
from browser_worker.wordpiece import WordPiece

CONFIG = {"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 16, "layer_norm_eps": 1e-12}


class RecordingGpu:
    """gpu.js's surface: records allocations, dispatches and readbacks; a readback gives each sentence's row
    filled with the sentence's token count, so the test can see which output is whose."""

    def __init__(self):
        self.allocs: list[int] = []
        self.u32: dict[int, list[int]] = {}
        self.reads = 0
        self.live: set[int] = set()
        self.next = 0
        self.concats: list[str] = []

    def _id(self) -> int:
        self.next += 1
        self.live.add(self.next)
        return self.next

    def alloc(self, floats: int) -> int:
        self.allocs.append(floats)
        return self._id()

    def allocU32(self, values) -> int:
        i = self._id()
        self.u32[i] = list(values)
        return i

    def concat(self, name, parts) -> None:
        self.concats.append(name)

    def free(self, *ids) -> None:
        self.live -= set(ids)

    def embed(self, ids, rows, segs, *rest) -> None:
        self.pass_ids, self.pass_rows, self.pass_segs = self.u32[ids], self.u32[rows], self.u32[segs]

    def linear(self, *args) -> None: ...
    def layerNorm(self, *args) -> None: ...
    def attention(self, *args) -> None: ...
    def meanPoolNormalize(self, *args) -> None: ...

    async def readArray(self, buffer, count):
        self.reads += 1
        flat = [float(length) for length in self.pass_segs[1::2] for _ in range(CONFIG["hidden_size"])]
        assert len(flat) == count
        return types.SimpleNamespace(to_py=lambda: flat)


@pytest.fixture(autouse=True)
def pyodide_ffi(monkeypatch):
    """minilm.py hands lists to JS through pyodide.ffi.to_js, which exists only in the tab."""
    ffi = types.ModuleType("pyodide.ffi")
    ffi.to_js = list
    monkeypatch.setitem(sys.modules, "pyodide", types.ModuleType("pyodide"))
    monkeypatch.setitem(sys.modules, "pyodide.ffi", ffi)


def model(gpu: RecordingGpu, max_length: int = 256) -> MiniLM:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d"]
    return MiniLM(gpu, WordPiece("\n".join(vocab), max_length=max_length), CONFIG)


def test_batches_pack_in_order_up_to_the_cap_and_zero_means_one_per_pass():
    sizes = [3, 5, 2, 9, 1, 1]
    packed = batches([[0] * n for n in sizes], 8)
    assert [[len(s) for s in b] for b in packed] == [[3, 5], [2], [9], [1, 1]]  # 9 > 8 runs alone
    assert [[len(s) for s in b] for b in batches([[0] * n for n in sizes], 0)] == [[n] for n in sizes]
    assert batches([], 8) == []


def test_a_huge_request_runs_in_bounded_passes_with_outputs_in_order():
    gpu = RecordingGpu()
    m = model(gpu)
    m.batch_tokens = 64
    texts = [" ".join("abcd"[i % 4] for _ in range(20 + i % 5)) for i in range(200)]  # 22..26 tokens each
    out = asyncio.run(m.embed(texts))
    total = sum(len(m.tokenizer.encode(t)) for t in texts)
    assert out.input_tokens == total
    assert gpu.reads == len(batches([m.tokenizer.encode(t) for t in texts], 64)) > 1  # one readback per pass
    # No buffer beyond one pass's widest activation (fused QKV or GELU rows), however long the request.
    assert max(gpu.allocs) <= 64 * max(3 * CONFIG["hidden_size"], CONFIG["intermediate_size"])
    assert gpu.live == set()  # every pass frees what it allocated
    assert [v[0] for v in out.vectors] == [len(m.tokenizer.encode(t)) for t in texts]  # outputs in the inputs' order
    assert all(len(v) == CONFIG["hidden_size"] for v in out.vectors)
    assert gpu.concats == [f"encoder.layer.{i}.attention.self.qkv.{p}" for i in range(2) for p in ("weight", "bias")]


def test_a_pass_carries_each_sentences_start_and_length():
    gpu = RecordingGpu()
    m = model(gpu)
    asyncio.run(m.embed(["a", "b c d", "", "d d"]))
    assert gpu.reads == 1
    assert gpu.pass_segs == [0, 3, 3, 5, 8, 2, 10, 4]  # [CLS] ... [SEP] per sentence
    assert gpu.pass_rows == [0] * 3 + [1] * 5 + [2] * 2 + [3] * 4
    assert gpu.pass_ids[:3] == [2, 4, 3]


def test_one_sentence_per_pass_when_batch_tokens_is_zero():
    gpu = RecordingGpu()
    m = model(gpu)
    m.batch_tokens = 0
    asyncio.run(m.embed(["a", "b c", "d"]))
    assert gpu.reads == 3 and gpu.pass_segs == [0, 3]
