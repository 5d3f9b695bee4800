"""A ONE client: the official `openai` client pointed at a ONE coordinator, plus what it does not know about:
each reply's receipt and request salt, the `x-one-*` headers, and (optionally) every receipt checked on arrival
against what you sent and what you got, without trusting the coordinator."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import httpx
import openai

from one_sdk.receipts import (
    ReceiptError,
    Verdict,
    answer_of,
    chat_output_digest,
    embedding_output_digest,
    image_output_digest,
    request_digest,
    verify_receipt,
)


@dataclass
class Account:
    """The `x-one-*` headers of a reply: the lane it ran on, the balance left and its unit, when Included credits
    refresh, and the rate limits."""

    lane: str | None = None
    balance: int | None = None
    unit: str | None = None
    refresh_in: int | None = None
    rate_limits: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> "Account":
        number = lambda name: int(headers[name]) if headers.get(name, "").lstrip("-").isdigit() else None  # noqa: E731
        return cls(lane=headers.get("x-one-lane"), balance=number("x-one-balance"), unit=headers.get("x-one-balance-unit"),
                   refresh_in=number("x-one-refresh-in"), rate_limits={k: v for k, v in headers.items() if k.startswith("x-ratelimit-")})  # fmt: skip


@dataclass
class Reply:
    """An API reply (the openai object), its receipt and salt, the account headers, and the verdict when checked."""

    data: Any
    receipt: dict[str, Any] | None
    request_salt: str | None
    account: Account
    verdict: Verdict | None = None


class One:
    """`One("http://127.0.0.1:3000", api_key=...)`; `one.openai` is the plain openai client for anything else.
    With `verify=True` every reply's receipt is checked on arrival and a failure raises ReceiptError; `coordinator`
    pins the coordinator's public key (hex) the receipts must be signed with."""

    def __init__(self, base_url: str, api_key: str | None = None, verify: bool = False, coordinator: str | None = None, timeout: float = 120):
        self.verify, self.coordinator = verify, coordinator
        self._sent = threading.local()  # the exact JSON of this thread's last request: what the request digest covers
        self._http = httpx.Client(timeout=timeout, event_hooks={"request": [self._remember]})
        self.openai = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key or "none", http_client=self._http, max_retries=0)

    def _remember(self, request: httpx.Request) -> None:
        self._sent.body = json.loads(request.content) if request.content else None

    # ---- calls ----

    def chat(self, **kwargs: Any) -> Reply:
        """POST /v1/chat/completions (not streamed): tools, response_format and the rest as openai takes them."""
        return self._call(self.openai.chat.completions.with_raw_response.create, kwargs,
                          lambda body: chat_output_digest(answer_of(c) for c in body["choices"]))

    def chat_stream(self, **kwargs: Any) -> "Streamed":
        """A streamed chat: iterate for the chunks (openai's ChatCompletionChunk); `.reply` once the stream ended."""
        raw = self.openai.chat.completions.with_raw_response.create(stream=True, **kwargs)
        return Streamed(self, raw.parse(), raw.headers, self._sent.body)

    def completion(self, **kwargs: Any) -> Reply:
        return self._call(self.openai.completions.with_raw_response.create, kwargs,
                          lambda body: chat_output_digest(answer_of(c) for c in body["choices"]))

    def embed(self, **kwargs: Any) -> Reply:
        """POST /v1/embeddings as float vectors (the receipt's digest is over float32 values)."""
        return self._call(self.openai.embeddings.with_raw_response.create, {"encoding_format": "float", **kwargs},
                          lambda body: embedding_output_digest(e["embedding"] for e in sorted(body["data"], key=lambda e: e["index"])))

    def images(self, **kwargs: Any) -> Reply:
        """POST /v1/images/generations as b64_json (the receipt's digest is over the PNG bytes)."""
        return self._call(self.openai.images.with_raw_response.generate, {"response_format": "b64_json", **kwargs},
                          lambda body: image_output_digest(base64.b64decode(i["b64_json"]) for i in body["data"]))

    def _call(self, create: Callable[..., Any], kwargs: dict[str, Any], digest: Callable[[dict[str, Any]], str]) -> Reply:
        """One non-streamed call: the output digest is computed from the reply's JSON exactly as it arrived."""
        raw = create(**kwargs)
        body = raw.http_response.json()
        return self._finish(raw.parse(), raw.headers, body.get("receipt"), body.get("request_salt"), digest(body), self._sent.body)

    # ---- receipts ----

    def _finish(self, data: Any, headers: httpx.Headers, receipt: dict[str, Any] | None, salt: str | None, output_digest: str,
                sent: dict[str, Any] | None) -> Reply:  # fmt: skip
        reply = Reply(data=data, receipt=receipt, request_salt=salt, account=Account.from_headers(headers))
        reply.verdict = self.check(receipt, salt, sent, output_digest)
        if self.verify and not reply.verdict.ok:
            raise ReceiptError(f"the receipt does not check out: {'; '.join(reply.verdict.problems)}", reply.verdict)
        return reply

    def check(self, receipt: dict[str, Any] | None, request_salt: str | None, sent: dict[str, Any] | None, output_digest: str) -> Verdict:
        """The receipt's own checks (hash, both signatures, the pinned coordinator), then that it covers this
        request (request_digest with the salt) and this output (output_digest)."""
        if not receipt:
            verdict = Verdict(seq=None, hash="")
            verdict.fail("receipt", "the reply carries no receipt")
            return verdict
        verdict = verify_receipt(receipt, self.coordinator)
        if request_salt is None or sent is None:
            verdict.fail("request", "no request salt or request body to check the request digest against")
        else:
            verdict.checks["request"] = request_digest(sent, request_salt) == receipt.get("request_digest")
            if not verdict.checks["request"]:
                verdict.problems.append("request_digest does not match the request sent")
        verdict.checks["output"] = output_digest == receipt.get("output_digest")
        if not verdict.checks["output"]:
            verdict.problems.append("output_digest does not match the output received")
        return verdict


class Streamed:
    """A streamed chat in progress: iterating yields openai chunks; the answer is gathered so that, when the stream
    ends, `reply` holds the receipt from the last chunk checked against the whole answer."""

    def __init__(self, client: One, stream: Any, headers: httpx.Headers, sent: dict[str, Any] | None):
        self._client, self._stream, self._headers, self._sent = client, stream, headers, sent
        self._choices: dict[int, dict[str, Any]] = {}
        self._last: Any = None
        self.reply: Reply | None = None

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._stream:
            self._last = chunk
            for c in chunk.choices:
                choice = self._choices.setdefault(c.index, {"index": c.index, "content": None, "tool_calls": None})
                if c.delta.content:
                    choice["content"] = (choice["content"] or "") + c.delta.content
                for call in c.delta.tool_calls or []:
                    calls = choice["tool_calls"] = choice["tool_calls"] or []
                    while len(calls) <= call.index:
                        calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                    gathered = calls[call.index]
                    gathered["id"] = call.id or gathered["id"]
                    if call.function:
                        gathered["function"]["name"] += call.function.name or ""
                        gathered["function"]["arguments"] += call.function.arguments or ""
            yield chunk
        extra = (self._last.model_extra or {}) if self._last is not None else {}
        self.reply = self._client._finish(self._last, self._headers, extra.get("receipt"), extra.get("request_salt"),
                                          chat_output_digest(self._choices.values()), self._sent)  # fmt: skip

    @property
    def text(self) -> str:
        return "".join(c["content"] or "" for c in sorted(self._choices.values(), key=lambda c: c["index"]))
