"""all-MiniLM-L6-v2 forward pass, orchestrated from Python: each step is one WGSL kernel in
assets/web/gpu.js (`gpu` is that JS object, reached through Pyodide). Same maths as
sentence-transformers: BERT encoder -> mean pooling -> L2 normalisation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from browser_worker.wordpiece import WordPiece


@dataclass
class Embedded:
    vectors: list[list[float]]
    input_tokens: int  # [CLS] + pieces + [SEP] per input, after truncation (what the model read)


class MiniLM:
    """The forward pass over a batch: every sentence's token rows stacked into one [tokens, H] activation, so each
    of the ~50 dispatches runs once per batch, not once per sentence (on SwiftShader, and on real GPUs, the cost
    of a dispatch and of a readback dwarfs a small sentence's maths)."""

    # Tokens per pass: sentences are packed up to this many rows, so a huge request runs as several passes
    # instead of allocating GPU memory in proportion to its size. 0 runs one sentence per pass (the bench's "before").
    batch_tokens = 2048

    def __init__(self, gpu: Any, tokenizer: WordPiece, config: dict[str, Any]):
        self.gpu, self.tokenizer = gpu, tokenizer
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.intermediate = config["intermediate_size"]
        self.eps = config["layer_norm_eps"]
        self.max_context = tokenizer.max_length
        for layer in range(self.layers):  # Q, K and V as one [3H, H] linear: one dispatch instead of three
            p = f"encoder.layer.{layer}.attention.self."
            for part in ("weight", "bias"):
                gpu.concat(f"{p}qkv.{part}", to_js_list([f"{p}{name}.{part}" for name in ("query", "key", "value")]))

    @classmethod
    async def load(cls, gpu: Any, base_url: str, on_progress: Any = None) -> "MiniLM":
        from pyodide.http import pyfetch  # Pyodide's: exists only inside the tab

        config = json.loads(await (await pyfetch(f"{base_url}/config.json")).string())
        vocab = await (await pyfetch(f"{base_url}/vocab.txt")).string()
        await gpu.loadSafetensors(f"{base_url}/model.safetensors", on_progress)
        return cls(gpu, WordPiece(vocab), config)

    async def embed(self, texts: list[str]) -> Embedded:
        encoded = [self.tokenizer.encode(text) for text in texts]
        vectors: list[list[float]] = []
        for batch in batches(encoded, self.batch_tokens):
            vectors += await self._pass(batch)
        return Embedded(vectors, sum(len(ids) for ids in encoded))

    async def _pass(self, sentences: list[list[int]]) -> list[list[float]]:
        """One forward pass over several sentences: one submit and one readback of [sentences, H]."""
        g, H, B = self.gpu, self.hidden, len(sentences)
        T = sum(len(ids) for ids in sentences)
        seg, row_seg, start = [], [], 0
        for i, ids in enumerate(sentences):
            seg += [start, len(ids)]
            row_seg += [i] * len(ids)
            start += len(ids)
        owned: list[int] = []

        def buf(n: int) -> int:
            owned.append(g.alloc(n))
            return owned[-1]

        def u32(values: list[int]) -> int:
            owned.append(g.allocU32(to_js_list(values)))
            return owned[-1]

        try:
            token_ids, rows, segs = u32([t for ids in sentences for t in ids]), u32(row_seg), u32(seg)
            x = buf(T * H)
            g.embed(token_ids, rows, segs, "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                    "embeddings.token_type_embeddings.weight", x, T, H)  # fmt: skip
            h = buf(T * H)
            g.layerNorm(x, 0, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", h, T, H, self.eps)
            qkv, ctx, att, h1 = buf(T * 3 * H), buf(T * H), buf(T * H), buf(T * H)
            ff, out = buf(T * self.intermediate), buf(T * H)
            for layer in range(self.layers):
                p = f"encoder.layer.{layer}."
                g.linear(h, p + "attention.self.qkv.weight", p + "attention.self.qkv.bias", qkv, T, H, 3 * H, 0)
                g.attention(qkv, rows, segs, ctx, T, self.heads, H // self.heads)
                g.linear(ctx, p + "attention.output.dense.weight", p + "attention.output.dense.bias", att, T, H, H, 0)
                g.layerNorm(att, h, p + "attention.output.LayerNorm.weight", p + "attention.output.LayerNorm.bias", h1, T, H, self.eps)
                g.linear(h1, p + "intermediate.dense.weight", p + "intermediate.dense.bias", ff, T, H, self.intermediate, 1)
                g.linear(ff, p + "output.dense.weight", p + "output.dense.bias", out, T, self.intermediate, H, 0)
                g.layerNorm(out, h1, p + "output.LayerNorm.weight", p + "output.LayerNorm.bias", h, T, H, self.eps)
            pooled = buf(B * H)
            g.meanPoolNormalize(h, segs, pooled, B, H)
            flat = list((await g.readArray(pooled, B * H)).to_py())
            return [flat[i * H : (i + 1) * H] for i in range(B)]
        finally:
            g.free(*owned)


def batches(encoded: list[list[int]], max_tokens: int) -> list[list[list[int]]]:
    """Consecutive sentences packed into passes of at most `max_tokens` rows (a longer sentence runs alone);
    max_tokens 0 gives one sentence per pass. Order is kept: outputs line up with inputs."""
    out: list[list[list[int]]] = []
    size = 0
    for ids in encoded:
        if not out or max_tokens <= 0 or size + len(ids) > max_tokens:
            out.append([])
            size = 0
        out[-1].append(ids)
        size += len(ids)
    return out


def to_js_list(values: list[Any]) -> Any:
    from pyodide.ffi import to_js  # Pyodide's: exists only inside the tab

    return to_js(values)
