"""Protocol v1 from the outside: a hand-written peer speaks raw frames to the real coordinator.

Operators may write their own workers, so these tests drive /worker/ws with nothing but the
documented frames, next to the real node workers of the devnet.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import websockets
from nacl.signing import SigningKey

from backend.protocol import frames
from gpu_worker.client import worker_url

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "Say something short."}]


async def _join(url: str, key: SigningKey, sign_with: SigningKey | None = None, models=("tiny-chat",)):
    ws = await websockets.connect(worker_url(url))
    challenge = json.loads(await ws.recv())
    assert challenge["type"] == "challenge" and len(bytes.fromhex(challenge["nonce"])) == 32
    hello = frames.hello(
        kind="node",
        pubkey=key.verify_key.encode().hex(),
        payout_address="0x" + "1" * 40,
        models=[{"id": m, "max_context": 2048, "tasks": ["chat"]} for m in models],
        slots=1,
        hardware={},
        version="raw-peer",
        sig=(sign_with or key).sign(bytes.fromhex(challenge["nonce"])).signature.hex(),
    )
    await ws.send(json.dumps(hello))
    return ws, json.loads(await ws.recv())


async def test_hello_signed_by_another_key_is_refused(devnet):
    ws, answer = await _join(devnet.url, SigningKey.generate(), sign_with=SigningKey.generate())
    assert answer["type"] == "refused" and "signature" in answer["reason"]
    await ws.close()


async def test_worker_dying_before_first_delta_fails_over(devnet):
    """Busy the real workers, let the raw peer take the job and vanish: another worker finishes it."""
    client = openai.OpenAI(base_url=devnet.url + "/v1", api_key="x", max_retries=0, timeout=120)
    peer_key = SigningKey.generate()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(3) as pool:
        def long_chat():
            return client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=900, extra_body={"min_tokens": 900})

        blockers = [loop.run_in_executor(pool, long_chat) for _ in range(2)]
        await _until(lambda: sum(w["busy"] for w in _workers(devnet)) == 2)
        ws, answer = await _join(devnet.url, peer_key)
        assert answer["type"] == "welcome" and answer["worker_id"] == peer_key.verify_key.encode().hex()
        target = loop.run_in_executor(pool, lambda: client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=8))
        while True:  # the peer is the only free worker: the job comes here
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if frame["type"] == "job":
                break
        await ws.close()  # gone before any delta
        reply = await target
        await asyncio.gather(*blockers)
    receipt = reply.model_extra["receipt"]
    assert receipt["job"] == frame["job_id"]
    assert receipt["worker"]["id"] != peer_key.verify_key.encode().hex()


async def test_silent_worker_is_dropped(devnet):
    ws, answer = await _join(devnet.url, SigningKey.generate(), models=("silent-model",))
    assert answer["type"] == "welcome"
    peer = answer["worker_id"]
    assert peer in {w["id"] for w in _workers(devnet)}
    started = time.monotonic()
    await _until(lambda: peer not in {w["id"] for w in _workers(devnet)}, timeout=30)
    assert frames.SILENCE_LIMIT_S <= time.monotonic() - started + 1 < 30
    await ws.close()


def _workers(devnet) -> list[dict]:
    return httpx.get(f"{devnet.url}/one/workers").json()["workers"]


async def _until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)
