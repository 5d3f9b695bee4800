"""OpenAI-compatible routes (/v1). Thin: validation here, the work in backend.serving.inference, the replies
built by backend.api.replies."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from backend.access import clusters
from backend.api.deps import CallerDep, RuntimeDep
from backend.api.door import body_json, principal_of
from backend.api.errors import ApiError
from backend.api.replies import TextReply, embedding_list, images_response, model_card, reply
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ImageRequest
from backend.api.schemas.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    EmbeddingList,
    ImagesResponse,
    ModelCard,
    ModelList,
)
from backend.protocol.body import OpenAIBody
from backend.runtime import Runtime
from backend.serving.inference import Caller, Delta, Finished

router = ReplyRouter(prefix="/v1", tags=["openai"])


def _streamed(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 200 of a route that also streams: `model` as JSON, or (`stream: true`) server-sent events, each
    `data: <ChatCompletionChunk>`, then `data: [DONE]`. The chunk's parts (receipt, usage) are the components
    `model` already puts in the document."""
    chunk = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
    chunk.pop("$defs", None)
    return {200: {"model": model, "content": {"text/event-stream": {"schema": chunk}}}}


def _cluster_of(request: Request, rt: Runtime) -> str | None:
    """The caller's Cluster, when its key is a Cluster package's: its private models are listed for it alone."""
    principal = principal_of(request)
    return clusters.cluster_of(rt.packages, principal.account, principal.package) if principal else None


@router.get("/models", response_model=ModelList)
async def list_models(request: Request, rt: RuntimeDep) -> ModelList:
    """Every catalog model, online or offline; a Cluster's key also sees its private models."""
    cards = [model_card(m, rt.scheduler) for m in rt.catalog.models]
    if (cluster := _cluster_of(request, rt)) is not None:
        cards += [model_card(m, rt.scheduler) for m in await asyncio.to_thread(clusters.private_models_of, cluster)]
    return ModelList(object="list", data=cards)


@router.get("/models/{model_id:anypath}", response_model=ModelCard)
async def retrieve_model(model_id: str, request: Request, rt: RuntimeDep) -> ModelCard:
    if (model := rt.catalog.get(model_id)) is not None:
        return model_card(model, rt.scheduler)
    cluster = _cluster_of(request, rt)
    if (model := await asyncio.to_thread(clusters.private_model, model_id, cluster)) is not None:
        return model_card(model, rt.scheduler)
    raise ApiError(404, f"The model `{model_id}` does not exist.", "model_not_found", param="model")


@router.post("/chat/completions", response_model=ChatCompletion, responses=_streamed(ChatCompletion))
async def chat_completions(body: ChatCompletionRequest, request: Request, rt: RuntimeDep, caller: CallerDep) -> JSONResponse | StreamingResponse:
    raw = await body_json(request)  # forwarded as sent, so the client can recompute the request digest
    return await _text_task(OpenAIBody(raw).chat_task(), raw, body, rt, caller)


@router.post("/completions", response_model=Completion, responses=_streamed(Completion))
async def completions(body: CompletionRequest, request: Request, rt: RuntimeDep, caller: CallerDep) -> JSONResponse | StreamingResponse:
    if body.echo or body.suffix:
        param = "echo" if body.echo else "suffix"
        raise ApiError(400, f"`{param}` is not supported.", "unsupported_parameter", param=param)
    return await _text_task("completion", await body_json(request), body, rt, caller)


@router.post("/embeddings", response_model=EmbeddingList)
async def embeddings(body: EmbeddingRequest, request: Request, rt: RuntimeDep, caller: CallerDep) -> JSONResponse:
    finished = await _finish(rt.inference.run("embedding", await body_json(request), caller))
    return reply(embedding_list(finished, body.encoding_format), headers=_balance_headers(rt, caller))


@router.post("/images/generations", response_model=ImagesResponse)
async def images_generations(body: ImageRequest, request: Request, rt: RuntimeDep, caller: CallerDep) -> JSONResponse:
    finished = await _finish(rt.inference.run("image", await body_json(request), caller))
    return reply(images_response(finished, body.response_format), headers=_balance_headers(rt, caller))


def _balance_headers(rt: Runtime, caller: Caller) -> dict[str, str]:
    """x-one-lane / -balance / -balance-unit / -refresh-in for signed-in callers."""
    return rt.inference.lanes.headers(caller.account_id, caller.lane) if caller.metered else {}


async def _finish(events: AsyncIterator[Delta | Finished], first: Delta | Finished | None = None) -> Finished:
    """Run a job to its end (ApiError on failure, answered by the one handler); its Finished event."""
    finished = first if isinstance(first, Finished) else None
    async for event in events:
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished


async def _text_task(task: str, raw: dict[str, Any], body: ChatCompletionRequest | CompletionRequest, rt: Runtime,
                     caller: Caller) -> JSONResponse | StreamingResponse:  # fmt: skip
    job_id = uuid.uuid4().hex
    events = rt.inference.run(task, raw, caller, job_id=job_id)
    first = await anext(events)  # errors before any output become plain error responses
    text = TextReply(task, first.job_id, first.model)  # a fallback's model and job, when the first model could not answer
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        headers = {"cache-control": "no-cache", **_balance_headers(rt, caller)}  # balance as of the start (hold placed)
        return StreamingResponse(text.stream(first, events, include_usage), media_type="text/event-stream", headers=headers)
    return reply(text.final(await _finish(events, first)), headers=_balance_headers(rt, caller))
