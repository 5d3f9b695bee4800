"""The official `openai` client against a real coordinator process and real worker processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from backend.dev.devnet import wait_for_workers
from backend.protocol import receipt as rc
from backend.trust.verify import verify_chain

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "Say something short."}]


@pytest.fixture(scope="module")
def client(devnet) -> openai.OpenAI:
    return openai.OpenAI(base_url=devnet.url + "/v1", api_key="unused-in-open-dev-mode", max_retries=0, timeout=60)


def _one_verify(source: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", "verify", source], capture_output=True, text=True, timeout=60)


def test_models_lists_the_catalog_with_availability(client):
    models = {m.id: m for m in client.models.list().data}
    assert models["tiny-chat"].model_extra["available"] is True
    assert models["tiny-chat"].model_extra["context_length"] == 2048
    assert client.models.retrieve("tiny-sd").model_extra["tasks"] == ["image"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_non_streamed_chat_carries_a_verifiable_receipt(client, devnet):
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=12)
    extra = reply.model_extra
    receipt, salt = extra["receipt"], extra["request_salt"]
    assert reply.choices[0].message.content is not None
    assert reply.usage.completion_tokens == receipt["usage"]["output_tokens"] > 0
    # The client can recompute both digests from what it sent and what it got.
    sent = {"messages": MESSAGES, "model": "tiny-chat", "max_tokens": 12}
    assert receipt["request_digest"] == rc.request_digest(sent, salt)
    assert receipt["output_digest"] == rc.chat_output_digest([{"index": 0, "content": reply.choices[0].message.content, "tool_calls": None}])
    assert receipt["job"] in reply.id
    assert receipt["charge"] == {"unit": "credit", "amount": 0}  # key-less dev-mode work debits nobody, so it bills nothing
    served = httpx.get(f"{devnet.url}/one/receipts/{receipt['hash']}").json()
    assert served == receipt
    assert verify_chain([receipt]).ok


def test_streamed_chat_ends_with_receipt_chunk(client):
    stream = client.chat.completions.create(
        model="tiny-chat", messages=MESSAGES, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    text, receipt, usage, token_ids = "", None, None, None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.model_extra.get("receipt"):
            receipt, usage, token_ids = chunk.model_extra["receipt"], chunk.usage, chunk.model_extra.get("token_ids")
    assert receipt is not None and usage is not None
    assert usage.completion_tokens == receipt["usage"]["output_tokens"]
    # what an audit re-scores, committed in the receipt: the seed the worker drew with and the answer's token ids
    assert receipt["tokens_digest"] == rc.tokens_digest(token_ids) and len(token_ids[0]) == usage.completion_tokens
    assert len(receipt["sampling_seed"]) == 64
    assert receipt["output_digest"] == rc.chat_output_digest([{"index": 0, "content": text or None, "tool_calls": None}])


def test_one_verify_accepts_the_chain_and_rejects_any_changed_byte(client, devnet, tmp_path):
    for _ in range(2):
        client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=4)
    assert _one_verify(f"{devnet.url}/one/receipts").returncode == 0
    chain = httpx.get(f"{devnet.url}/one/receipts").json()["receipts"]
    good = tmp_path / "chain.json"
    good.write_text(json.dumps(chain, separators=(",", ":")))
    assert _one_verify(str(good)).returncode == 0
    # One byte in each of a few places of different receipts: the CLI must say no every time.
    text = good.read_text()
    for field in ('"amount":', '"output_tokens":', '"ts":"', '"account":"', '"sig":"'):
        pos = text.index(field, len(text) // 3) + len(field)
        bad = tmp_path / "bad.json"
        bad.write_text(text[:pos] + chr(ord(text[pos]) ^ 1) + text[pos + 1 :])
        result = _one_verify(str(bad))
        assert result.returncode != 0, (field, result.stdout)


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert err.value.code == "model_not_found"
    assert err.value.body["param"] == "model"


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "tiny-chat", "messages": []}, "messages"),
        ({"model": "tiny-chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "tiny-chat", "messages": MESSAGES, "temperature": 7}, "temperature"),
        ({"model": "tiny-chat", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"messages": MESSAGES}, "model"),
    ],
)
def test_malformed_body_is_400_naming_the_param(devnet, body, param):
    response = httpx.post(f"{devnet.url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_non_json_body_is_400_not_500(devnet):
    response = httpx.post(f"{devnet.url}/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_two_workers_share_load(client, devnet):
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=64, extra_body={"min_tokens": 64}), range(4)))
    workers = {r.model_extra["receipt"]["worker"]["id"] for r in replies}
    assert len(workers) == 2


def _busy_worker(devnet) -> str:
    for worker in httpx.get(f"{devnet.url}/one/workers").json()["workers"]:
        if worker["busy"]:
            return worker["id"]
    raise AssertionError("no busy worker")


def test_killed_worker_mid_stream_gives_an_error_and_no_receipt_then_rejoins(client, devnet):
    names = {}
    for name in ("worker-a", "worker-b"):
        key_hex = (devnet.data_dir / f"{name}.key").read_text().strip()
        from nacl.signing import SigningKey

        names[SigningKey(bytes.fromhex(key_hex)).verify_key.encode().hex()] = name
    before = len(httpx.get(f"{devnet.url}/one/receipts", params={"limit": 1000}).json()["receipts"])
    stream = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=1800, extra_body={"min_tokens": 1800}, stream=True)
    chunks = iter(stream)
    first = next(chunks)
    victim = names[_busy_worker(devnet)]
    killed_at = time.monotonic()
    devnet.stop(victim, sig=signal.SIGKILL)
    with pytest.raises(openai.APIError) as err:
        for _ in chunks:
            pass
    assert time.monotonic() - killed_at < 10
    assert "worker" in str(err.value.message).lower()
    receipts = httpx.get(f"{devnet.url}/one/receipts", params={"limit": 1000}).json()["receipts"]
    assert not any(r["job"] in first.id for r in receipts)
    assert len(receipts) == before
    # The restarted worker (same key) registers again and serves.
    devnet.start_worker(victim, models_dir=devnet.models_dir)
    workers = wait_for_workers(devnet.url, 2)
    assert {w["id"] for w in workers} == set(names)
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=64, extra_body={"min_tokens": 64}), range(2)))
    assert {r.model_extra["receipt"]["worker"]["id"] for r in replies} == set(names)


def test_client_leaving_mid_stream_frees_the_worker_and_leaves_no_receipt(devnet):
    before = len(httpx.get(f"{devnet.url}/one/receipts", params={"limit": 1000}).json()["receipts"])
    body = {"model": "tiny-chat", "messages": MESSAGES, "max_tokens": 1900, "min_tokens": 1900, "stream": True}
    with httpx.stream("POST", f"{devnet.url}/v1/chat/completions", json=body, timeout=60) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
        job = json.loads(first[6:])["id"].removeprefix("chatcmpl-")
    # The coordinator sends `cancel`; the worker stops long before 1900 tokens would have taken.
    deadline = time.monotonic() + 10
    while any(w["busy"] for w in httpx.get(f"{devnet.url}/one/workers").json()["workers"]):
        assert time.monotonic() < deadline, "worker still busy after the client left"
        time.sleep(0.1)
    receipts = httpx.get(f"{devnet.url}/one/receipts", params={"limit": 1000}).json()["receipts"]
    assert len(receipts) == before and not any(r["job"] == job for r in receipts)
