"""OpenAI-compatible routes. Thin: validation and response shapes here, the work in backend.serving.inference."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from backend.access import auth
from backend.api import paths  # noqa: F401  (registers the `anypath` convertor)
from backend.api.door import body_json, principal_of
from backend.api.errors import error_body, error_response
from backend.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ImageRequest
from backend.serving.inference import Caller, Delta, Finished, InferenceError, has_image
from backend.runtime import get_runtime
from backend.scheduler import PRIORITY_INCLUDED

router = APIRouter(prefix="/v1")


def caller_of(request: Request) -> Caller:
    """The caller behind the bearer key. In open dev mode a request without a ONE key (`one_sk_…`; the
    OpenAI clients insist on sending some key) runs as one anonymous Included-lane account."""
    secret = auth.bearer_secret(request.headers.get("authorization", ""))
    parent = request.headers.get("x-one-parent")
    if secret.startswith(auth.KEY_PREFIX):
        principal = principal_of(request)
        if principal is None:
            raise InferenceError(401, "Invalid or expired API key.", "invalid_api_key", type_="invalid_request_error")
        package = get_runtime().packages.get(principal.package) if principal.package else None
        priority = package.priority if package else PRIORITY_INCLUDED
        return Caller(account_id=principal.account, lane=principal.lane, parent=parent, metered=True, priority=priority)
    if get_runtime().settings.open_access:
        return Caller(account_id="anonymous", lane="included", parent=parent)
    raise InferenceError(401, "An API key is required: sign in with Ethereum or buy a package.", "missing_api_key")


def model_card(model) -> dict[str, Any]:
    rt = get_runtime()
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": "one-network",
        "name": model.name,
        "tasks": model.tasks,
        "context_length": model.context,
        "billing": model.billing,
        "rate": model.rate,
        "lanes": model.lanes,
        "available": rt.scheduler.advertises(model.id),
        "free_slots": rt.scheduler.free_slots(model.id),
    }


@router.get("/models")
async def list_models() -> dict[str, Any]:
    return {"object": "list", "data": [model_card(m) for m in get_runtime().catalog.models]}


@router.get("/models/{model_id:anypath}", response_model=None)
async def retrieve_model(model_id: str):
    model = get_runtime().catalog.get(model_id)
    if model is None:
        return error_response(InferenceError(404, f"The model `{model_id}` does not exist.", "model_not_found", param="model"))
    return model_card(model)


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
    raw = await body_json(request)  # forwarded as sent, so the client can recompute the request digest
    return await _text_task("vision" if has_image(raw) else "chat", raw, body, request)


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
    if body.echo or body.suffix:
        param = "echo" if body.echo else "suffix"
        return error_response(InferenceError(400, f"`{param}` is not supported.", "unsupported_parameter", param=param))
    return await _text_task("completion", await body_json(request), body, request)


@router.post("/embeddings", response_model=None)
async def embeddings(body: EmbeddingRequest, request: Request) -> JSONResponse:
    caller = caller_of(request)
    finished = await _run_to_end("embedding", await body_json(request), caller)
    if isinstance(finished, JSONResponse):
        return finished
    items = finished.output.ordered_items()
    data = [{"object": "embedding", "index": item["index"], "embedding": _encode_vector(item["embedding"], body.encoding_format)} for item in items]
    usage = {"prompt_tokens": finished.usage["input_tokens"], "total_tokens": finished.usage["input_tokens"]}
    return JSONResponse({"object": "list", "data": data, "model": body.model, "usage": usage, **_proof(finished)}, headers=_balance_headers(caller))


@router.post("/images/generations", response_model=None)
async def images_generations(body: ImageRequest, request: Request) -> JSONResponse:
    caller = caller_of(request)
    finished = await _run_to_end("image", await body_json(request), caller)
    if isinstance(finished, JSONResponse):
        return finished
    items = finished.output.ordered_items()
    key = "b64_json" if body.response_format == "b64_json" else "url"
    data = [{key: item["b64_json"] if key == "b64_json" else "data:image/png;base64," + item["b64_json"]} for item in items]
    return JSONResponse({"created": int(time.time()), "data": data, **_proof(finished)}, headers=_balance_headers(caller))


# --- helpers ---------------------------------------------------------------------------------------


def _proof(finished: Finished) -> dict[str, Any]:
    return {"receipt": finished.receipt, "request_salt": finished.request_salt}


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # float32 little-endian, as the OpenAI clients decode it
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def _balance_headers(caller: Caller) -> dict[str, str]:
    """x-one-lane / -balance / -balance-unit / -refresh-in for signed-in callers."""
    return get_runtime().inference.lanes.headers(caller.account_id, caller.lane) if caller.metered else {}


async def _run_to_end(task: str, raw: dict[str, Any], caller: Caller) -> Finished | JSONResponse:
    finished = None
    try:
        async for event in get_runtime().inference.run(task, raw, caller):
            if isinstance(event, Finished):
                finished = event
    except InferenceError as exc:
        return error_response(exc)
    assert finished is not None
    return finished


async def _text_task(task: str, raw: dict[str, Any], body: Any, request: Request) -> JSONResponse | StreamingResponse:
    job_id = uuid.uuid4().hex
    caller = caller_of(request)
    events = get_runtime().inference.run(task, raw, caller, job_id=job_id)
    try:
        first = await anext(events)  # errors before any output become plain error responses
    except InferenceError as exc:
        return error_response(exc)
    chat = task != "completion"
    meta = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{job_id}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": body.model,
    }
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        headers = {"cache-control": "no-cache", **_balance_headers(caller)}  # balance as of the start (hold placed)
        return StreamingResponse(_sse(first, events, meta, include_usage), media_type="text/event-stream", headers=headers)
    finished = first if isinstance(first, Finished) else None
    try:
        async for event in events:
            if isinstance(event, Finished):
                finished = event
    except InferenceError as exc:
        return error_response(exc)
    assert finished is not None
    choices = [_final_choice(c, chat) for c in finished.output.ordered_choices()]
    reply = {**meta, "object": "chat.completion" if chat else "text_completion", "choices": choices}
    return JSONResponse({**reply, "usage": _usage(finished.usage), **_proof(finished)}, headers=_balance_headers(caller))


def _final_choice(c: dict[str, Any], chat: bool) -> dict[str, Any]:
    finish = c["finish_reason"] or "stop"
    if not chat:
        return {"index": c["index"], "text": c["content"] or "", "logprobs": c["logprobs"], "finish_reason": finish}
    message: dict[str, Any] = {"role": "assistant", "content": c["content"] if c["content"] is not None or c["tool_calls"] else ""}
    if c["tool_calls"]:
        message["tool_calls"] = c["tool_calls"]
    return {"index": c["index"], "message": message, "logprobs": c["logprobs"], "finish_reason": finish}


def _usage(usage: dict[str, int]) -> dict[str, int]:
    return {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
    }


async def _sse(first: Delta | Finished, events: AsyncIterator[Delta | Finished], meta: dict[str, Any], include_usage: bool):
    def chunk(payload: dict[str, Any]) -> str:
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

    try:
        event = first
        while True:
            if isinstance(event, Delta):
                yield chunk({**meta, "choices": event.data})
            else:
                last = {**meta, "choices": [], **_proof(event)}
                if include_usage:
                    last["usage"] = _usage(event.usage)
                yield chunk(last)
                break
            event = await anext(events)
    except InferenceError as exc:
        yield chunk(error_body(exc.message, exc.type, exc.param, exc.code))
    except StopAsyncIteration:
        yield chunk(error_body("The stream ended without a result; nothing was charged.", "server_error", None, "incomplete"))
    yield "data: [DONE]\n\n"
