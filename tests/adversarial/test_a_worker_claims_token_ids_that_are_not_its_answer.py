"""Attack: a worker serving a cheap model claims token ids that are not the answer it sent, so that re-scoring audits
look at tokens the claimed model would pick (or at almost none) rather than at its substituted text.

Defence: the coordinator takes a done frame's `tokens` only as one list per choice adding up to the output tokens the
worker claims (a short list pays short: the count is what it is billed on), and the auditor decodes the ids and
checks they are the answer that was sent before scoring them: ids of another answer score as not the model's."""

from __future__ import annotations

import asyncio
import threading

import pytest

from backend.protocol import frames, sampler
from backend.protocol import receipt as rc
from backend.protocol.signing import sign_hex
from backend.serving.inference import Caller, InferenceError
from tests.adversarial.conftest import Peer, make_service, run_chat


def _answer_with_tokens(peer: Peer, job: dict, text: str, tokens: list[list[int]]) -> None:
    """Stream `text`, then a done that signs `tokens` as the answer's ids (and the seed it was given)."""
    choice = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    peer.scheduler.on_frame(peer.conn, frames.delta(job["job_id"], 0, [choice]))
    usage = {"input_tokens": 5, "output_tokens": 40, "images": 0}
    out = rc.OutputAssembler(job["task"])
    out.add([choice])
    statement = rc.attestation(job["job_id"], job["model"], job["request_digest"], out.digest(), usage, sampling_seed=job["sampling_seed"],
                               tokens_digest=rc.tokens_digest(tokens))  # fmt: skip
    peer.scheduler.on_frame(peer.conn, frames.done(job["job_id"], usage, out.digest(), sign_hex(peer.key, rc.jcs(statement)), tokens=tokens))


async def test_a_worker_claims_two_token_ids_for_a_forty_token_answer(sqlite_db):
    service = make_service()
    attacker = await Peer(service.scheduler).join()
    task = asyncio.create_task(run_chat(service, Caller(account_id="someone"), max_tokens=40))
    job = await attacker.next_job()
    assert sampler.valid_seed(job["sampling_seed"])  # every text job carries its seed
    _answer_with_tokens(attacker, job, "forty tokens of a cheaper model's answer", [[5, 6]])
    with pytest.raises(InferenceError) as refused:
        await task
    assert refused.value.code == "worker_output_mismatch"  # no receipt for it, so nothing to pay or to mis-audit


async def test_honest_ids_under_a_substituted_answer_fail_the_rescoring(tmp_path):
    from gpu_worker.engines.transformers_engine import TransformersTextEngine
    from gpu_worker.tiny_models import build_tiny_chat

    engine = TransformersTextEngine("tiny-chat", build_tiny_chat(tmp_path / "tiny-chat"))
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 24, "temperature": 1.0}
    seed = sampler.new_seed()
    honest_text, honest_ids = "", None
    async for event in engine.generate("chat", body, threading.Event(), seed):
        honest_ids = getattr(event, "tokens", honest_ids)
        honest_text += getattr(event, "text", "")

    async def scored(content: str) -> str:
        items, _ = await engine.score({"task": "chat", "request": body, "sampling_seed": seed,
                                       "choices": [{"index": 0, "tokens": honest_ids, "content": content}]})  # fmt: skip
        return sampler.judge(items[0]["margins"]).verdict

    assert await scored(honest_text) == "pass"
    assert await scored("a substituted model's answer") == "fail"
