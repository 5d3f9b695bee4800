"""Attack: numbers a receipt cannot hold, bodies nested past reason, and requests with no bounds on how much
they ask for (messages, tools, inputs, n x max_tokens, image bytes).

Before: `seed` above 2^53, NaN and deep nesting ended in 500s (the request digest is JCS, RFC 8785), and
every count went to a worker as sent. Now: 400 naming the parameter, before a worker sees anything.
"""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from backend.serving.inference import Caller, InferenceError
from tests.adversarial.conftest import Peer, make_service

CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.mark.e2e
@pytest.mark.parametrize("raw, param", [
    (b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "seed": 1152921504606846976}', "seed"),
    (b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": NaN}', "temperature"),
    (b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "metadata": {"n": -1e400}}', "metadata.n"),
    (b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "extra": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "extra"),
])  # fmt: skip
def test_numbers_a_receipt_cannot_hold_are_a_400_naming_them(devnet, raw, param):
    reply = httpx.post(f"{devnet.url}/v1/chat/completions", content=raw, headers={"content-type": "application/json"}, timeout=60)
    assert reply.status_code == 400, reply.text[:300]
    assert reply.json()["error"]["param"] == param
    for seed in (2**53 - 1, -(2**53 - 1)):  # the whole range the API takes, served
        assert httpx.post(f"{devnet.url}/v1/chat/completions", json={**CHAT, "seed": seed}, timeout=60).status_code == 200


def _image(size: int) -> dict:
    data = base64.b64encode(b"\0" * size).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


@pytest.mark.parametrize("change, param", [
    ({"messages": [{"role": "user", "content": "hi"}] * 257}, "messages"),
    ({"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(65)]}, "tools"),
    ({"max_tokens": 10**6}, "max_tokens"),
    ({"n": 16, "max_tokens": 4096}, "max_tokens"),
    ({"messages": [{"role": "user", "content": [_image(6 * 2**20)]}]}, "messages[0].content[0].image_url"),
    ({"messages": [{"role": "user", "content": [_image(10)] * 9}]}, "messages[0].content[8].image_url"),
])  # fmt: skip
async def test_requests_over_the_caps_never_reach_a_worker(sqlite_db, change, param):
    service = make_service()
    peer = await Peer(service.scheduler).join()
    request = {**CHAT, **change}
    with pytest.raises(InferenceError) as err:  # on the old code the job sat on the peer: the wait ran out
        await asyncio.wait_for(_drain(service.run("chat", request, Caller(account_id="anonymous"))), 5)
    assert (err.value.status, err.value.param) == (400, param)
    assert peer.jobs.empty() and service.receipts.chain(0, 10) == []


async def test_embedding_inputs_are_capped(sqlite_db):
    service = make_service(max_inputs=8)
    peer = await Peer(service.scheduler, models=[{"id": "all-minilm-l6-v2", "max_context": 256, "tasks": ["embedding"]}]).join()
    with pytest.raises(InferenceError) as err:
        await asyncio.wait_for(_drain(service.run("embedding", {"model": "all-minilm-l6-v2", "input": ["word"] * 9}, Caller(account_id="anonymous"))), 5)
    assert (err.value.status, err.value.param) == (400, "input") and peer.jobs.empty()


async def _drain(events) -> list:
    return [event async for event in events]
