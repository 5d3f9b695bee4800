"""The coordinator's OpenAI replies, built in one place from what the serving layer returns (a Finished job, its
stream of deltas) into the typed replies of backend/api/schemas/responses.py.

Inference replies go out as JSONResponse (with the caller's balance headers) of the model dumped with
`exclude_unset`: the same keys the builder set, floats written by the same json encoder as before.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any, AsyncIterator

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend.api.errors import ApiError, error_body
from backend.api.schemas.responses import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChoice,
    Embedding,
    EmbeddingList,
    EmbeddingUsage,
    Image,
    ImagesResponse,
    ModelCard,
    PaymentPending,
    Usage,
)  # fmt: skip
from backend.catalog import CatalogModel
from backend.scheduler import Scheduler
from backend.serving.inference import Delta, Finished


def reply(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A typed reply as sent: exactly the keys it was built with."""
    return JSONResponse(model.model_dump(exclude_unset=True), status_code=status, headers=headers)


def model_card(model: CatalogModel, scheduler: Scheduler) -> ModelCard:
    """A catalog model as /v1/models and /one/catalog list it, with its live availability (for a Cluster's private
    model: while one of its nodes serves it)."""
    return ModelCard(
        id=model.id, object="model", created=0, owned_by="one-network", name=model.name, tasks=model.tasks, context_length=model.context,
        **model.prices(), lanes=model.lanes, available=(online := scheduler.advertises(model.id, model.owner, nodes_only=model.private)), status="online" if online else "offline",
        free_slots=scheduler.free_slots(model.id), serve=model.serve.model_dump() if model.serve else None, private=model.private,
    )  # fmt: skip


def payment_pending(seen: int, required: int) -> JSONResponse:
    """202 for a purchase or bond whose transfer has too few confirmations yet: nothing recorded, ask again later."""
    return reply(PaymentPending(status="pending", confirmations=seen, required=required), 202)


def usage(counts: dict[str, int]) -> Usage:
    """A receipt's usage in OpenAI's names."""
    return Usage(prompt_tokens=counts["input_tokens"], completion_tokens=counts["output_tokens"],
                 total_tokens=counts["input_tokens"] + counts["output_tokens"])  # fmt: skip


class TextReply:
    """The id, object and creation time that every reply and stream chunk of one chat or completion job shares."""

    def __init__(self, task: str, job_id: str, model: str):
        self.chat = task != "completion"
        self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-{job_id}"
        self.created, self.model = int(time.time()), model
        self._event_head: str | None = None

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> ChatCompletionChunk:
        object_ = "chat.completion.chunk" if self.chat else "text_completion"
        return ChatCompletionChunk(id=self.id, object=object_, created=self.created, model=self.model, choices=choices, **extra)

    def delta_event(self, choices: list[dict[str, Any]]) -> str:
        """One delta's `data:` event: the same bytes as `_sse(self.chunk(choices).model_dump(exclude_unset=True))`
        (a test keeps them equal), written without building the model: this runs once per relayed token."""
        if self._event_head is None:
            head = _sse(self.chunk([]).model_dump(exclude_unset=True))
            self._event_head = head[: head.rindex("[]")]  # 'data: {"id":...,"model":...,"choices":'
        return self._event_head + json.dumps(choices, separators=(",", ":")) + "}\n\n"

    def final(self, finished: Finished) -> ChatCompletion | Completion:
        """The whole answer of a job that ran to its receipt."""
        head = {"id": self.id, "created": self.created, "model": self.model, "usage": usage(finished.usage),
                "receipt": finished.receipt, "request_salt": finished.request_salt, **_token_ids(finished)}  # fmt: skip
        choices = finished.output.ordered_choices()
        if not self.chat:
            return Completion(**head, object="text_completion", choices=[
                CompletionChoice(index=c["index"], text=c["content"] or "", logprobs=c["logprobs"], finish_reason=c["finish_reason"] or "stop")
                for c in choices
            ])  # fmt: skip
        return ChatCompletion(**head, object="chat.completion", choices=[
            ChatChoice(index=c["index"], message=_message(c), logprobs=c["logprobs"], finish_reason=c["finish_reason"] or "stop") for c in choices
        ])  # fmt: skip

    async def stream(self, first: Delta | Finished, events: AsyncIterator[Delta | Finished], include_usage: bool) -> AsyncIterator[str]:
        """Server-sent events: a chunk per delta, then the last chunk with the receipt (and usage when asked), then
        [DONE]. A failure after the first delta becomes an error event; nothing was charged."""
        done = "data: [DONE]\n\n"  # written with the event before it: one send fewer through the server per stream
        try:
            event = first
            while True:
                if isinstance(event, Delta):
                    yield "".join(self.delta_event(data) for data in event.chunks)
                else:
                    extra = {"usage": usage(event.usage)} if include_usage else {}
                    last = self.chunk([], receipt=event.receipt, request_salt=event.request_salt, **_token_ids(event), **extra)
                    yield _sse(last.model_dump(exclude_unset=True)) + done
                    return
                event = await anext(events)
        except ApiError as exc:
            yield _sse(error_body(exc.message, exc.type, exc.param, exc.code)) + done
        except StopAsyncIteration:
            yield _sse(error_body("The stream ended without a result; nothing was charged.", "server_error", None, "incomplete")) + done


def _token_ids(finished: Finished) -> dict[str, Any]:
    """`token_ids` beside the receipt when the worker committed to them (what a client's own audit re-scores)."""
    return {"token_ids": finished.tokens} if finished.tokens is not None else {}


def _message(choice: dict[str, Any]) -> AssistantMessage:
    content = choice["content"] if choice["content"] is not None or choice["tool_calls"] else ""
    if choice["tool_calls"]:
        return AssistantMessage(role="assistant", content=content, tool_calls=choice["tool_calls"])
    return AssistantMessage(role="assistant", content=content)


def _sse(payload: dict[str, Any]) -> str:
    return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"


def embedding_list(finished: Finished, encoding: str) -> EmbeddingList:
    data = [Embedding(object="embedding", index=item["index"], embedding=_encode_vector(item["embedding"], encoding))
            for item in finished.output.ordered_items()]  # fmt: skip
    tokens = finished.usage["input_tokens"]
    return EmbeddingList(object="list", data=data, model=finished.model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
                         receipt=finished.receipt, request_salt=finished.request_salt)  # fmt: skip


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # float32 little-endian, as the OpenAI clients decode it
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def images_response(finished: Finished, response_format: str) -> ImagesResponse:
    items = finished.output.ordered_items()
    if response_format == "b64_json":
        data = [Image(b64_json=item["b64_json"]) for item in items]
    else:
        data = [Image(url="data:image/png;base64," + item["b64_json"]) for item in items]
    return ImagesResponse(created=int(time.time()), data=data, receipt=finished.receipt, request_salt=finished.request_salt)
