"""Tools agents can call. Add your own with `@tool(...)` in a module listed in ONE_AGENT_TOOL_MODULES:

    from backend.agents.tools import tool

    @tool("weather", "Current weather for a city.", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    async def weather(args, ctx):
        return f"sunny in {args['city']}"
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import httpx

from backend.config import get_settings
from backend.protocol.safe_fetch import FetchError, fetch

HTTP_GET_MAX_BYTES = 256 * 1024
HTTP_GET_TIMEOUT_S = 10.0
RESULT_CHARS = 600  # what goes back into the model's context


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any], Any], Awaitable[str]]
    spends: bool = False  # moves money from the agent's wallet: its file must cap what it may spend


    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry the model sees."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


REGISTRY: dict[str, Tool] = {}


def tool(name: str, description: str, parameters: dict[str, Any], spends: bool = False):
    def register(fn: Callable[[dict[str, Any], Any], Awaitable[str]]):
        REGISTRY[name] = Tool(name, description, parameters, fn, spends)
        return fn

    return register


def load_tool_modules(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


class ToolError(Exception):
    """A tool could not do its job; the agent sees the message as the tool's result."""


_QUERY = {"type": "object", "properties": {"query": {"type": "string", "maxLength": 200}}, "required": ["query"]}
_TEXT = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 2000}}, "required": ["text"]}
_URL = {"type": "object", "properties": {"url": {"type": "string", "maxLength": 2000}}, "required": ["url"]}


@tool("web_search", "Search the web; returns titles, URLs and snippets.", _QUERY)
async def web_search(args: dict[str, Any], ctx: Any) -> str:
    """Any SearxNG-compatible JSON API (ONE_SEARCH_URL, e.g. https://searx.example/search)."""
    if not ctx.settings.search_url:
        raise ToolError("no search provider is configured (ONE_SEARCH_URL)")
    async with httpx.AsyncClient(timeout=HTTP_GET_TIMEOUT_S) as client:
        reply = await client.get(ctx.settings.search_url, params={"q": str(args.get("query", "")), "format": "json"})
    reply.raise_for_status()
    results = reply.json().get("results", [])[:5]
    return "\n".join(f"{r.get('title', '')} — {r.get('url', '')}: {r.get('content', '')}" for r in results) or "no results"


@tool("summarize", "Summarize a text in a few sentences.", _TEXT)
async def summarize(args: dict[str, Any], ctx: Any) -> str:
    """An inference call of its own (its receipt joins the run's trail)."""
    text = str(args.get("text", ""))[:RESULT_CHARS]
    return await ctx.infer([{"role": "system", "content": "Summarize the user's text in two sentences."}, {"role": "user", "content": text}])


@tool("http_get", "Fetch a public web page (text, at most 256 KB).", _URL)
async def http_get(args: dict[str, Any], ctx: Any) -> str:
    """Through the checked fetch (backend.protocol.safe_fetch): public addresses only, no redirects, size and time capped."""
    try:
        body = await fetch(str(args.get("url", "")), max_bytes=HTTP_GET_MAX_BYTES, timeout_s=HTTP_GET_TIMEOUT_S,
                           allow_networks=get_settings().fetch_allow_networks)
    except FetchError as exc:
        raise ToolError(str(exc)) from None
    return body.decode("utf-8", errors="replace")[:4000]


from backend.agents import trading  # noqa: E402, F401  (registers the chain tools: wallet_balance, pool_price, swap, transfer)
