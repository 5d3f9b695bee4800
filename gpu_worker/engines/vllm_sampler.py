"""The ONE sampler inside `vllm serve`: a vLLM v1 logits processor, loaded with

    vllm serve MODEL --logits-processors gpu_worker.engines.vllm_sampler:OneSamplerLogitsProcessor

A request opts in through `SamplingParams.extra_args` (the OpenAI field `vllm_xargs`):
{"one_seed": hex, "one_choice": i, "one_temperature": T, "one_top_p": p}. At each step the processor picks the
token with `gpu_worker.sampling.pick` (the same function the transformers engine and the auditor use) and leaves it
the only finite logit, so whatever vLLM samples afterwards (greedy: the engine sends temperature 0) is that token.
Requests without `one_seed` are left alone.

Why it sits where it does in vLLM's sampler: it is not argmax-invariant, so it runs with the built-in processors
that can change a greedy pick, after min_tokens (EOS already banned, as the auditor bans it) and after structured
output masks (the JSON constraint); penalties come after it and can only shift the one finite logit. Logprobs that
vLLM returns are the raw model's (computed before any processor), as OpenAI reports them.

vLLM is not a dependency of this venv: the base class is vLLM's when vLLM is importable (vLLM checks the
subclass when it loads `--logits-processors`), `object` otherwise, so the bookkeeping is testable on CPU.
"""

from __future__ import annotations

import math
from typing import Any

from backend.protocol import sampler
from gpu_worker import sampling

try:  # inside `vllm serve`
    from vllm.v1.sample.logits_processor import LogitsProcessor as _Base
except ImportError:  # this venv, tests
    _Base = object

XARGS = ("one_seed", "one_choice", "one_temperature", "one_top_p")


def _request(params: Any) -> dict[str, Any] | None:
    """The request's ONE sampler arguments (validated), or None when it did not ask for the ONE sampler."""
    extra = getattr(params, "extra_args", None) or {}
    if "one_seed" not in extra:
        return None
    seed, choice = extra["one_seed"], extra.get("one_choice", 0)
    temperature, top_p = float(extra.get("one_temperature", 1.0)), float(extra.get("one_top_p", 1.0))
    if not sampler.valid_seed(seed):
        raise ValueError("one_seed must be 64 lowercase hex digits")
    if isinstance(choice, bool) or not isinstance(choice, (int, float)) or choice != int(choice) or not 0 <= choice < 2**32:
        raise ValueError("one_choice must be a choice index")
    if not (math.isfinite(temperature) and temperature >= 0 and math.isfinite(top_p) and 0 <= top_p <= 1):
        raise ValueError("one_temperature must be >= 0 and one_top_p in [0, 1]")
    return {"seed": seed, "choice": int(choice), "temperature": temperature, "top_p": top_p}


class OneSamplerLogitsProcessor(_Base):  # type: ignore[misc, valid-type]
    """Forces each opted-in row of the batch to the ONE sampler's pick; keeps one entry per persistent-batch row."""

    def __init__(self, vllm_config: Any = None, device: Any = None, is_pin_memory: bool = False):
        # row index -> (sampler arguments, the request's live output-token list: its length is the position)
        self.rows: dict[int, tuple[dict[str, Any], list[int]]] = {}

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """vLLM calls this per request before it runs: a malformed seed is a 400, not a crash mid-batch."""
        _request(sampling_params)

    def is_argmax_invariant(self) -> bool:
        """False: it changes the greedy pick. (vLLM skips argmax-invariant processors for greedy requests.)"""
        return False

    def needs_output_token_ids(self) -> bool:
        """Only the list's length is read, which vLLM keeps right under async scheduling (placeholders count)."""
        return False

    def update_state(self, batch_update: Any) -> None:
        """Follow vLLM's persistent batch: removed, then added (a slot may be reused), then moved (a->b or a<->b)."""
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for index, params, _prompt, output_ids in batch_update.added:
            args = _request(params)
            if args is None:
                self.rows.pop(index, None)
            else:
                self.rows[index] = (args, output_ids)
        for a, b, direction in batch_update.moved:
            entry_a, entry_b = self.rows.pop(a, None), self.rows.pop(b, None)
            if entry_a is not None:
                self.rows[b] = entry_a
            if entry_b is not None and getattr(direction, "name", direction) == "SWAP":
                self.rows[a] = entry_b

    def apply(self, logits):
        """Leave only the picked token finite in each opted-in row (its logit 0, as the transformers engine does)."""
        for index, (args, output_ids) in self.rows.items():
            if index >= logits.shape[0]:
                continue
            row = logits[index]
            token = sampling.pick(row, args["seed"], args["choice"], len(output_ids), args["temperature"], args["top_p"])
            row.fill_(-math.inf)
            row[token] = 0.0
        return logits
