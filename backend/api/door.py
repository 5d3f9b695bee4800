"""The API's door, in front of every /v1 and /one route: request rates, the body cap and JSON a receipt can hold.

Runs before FastAPI reads or parses anything: a body over the cap is answered 413 from its Content-Length (or
as soon as the streamed bytes pass the cap), so a 40 MB request costs the coordinator nothing. Every reply
carries x-ratelimit-{limit,remaining,reset}-requests, as OpenAI and Venice send them; over the limit, 429 with
retry-after. Buckets: the bearer key, its account (all its keys together), and the client address for
requests without a valid ONE key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.access import auth
from backend.access.limits import Quota, Rates, client_address, json_problem
from backend.api.errors import error_body
from backend.config import get_settings

GUARDED = ("/v1/", "/one/")
BODY_METHODS = ("POST", "PUT", "PATCH")
PARSE_IN_THREAD = 256 * 1024  # bigger bodies are checked off the event loop
DRAIN_LIMIT = 64 * 2**20  # after a 413, the most of the refused body read (and dropped) before the connection closes


class Door:
    def __init__(self, app: ASGIApp):
        self.app = app
        self.rates = Rates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED):
            await self.app(scope, receive, send)
            return
        settings = get_settings()  # the runtime's own settings object (backend.runtime reads the same)
        headers = Headers(scope=scope)
        quota = await self._quota(scope, headers, settings)
        rate_headers = quota.headers()
        if not quota.allowed:
            message = f"Rate limit reached: {quota.limit} requests per minute. Try again in {quota.reset_s}s."
            await JSONResponse(error_body(message, "requests", None, "rate_limit_exceeded"), 429, {**rate_headers, "retry-after": str(quota.reset_s)})(scope, receive, send)
            return
        if scope["method"] in BODY_METHODS:
            cap = settings.max_request_bytes
            length = headers.get("content-length")
            body = None if length is not None and (not length.isdigit() or int(length) > cap) else await _read_capped(receive, cap)
            if body is None:
                message = f"The request body is larger than {cap} bytes."
                await JSONResponse(error_body(message, "invalid_request_error", None, "request_too_large"), 413, rate_headers)(scope, receive, send)
                await _discard(receive, DRAIN_LIMIT)  # a client still uploading then reads the 413 instead of a reset
                return
            if body and "json" in headers.get("content-type", "json"):
                value, problem = await asyncio.to_thread(_json_check, body) if len(body) > PARSE_IN_THREAD else _json_check(body)
                scope.setdefault("state", {})["json"] = value  # routes read it through body_json instead of parsing again
                if problem is not None:
                    param, why = problem
                    body_out = error_body(f"Invalid value for '{param}': {why}.", "invalid_request_error", param, "invalid_value")
                    await JSONResponse(body_out, 400, rate_headers)(scope, receive, send)
                    return
            receive = _replay(body, receive)
        await self.app(scope, receive, _with_headers(send, rate_headers))

    async def _quota(self, scope: Scope, headers: Headers, settings: Any) -> Quota:
        secret = auth.bearer_secret(headers.get("authorization", ""))
        principal = await asyncio.to_thread(auth.principal_for, secret) if secret.startswith(auth.KEY_PREFIX) else None
        scope.setdefault("state", {})["principal"] = principal  # routes read it through principal_of, not the database
        if principal is None:
            address = client_address((scope.get("client") or ("unknown", 0))[0], headers.get("x-forwarded-for", ""), settings.trusted_proxies)
            buckets = [(f"addr:{address}", settings.rate_limit_open)]
        else:
            key_id = hashlib.sha256(secret.encode()).hexdigest()[:32]
            buckets = [(f"key:{key_id}", settings.rate_limit_per_key), (f"account:{principal.account}", settings.rate_limit_per_account)]
        return await self.rates.hit(buckets, settings.broker_url)


def principal_of(request: Request) -> auth.Principal | None:
    """Who the request's bearer key stands for (None: no ONE key, or an unknown or expired one), as the door looked
    it up: one database read per request."""
    state = request.scope.get("state", {})
    if "principal" in state:
        return state["principal"]
    secret = auth.bearer_secret(request.headers.get("authorization", ""))  # a route mounted without the door
    return auth.principal_for(secret) if secret.startswith(auth.KEY_PREFIX) else None


async def body_json(request: Request) -> Any:
    """The request's JSON body, as the door parsed it (parsed here only for a route mounted without the door)."""
    state = request.scope.get("state", {})
    return state["json"] if state.get("json") is not None else await request.json()


def _json_check(body: bytes) -> tuple[Any, tuple[str, str] | None]:
    """(the parsed body or None, (param, why) when it is JSON a receipt cannot hold)."""
    try:
        value = json.loads(body)
    except RecursionError:
        return None, ("body", "nests too deeply")
    except ValueError:
        return None, None  # not JSON at all: FastAPI answers that with its own 400
    return value, json_problem(value)


async def _read_capped(receive: Receive, cap: int) -> bytes | None:
    """The whole body, or None as soon as it passes `cap` bytes (the rest is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _discard(receive: Receive, limit: int) -> None:
    """Read and drop the rest of a refused body, up to `limit` bytes: memory stays flat, the client sees the 413."""
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the real channel (a streaming reply listens on it for the client leaving)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *((k.encode(), v.encode()) for k, v in extra.items())]}
        await send(message)

    return wrapped


