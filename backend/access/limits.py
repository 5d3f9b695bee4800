"""Limits checked before any work starts: request rates, and the counts and sizes inside one request.

Every number here is a setting (backend/config.py, "Limits at the door"). The API's door (backend/api/door.py)
applies the body cap and the rates; `request_problem` runs on the path every caller shares (InferenceService.run),
so the web app, agents and the API meet the same caps.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from backend.config import Settings
from backend.protocol.body import ImagePart, OpenAIBody
from backend.protocol.receipt import TEXT_TASKS

SAFE_INT = 2**53 - 1  # receipts hash requests as JCS (RFC 8785): integers beyond this cannot be written
MAX_JSON_DEPTH = 64
MAX_IMAGE_URL_CHARS = 2048  # an http(s) image address (data: URLs are capped by decoded size instead)
MAX_IMAGES = 8  # image parts in one chat request


@dataclass(frozen=True)
class Quota:
    """Where a caller stands in the current window, as the x-ratelimit-* headers tell it."""

    limit: int
    remaining: int
    reset_s: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{self.reset_s}s",
        }


class RateLimiter:
    """Requests per fixed one-minute window, per bucket (a key, an account, a client address). In memory, so
    per coordinator process (replicas share SharedRateLimiter instead); old windows are dropped as time moves on,
    so memory follows the callers of the last minute only."""

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self._window = -1
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, buckets: list[tuple[str, int]], now: float | None = None) -> Quota:
        """Count one request against every bucket if all have room; the tightest bucket is reported."""
        window, reset_s = _window(self.window_s, now)
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            counts = [self._counts.get(name, 0) for name, _ in buckets]
            allowed = all(count < limit for count, (_, limit) in zip(counts, buckets))
            if allowed:
                for name, _ in buckets:
                    self._counts[name] = self._counts.get(name, 0) + 1
        return _quota(buckets, counts, allowed, reset_s)


def _window(window_s: float, now: float | None) -> tuple[int, int]:
    """The fixed window `now` falls in, and the whole seconds until the next one starts (at least 1)."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    return window, max(1, math.ceil((window + 1) * window_s - now))


def _quota(buckets: list[tuple[str, int]], counts: list[int], allowed: bool, reset_s: int) -> Quota:
    """Where the caller stands: the tightest bucket's room, given each bucket's count before this request."""
    remaining = min(limit - count - (1 if allowed else 0) for count, (_, limit) in zip(counts, buckets))
    return Quota(limit=min(limit for _, limit in buckets), remaining=max(remaining, 0), reset_s=reset_s, allowed=allowed)


# Count one request against every bucket if all have room (atomically, for every replica at once). KEYS: the buckets'
# counters in this window; ARGV: the window's length, then each bucket's limit. Returns allowed (1/0), then the counts.
_SHARED_HIT = """
local allowed, counts = 1, {}
for i = 1, #KEYS do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if counts[i] >= tonumber(ARGV[i + 1]) then allowed = 0 end
end
if allowed == 1 then
  for i = 1, #KEYS do redis.call('INCR', KEYS[i]); redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
table.insert(counts, 1, allowed)
return counts
"""


class SharedRateLimiter:
    """RateLimiter's windows kept in the broker's Redis: several replicas count one caller once, so a caller does not
    get its limit once per replica by spreading its requests over them."""

    def __init__(self, redis_url: str, window_s: float = 60.0):
        import redis.asyncio as aioredis

        self.window_s = window_s
        self._hit = aioredis.Redis.from_url(redis_url).register_script(_SHARED_HIT)

    async def hit(self, buckets: list[tuple[str, int]], now: float | None = None) -> Quota:
        window, reset_s = _window(self.window_s, now)
        keys = [f"one:rate:{window}:{name}" for name, _ in buckets]
        allowed, *counts = await self._hit(keys=keys, args=[int(self.window_s) + 1, *(limit for _, limit in buckets)])
        return _quota(buckets, counts, bool(allowed), reset_s)


class Rates:
    """The windows a coordinator counts in: its own (RateLimiter), or, with a broker, the network's."""

    def __init__(self) -> None:
        self.local = RateLimiter()
        self.shared: SharedRateLimiter | None = None

    async def hit(self, buckets: list[tuple[str, int]], broker_url: str = "") -> Quota:
        if not broker_url:
            return self.local.hit(buckets)
        if self.shared is None:
            self.shared = SharedRateLimiter(broker_url)
        return await self.shared.hit(buckets)


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parsed once per setting, not on every key-less request."""
    return [ipaddress.ip_network(net, strict=False) for net in cidrs]


def client_address(peer: str, forwarded_for: str, trusted_proxies: list[str]) -> str:
    """The caller's address: the connection's peer, unless that peer is a trusted proxy (the front door), whose
    X-Forwarded-For then names the caller: its right-most entry that is not itself a trusted proxy. Entries left of
    it were written by the caller and prove nothing."""
    trusted = _networks(tuple(trusted_proxies))

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not is_trusted(hop):
            return hop
    return peer


def json_problem(value: Any) -> tuple[str, str] | None:
    """(param path, why) for JSON a receipt cannot hold or that nests beyond reason; None when it is fine.
    Iterative, so a deeply nested body cannot exhaust the stack here."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:  # named by its top-level field: the full path would be as deep as the nesting
            return path.split(".")[0].split("[")[0] or "body", f"nests deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not -SAFE_INT <= item <= SAFE_INT:
                return path or "body", f"is out of range (integers must lie within ±{SAFE_INT})"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path or "body", "must be a finite number"
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
    return None


class LimitExceeded(ValueError):
    """A request over one of the caps: the 400 names the parameter."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param, self.message = param, message


def request_problem(task: str, body: dict[str, Any], context: int, settings: Settings) -> LimitExceeded | None:
    """The first cap this request breaks (messages, tools, inputs, n x max_tokens, images), or None."""
    view = OpenAIBody(body)
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > settings.max_messages:
        return LimitExceeded("messages", f"At most {settings.max_messages} messages per request; this one has {len(messages)}.")
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > settings.max_tools:
        return LimitExceeded("tools", f"At most {settings.max_tools} tools per request; this one has {len(tools)}.")
    for param in ("input", "prompt"):
        inputs = body.get(param)
        if isinstance(inputs, list) and len(inputs) > settings.max_inputs:
            return LimitExceeded(param, f"At most {settings.max_inputs} items in `{param}`; this one has {len(inputs)}.")
    if task in TEXT_TASKS:
        outputs, asked = view.outputs(task), view.asked_max_tokens
        if asked is not None and outputs * asked > settings.max_output_tokens:
            return LimitExceeded("max_tokens", f"n x max_tokens may be at most {settings.max_output_tokens} per request; this one asks for {outputs * asked}.")
        if asked is None and outputs > 1 and outputs * context > settings.max_output_tokens:
            return LimitExceeded("max_tokens", f"Set max_tokens: with n x prompts = {outputs}, n x max_tokens may be at most {settings.max_output_tokens}.")
    return _image_problem(view.image_parts(), settings)


def _image_problem(images: list[ImagePart], settings: Settings) -> LimitExceeded | None:
    """Too many images, a data: URL over the byte cap, or an address over the length cap."""
    for count, image in enumerate(images, start=1):
        if count > MAX_IMAGES:
            return LimitExceeded(image.param, f"At most {MAX_IMAGES} images per request.")
        if not isinstance(image.url, str):
            continue  # the worker explains what an image_url must be
        if image.url.startswith("data:"):
            decoded = len(image.url.partition(",")[2]) * 3 // 4
            if decoded > settings.max_image_bytes:
                return LimitExceeded(image.param, f"Images may be at most {settings.max_image_bytes} bytes; this one is about {decoded}.")
        elif len(image.url) > MAX_IMAGE_URL_CHARS:
            return LimitExceeded(image.param, f"Image URLs may be at most {MAX_IMAGE_URL_CHARS} characters.")
    return None
