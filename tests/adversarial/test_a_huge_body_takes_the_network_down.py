"""Attack: one key-less chat request with a 40 MB body; a worker that streams without end; a 17 MB frame.

Before: the coordinator read and parsed any body (it grew to 8.9 and 15 GB and stopped answering), relayed it
to a worker (6.8 GB and growing), and a worker could stream any number of bytes for one job. Now: the body cap
answers 413 before a byte is read, the per-job stream cap fails the job (no receipt, no charge), and frames over
frames.MAX_FRAME_BYTES close the worker's socket.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from nacl.signing import SigningKey
from starlette.websockets import WebSocketDisconnect

from backend.api.door import Door
from backend.protocol import frames
from backend.protocol.signing import public_hex, sign_hex
from backend.serving.inference import Caller, InferenceError
from tests.adversarial.conftest import Peer, make_service

FORTY_MB = 40 * 2**20


class Downstream:
    """Stands where FastAPI stands behind the door: records whether anything got past it."""

    def __init__(self):
        self.called = False

    async def __call__(self, scope, receive, send):
        self.called = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def _through_door(headers: list[tuple[bytes, bytes]], chunks: int, chunk: bytes = b"x" * 65536):
    downstream, read, sent = Downstream(), [0], []

    async def receive():
        read[0] += 1
        return {"type": "http.request", "body": chunk, "more_body": read[0] < chunks}

    async def send(message):
        sent.append({**message, "read_before": read[0] * len(chunk)})

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers, "client": ("203.0.113.9", 1)}
    await Door(downstream)(scope, receive, send)
    return downstream.called, sent[0]["read_before"], sent  # bytes read when the 413 went out (the rest is dropped)


async def test_a_40mb_body_is_refused_from_its_length_before_a_byte_is_read(sqlite_db):
    """The 413 goes out first; the door then reads and drops what the client still sends, so it sees the 413."""
    called, read, sent = await _through_door([(b"content-length", str(FORTY_MB).encode()), (b"content-type", b"application/json")], FORTY_MB // 65536)
    assert sent[0]["status"] == 413 and not called and read == 0
    error = json.loads(sent[1]["body"])["error"]
    assert error["code"] == "request_too_large" and "8388608" in error["message"]


async def test_a_40mb_body_without_a_length_is_cut_off_at_the_cap(sqlite_db):
    called, read, sent = await _through_door([(b"content-type", b"application/json")], FORTY_MB // 65536)
    assert sent[0]["status"] == 413 and not called
    assert read <= 8 * 2**20 + 65536  # it stopped reading one chunk past the cap, not at 40 MB


@pytest.mark.e2e
def test_the_network_answers_413_and_keeps_serving(devnet):
    body = b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "' + b"a" * FORTY_MB + b'"}]}'
    reply = httpx.post(f"{devnet.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"}, timeout=120)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "request_too_large"
    ok = httpx.post(f"{devnet.url}/v1/chat/completions", json={"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}, timeout=60)
    assert ok.status_code == 200 and ok.json()["receipt"]


async def test_a_worker_that_streams_past_the_job_cap_is_stopped_and_nothing_is_charged(sqlite_db):
    service = make_service()
    service.scheduler.max_job_bytes = 4096
    flood = await Peer(service.scheduler).join()
    sent_to_worker: list[dict] = []
    original = flood.conn.send

    async def record(frame):
        sent_to_worker.append(frame)
        await original(frame)

    flood.conn.send = record
    caller = Caller(account_id="anonymous", lane="included")
    request = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    task = asyncio.create_task(_collect(service, request, caller))
    job = await flood.next_job()
    for n in range(100):  # 100 frames of ~1 KB: far past the 4 KB cap
        frame = frames.delta(job["job_id"], n, [{"index": 0, "delta": {"content": "x" * 1000}, "finish_reason": None}])
        service.scheduler.on_frame(flood.conn, frame, len(frames.encode(frame)))
    with pytest.raises(InferenceError) as err:
        await task
    assert err.value.code == "output_too_large" and err.value.status == 502
    assert service.receipts.chain(0, 10) == []  # no receipt, so nothing charged and nothing earned
    await asyncio.sleep(0)
    assert {"type": "cancel", "job_id": job["job_id"]} in sent_to_worker
    assert job["job_id"] not in flood.conn.jobs and flood.conn.failed == 1


async def _collect(service, request, caller):
    return [event async for event in service.run("chat", request, caller)]


def test_a_frame_over_the_cap_closes_the_worker_socket(api):
    key = SigningKey.generate()
    with api.websocket_connect(frames.WORKER_PATH) as ws:
        challenge = frames.parse_frame(ws.receive_text())
        hello = frames.hello(kind="node", pubkey=public_hex(key), payout_address="0x", models=[{"id": "tiny-chat", "max_context": 2048, "tasks": ["chat"]}],
                             slots=1, hardware={}, version="attack", sig=sign_hex(key, bytes.fromhex(challenge["nonce"])))  # fmt: skip
        ws.send_text(frames.encode(hello))
        assert frames.parse_frame(ws.receive_text())["type"] == "welcome"
        ws.send_text("x" * (frames.MAX_FRAME_BYTES + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_text()  # pings may come first
        assert closed.value.code == 1009
    with pytest.raises(frames.ProtocolError):
        frames.parse_frame("x" * (frames.MAX_FRAME_BYTES + 1))
