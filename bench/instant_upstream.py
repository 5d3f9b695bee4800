"""An OpenAI-compatible upstream that answers at once (a raw ASGI app, served by granian).

It stands where vLLM would: the gateway benchmark puts each gateway in front of it, so what is
measured is the gateway's own cost. A streamed request whose last message reads `pace <first ms> <words> <ms each>`
is answered slowly instead (the replica tests use it to hold a slot, to cancel and to kill workers mid-stream).
"""

import asyncio
import json
import re
import time

PACE = re.compile(r"^pace (\d{1,6}) (\d{1,5}) (\d{1,6})$")

REPLY = "Hello from the instant upstream."
_MODELS = json.dumps({"object": "list", "data": [{"id": "bench-model", "object": "model", "max_model_len": 4096}]}).encode()


def _completion(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
    }).encode()  # fmt: skip


def _stream(model: str, words: list[str] | None = None) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    words = words or REPLY.split(" ")
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": w + " "}, "finish_reason": None}]} for w in words]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}})
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/models"):
        await _respond(send, 200, _MODELS)
        return
    request = json.loads(body or b"{}")
    model = request.get("model", "bench-model")
    if not request.get("stream"):
        await _respond(send, 200, _completion(model))
        return
    pace = PACE.match(str((request.get("messages") or [{}])[-1].get("content", "")))
    first_ms, count, each_ms = (int(g) for g in pace.groups()) if pace else (0, 0, 0)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    if first_ms:
        await asyncio.sleep(first_ms / 1000)
    for chunk in _stream(model, [f"w{i}" for i in range(count)] if pace else None):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if each_ms:
            await asyncio.sleep(each_ms / 1000)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _respond(send, status: int, payload: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})
