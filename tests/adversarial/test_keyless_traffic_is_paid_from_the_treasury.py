"""Attack: run a worker, send it key-less requests (dev-mode open access), claim big usage, get paid.

Unmetered work debits nobody, so it must never be billable: its receipt carries a zero charge and
settlement pays only what the ledger actually debited from an account.
"""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from sqlmodel import select

from backend.db import session
from backend.db.models import LedgerEntry, Payout, ReceiptRecord
from backend.money import ledger
from backend.money.settlement import close_epoch, plan_payouts
from backend.serving.inference import Caller, Finished
from tests.adversarial.conftest import Peer, make_service, run_chat

ANONYMOUS = Caller(account_id="anonymous", lane="included")  # what a key-less request runs as


def _payouts(epoch: int) -> list[Payout]:
    with session() as db:
        return list(db.exec(select(Payout).where(Payout.epoch == epoch)).all())


def _debited(first_seq: int, last_seq: int) -> int:
    with session() as db:
        hashes = db.exec(select(ReceiptRecord.hash).where(ReceiptRecord.seq >= first_seq, ReceiptRecord.seq <= last_seq)).all()
        keys = [ledger.CHARGE_KEY_PREFIX + h for h in hashes]
        return -sum(e.amount for e in db.exec(select(LedgerEntry).where(LedgerEntry.key.in_(keys))).all()) if keys else 0


async def test_keyless_request_with_a_huge_usage_claim_earns_nothing(sqlite_db):
    service = make_service(max_output_tokens=1_000_000)  # the claim fits max_tokens: only the ledger stops it
    attacker = await Peer(service.scheduler).join()
    attacker.usage = lambda job, text: {"input_tokens": 5, "output_tokens": 1_000_000, "images": 0}
    task = asyncio.create_task(run_chat(service, ANONYMOUS, max_tokens=1_000_000))
    attacker.answer(await attacker.next_job(), "five words of real output")
    receipt = (await task)[-1].receipt
    assert receipt["charge"]["amount"] == 0  # nobody paid for it, so it is not billable
    head = close_epoch(SigningKey.generate())
    plan_payouts(service.settings)
    assert sum(p.gross + p.net for p in _payouts(head["epoch"])) == 0


async def _traffic(metered: list[bool], claims: list[int]) -> None:
    """Requests from a paying account and key-less ones, served by two workers that claim `claims` tokens."""
    service = make_service()
    workers = [await Peer(service.scheduler, payout_address="0x" + f"{i + 1:040x}").join() for i in range(2)]
    account = f"0x{uuid.uuid4().hex[:40]}"
    await asyncio.to_thread(ledger.grant, f"test-grant:{account}", account, "usdc", 10**12, "purchase")
    for paid, claim in zip(metered, claims):
        for w in workers:
            w.usage = lambda job, text, claim=claim: {"input_tokens": 3, "output_tokens": claim, "images": 0}
            w.auto = lambda job, w=w, claim=claim: w.answer(job, "some words " * (1 + claim % 7))
        caller = Caller(account_id=account, lane="dedicated", metered=True, priority=30) if paid else ANONYMOUS
        assert isinstance((await run_chat(service, caller, max_tokens=10_000))[-1], Finished)


def _property(metered: list[bool], claims: list[int]) -> None:
    asyncio.run(_traffic(metered, claims))
    head = close_epoch(SigningKey.generate())
    plan_payouts(make_service().settings)
    rows = _payouts(head["epoch"])
    debits = _debited(head["first_seq"], head["last_seq"])
    assert sum(p.net + p.fee + p.withheld for p in rows) == debits  # never more than was taken from accounts
    assert sum(p.gross for p in rows) == debits
    if not any(metered):
        assert debits == 0 and all(p.net == 0 for p in rows)


traffic = dict(metered=st.lists(st.booleans(), min_size=1, max_size=6), claims=st.lists(st.integers(0, 5000), min_size=6, max_size=6))
checks = hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@checks
@given(**traffic)
def test_payouts_never_exceed_debits_over_mixed_traffic_on_sqlite(sqlite_db, metered, claims):
    _property(metered, claims)


@checks
@given(**traffic)
def test_payouts_never_exceed_debits_over_mixed_traffic_on_postgres(postgres_db, metered, claims):
    _property(metered, claims)
