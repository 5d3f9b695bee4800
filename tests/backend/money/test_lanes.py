"""Included-lane metering on a real database, with $ONE holdings read from a real ERC-20 on web3's
in-process EVM, through the real scheduler and inference service (the worker is a protocol peer)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from web3 import EthereumTesterProvider, Web3

from backend.catalog import load_catalog
from backend.chain import deploy_dev_tokens, token_at
from backend.config import Settings
from backend.money import ledger
from backend.money.lanes import Lanes, quote
from backend.scheduler import Scheduler
from backend.serving.inference import Caller, Finished, InferenceError, InferenceService
from backend.trust.receipts import ReceiptLog
from tests.backend.conftest import ACCOUNT_SECRET
from tests.backend.scheduler.test_scheduler import Peer

TIERS = [(100, 50_000), (1_000, 500_000)]


@pytest.fixture(scope="module")
def chain():
    w3 = Web3(EthereumTesterProvider())
    deployer, treasury, whale, minnow = w3.eth.accounts[:4]
    deployment = deploy_dev_tokens(w3, deployer=deployer, treasury=treasury, demo_wallets=[], one_grant=0, usdc_grant=0)
    one = token_at(w3, deployment.one_token)
    for wallet, amount in ((whale, 1_500 * 10**18), (minnow, 150 * 10**18)):
        w3.eth.wait_for_transaction_receipt(one.functions.mint(wallet, amount).transact({"from": deployer}))
    # Holdings read now, not at the epoch's start: these tests meter; tests/adversarial checks the snapshot block.
    return {"whale": whale, "minnow": minnow, "nobody": w3.eth.accounts[5], "holdings": lambda a, epoch_start: one.functions.balanceOf(a).call()}


@pytest.fixture
def service(sqlite_db, chain):
    cfg = Settings(queue_timeout_s=2, included_tiers=TIERS, included_epoch_s=3600)
    lanes = Lanes(cfg, chain["holdings"])
    return InferenceService(cfg, load_catalog(*cfg.catalog_files), Scheduler(), ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), lanes)


def _body(max_tokens=10):
    return {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}


async def _chat(service, peer, account, body, tokens=None, fail=False):
    task = asyncio.create_task(_collect(service, Caller(account, metered=True), body))
    job_wait = asyncio.create_task(peer.next_job())
    await asyncio.wait({task, job_wait}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # refused before dispatch (402): no job ever reaches the worker
        job_wait.cancel()
        return await task
    job = await job_wait
    if fail:
        service.scheduler.on_frame(peer.conn, {"type": "error", "job_id": job["job_id"], "code": "engine_error", "message": "boom"})
    else:
        claim = tokens if tokens is not None else body["max_tokens"]
        peer.answer(job, "receipt " * claim, output_tokens=claim)  # relays at least as many tokens as it claims
    return await task


async def _collect(service, caller, body):
    return [e async for e in service.run("chat", body, caller)]


def test_allotment_follows_on_chain_tiers(service, chain):
    lanes = service.lanes
    for who, expected in (("whale", 500_000), ("minnow", 50_000), ("nobody", 0)):
        epoch = lanes.ensure_allotment(chain[who])
        assert ledger.balance(chain[who], "credit", epoch) == expected
    lanes.ensure_allotment(chain["whale"])  # once per epoch
    assert ledger.balance(chain["whale"], "credit", lanes.epoch()) == 500_000


async def test_charge_equals_receipt_and_headers_tell_the_balance(service, chain):
    peer = Peer(service.scheduler)
    await service.scheduler.register(peer.conn)
    events = await _chat(service, peer, chain["minnow"], _body(10), tokens=7)
    receipt = events[-1].receipt
    assert receipt["charge"] == {"unit": "credit", "amount": 14}  # ceil(7 * 2000 / 1000)
    assert ledger.balance(chain["minnow"], "credit", service.lanes.epoch()) == 50_000 - 14  # hold gone, charge in
    headers = service.lanes.headers(chain["minnow"], "included")
    assert headers["x-one-balance"] == str(50_000 - 14) and headers["x-one-balance-unit"] == "credit"
    assert 0 < int(headers["x-one-refresh-in"]) <= 3600


async def test_soft_stop_is_402_with_an_offer_and_failures_charge_nothing(service, chain):
    peer = Peer(service.scheduler)
    await service.scheduler.register(peer.conn)
    with pytest.raises(InferenceError) as err:  # nothing held: 0 $ONE, 0 allotment
        await _collect(service, Caller(chain["nobody"], metered=True), _body(10))
    assert err.value.status == 402 and err.value.extra["offer"]["lane"] == "dedicated"
    before = ledger.balance(chain["minnow"], "credit", service.lanes.epoch()) if ledger.has_key(f"allot:{chain['minnow']}:{service.lanes.epoch()}") else None
    with pytest.raises(InferenceError):
        await _chat(service, peer, chain["minnow"], _body(10), fail=True)
    after = ledger.balance(chain["minnow"], "credit", service.lanes.epoch())
    assert after == (before if before is not None else 50_000)
    with pytest.raises(InferenceError) as err:  # a quote (60,000) bigger than the allotment (50,000) is refused up front
        await _collect(service, Caller(chain["minnow"], metered=True), _body(30_000))
    assert err.value.status == 402


async def test_a_worker_claiming_more_than_the_limit_gets_no_receipt(service, chain):
    peer = Peer(service.scheduler)
    await service.scheduler.register(peer.conn)
    with pytest.raises(InferenceError) as err:
        await _chat(service, peer, chain["whale"], _body(5), tokens=50)
    assert err.value.code == "worker_bad_usage"
    assert ReceiptLog.chain() == [] and ledger.balance(chain["whale"], "credit", service.lanes.epoch()) == 500_000


@hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(1, 30_000), st.integers(0, 9_000), st.booleans()), min_size=1, max_size=12))
def test_ledger_debits_equal_receipt_charges_and_never_go_negative(service, chain, stream):
    """Random request streams (limits, usage, failures) on a fresh wallet: money adds up exactly."""

    async def run() -> None:
        peer = Peer(service.scheduler)
        await service.scheduler.register(peer.conn)
        account = "0x" + uuid.uuid4().hex[:40]
        service.lanes.holdings = lambda a, start: 150 * 10**18 if a == account else chain["holdings"](a, start)
        epoch = service.lanes.ensure_allotment(account)
        charges = 0
        for max_tokens, used, fail in stream:
            try:
                events = await _chat(service, peer, account, _body(max_tokens), tokens=min(used, max_tokens), fail=fail)
                charges += events[-1].receipt["charge"]["amount"]
                assert isinstance(events[-1], Finished)
            except InferenceError as exc:
                assert exc.status in (402, 502)
            left = ledger.balance(account, "credit", epoch)
            assert isinstance(left, int) and left >= 0
        assert 50_000 - ledger.balance(account, "credit", epoch) == charges
        await service.scheduler.unregister(peer.conn)

    asyncio.run(run())


def test_quotes_are_integers_from_the_request_limits():
    catalog = load_catalog(*Settings().catalog_files)
    chat, sd, minilm = catalog.get("tiny-chat"), catalog.get("tiny-sd"), catalog.get("all-minilm-l6-v2")
    assert quote(chat, {"max_tokens": 10, "n": 3}, "chat") == 60
    assert quote(chat, {}, "chat") == chat.context * chat.rate // 1000
    assert quote(sd, {"n": 4}, "image") == 4 * sd.rate
    assert quote(minilm, {"input": ["a", "b"]}, "embedding") == -(-2 * minilm.context * minilm.rate // 1000)


async def test_a_model_flagged_for_dedicated_only_refuses_the_included_lane(service, chain):
    model = service.catalog.get("tiny-chat")
    original = model.lanes
    model.lanes = ["dedicated"]
    try:
        peer = Peer(service.scheduler)
        await service.scheduler.register(peer.conn)
        with pytest.raises(InferenceError) as err:
            await _collect(service, Caller(chain["whale"], metered=True), _body(5))
        assert err.value.status == 402 and err.value.code == "lane_not_allowed"
    finally:
        model.lanes = original


def test_each_epoch_starts_from_its_own_allotment_without_rollover(service, chain):
    lanes, whale = service.lanes, chain["whale"]
    now = 1_800_000_000.0
    first = lanes.ensure_allotment(whale, now=now)
    ledger.hold("spent-job", whale, "credit", 123_456, first)
    assert ledger.balance(whale, "credit", first) == 500_000 - 123_456
    second = lanes.ensure_allotment(whale, now=now + service.settings.included_epoch_s)
    assert second == first + 1
    assert ledger.balance(whale, "credit", second) == 500_000  # reset, nothing carried over
    assert lanes.refresh_in(now) == service.settings.included_epoch_s - int(now % service.settings.included_epoch_s)


@pytest.mark.parametrize("amount", [1.5, -1, True, "10"])
def test_money_is_non_negative_integers_only(sqlite_db, amount):
    with pytest.raises(ValueError):
        ledger.grant(f"bad:{amount!r}", "0xabc", "credit", amount, "purchase")
    with pytest.raises(ValueError):
        ledger.hold(f"bad-hold-{amount!r}", "0xabc", "credit", amount)


@pytest.mark.parametrize("db", ["sqlite_db", "postgres_db"])
def test_concurrent_holds_never_overdraw(request, db):
    """Twenty threads race to hold 100 each against a balance of 1000: exactly ten win, on both databases."""
    from concurrent.futures import ThreadPoolExecutor

    request.getfixturevalue(db)
    account = "0x" + uuid.uuid4().hex[:40]
    ledger.grant(f"allot:{account}:1", account, "credit", 1000, "allotment", 1)

    def try_hold(i: int) -> bool:
        try:
            ledger.hold(f"race-{account}-{i}", account, "credit", 100, 1)
            return True
        except ledger.InsufficientBalance:
            return False

    with ThreadPoolExecutor(8) as pool:
        won = sum(pool.map(try_hold, range(20)))
    assert won == 10 and ledger.balance(account, "credit", 1) == 0
