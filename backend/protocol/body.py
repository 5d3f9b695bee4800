"""A read-only view of an OpenAI request body, as the client sent it: the answers every role needs from it.

The coordinator quotes, caps and bills a request from its body, and workers run it; each must read "how many
tokens may it write", "how many outputs", "which images" the same way, so those readings live here once.
The body itself is never rewritten: its digest is what the receipt commits to. Stdlib only, like the rest of
the protocol package (the browser worker imports it inside Pyodide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


def charge_unit(lane: str) -> str:
    """The unit a lane is billed in: Included-lane credits, Dedicated-lane micro-USDC."""
    return "credit" if lane == "included" else "usdc"


@dataclass(frozen=True)
class ImagePart:
    """One `image_url` part of a chat request: where it sits (for a 400's `param`) and its URL as sent."""

    message: int
    part: int
    url: Any  # a str when well formed; anything else is the worker's to refuse

    @property
    def param(self) -> str:
        return f"messages[{self.message}].content[{self.part}].image_url"


class OpenAIBody:
    """The parsed JSON of a /v1 request (chat, completion, embedding, image), read the one way every role reads it.
    Numbers count when they are integers (or integral floats and digit strings, which request validation lets
    through as integers); anything else reads as absent."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw

    @property
    def n(self) -> int:
        """Choices asked per prompt (1 when not given)."""
        return _count(self.raw.get("n")) or 1

    def outputs(self, task: str) -> int:
        """Choices the request can produce in all: n, times the prompts of a completion request with a list prompt."""
        prompt = self.raw.get("prompt")
        prompts = max(len(prompt), 1) if task == "completion" and isinstance(prompt, list) else 1
        return self.n * prompts

    @property
    def asked_max_tokens(self) -> int | None:
        """The output cap per choice the client set: max_completion_tokens, else max_tokens, else None."""
        return _count(self.raw.get("max_completion_tokens")) or _count(self.raw.get("max_tokens"))

    def max_tokens(self, default: int) -> int:
        """The output cap per choice: the client's, else `default` (a model's context, a worker's own cap)."""
        return self.asked_max_tokens or default

    @property
    def inputs(self) -> list[Any]:
        """An embeddings request's inputs as a list (a single string is one input)."""
        value = self.raw.get("input")
        return [value] if isinstance(value, str) else value if isinstance(value, list) else []

    def image_parts(self) -> list[ImagePart]:
        """The image parts of a chat request's messages, in the order a chat template renders them."""
        parts = []
        for i, message in enumerate(_list(self.raw.get("messages"))):
            content = message.get("content") if isinstance(message, dict) else None
            for j, part in enumerate(_list(content)):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    ref = part.get("image_url")
                    parts.append(ImagePart(i, j, ref.get("url") if isinstance(ref, dict) else ref))
        return parts

    def constrained(self) -> bool:
        """Is the output held to a grammar (a JSON response_format, or a tool call forced by tool_choice)? The
        grammar then shapes every pick, which a plain re-scoring pass does not reproduce."""
        fmt = self.raw.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
            return True
        choice = self.raw.get("tool_choice")
        return bool(self.raw.get("tools")) and (choice == "required" or isinstance(choice, dict))

    def chat_task(self) -> str:
        """A chat request with image parts is a vision job (routed to models that declare `vision`)."""
        return "vision" if self.image_parts() else "chat"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
