"""Attack: a worker relays five words and claims 1,000 output tokens (or 500 tokens for two embedding inputs).

The coordinator counts what it relayed with the model's tokenizer (images and embedding inputs by
count) and bills min(claimed, counted); a claim far above the count lowers the worker's reliability.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlmodel import select

from backend.db import session
from backend.db.models import WorkerRecord
from backend.money import ledger
from backend.protocol import frames
from backend.protocol import receipt as rc
from backend.protocol.signing import sign_hex
from backend.serving.inference import Caller
from backend.serving.usage import tokenizer_counter
from backend.trust.verify import verify_chain
from tests.adversarial.conftest import Peer, make_service, run_chat

FIVE_WORDS = "one two three four five"
MINILM = {"id": "all-minilm-l6-v2", "max_context": 256, "tasks": ["embedding"]}


async def _paying_caller() -> Caller:
    account = f"0x{uuid.uuid4().hex[:40]}"
    await asyncio.to_thread(ledger.grant, f"test-grant:{account}", account, "usdc", 10**9, "purchase")
    return Caller(account_id=account, lane="dedicated", metered=True, priority=30)


def _record(worker_id: str) -> WorkerRecord:
    with session() as db:
        return db.exec(select(WorkerRecord).where(WorkerRecord.id == worker_id)).one()


async def test_five_words_claimed_as_a_thousand_tokens_bill_five_words(sqlite_db):
    service = make_service()
    model = service.catalog.get("tiny-chat")
    attacker = await Peer(service.scheduler).join()
    attacker.usage = lambda job, text: {"input_tokens": 5, "output_tokens": 1000, "images": 0}
    caller = await _paying_caller()
    task = asyncio.create_task(run_chat(service, caller, max_tokens=1000))
    attacker.answer(await attacker.next_job(), FIVE_WORDS)
    receipt = (await task)[-1].receipt
    counted = tokenizer_counter(model.tokenizer)(FIVE_WORDS) + 1  # the text's tokens and the end token
    assert counted < 20
    assert receipt["usage"]["output_tokens"] == 1000  # the worker's signed claim stays in the receipt...
    assert receipt["charge"]["amount"] == model.charge({"output_tokens": counted}) < model.charge({"output_tokens": 1000})  # ...billed as counted
    assert ledger.balance(caller.account_id, "usdc") == 10**9 - receipt["charge"]["amount"]
    assert verify_chain([receipt]).ok
    record = _record(attacker.id)
    assert record.overclaims == 1 and attacker.conn.reliability < 1.0


async def test_an_honest_claim_is_billed_in_full_and_costs_no_reliability(sqlite_db):
    service = make_service()
    model = service.catalog.get("tiny-chat")
    honest = await Peer(service.scheduler).join()
    generated = tokenizer_counter(model.tokenizer)(FIVE_WORDS) + 1
    honest.usage = lambda job, text: {"input_tokens": 9, "output_tokens": generated, "images": 0}
    task = asyncio.create_task(run_chat(service, await _paying_caller()))
    honest.answer(await honest.next_job(), FIVE_WORDS)
    receipt = (await task)[-1].receipt
    assert receipt["charge"]["amount"] == model.charge({"output_tokens": generated})
    assert _record(honest.id).overclaims == 0 and honest.conn.reliability == 1.0


async def test_five_hundred_embedding_tokens_claimed_for_two_words_bill_two_words(sqlite_db):
    service = make_service()
    model = service.catalog.get("all-minilm-l6-v2")
    attacker = await Peer(service.scheduler, models=[MINILM]).join()
    caller = await _paying_caller()
    task = asyncio.create_task(_collect(service.run("embedding", {"model": model.id, "input": ["hi", "there"]}, caller)))
    job = await attacker.next_job()
    data = [{"object": "embedding", "index": i, "embedding": [0.5] * 4} for i in range(2)]
    attacker.scheduler.on_frame(attacker.conn, frames.delta(job["job_id"], 0, data))
    out = rc.OutputAssembler("embedding")
    out.add(data)
    usage = {"input_tokens": 500, "output_tokens": 0, "images": 0}  # within the quote (2 inputs x 256), far above the count
    statement = rc.attestation(job["job_id"], job["model"], job["request_digest"], out.digest(), usage, sampling_seed=job.get("sampling_seed"))
    attacker.scheduler.on_frame(attacker.conn, frames.done(job["job_id"], usage, out.digest(), sign_hex(attacker.key, rc.jcs(statement))))
    receipt = (await task)[-1].receipt
    assert receipt["charge"]["amount"] == model.charge({"input_tokens": 6})  # [CLS] hi [SEP] + [CLS] there [SEP]
    assert _record(attacker.id).overclaims == 1


async def _collect(events) -> list:
    return [e async for e in events]
