"""A coordinator restart: workers reconnect on their own, the key and the receipt chain carry on."""

from __future__ import annotations

import httpx
import pytest

from backend.dev.devnet import wait_for_workers
from backend.trust.verify import verify_chain

pytestmark = pytest.mark.e2e
BODY = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_workers_reconnect_and_the_chain_continues_across_a_restart(devnet):
    before = httpx.post(f"{devnet.url}/v1/chat/completions", json=BODY, timeout=60).json()["receipt"]
    devnet.stop("coordinator")
    devnet.start_coordinator()
    workers = wait_for_workers(devnet.url, 2, timeout_s=60)  # they back off and come back by themselves
    assert len(workers) == 2
    after = httpx.post(f"{devnet.url}/v1/chat/completions", json=BODY, timeout=60).json()["receipt"]
    assert after["coordinator"] == before["coordinator"]  # the key persisted under the data dir
    assert after["seq"] > before["seq"]
    chain = httpx.get(f"{devnet.url}/one/receipts", params={"limit": 1000}).json()["receipts"]
    assert verify_chain(chain).ok
