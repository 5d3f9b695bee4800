"""Attack: POST /one/verify with receipts whose fields have the wrong JSON types (a string seq, a list for a
hash, a number for the worker...). OneVerify must answer 200 with the receipt marked invalid, never a 500:
a checker that crashes on hostile input is one nobody can point at a receipt they were handed.

Before the fix a receipt after another whose `seq` was a string crashed the chain-link check
(`"x" + 1`: TypeError, HTTP 500)."""

from __future__ import annotations

import asyncio

import pytest
from nacl.signing import SigningKey

from backend.trust.receipts import ReceiptLog
from tests.backend.conftest import ACCOUNT_SECRET, signed_fields

HOSTILE = ["x", "", [], {}, None, 1.5, True, -1, 2**53 - 1, [1, 2], {"a": 1}]


@pytest.fixture(autouse=True)
def unlimited(monkeypatch):
    """Hundreds of checks from one test client: lift the open rate limit (set before the `api` fixture builds)."""
    monkeypatch.setenv("ONE_RATE_LIMIT_OPEN", "100000")


@pytest.fixture
def chain(sqlite_db) -> list[dict]:
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()

    async def append() -> list[dict]:
        return [await log.append(**signed_fields(worker, job)) for job in ("j1", "j2")]

    return asyncio.run(append())


def test_every_field_of_every_type_is_a_verdict_not_a_crash(api, chain):
    honest = api.post("/one/verify", json={"receipts": chain}).json()
    assert honest["ok"] is True, honest  # the honest pair verifies
    for key in sorted(chain[0]):
        for value in HOSTILE:
            for position in (0, 1):  # the first receipt, and the one linked to it
                if chain[position][key] == value and type(chain[position][key]) is type(value):
                    continue  # not a change (`parent` is null already)
                receipts = [dict(r) for r in chain]
                receipts[position][key] = value
                reply = api.post("/one/verify", json={"receipts": receipts})
                assert reply.status_code == 200, (key, value, position, reply.text)
                assert reply.json()["ok"] is False, (key, value, position)


def test_nested_fields_of_the_wrong_type_are_verdicts_too(api, chain):
    for key, inner in (("worker", "id"), ("worker", "sig"), ("charge", "amount"), ("charge", "unit"), ("usage", "output_tokens")):
        for value in HOSTILE:
            receipts = [dict(r) for r in chain]
            receipts[1] = {**receipts[1], key: {**receipts[1][key], inner: value}}
            reply = api.post("/one/verify", json={"receipts": receipts})
            assert reply.status_code == 200, (key, inner, value, reply.text)
            assert reply.json()["ok"] is False, (key, inner, value)
