"""One settler at a time, on SQLite and on the machine's Postgres: a second settler waits or is refused
and changes nothing, and a settler killed while holding the lock does not leave it stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from nacl.signing import SigningKey

from backend.config import get_settings
from backend.money.settlement import SettlementBusy, epochs, settle, settlement_lock
from backend.trust.receipts import ReceiptLog
from tests.backend.conftest import ACCOUNT_SECRET, signed_fields
from tests.conftest import REPO


@pytest.fixture(params=["sqlite_db", "postgres_db"])
def database(request):
    return request.getfixturevalue(request.param)


async def _receipts(n: int) -> None:
    log, worker = ReceiptLog(SigningKey.generate(), ACCOUNT_SECRET), SigningKey.generate()
    for i in range(n):
        await log.append(**signed_fields(worker, f"lock-{i}-{time.monotonic_ns()}"))


async def test_a_second_settler_is_refused_while_one_runs_and_changes_nothing(database):
    await _receipts(3)
    key = SigningKey.generate()
    with settlement_lock(get_settings(), wait_s=0):
        with pytest.raises(SettlementBusy):
            settle(get_settings(), key, wait_s=0.5)
        assert epochs() == []
    result = settle(get_settings(), key, wait_s=0)
    assert result["closed"]["size"] == 3 and [e["epoch"] for e in epochs()] == [0]


async def test_a_waiting_settler_runs_after_the_first_and_finds_nothing_left(database):
    await _receipts(2)
    key, results, waited = SigningKey.generate(), [], threading.Event()
    with settlement_lock(get_settings(), wait_s=0):
        second = threading.Thread(target=lambda: results.append(settle(get_settings(), key, wait_s=30, on_wait=waited.set)))
        second.start()
        assert waited.wait(10), "the second settler never reported that it waits"
        assert second.is_alive() and epochs() == []
    second.join(30)
    assert len(results) == 1 and results[0]["closed"]["size"] == 2
    assert settle(get_settings(), key, wait_s=0)["closed"] is None  # nothing new: no second epoch over the same receipts
    assert len(epochs()) == 1


def test_a_killed_settler_releases_the_lock(database):
    holder = (
        "from backend.config import get_settings\n"
        "from backend.money.settlement import settlement_lock\n"
        "import sys, time\n"
        "with settlement_lock(get_settings(), wait_s=0):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(SettlementBusy):
            with settlement_lock(get_settings(), wait_s=0.3):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with settlement_lock(get_settings(), wait_s=10):  # the OS (flock) or the server (advisory lock) let go
        pass
