"""The ONE sampler v1: one reproducible way to pick each token, so any answer can be re-scored in one pass.

Every text job carries a `sampling_seed` (32 bytes, hex) that the worker's attestation commits to. At
position t of choice i the worker picks

    token = argmax over allowed v of  logits[v] / T + gumbel(seed, i, t, v)      (T = temperature > 0)
    token = argmax over allowed v of  logits[v]                                   (T = 0: greedy)

where `allowed` is the top-p nucleus of softmax(logits / T) (every token when top_p = 1; EOS is not allowed
before `min_tokens`). This is Gumbel-max sampling: each token is drawn from the model's distribution, yet
the draw is a pure function of the logits and the seed. The noise comes from a counter-based generator,
so any position's noise is computed directly, in any order, on any device:

    k0, k1 = the first two big-endian u32 of sha256("ONE-sampler-v1" || seed || u32be(i) || u32be(t))
    h      = lowbias32(lowbias32(v ^ k0) ^ k1)                      (32-bit unsigned arithmetic)
    u      = ((h >> 8) + 0.5) / 2**24                               (exact in float32 and float64)
    gumbel = -log(-log(u))

An auditor holding the claimed model runs prompt + answer tokens through it once (teacher forced), rebuilds
each position's scores z[v] = logits[v] / T + gumbel and reads off the token's *margin*: max(z) - z[token],
zero when the claimed model would have picked exactly that token. The same model reproduces (almost) every
token; another model, or the same one rounded to fewer bits, leaves margins all along the answer.
(Token-DiFR, arXiv 2025: a shared seed makes >98% of tokens reproduce exactly.)

Stdlib only: the reference that the torch implementation (gpu_worker.sampling), the vLLM logits processor
and outside verifiers are tested against.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
from dataclasses import dataclass
from typing import Iterable

SAMPLER = "one-gumbel-v1"
_DOMAIN = b"ONE-sampler-v1"
_MASK = 0xFFFFFFFF
LOWBIAS_A, LOWBIAS_B = 0x7FEB352D, 0x846CA68B  # Wellons' lowbias32 constants (a well-mixed 32-bit hash)

MARGIN_CAP = 10.0  # one wild token (a tie the other way, a token outside the nucleus) counts at most this much


def new_seed() -> str:
    """A fresh sampling seed for a job (hex)."""
    return secrets.token_hex(32)


def seed_from_client(client_seed: int) -> str:
    """The sampling seed for a request that names its own `seed`: the same seed gives the same answer."""
    return hashlib.sha256(b"ONE-client-seed-v1" + str(int(client_seed)).encode()).hexdigest()


def seed_for(body: dict) -> str:
    """A text job's sampling seed: derived from the request's own integer `seed` (the same seed gives the same
    answer), else fresh."""
    seed = body.get("seed")
    return seed_from_client(seed) if isinstance(seed, int) and not isinstance(seed, bool) else new_seed()


def valid_seed(value: object) -> bool:
    """A sampling seed as frames carry it: 64 lowercase hex digits."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def step_key(seed: str, choice: int, position: int) -> tuple[int, int]:
    """The two 32-bit keys of one (choice, position): the counter-based generator's stream for that step."""
    digest = hashlib.sha256(_DOMAIN + bytes.fromhex(seed) + struct.pack(">II", choice & _MASK, position & _MASK)).digest()
    return struct.unpack(">II", digest[:8])


def lowbias32(x: int) -> int:
    x ^= x >> 16
    x = (x * LOWBIAS_A) & _MASK
    x ^= x >> 15
    x = (x * LOWBIAS_B) & _MASK
    return x ^ (x >> 16)


def token_hash(key: tuple[int, int], token: int) -> int:
    return lowbias32(lowbias32((token & _MASK) ^ key[0]) ^ key[1])


def uniform(key: tuple[int, int], token: int) -> float:
    """The token's uniform draw in (0, 1) at this step (24 bits: exact in float32)."""
    return ((token_hash(key, token) >> 8) + 0.5) / 2**24


def gumbel(key: tuple[int, int], token: int) -> float:
    return -math.log(-math.log(uniform(key, token)))


def nucleus(logits: list[float], temperature: float, top_p: float) -> list[int]:
    """Token ids in the top-p nucleus of softmax(logits / T): the most likely tokens, in order of probability
    (ties: lower id first), until their mass reaches top_p. Every token when top_p >= 1."""
    if top_p >= 1.0:
        return list(range(len(logits)))
    scale = temperature if temperature > 0 else 1.0
    top = max(logits)
    weights = [math.exp((x - top) / scale) if math.isfinite(x) else 0.0 for x in logits]
    total = sum(weights)
    order = sorted(range(len(logits)), key=lambda v: (-weights[v], v))
    kept, mass = [], 0.0
    for v in order:
        kept.append(v)
        mass += weights[v] / total
        if mass >= top_p:
            break
    return kept


def choose(logits: list[float], seed: str, choice: int, position: int, temperature: float, top_p: float = 1.0,
           banned: Iterable[int] = ()) -> int:  # fmt: skip
    """The reference pick of one token (slow: pure Python over the whole vocabulary)."""
    scores = step_scores(logits, seed, choice, position, temperature, top_p, banned)
    return max(range(len(scores)), key=lambda v: (scores[v], -v))


def step_scores(logits: list[float], seed: str, choice: int, position: int, temperature: float, top_p: float = 1.0,
                banned: Iterable[int] = ()) -> list[float]:  # fmt: skip
    """z[v] for every token of one step (-inf outside the nucleus or banned)."""
    masked = list(logits)
    for v in banned:
        masked[v] = -math.inf
    allowed = set(nucleus(masked, temperature, top_p))
    key = step_key(seed, choice, position)
    if temperature <= 0:
        return [x if v in allowed else -math.inf for v, x in enumerate(masked)]
    return [x / temperature + gumbel(key, v) if v in allowed else -math.inf for v, x in enumerate(masked)]


@dataclass(frozen=True)
class ClaimedChoice:
    """One choice of an answer as a `score` job carries it: its index, its token ids and the content that was sent."""

    index: int
    tokens: list
    content: str | None = None


@dataclass(frozen=True)
class ScoreJob:
    """The body of a `score` job (an audit's re-scoring; also what `one verify-audit` runs): the text job's task and
    request, the seed its worker committed to, and the claimed choices."""

    task: str
    request: dict
    sampling_seed: str
    choices: list[ClaimedChoice]

    def body(self) -> dict:
        return {"task": self.task, "request": self.request, "sampling_seed": self.sampling_seed,
                "choices": [{"index": c.index, "tokens": c.tokens, "content": c.content} for c in self.choices]}  # fmt: skip

    @classmethod
    def parse(cls, body: dict, tasks: Iterable[str]) -> ScoreJob:
        """A score job's body as a worker receives it; ValueError says what is missing. Token ids are not checked
        here: ids that are no model's tokens score as misses (the engine's call), not as a malformed job."""
        tasks = tuple(tasks)
        task, request, seed, choices = body.get("task"), body.get("request"), body.get("sampling_seed"), body.get("choices")
        if task not in tasks or not isinstance(request, dict) or not valid_seed(seed):
            raise ValueError(f"a score job needs a task ({', '.join(tasks)}), the request and a sampling_seed")
        if not isinstance(choices, list) or not choices:
            raise ValueError("a score job needs the claimed choices")
        claimed = []
        for choice in choices:
            index, tokens = (choice.get("index"), choice.get("tokens")) if isinstance(choice, dict) else (None, None)
            if not isinstance(index, int) or isinstance(index, bool) or index < 0 or not isinstance(tokens, list):
                raise ValueError("each claimed choice needs its index and tokens")
            content = choice.get("content")
            claimed.append(ClaimedChoice(index, tokens, content if isinstance(content, str) else None))
        return cls(task, request, seed, claimed)


def margin(scores: list[float], token: int) -> float:
    """How far the claimed token is from the one the model would have picked (0: the same), capped."""
    if not math.isfinite(scores[token]):
        return MARGIN_CAP
    return min(max(scores) - scores[token], MARGIN_CAP)


@dataclass(frozen=True)
class AuditRule:
    """How an answer's margins become a verdict. Every audit outcome publishes the rule it was judged by, so
    anyone can recompute the verdict from the margins.

    A token is *missed* when its margin exceeds `margin_tolerance` (numerics: another device's kernels, a prefill
    instead of cached decoding). An honest worker on another stack still misses a few near-tied tokens (Token-DiFR:
    > 98% reproduce), so an answer fails only when an honest worker missing each token with probability
    `honest_miss_rate` would miss that many with odds below `false_fail_odds` (binomial tail). A substituted model
    misses most tokens and fails within a few; a subtly changed one (8-bit weights) over longer answers."""

    margin_tolerance: float = 0.01
    honest_miss_rate: float = 0.02
    false_fail_odds: float = 1e-6
    min_scored_tokens: int = 16  # an answer this short that reproduces passes only as inconclusive: too little evidence

    def as_json(self) -> dict:
        return {"sampler": SAMPLER, "margin_tolerance": self.margin_tolerance, "honest_miss_rate": self.honest_miss_rate,
                "false_fail_odds": self.false_fail_odds, "min_scored_tokens": self.min_scored_tokens}  # fmt: skip


DEFAULT_RULE = AuditRule()


def honest_odds(tokens: int, misses: int, rate: float) -> float:
    """P(X >= misses) for X ~ Binomial(tokens, rate): how likely an honest worker misses this many (1.0 when no more
    than expected: such an answer is never suspicious)."""
    if misses <= 0 or rate >= 1:
        return 1.0
    if rate <= 0:  # an honest worker then misses nothing
        return 0.0
    if misses <= tokens * rate:
        return 1.0
    log_p, log_q, total = math.log(rate), math.log1p(-rate), 0.0
    for i in range(misses, tokens + 1):  # terms only shrink past the mean: stop once they no longer count
        term = math.exp(math.lgamma(tokens + 1) - math.lgamma(i + 1) - math.lgamma(tokens - i + 1) + i * log_p + (tokens - i) * log_q)
        total += term
        if term <= total * 1e-16:
            break
    return min(total, 1.0)


@dataclass(frozen=True)
class Judgement:
    """An audit's reading of one answer's margins under a rule."""

    tokens: int
    misses: int  # tokens whose margin exceeds the rule's tolerance
    mean_margin: float
    odds: float  # how likely an honest worker misses this many (AuditRule)
    rule: AuditRule = DEFAULT_RULE

    @property
    def verdict(self) -> str:
        """`fail` (not the claimed model's answer), `pass`, or `inconclusive` (too few tokens to tell)."""
        if self.odds < self.rule.false_fail_odds:
            return "fail"
        return "pass" if self.tokens >= self.rule.min_scored_tokens else "inconclusive"

    def as_json(self) -> dict:
        return {"tokens": self.tokens, "misses": self.misses, "mean_margin": round(self.mean_margin, 6), "honest_odds": float(f"{self.odds:.3g}"),
                "verdict": self.verdict}  # fmt: skip


def judge(margins: Iterable[float], rule: AuditRule = DEFAULT_RULE) -> Judgement:
    """The verdict on an answer from its per-token margins (all choices together)."""
    values = [min(max(float(m), 0.0), MARGIN_CAP) if math.isfinite(float(m)) else MARGIN_CAP for m in margins]
    misses = sum(1 for m in values if m > rule.margin_tolerance)
    return Judgement(tokens=len(values), misses=misses, mean_margin=sum(values) / len(values) if values else 0.0,
                     odds=honest_odds(len(values), misses, rule.honest_miss_rate), rule=rule)  # fmt: skip
