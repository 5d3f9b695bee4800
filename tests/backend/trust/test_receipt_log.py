"""The receipt log on real databases, checked by OneVerify; tampering with any byte is caught."""

from __future__ import annotations

import asyncio
import json

import pytest
from nacl.signing import SigningKey

from backend.trust.receipts import ReceiptLog
from backend.trust.verify import verify_chain
from tests.backend.conftest import ACCOUNT_SECRET, signed_fields


async def _append(log: ReceiptLog, worker: SigningKey, jobs: list[str]) -> list[dict]:
    return [await log.append(**signed_fields(worker, job)) for job in jobs]


async def test_appended_receipts_link_and_verify(sqlite_db):
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    stored = await _append(log, worker, ["j1", "j2", "j3"])
    assert [r["seq"] for r in stored] == [0, 1, 2]
    assert stored[1]["prev"] == stored[0]["hash"] and stored[2]["prev"] == stored[1]["hash"]
    assert ReceiptLog.get(stored[1]["hash"]) == stored[1]
    assert ReceiptLog.chain() == stored
    report = verify_chain(stored)
    assert report.ok, [v.problems for v in report.verdicts]


async def test_stored_rows_read_back_as_the_receipts_returned(sqlite_db):
    """A row's JSON is the receipt's JCS bytes with hash and sig appended: text outside ASCII and quotes included,
    it reads back equal to what append returned, and verifies."""
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    stored = await _append(log, worker, ['job "é" 漢字 \\ \u2028 😀', "plain"])
    assert [ReceiptLog.get(r["hash"]) for r in stored] == stored
    assert verify_chain(ReceiptLog.chain()).ok


async def test_every_single_byte_change_is_detected(sqlite_db):
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    stored = await _append(log, worker, ["a", "b"])
    text = json.dumps(stored, separators=(",", ":")).encode()
    undetected = []
    for pos in range(len(text)):
        mutated = bytearray(text)
        mutated[pos] ^= 0x01
        try:
            receipts = json.loads(mutated)
        except (ValueError, UnicodeDecodeError):
            continue  # unreadable is rejected too
        if verify_chain(receipts).ok:
            undetected.append(pos)
    assert undetected == []


async def test_reordering_dropping_and_wrong_coordinator_are_detected(sqlite_db):
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    stored = await _append(log, worker, ["a", "b", "c"])
    assert not verify_chain([stored[0], stored[2]]).ok  # a dropped receipt breaks the link
    swapped = [dict(stored[0]), dict(stored[1])]
    swapped[0]["seq"], swapped[1]["seq"] = 1, 0
    assert not verify_chain(swapped).ok
    assert not verify_chain(stored, coordinator="ab" * 32).ok
    # A receipt re-signed by another coordinator key fails when the caller pins the real one.
    other = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET)
    assert verify_chain(stored, coordinator=log.coordinator).ok
    assert not verify_chain(stored, coordinator=other.coordinator).ok


async def test_forged_worker_signature_is_detected(sqlite_db):
    log, worker, impostor = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate(), SigningKey.generate()
    fields = signed_fields(impostor, "x")
    fields["worker_id"] = signed_fields(worker, "x")["worker_id"]  # claims the honest worker's key
    stored = await log.append(**fields)
    verdict = verify_chain([stored]).verdicts[0]
    assert verdict.checks["hash"] and verdict.checks["coordinator_sig"] and not verdict.checks["worker_sig"]


async def test_postgres_replicas_appending_at_once_keep_one_chain(postgres_db):
    """Two coordinator replicas (two logs, one key) race on Postgres: the chain never forks."""
    key, worker = SigningKey.generate(), SigningKey.generate()
    replica_a, replica_b = ReceiptLog(key, ACCOUNT_SECRET), ReceiptLog(key, ACCOUNT_SECRET)
    await asyncio.gather(
        _append(replica_a, worker, [f"a{i}" for i in range(15)]),
        _append(replica_b, worker, [f"b{i}" for i in range(15)]),
    )
    chain = ReceiptLog.chain()
    assert [r["seq"] for r in chain] == list(range(30))
    assert verify_chain(chain).ok


def test_migrations_create_the_receipt_table_on_postgres(postgres_db):
    from sqlalchemy import inspect

    from backend.db import get_engine

    tables = set(inspect(get_engine()).get_table_names())
    assert {"receipt", "alembic_version"} <= tables


@pytest.mark.parametrize("bad", ["[1,2]", '{"receipts": 5}'])
def test_load_receipts_rejects_non_receipts(tmp_path, bad):
    from backend.trust.verify import load_receipts

    path = tmp_path / "r.json"
    path.write_text(bad)
    with pytest.raises(ValueError):
        load_receipts(str(path))


async def test_concurrent_appends_are_group_committed_into_one_chain(sqlite_db):
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    stored = await asyncio.gather(*(log.append(**signed_fields(worker, f"job{i}")) for i in range(40)))
    assert sorted(r["seq"] for r in stored) == list(range(40))
    assert {r["job"] for r in stored} == {f"job{i}" for i in range(40)}
    assert verify_chain(ReceiptLog.chain()).ok


@pytest.mark.parametrize("database", ["sqlite_db", "postgres_db"])
async def test_a_group_committed_batch_settles_each_charge_exactly_once(request, database):
    """Receipts appended together with `settle=` drop each job's hold and debit exactly each receipt's charge, in the
    batch's transaction; a receipt without `settle` touches no money."""
    from backend.money import ledger

    request.getfixturevalue(database)
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    assert ledger.grant("allot:acct", "acct", "credit", 1_000, "allotment", epoch=1)
    for i in range(12):
        ledger.hold(f"job{i}", "acct", "credit", 50, epoch=1)
    assert ledger.balance("acct", "credit", epoch=1) == 1_000 - 12 * 50
    stored = await asyncio.gather(
        *(log.append(**signed_fields(worker, f"job{i}", output_tokens=i + 1), settle=("acct", 1)) for i in range(10)),
        log.append(**signed_fields(worker, "free")),
    )
    charges = sum(r["charge"]["amount"] for r in stored if r["job"] != "free")
    assert charges == sum(2 * (i + 1) for i in range(10))
    # jobs 10 and 11 still hold 50 each; the ten settled jobs are charged their receipts' amounts, nothing more
    assert ledger.balance("acct", "credit", epoch=1) == 1_000 - charges - 2 * 50
    assert all(ledger.has_key(ledger.CHARGE_KEY_PREFIX + r["hash"]) == (r["job"] != "free") for r in stored)
    assert not any(ledger.has_key(f"hold:job{i}") for i in range(10)) and ledger.has_key("hold:job10")
    assert verify_chain(ReceiptLog.chain()).ok


async def test_a_cancelled_caller_still_gets_its_receipt_stored(sqlite_db):
    """A request cancelled while its receipt waits for the writer (the client hung up) does not lose the receipt,
    nor break the batch for the others."""
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    callers = [asyncio.ensure_future(log.append(**signed_fields(worker, f"job{i}"))) for i in range(6)]
    await asyncio.sleep(0)  # every caller has queued its fields
    callers[2].cancel()
    stored = [await c for i, c in enumerate(callers) if i != 2]
    assert callers[2].cancelled() and len(stored) == 5
    chain = ReceiptLog.chain()
    assert sorted(r["job"] for r in chain) == [f"job{i}" for i in range(6)]
    assert verify_chain(chain).ok
