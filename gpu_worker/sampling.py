"""The ONE sampler v1 (backend.protocol.sampler) on torch tensors: picking tokens while generating, and
scoring a claimed answer's tokens in one teacher-forced pass when auditing.

The noise for a whole vocabulary is computed at once with 64-bit integer tensors (every product is split
so it stays below 2**63: torch has no unsigned 64-bit arithmetic on every device), so a CPU, a GPU and the
stdlib reference agree bit for bit on the 24-bit draws; the Gumbel values (float64 log) within an ulp (measured on
an H100: 0.7% of a 152k vocabulary 1 ulp apart, picks identical), far below what an audit can notice.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from backend.protocol import sampler

_MASK = 0xFFFFFFFF


def _mul32(x, constant: int):
    """(x * constant) mod 2**32 for int64 tensors holding u32 values, with no intermediate above 2**48."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK


def _lowbias32(x):
    x = x ^ (x >> 16)
    x = _mul32(x, sampler.LOWBIAS_A)
    x = x ^ (x >> 15)
    x = _mul32(x, sampler.LOWBIAS_B)
    return x ^ (x >> 16)


@lru_cache(maxsize=8)
def _token_ids(vocab: int, device: str):
    import torch

    return torch.arange(vocab, dtype=torch.int64, device=device)


def gumbel_noise(seed: str, choice: int, position: int | range, vocab: int, device: Any = "cpu"):
    """Gumbel noise for every token id of one step, float64 (what sampler.gumbel gives token by token); for a range of
    positions, one row per position."""
    import torch

    keys = [sampler.step_key(seed, choice, t) for t in (position if isinstance(position, range) else [position])]
    k0 = torch.tensor([k[0] for k in keys], dtype=torch.int64, device=device)[:, None]
    k1 = torch.tensor([k[1] for k in keys], dtype=torch.int64, device=device)[:, None]
    h = _lowbias32(_lowbias32(_token_ids(vocab, str(device))[None, :] ^ k0) ^ k1)
    noise = -torch.log(-torch.log(((h >> 8).to(torch.float64) + 0.5) / 2**24))
    return noise if isinstance(position, range) else noise[0]


def step_scores(logits, seed: str, choice: int, position: int | range, temperature: float, top_p: float = 1.0, banned=()):
    """z[v] = logits[v] / T + gumbel over the nucleus (-inf elsewhere), float64; greedy when T = 0. Given a range of
    positions, `logits` has one row per position and so has the result (an audit scores a whole answer at once)."""
    import torch

    z = logits.to(torch.float64).clone()
    for v in banned:
        z[..., v] = -torch.inf
    if top_p < 1.0:
        scaled = z / (temperature if temperature > 0 else 1.0)
        probs = torch.softmax(scaled, dim=-1)
        ordered, order = torch.sort(probs, dim=-1, descending=True, stable=True)  # ties: lower id first, as the reference
        beyond = (torch.cumsum(ordered, dim=-1) - ordered) >= top_p
        beyond[..., 0] = False  # the most likely token is always in (top_p = 0 means greedy over the nucleus of one)
        z.scatter_(-1, order, z.gather(-1, order).masked_fill(beyond, -torch.inf))
    if temperature <= 0:
        return z
    return z / temperature + gumbel_noise(seed, choice, position, z.shape[-1], z.device)


def pick(logits, seed: str, choice: int, position: int, temperature: float, top_p: float = 1.0, banned=()) -> int:
    """The token the sampler picks at this step (ties: the lower id, as the reference)."""
    return int(step_scores(logits, seed, choice, position, temperature, top_p, banned).argmax())


def margins(logits, tokens: list[int], seed: str, choice: int, temperature: float, top_p: float = 1.0,
            eos_ids: set[int] = frozenset(), min_tokens: int = 0) -> list[float]:  # fmt: skip
    """Per-token margins of a claimed answer: `logits[t]` is the model's output that predicts `tokens[t]`
    (one teacher-forced pass over prompt + answer gives them all)."""
    import torch

    out: list[float] = []
    vocab = logits.shape[-1]
    for start in range(0, len(tokens), _ROWS):  # whole blocks of positions at once; rows x vocab bounds the memory
        end = min(start + _ROWS, len(tokens))
        rows = logits[start:end].to(torch.float64).clone()
        for v in eos_ids:  # EOS was not allowed yet at these positions (banned before the nucleus, as when generating)
            rows[: max(min_tokens - start, 0), v] = -torch.inf
        z = step_scores(rows, seed, choice, range(start, end), temperature, top_p)
        block = torch.tensor([t if 0 <= t < vocab else 0 for t in tokens[start:end]], dtype=torch.int64, device=z.device)
        claimed = z.gather(-1, block[:, None])[:, 0]
        gaps = (z.max(dim=-1).values - claimed).clamp(max=sampler.MARGIN_CAP)
        out += [sampler.MARGIN_CAP if not (0 <= t < vocab) or not bool(torch.isfinite(c)) else float(g)
                for t, c, g in zip(tokens[start:end], claimed, gaps)]  # fmt: skip
    return out


_ROWS = 64  # positions scored together (64 x a 152k vocabulary of float64: 78 MB)


def sampling_params(body: dict[str, Any], constrained: bool = False) -> dict[str, Any]:
    """Temperature, top_p and min_tokens of an OpenAI body, as the sampler reads them (OpenAI defaults). min_tokens
    (vLLM's extra: hold off EOS) is 0 under a JSON constraint, whose only move at the end is EOS."""
    temperature = 1.0 if body.get("temperature") is None else float(body["temperature"])
    top_p = 1.0 if body.get("top_p") is None else float(body["top_p"])
    return {"temperature": temperature, "top_p": top_p, "min_tokens": 0 if constrained else int(body.get("min_tokens") or 0)}
