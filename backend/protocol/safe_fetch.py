"""Fetching a URL that someone else chose: an agent's http_get call or webhook, a chat request's image_url.

Whoever names the URL must not reach what only the fetching machine can (its loopback, its LAN, the cloud
metadata service): the host must resolve to public addresses only, the connection goes to the address that
was checked (a second DNS answer, rebinding to a private address, is never asked for), redirects are not
followed, and the size and the time of the whole transfer are capped. One implementation, for the
coordinator's agents and for the workers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Sequence
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


class FetchError(Exception):
    """The fetch failed; the message says why, never what the server answered."""


class AddressRefused(FetchError):
    """Not an http(s) URL with a host, or the host resolves to an address that is not public."""


def is_public(address: str) -> bool:
    """Globally routable, and so is any IPv4 address it embeds (mapped, 6to4, Teredo, NAT64): `::ffff:127.0.0.1`
    is loopback in disguise."""
    ip = ipaddress.ip_address(address.split("%")[0])
    embedded: list[ipaddress.IPv4Address | None] = []
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64 or ip in _V4_COMPATIBLE:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return ip.is_global and all(e.is_global for e in embedded if e is not None)


def _allowed(address: str, allow_networks: Sequence[str]) -> bool:
    """In a private network the operator of a dev or test network let fetches reach (ONE_FETCH_ALLOW_NETWORKS, which
    each role reads into its own settings and passes in)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    return any(ip in ipaddress.ip_network(net, strict=False) for net in allow_networks)


def public_target(url: str, allow_networks: Sequence[str] = ()) -> tuple[SplitResult, str]:
    """The URL's parts and the address to connect to; every address its host resolves to must be public or in
    `allow_networks` (AddressRefused; FetchError when it does not resolve). Blocking (DNS): call it in a thread
    from async code."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("only http(s) URLs with a host")
    try:
        port = parts.port
        infos = socket.getaddrinfo(parts.hostname, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except ValueError:
        raise AddressRefused("the URL's port is not a number from 0 to 65535") from None
    except (socket.gaierror, UnicodeError):
        raise FetchError(f"cannot resolve {parts.hostname}") from None  # perhaps for now only: not a refusal
    addresses = list(dict.fromkeys(info[4][0] for info in infos))  # the resolver's order: its preferred address first
    if not addresses or not all(is_public(a) or _allowed(a, allow_networks) for a in addresses):
        raise AddressRefused(f"{parts.hostname} resolves to a non-public address; refused")  # which one, it does not say
    return parts, addresses[0]


async def fetch(url: str, *, max_bytes: int, timeout_s: float, method: str = "GET", content: bytes | None = None,
                headers: dict[str, str] | None = None, allow_networks: Sequence[str] = ()) -> bytes:  # fmt: skip
    """The body of a 2xx answer from a public address (or one in `allow_networks`): the check, the DNS lookup
    included, and the transfer together within `timeout_s`."""

    async def checked() -> bytes:
        parts, address = await asyncio.to_thread(public_target, url, allow_networks)
        return await fetch_limited(pinned_url(parts, address), max_bytes=max_bytes, timeout_s=timeout_s, host=parts.hostname,
                                   port=parts.port, method=method, content=content, headers=headers)  # fmt: skip

    try:
        return await asyncio.wait_for(checked(), timeout_s)
    except asyncio.TimeoutError:
        raise FetchError(f"no complete answer within {timeout_s:g} s") from None


async def fetch_limited(url: str, *, max_bytes: int, timeout_s: float, host: str | None = None, port: int | None = None,
                        method: str = "GET", content: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:  # fmt: skip
    """The transfer alone, with no address check (`fetch` checks first): size and time capped, no redirects, a
    non-2xx answer is an error. With `host`, `url` names an address: the request still says Host: `host`, and
    TLS checks the certificate for `host`."""
    chunks, size = [], 0
    headers = {**(headers or {}), **({"host": netloc(host, port)} if host else {})}
    extensions = {"sni_hostname": host} if host else {}

    async def transfer() -> None:
        nonlocal size
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            async with client.stream(method, url, content=content, headers=headers, extensions=extensions) as reply:
                if not reply.is_success:
                    unfollowed = " (redirects are not followed)" if reply.is_redirect else ""
                    raise FetchError(f"the server answered HTTP {reply.status_code}{unfollowed}")
                async for chunk in reply.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"the response is over {max_bytes} bytes; refused")
                    chunks.append(chunk)

    try:
        await asyncio.wait_for(transfer(), timeout_s)
    except asyncio.TimeoutError:
        raise FetchError(f"no complete answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"fetch failed: {type(exc).__name__}") from None
    return b"".join(chunks)


def pinned_url(parts: SplitResult, address: str) -> str:
    """The URL with its host replaced by the address that was checked (user:password@ kept), so the connection
    goes where the check looked."""
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=(f"{userinfo}@" if userinfo else "") + netloc(address, parts.port)))


def netloc(host: str, port: int | None) -> str:
    """host[:port], with an IPv6 address in brackets."""
    return (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
