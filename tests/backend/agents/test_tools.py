"""http_get and the checked fetch it shares with webhooks and workers: private addresses refused, the connection
pinned to the checked address, no redirects, size and time capped; web_search needs a configured provider."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from backend.agents.tools import REGISTRY, ToolError
from backend.protocol.safe_fetch import AddressRefused, FetchError, fetch, fetch_limited, is_public, public_target
from tests.backend.agents.net import PUBLIC, dns, recording_server  # noqa: F401  (dns: fixture)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://localhost/", "http://10.1.2.3/x", "http://192.168.0.1/", "http://169.254.169.254/latest",
                                 "http://[::1]/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0/", "http://2130706433/", "file:///etc/passwd",
                                 "ftp://example.com/", "http://:80/", "http://example.com:99999/"])  # fmt: skip
def test_http_get_refuses_private_and_non_http_urls(url):
    with pytest.raises(ToolError):
        asyncio.run(REGISTRY["http_get"].run({"url": url}, SimpleNamespace()))


@pytest.mark.parametrize(("address", "public"), [(PUBLIC, True), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True), ("127.0.0.1", False),
                                                 ("100.64.0.1", False), ("::ffff:127.0.0.1", False), ("64:ff9b::a9fe:a9fe", False),
                                                 ("2002:7f00:1::", False), ("::127.0.0.1", False), ("fe80::1%eth0", False)])  # fmt: skip
def test_only_globally_routable_addresses_are_public_even_inside_ipv6(address, public):
    assert is_public(address) is public


def test_a_name_with_any_private_address_is_refused_whole(dns):
    dns.answer("mixed.example", PUBLIC)
    assert public_target("https://mixed.example/x?q=1")[1] == PUBLIC
    dns.answer("mixed.example", "127.0.0.1")
    with pytest.raises(AddressRefused, match="non-public address"):
        public_target("https://mixed.example/x")


def sized_or_slow(path: str) -> tuple[int, dict[str, str], bytes]:
    if path == "/slow":
        time.sleep(3)
    if path == "/moved":
        return 302, {"location": "/small"}, b""
    return 200, {}, b"x" * (1024 * 1024 if path == "/big" else 10)


@pytest.fixture(scope="module")
def server():
    with recording_server(sized_or_slow) as (port, seen):
        yield f"http://127.0.0.1:{port}", seen


def test_the_transfer_caps_size_and_time(server):
    base, _ = server
    assert asyncio.run(fetch_limited(base + "/small", max_bytes=64, timeout_s=5)) == b"x" * 10
    with pytest.raises(FetchError, match="over"):
        asyncio.run(fetch_limited(base + "/big", max_bytes=64 * 1024, timeout_s=5))
    with pytest.raises(FetchError, match="within"):
        asyncio.run(fetch_limited(base + "/slow", max_bytes=64, timeout_s=0.5))


def test_redirects_are_not_followed(server):
    base, seen = server
    before = len(seen)
    with pytest.raises(FetchError, match="HTTP 302.*not followed"):
        asyncio.run(fetch_limited(base + "/moved", max_bytes=64, timeout_s=5))
    assert [path for _, path, _ in seen[before:]] == ["/moved"]


def test_web_search_without_a_provider_says_so():
    with pytest.raises(ToolError, match="ONE_SEARCH_URL"):
        asyncio.run(REGISTRY["web_search"].run({"query": "x"}, SimpleNamespace(settings=SimpleNamespace(search_url=""))))


def test_fetch_to_an_address_keeps_the_name_in_the_host_header():
    with recording_server() as (port, seen):
        body = asyncio.run(fetch_limited(f"http://127.0.0.1:{port}/", max_bytes=64, timeout_s=5, host="news.example", port=port, method="POST", content=b"{}"))
        assert body == b"ok" and seen == [("POST", "/", f"news.example:{port}")]


def test_http_get_connects_to_the_address_it_checked_not_a_second_dns_answer(dns):
    """DNS rebinding: the name first resolves to a public address, then to loopback. The fetch must go to
    the public address that was checked; the local server (what rebinding aims at) must see nothing."""
    dns.answer("rebind.example", PUBLIC, "127.0.0.1")
    with recording_server(lambda path: (200, {}, b"secret")) as (port, hits):
        try:
            result = asyncio.run(REGISTRY["http_get"].run({"url": f"http://rebind.example:{port}/internal"}, SimpleNamespace()))
        except ToolError:
            result = ""  # the public address is unreachable from here: fine, as long as it was not loopback
        assert hits == [] and "secret" not in result
        assert dns.lookups.count("rebind.example") == 1


def test_the_whole_checked_fetch_is_within_its_time(monkeypatch):
    """A resolver that stalls counts against the time limit too: the fetch gives up while the lookup still hangs."""
    import socket
    import threading

    real, release = socket.getaddrinfo, threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: release.wait(30) and real(*a, **k))

    async def attempt() -> bool:
        with pytest.raises(FetchError, match="within"):
            await fetch("http://slow-dns.example/", max_bytes=64, timeout_s=0.3)
        stalled = not release.is_set()
        release.set()
        return stalled

    assert asyncio.run(attempt())


@pytest.mark.parametrize(("name", "args", "words"), [("pool_price", {}, "no chain configured"), ("wallet_balance", {}, "no chain configured"),
                                                     ("swap", {"sell": "USDC", "amount": 1}, "no chain configured")])  # fmt: skip
def test_trading_tools_on_a_network_without_a_chain_say_so(name, args, words):
    settings = SimpleNamespace(chain_rpc_url="", one_token_address="", usdc_token_address="", pool_address="")
    ctx = SimpleNamespace(settings=settings, record=SimpleNamespace(id="0xabc:trader"), runner=SimpleNamespace(runtime=SimpleNamespace(receipts=None)))
    with pytest.raises(ToolError, match=words):
        asyncio.run(REGISTRY[name].run(args, ctx))


def test_a_network_without_a_pool_says_so_to_the_tools_that_need_it():
    from backend.agents.trading import market

    settings = SimpleNamespace(chain_rpc_url="http://127.0.0.1:1", one_token_address="0x" + "11" * 20, usdc_token_address="0x" + "22" * 20, pool_address="")
    with pytest.raises(ToolError, match="ONE_POOL_ADDRESS"):
        market(settings, need_pool=True)
    with pytest.raises(ToolError, match="no pool"):
        market(settings, need_pool=False).usdc_value("ONE", 10**18)  # $ONE has no price without one
    assert market(settings, need_pool=False).usdc_value("USDC", 5) == 5
