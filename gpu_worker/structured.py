"""The shared layer between engines and the protocol: stop strings, tool calls, JSON constraints.

Every text engine emits raw text; this module decides what the client sees, so a transformers
engine on CPU and a vLLM server behind HTTP behave alike:
- `constraint_schema(body)`: the JSON schema the output must follow (response_format json_object /
  json_schema, or a forced tool call under tool_choice required/named); engines enforce it while
  decoding (transformers: xgrammar's logits processor; HTTP engines: the upstream's guided decoding).
- `ChoiceStream`: per choice, turns raw text into OpenAI delta fields: content, Hermes-style
  `<tool_call>{...}</tool_call>` blocks as streamed `tool_calls`, stop strings cut.
"""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from typing import Any

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"


class RequestError(ValueError):
    """A request this layer cannot honour (bad schema, unknown named tool)."""


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [t["function"] for t in body.get("tools") or [] if t.get("type") == "function" and "function" in t]


def forced_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Tools the model must call (tool_choice required or named), else None."""
    tools, choice = _tools(body), body.get("tool_choice")
    if not tools or choice in (None, "auto", "none"):
        return None
    if choice == "required":
        return tools
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        named = [t for t in tools if t.get("name") == name]
        if not named:
            raise RequestError(f"tool_choice names {name!r}, which is not in tools")
        return named
    raise RequestError("tool_choice must be none, auto, required or a named function")


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"type": "string", "enum": [tool["name"]]}, "arguments": tool.get("parameters") or {"type": "object"}},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def constraint_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema the whole output must satisfy, or None for free text."""
    forced = forced_tools(body)
    if forced:
        return _call_schema(forced[0]) if len(forced) == 1 else {"anyOf": [_call_schema(t) for t in forced]}
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise RequestError("response_format.json_schema.schema must be a JSON schema object")
        return schema
    return None


def stop_strings(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class ChoiceStream:
    """Raw text in, OpenAI delta fields out, for one choice.

    `feed(text)` returns a list of delta dicts ({"content": ...} or {"tool_calls": [...]}) safe to send
    now; text that might be the start of a stop string or a `<tool_call>` tag is held back until it
    is clear. `stopped` turns True once a stop string was seen (the engine should be cancelled).
    """

    def __init__(self, body: dict[str, Any], forced_call: bool = False):
        self.stops = stop_strings(body)
        self.parse_tools = bool(_tools(body)) and body.get("tool_choice") != "none" and not forced_call
        self.forced_call = forced_call
        self.buffer = ""
        self.in_call = False
        self.calls = 0
        self.stopped = False

    @property
    def made_tool_calls(self) -> bool:
        return self.calls > 0

    def feed(self, text: str) -> list[dict[str, Any]]:
        if self.stopped:
            return []
        self.buffer += text
        if self.forced_call:
            return []  # the whole output is one JSON call: emitted by finish()
        for stop in self.stops:
            cut = self.buffer.find(stop)
            if cut >= 0 and not self.in_call:
                self.buffer = self.buffer[:cut]
                self.stopped = True
                return self._drain(final=True)
        return self._drain(final=False)

    def finish(self) -> list[dict[str, Any]]:
        """End of generation: flush what was held back."""
        if self.forced_call:
            text, self.buffer = self.buffer, ""
            return [self._call_delta(text)] if text.strip() else []
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.buffer:
            if self.in_call:
                end = self.buffer.find(TOOL_CLOSE)
                if end < 0:
                    if final:  # an unterminated call is text after all
                        out.append({"content": TOOL_OPEN + self.buffer})
                        self.buffer, self.in_call = "", False
                    break
                body, self.buffer = self.buffer[:end], self.buffer[end + len(TOOL_CLOSE) :]
                self.in_call = False
                out.append(self._call_delta(body))
                continue
            start = self.buffer.find(TOOL_OPEN) if self.parse_tools else -1
            if start >= 0:
                if start:
                    out.append({"content": self.buffer[:start]})
                self.buffer, self.in_call = self.buffer[start + len(TOOL_OPEN) :], True
                continue
            keep = 0 if final else self._held_back()
            if len(self.buffer) > keep:
                out.append({"content": self.buffer[: len(self.buffer) - keep]})
                self.buffer = self.buffer[len(self.buffer) - keep :]
            break
        return out

    def _held_back(self) -> int:
        """Length of the longest buffer suffix that could still grow into a stop string or a tag."""
        marks = list(self.stops) + ([TOOL_OPEN] if self.parse_tools else [])
        keep = 0
        for mark in marks:
            for n in range(min(len(mark) - 1, len(self.buffer)), 0, -1):
                if self.buffer.endswith(mark[:n]):
                    keep = max(keep, n)
                    break
        return keep

    def _call_delta(self, text: str) -> dict[str, Any]:
        try:
            call = json.loads(text)
            name, arguments = call["name"], call.get("arguments", {})
        except (ValueError, KeyError, TypeError):
            return {"content": text if self.forced_call else TOOL_OPEN + text + TOOL_CLOSE}
        index, self.calls = self.calls, self.calls + 1
        args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        return {"tool_calls": [{"index": index, "id": new_call_id(), "type": "function", "function": {"name": name, "arguments": args}}]}


# --- constrained decoding for transformers (xgrammar, the grammar engine vLLM uses) ------------------


@lru_cache(maxsize=8)
def _grammar_compiler(tokenizer: Any, vocab_size: int):
    import xgrammar as xgr

    return xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size))


def schema_logits_processor(tokenizer: Any, vocab_size: int, schema: dict[str, Any]):
    """A fresh transformers LogitsProcessor that masks every token that would break `schema`.

    It must run before temperature/top-p (the engine puts it first in its own processor list), so
    sampling never sees an empty set. One instance serves one generate() call.
    """
    import xgrammar as xgr

    try:
        compiled = _grammar_compiler(tokenizer, vocab_size).compile_json_schema(json.dumps(schema), any_whitespace=False)
    except Exception as exc:  # xgrammar refuses schemas it cannot enforce
        raise RequestError(f"unsupported JSON schema: {exc}") from None
    return xgr.contrib.hf.LogitsProcessor(compiled)
