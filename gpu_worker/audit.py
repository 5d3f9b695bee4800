"""Re-score a receipt's answer yourself: the check `one verify-audit` runs with the claimed model's weights.

The receipt commits to the sampling seed and (tokens_digest) to the token ids the reply carries (`token_ids`); the
answer's text is checked against its output digest, then the claimed model re-scores those tokens in one
teacher-forced pass under that seed, exactly as the network's auditors do (TransformersTextEngine.score), and
backend.protocol.sampler.judge reads the verdict. `python -m gpu_worker.audit REPLY --request BODY --model-dir DIR`
prints the result as JSON (exit 1 when the answer is not the claimed model's)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from backend.protocol import receipt as rc
from backend.protocol import sampler
from backend.protocol.body import OpenAIBody


def rescore(model_dir: str | Path, body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """Checks (seed and tokens committed, output digest) and, when they hold, the re-scoring verdict."""
    receipt = reply.get("receipt") or {}
    tokens, seed = reply.get("token_ids"), receipt.get("sampling_seed")
    choices = sorted((rc.answer_of(c) for c in reply.get("choices") or []), key=lambda c: c["index"])
    checks: dict[str, bool] = {
        "seed_committed": sampler.valid_seed(seed),
        "tokens_committed": isinstance(tokens, list) and rc.tokens_digest(tokens) == receipt.get("tokens_digest"),
        "output": rc.chat_output_digest(choices) == receipt.get("output_digest"),
        "not_constrained": not OpenAIBody(body).constrained(),
    }
    if not all(checks.values()) or len(tokens) != len(choices):
        return {"ok": False, "checks": checks, "judgement": None}
    from gpu_worker.engines.transformers_engine import TransformersTextEngine

    engine = TransformersTextEngine(receipt.get("model", "claimed"), model_dir)
    claimed = [sampler.ClaimedChoice(c["index"], ids, c["content"]) for c, ids in zip(choices, tokens)]
    items, _ = asyncio.run(engine.score(sampler.ScoreJob(receipt.get("kind"), body, seed, claimed).body()))
    judgement = sampler.judge(m for item in items for m in item["margins"])
    checks["rescored"] = judgement.verdict != "fail"
    return {"ok": all(checks.values()), "checks": checks, "judgement": judgement.as_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reply", type=Path)
    parser.add_argument("--request", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    args = parser.parse_args()
    result = rescore(args.model_dir, json.loads(args.request.read_text()), json.loads(args.reply.read_text()))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
