"""Attack: a worker says hello with 10^9 slots, takes nearly all traffic, defeats the Dedicated
reservation and drops every job.

A hello's slots are capped and only proven by finished jobs; a worker error before the first delta
fails over like a disconnect; errors and timeouts lower a worker's routing weight.
"""

from __future__ import annotations

import pytest

from backend.scheduler import START_SLOTS
from backend.serving.inference import Caller, Finished, InferenceError
from tests.adversarial.conftest import Peer, make_service, run_chat

INCLUDED = Caller(account_id="anonymous", lane="included")


async def test_a_billion_slots_are_capped_and_must_be_proven(sqlite_db):
    service = make_service(max_worker_slots=16)
    liar = await Peer(service.scheduler, slots=10**9).join()
    assert liar.conn.claimed_slots == 16 and liar.conn.slots == START_SLOTS
    liar.auto = lambda job: liar.answer(job, "fine")
    for _ in range(20):
        await run_chat(service, INCLUDED)
    assert liar.conn.slots == 16  # finished jobs proved the capacity, up to the cap


async def test_a_worker_that_drops_every_job_loses_its_traffic_and_the_caller_never_notices(sqlite_db):
    service = make_service()
    liar = await Peer(service.scheduler, slots=10**9).join()
    honest = await Peer(service.scheduler, slots=1).join()
    dropped: list[str] = []
    liar.auto = lambda job: (dropped.append(job["job_id"]), liar.fail(job, "engine_error"))
    honest.auto = lambda job: honest.answer(job, "served")
    for _ in range(12):
        events = await run_chat(service, INCLUDED)  # never an error: the job fails over to the honest worker
        assert isinstance(events[-1], Finished) and events[-1].receipt["worker"]["id"] == honest.id
    assert len(dropped) <= 2  # after its first failures the liar weighs less than the idle honest worker
    assert liar.conn.weight < honest.conn.weight and liar.conn.slots == 1


async def test_a_liar_cannot_make_room_for_included_jobs_in_a_dedicated_reservation(sqlite_db):
    service = make_service(queue_timeout_s=2)
    service.scheduler.reserved = {"*": 1}  # a live Dedicated package keeps one slot
    honest = await Peer(service.scheduler, slots=1).join()
    liar = await Peer(service.scheduler, slots=10**9).join()
    liar.auto = lambda job: liar.fail(job, "engine_error")
    honest.auto = lambda job: honest.answer(job, "served")
    with pytest.raises(InferenceError) as err:  # the liar's slots are no capacity: Included waits, then 503
        await run_chat(service, INCLUDED)
    assert err.value.code == "no_capacity" and honest.conn.served == 0
    dedicated = Caller(account_id="anonymous", lane="dedicated", priority=20)
    assert isinstance((await run_chat(service, dedicated))[-1], Finished)
    assert honest.conn.served == 1


async def test_an_invalid_request_claim_is_believed_until_another_worker_serves_the_job(sqlite_db):
    service = make_service()
    liar = await Peer(service.scheduler, slots=1).join()
    honest = await Peer(service.scheduler, slots=1).join()
    refused: list[str] = []
    liar.auto = lambda job: (refused.append(job["job_id"]), liar.fail(job, "invalid_request"))
    honest.auto = lambda job: honest.answer(job, "served")
    events = await run_chat(service, INCLUDED)  # both idle: the first to join gets it first
    assert refused and isinstance(events[-1], Finished) and events[-1].receipt["worker"]["id"] == honest.id
    assert liar.conn.failed == 1  # its "your request is invalid" was a lie: the honest worker served it


async def test_a_worker_that_sits_on_jobs_until_the_deadline_loses_weight(sqlite_db):
    service = make_service(job_deadline_s=1.0)
    sitter = await Peer(service.scheduler, slots=4).join()  # takes the job and never answers
    with pytest.raises(InferenceError) as err:
        await run_chat(service, INCLUDED)
    assert err.value.code == "timeout"
    assert sitter.conn.failed == 1 and sitter.conn.health < 1 and sitter.conn.slots == START_SLOTS // 2
