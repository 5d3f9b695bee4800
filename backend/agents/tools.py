"""Tools agents can call. Add your own with `@tool(...)` in a module listed in ONE_AGENT_TOOL_MODULES:

    from backend.agents.tools import tool

    @tool("weather", "Current weather for a city.", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    async def weather(args, ctx):
        return f"sunny in {args['city']}"
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

HTTP_GET_MAX_BYTES = 256 * 1024
HTTP_GET_TIMEOUT_S = 10.0
RESULT_CHARS = 600  # what goes back into the model's context


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any], Any], Awaitable[str]]

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry the model sees."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


REGISTRY: dict[str, Tool] = {}


def tool(name: str, description: str, parameters: dict[str, Any]):
    def register(fn: Callable[[dict[str, Any], Any], Awaitable[str]]):
        REGISTRY[name] = Tool(name, description, parameters, fn)
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


async def public_addresses(host: str) -> list[str]:
    """The host's addresses, refusing any that is not globally routable (loopback, private, link-local...)."""
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, None)
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve {host}: {exc}") from None
    addresses = sorted({info[4][0] for info in infos})
    for address in addresses:
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            raise ToolError(f"{host} resolves to a private address ({address}); refused")
    return addresses


async def fetch_limited(url: str, max_bytes: int = HTTP_GET_MAX_BYTES, timeout_s: float = HTTP_GET_TIMEOUT_S,
                        host: str | None = None, port: int | None = None) -> str:  # fmt: skip
    """GET with a size cap and a time cap (the whole transfer, not just the connect). With `host`, `url`
    names an address: the request still says Host: `host`, and TLS checks the certificate for `host`."""
    chunks, size = [], 0
    headers, extensions = ({"host": netloc(host, port)}, {"sni_hostname": host}) if host else ({}, {})

    async def transfer() -> None:
        nonlocal size
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            async with client.stream("GET", url, headers=headers, extensions=extensions) as reply:
                reply.raise_for_status()
                async for chunk in reply.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ToolError(f"the response is over {max_bytes} bytes; refused")
                    chunks.append(chunk)

    try:
        await asyncio.wait_for(transfer(), timeout_s)
    except asyncio.TimeoutError:
        raise ToolError(f"no complete answer within {timeout_s:.0f} s") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"fetch failed: {exc}") from None
    return b"".join(chunks).decode("utf-8", errors="replace")


@tool("http_get", "Fetch a public web page (text, at most 256 KB).", _URL)
async def http_get(args: dict[str, Any], ctx: Any) -> str:
    url = str(args.get("url", ""))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError("only http(s) URLs with a host")
    address = (await public_addresses(parts.hostname))[0]
    return (await fetch_limited(pinned_url(parts, address), host=parts.hostname, port=parts.port))[:4000]


def pinned_url(parts: SplitResult, address: str) -> str:
    """The URL with its host replaced by the address that was checked, so the connection goes where the
    check looked: a second DNS answer (rebinding to a private address) is never asked for."""
    return urlunsplit(parts._replace(netloc=netloc(address, parts.port)))


def netloc(host: str, port: int | None) -> str:
    """host[:port], with an IPv6 address in brackets."""
    return (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
