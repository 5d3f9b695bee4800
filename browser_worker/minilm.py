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
    def __init__(self, gpu: Any, tokenizer: WordPiece, config: dict[str, Any]):
        self.gpu, self.tokenizer = gpu, tokenizer
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.intermediate = config["intermediate_size"]
        self.eps = config["layer_norm_eps"]
        self.max_context = tokenizer.max_length

    @classmethod
    async def load(cls, gpu: Any, base_url: str, on_progress: Any = None) -> "MiniLM":
        from pyodide.http import pyfetch  # Pyodide's: exists only inside the tab

        config = json.loads(await (await pyfetch(f"{base_url}/config.json")).string())
        vocab = await (await pyfetch(f"{base_url}/vocab.txt")).string()
        await gpu.loadSafetensors(f"{base_url}/model.safetensors", on_progress)
        return cls(gpu, WordPiece(vocab), config)

    async def embed(self, texts: list[str]) -> Embedded:
        vectors, tokens = [], 0
        for text in texts:
            ids = self.tokenizer.encode(text)
            tokens += len(ids)
            vectors.append(await self._sentence(ids))
        return Embedded(vectors, tokens)

    async def _sentence(self, ids: list[int]) -> list[float]:
        from pyodide.ffi import to_js  # Pyodide's: exists only inside the tab

        g, H, S = self.gpu, self.hidden, len(ids)
        owned: list[int] = []

        def buf(n: int) -> int:
            owned.append(g.alloc(n))
            return owned[-1]

        try:
            token_ids = g.allocU32(to_js(ids))
            owned.append(token_ids)
            x = buf(S * H)
            g.embed(token_ids, "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                    "embeddings.token_type_embeddings.weight", x, S, H)  # fmt: skip
            h = buf(S * H)
            g.layerNorm(x, 0, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", h, S, H, self.eps)
            q, k, v, ctx, att, h1 = (buf(S * H) for _ in range(6))
            ff, out = buf(S * self.intermediate), buf(S * H)
            for layer in range(self.layers):
                p = f"encoder.layer.{layer}."
                for name, target in (("query", q), ("key", k), ("value", v)):
                    g.linear(h, p + f"attention.self.{name}.weight", p + f"attention.self.{name}.bias", target, S, H, H, 0)
                g.attention(q, k, v, ctx, S, self.heads, H // self.heads)
                g.linear(ctx, p + "attention.output.dense.weight", p + "attention.output.dense.bias", att, S, H, H, 0)
                g.layerNorm(att, h, p + "attention.output.LayerNorm.weight", p + "attention.output.LayerNorm.bias", h1, S, H, self.eps)
                g.linear(h1, p + "intermediate.dense.weight", p + "intermediate.dense.bias", ff, S, H, self.intermediate, 1)
                g.linear(ff, p + "output.dense.weight", p + "output.dense.bias", out, S, self.intermediate, H, 0)
                g.layerNorm(out, h1, p + "output.LayerNorm.weight", p + "output.LayerNorm.bias", h, S, H, self.eps)
            pooled = buf(H)
            g.meanPoolNormalize(h, pooled, S, H)
            return list((await g.readArray(pooled, H)).to_py())
        finally:
            g.free(*owned)
