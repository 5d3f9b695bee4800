"""The ONE sampler v1: the torch implementation (what workers and auditors run) draws exactly what the stdlib
reference (what an outside verifier reads) draws; the same seed reproduces an answer; re-scoring an honest answer
gives zero margins and a different model's answer does not pass."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
import torch

from backend.protocol import receipt as rc
from backend.protocol import sampler
from gpu_worker import sampling
from gpu_worker.engines import End


def test_the_torch_noise_is_the_reference_noise_bit_for_bit():
    seed = sampler.new_seed()
    for choice, position in [(0, 0), (3, 17), (2**31, 2**32 - 1)]:
        key = sampler.step_key(seed, choice, position)
        noise = sampling.gumbel_noise(seed, choice, position, 3000)
        reference = [sampler.gumbel(key, v) for v in range(3000)]
        assert max(abs(a - b) for a, b in zip(noise.tolist(), reference)) < 1e-12
    assert not torch.equal(sampling.gumbel_noise(seed, 0, 1, 100), sampling.gumbel_noise(seed, 0, 2, 100))  # a stream per position


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0), (1.3, 0.0), (0.5, 0.5)])
def test_torch_picks_what_the_reference_picks(temperature, top_p):
    rng = random.Random(5)
    for _ in range(20):
        seed = sampler.new_seed()
        logits = [rng.gauss(0, 3) for _ in range(400)]
        position = rng.randrange(1000)
        assert sampling.pick(torch.tensor(logits), seed, 1, position, temperature, top_p) == sampler.choose(logits, seed, 1, position, temperature, top_p)


def test_the_picks_follow_the_distribution():
    """Gumbel-max is sampling, not a fixed choice: over many seeds each token comes up about as often as softmax says."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    counts = [0] * 4
    for i in range(4000):
        counts[sampling.pick(logits, sampler.seed_from_client(i), 0, 0, 1.0)] += 1
    expected = torch.softmax(logits, 0).tolist()
    assert all(abs(c / 4000 - p) < 0.03 for c, p in zip(counts, expected)), (counts, expected)


def test_a_client_seed_maps_to_one_sampling_seed():
    assert sampler.seed_for({"seed": 7}) == sampler.seed_for({"seed": 7}) != sampler.seed_for({"seed": 8})
    assert sampler.seed_for({}) != sampler.seed_for({}) and sampler.valid_seed(sampler.seed_for({}))
    assert not sampler.valid_seed("AB" * 32) and not sampler.valid_seed(7)


def test_judge_fails_only_what_an_honest_worker_would_almost_never_miss():
    rule = sampler.DEFAULT_RULE  # honest workers on other stacks miss up to 2% of tokens (near-ties)
    assert sampler.judge([0.0] * 40).verdict == "pass"
    assert sampler.judge([0.0] * 4).verdict == "inconclusive"  # too short to say anything
    assert sampler.judge([0.0] * 97 + [0.5] * 3).verdict == "pass"  # 3% missed: another GPU's numerics, not a cheat
    assert sampler.judge([0.0] * 55 + [0.5] * 9).verdict == "pass"  # 9 of 64: odds 5e-6 for an honest worker, not low enough
    failed = sampler.judge([0.0] * 54 + [0.5] * 10)  # 10 of 64: 6e-7
    assert failed.verdict == "fail" and failed.odds < rule.false_fail_odds and failed.misses == 10
    assert sampler.judge([5.0] * 5).verdict == "fail"  # a substituted model misses nearly everything: a few tokens suffice
    assert sampler.judge([rule.margin_tolerance] * 50).verdict == "pass"  # within the numerics tolerance
    strict = sampler.AuditRule(honest_miss_rate=0.002)  # one stack everywhere (this machine: honest answers reproduce exactly)
    assert sampler.judge([0.0] * 44 + [0.5] * 4, strict).verdict == "pass" and sampler.judge([0.0] * 43 + [0.5] * 5, strict).verdict == "fail"
    assert sampler.honest_odds(64, 10, 0.02) == pytest.approx(5.78e-7, rel=1e-2) and sampler.honest_odds(64, 1, 0.02) == 1.0


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from gpu_worker.engines.transformers_engine import TransformersTextEngine
    from gpu_worker.tiny_models import build_rounded, build_tiny_chat

    root = tmp_path_factory.mktemp("sampler")
    true = build_tiny_chat(root / "true")
    return {
        "true": TransformersTextEngine("tiny-chat", true),
        "other": TransformersTextEngine("tiny-chat", build_tiny_chat(root / "other", seed=7)),
        "rounded": TransformersTextEngine("tiny-chat", build_rounded(true, root / "rounded", bits=4)),
    }


async def _answer(engine, body, seed):
    text, tokens = "", None
    async for event in engine.generate("chat", body, threading.Event(), seed):
        if isinstance(event, End):
            tokens = event.tokens
        else:
            text += event.text
    return text, tokens


def _score(engine, body, seed, text, tokens):
    items, read = asyncio.run(engine.score({"task": "chat", "request": body, "sampling_seed": seed,
                                            "choices": [{"index": 0, "tokens": tokens, "content": text}]}))  # fmt: skip
    return sampler.judge(items[0]["margins"])


def test_an_answer_is_reproduced_by_its_seed_and_rescored_in_one_pass(engines):
    body = {"messages": [{"role": "user", "content": "tell me"}], "max_tokens": 32, "temperature": 0.9, "top_p": 0.95}
    seed = sampler.new_seed()
    text, tokens = asyncio.run(_answer(engines["true"], body, seed))
    assert asyncio.run(_answer(engines["true"], body, seed)) == (text, tokens) and len(tokens) == 32
    assert asyncio.run(_answer(engines["true"], body, sampler.new_seed()))[1] != tokens
    honest = _score(engines["true"], body, seed, text, tokens)
    assert honest.verdict == "pass" and honest.misses == 0
    other_text, other_tokens = asyncio.run(_answer(engines["other"], body, seed))
    assert _score(engines["true"], body, seed, other_text, other_tokens).verdict == "fail"
    # ids that are not the answer that was sent: every token counts against it
    assert _score(engines["true"], body, seed, other_text, tokens).verdict == "fail"
    assert rc.tokens_digest([tokens]) != rc.tokens_digest([other_tokens])


def test_rounding_the_weights_shows_in_the_margins(engines):
    judged = []
    for i in range(6):
        body = {"messages": [{"role": "user", "content": f"round {i}"}], "max_tokens": 48, "temperature": 1.0}
        seed = sampler.new_seed()
        judged.append(_score(engines["true"], body, seed, *asyncio.run(_answer(engines["rounded"], body, seed))))
    assert sum(j.misses for j in judged) > 0 and any(j.verdict == "fail" for j in judged), judged


def test_scoring_a_whole_answer_at_once_gives_the_step_by_step_margins():
    rng = random.Random(9)
    seed, vocab = sampler.new_seed(), 300
    logits = torch.tensor([[rng.gauss(0, 3) for _ in range(vocab)] for _ in range(150)])
    logits[:, 7] = 8.0  # EOS: likely, so banning it before min_tokens changes the nucleus
    for temperature, top_p, min_tokens in [(1.0, 1.0, 0), (0.7, 0.9, 5), (0.0, 1.0, 0), (1.2, 0.5, 70)]:
        tokens = [rng.randrange(vocab) for _ in range(150)]
        tokens[3] = sampling.pick(logits[3], seed, 2, 3, temperature, top_p, banned=[7] if min_tokens > 3 else ())
        batched = sampling.margins(logits, tokens, seed, 2, temperature, top_p, eos_ids={7}, min_tokens=min_tokens)
        stepwise = []
        for t, token in enumerate(tokens):
            z = sampling.step_scores(logits[t], seed, 2, t, temperature, top_p, banned=[7] if t < min_tokens else ())
            stepwise.append(sampler.margin(z.tolist(), token))
        assert batched == pytest.approx(stepwise, abs=1e-9) and batched[3] == 0.0
