"""Routing a caller can steer: the optional `route` field of an OpenAI request (as OpenRouter's `provider` and
`models` fields let its callers do).

    {"model": "chat-large", "messages": [...],
     "route": {"sort": "latency", "min_reliability": 0.9, "allow_browser": false, "fallbacks": ["chat-medium", "chat-small"]}}

`sort` orders the workers (latency: fastest first token; reliability: best audited record) or, for `price`, the
models tried (cheapest quote first). `min_reliability` and `allow_browser` narrow the workers a job may go to. The
fallbacks are tried in order when a model cannot answer (no worker, no capacity, a worker failure before the first
token, or a quote the balance cannot hold); the reply and the receipt name the model that answered, and only its
job is charged. The field stays in the body the client sent, so the request digest is still the client's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.scheduler import Steering

MAX_FALLBACKS = 4
# What a fallback is tried after: the model could not answer for reasons of the network or the balance, not of the
# request itself (a 400 would fail the same way on every model).
FALLBACK_STATUSES = frozenset({402, 429, 502, 503, 504})


class RoutePreferences(BaseModel):
    """The request's `route` field."""

    model_config = ConfigDict(extra="forbid")
    sort: Literal["latency", "reliability", "price"] | None = Field(None, description="workers by latency or reliability; models by price")
    min_reliability: float = Field(0.0, ge=0.0, le=1.0, description="only workers whose audited reliability is at least this")
    allow_browser: bool = Field(True, description="false: node workers only, no browser tabs")
    fallbacks: list[str] = Field(default_factory=list, max_length=MAX_FALLBACKS, description="models tried in order after `model`")

    @property
    def steering(self) -> Steering:
        return Steering(sort=self.sort, min_reliability=self.min_reliability, allow_browser=self.allow_browser)


class RouteProblem(ValueError):
    """The `route` field is malformed; the message names the part."""


def preferences_of(body: dict[str, Any]) -> RoutePreferences:
    """The request's routing preferences (defaults when it has none)."""
    raw = body.get("route")
    if raw is None:
        return RoutePreferences()
    try:
        return RoutePreferences.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RouteProblem(f"route.{'.'.join(map(str, first['loc']))}: {first['msg']}".replace("route.: ", "route: ")) from None
