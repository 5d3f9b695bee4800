"""The vLLM logits processor of the ONE sampler on CPU tensors, driven the way vLLM v1 drives it: a persistent batch
whose rows are added, removed and moved between steps (BatchUpdate below is a stand-in for vLLM's own type, which
this venv does not have), each request's output-token list handed over once and grown in place."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch

from backend.protocol import sampler
from gpu_worker import sampling
from gpu_worker.engines.vllm_sampler import OneSamplerLogitsProcessor

VOCAB = 64


class MoveDirectionality(enum.Enum):  # vLLM's names
    UNIDIRECTIONAL = enum.auto()
    SWAP = enum.auto()


@dataclass(frozen=True)
class BatchUpdate:  # vllm.v1.sample.logits_processor.interface.BatchUpdate
    batch_size: int
    removed: list = field(default_factory=list)
    added: list = field(default_factory=list)  # (index, params, prompt ids, live output ids)
    moved: list = field(default_factory=list)  # (a, b, MoveDirectionality)


@dataclass
class Request:
    xargs: dict | None  # vllm_xargs; None: a request that did not ask for the ONE sampler
    output: list[int] = field(default_factory=list)

    @property
    def params(self):
        return SimpleNamespace(extra_args=self.xargs)


def one(seed_byte: str, choice: int, temperature: float = 1.0, top_p: float = 1.0) -> Request:
    return Request({"one_seed": seed_byte * 64, "one_choice": choice, "one_temperature": temperature, "one_top_p": top_p})


def step(processor, slots: list[Request | None], generator: torch.Generator, banned: dict[int, int] | None = None) -> None:
    """One decoding step: fresh logits for every row, the processor applied, each row's token appended. Checks every
    opted-in row against gpu_worker.sampling.pick for the request that occupies it, and the other rows untouched."""
    logits = torch.randn(len(slots), VOCAB, generator=generator) * 3
    for row, token in (banned or {}).items():  # what vLLM's min_tokens processor does before ours
        logits[row, token] = -math.inf
    before = logits.clone()
    after = processor.apply(logits)
    for row, request in enumerate(slots):
        if request is None:
            continue
        if request.xargs is None:
            assert torch.equal(after[row], before[row])
            token = int(after[row].argmax())
        else:
            x = request.xargs
            token = sampling.pick(before[row], x["one_seed"], x["one_choice"], len(request.output), x["one_temperature"], x["one_top_p"])
            assert torch.isfinite(after[row]).sum() == 1 and int(after[row].argmax()) == token
            ref = sampler.choose(before[row].tolist(), x["one_seed"], x["one_choice"], len(request.output), x["one_temperature"], x["one_top_p"])
            assert token == ref  # the stdlib reference agrees
            assert (banned or {}).get(row) != token
        request.output.append(token)


def add(index: int, request: Request) -> tuple:
    return (index, request.params, [1, 2, 3], request.output)


def test_picks_follow_each_request_through_adds_removes_and_moves():
    processor, gen = OneSamplerLogitsProcessor(None, torch.device("cpu"), False), torch.Generator().manual_seed(0)
    a, b, c = one("a", 0), Request(None), one("c", 1, temperature=0.7, top_p=0.9)
    slots: list[Request | None] = [a, b, c]
    processor.update_state(BatchUpdate(3, added=[add(0, a), add(1, b), add(2, c)]))
    for _ in range(3):
        processor.update_state(None)  # vLLM: no change to the batch this step
        step(processor, slots, gen, banned={0: 5, 2: 7})
    # b finishes; vLLM condenses c from row 2 into the hole at row 1
    processor.update_state(BatchUpdate(2, removed=[1], moved=[(2, 1, MoveDirectionality.UNIDIRECTIONAL)]))
    slots = [a, c]
    step(processor, slots, gen)
    # d (greedy) joins at row 2; rows 0 and 1 swap (vLLM reorders, e.g. by sampling kind)
    d = one("d", 3, temperature=0.0)
    processor.update_state(BatchUpdate(3, added=[add(2, d)], moved=[(0, 1, MoveDirectionality.SWAP)]))
    slots = [c, a, d]
    for _ in range(2):
        step(processor, slots, gen)
    # e (no ONE sampler) reuses row 0 (c's): nothing of c may stay there; f (another seed) reuses row 2
    e, f = Request(None), one("f", 0, top_p=0.5)
    processor.update_state(BatchUpdate(3, removed=[], added=[add(0, e), add(2, f)]))
    slots = [e, a, f]
    step(processor, slots, gen)
    assert sorted(processor.rows) == [1, 2]
    assert [len(r.output) for r in (a, b, c, d, e, f)] == [7, 3, 6, 2, 1, 1]
    # a request whose output list came back from a preemption resumes at its position, not at zero
    g = one("b", 2)
    g.output.extend([9, 9, 9, 9])
    processor.update_state(BatchUpdate(3, removed=[0], added=[add(0, g)]))
    step(processor, [g, a, f], gen)
    processor.update_state(BatchUpdate(2, removed=[2]))  # f finishes: its row is forgotten
    assert sorted(processor.rows) == [0, 1]
    step(processor, [g, a], gen)


def test_rows_without_the_sampler_and_a_batch_wider_than_known_rows_are_untouched():
    processor = OneSamplerLogitsProcessor()
    processor.update_state(BatchUpdate(2, added=[(0, SimpleNamespace(extra_args=None), None, []), (1, SimpleNamespace(extra_args={"other": 1}), None, [])]))
    logits = torch.randn(2, VOCAB)
    assert torch.equal(processor.apply(logits.clone()), logits) and processor.rows == {}


def test_params_are_checked_and_the_processor_changes_greedy_picks():
    processor = OneSamplerLogitsProcessor()
    assert processor.is_argmax_invariant() is False  # vLLM skips argmax-invariant processors for greedy requests
    OneSamplerLogitsProcessor.validate_params(one("a", 0).params)
    OneSamplerLogitsProcessor.validate_params(SimpleNamespace(extra_args=None))
    for bad in ({"one_seed": "xyz"}, {"one_seed": "a" * 64, "one_choice": -1}, {"one_seed": "a" * 64, "one_top_p": 2},
                {"one_seed": "a" * 64, "one_temperature": float("nan")}):  # fmt: skip
        with pytest.raises(ValueError):
            OneSamplerLogitsProcessor.validate_params(SimpleNamespace(extra_args=bad))
