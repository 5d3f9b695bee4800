"""http_get refuses private addresses and caps size and time; web_search needs a configured provider."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
import time
from types import SimpleNamespace
from typing import Callable

import pytest

from backend.agents.tools import REGISTRY, ToolError, fetch_limited


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://localhost/", "http://10.1.2.3/x", "http://192.168.0.1/", "http://169.254.169.254/latest",
                                 "http://[::1]/", "file:///etc/passwd", "ftp://example.com/"])  # fmt: skip
def test_http_get_refuses_private_and_non_http_urls(url):
    with pytest.raises(ToolError):
        asyncio.run(REGISTRY["http_get"].run({"url": url}, SimpleNamespace()))


@contextlib.contextmanager
def recording_server(answer: Callable[[str], bytes]):
    """A local HTTP server answering `answer(path)` to every GET; yields its port and the (path, Host) it saw."""
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers["host"]))
            body = answer(self.path)
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()


def sized_or_slow(path: str) -> bytes:
    if path == "/slow":
        time.sleep(3)
    return b"x" * (1024 * 1024 if path == "/big" else 10)


@pytest.fixture(scope="module")
def server():
    with recording_server(sized_or_slow) as (port, _):
        yield f"http://127.0.0.1:{port}"


def test_fetch_caps_size_and_time(server):
    assert asyncio.run(fetch_limited(server + "/small")) == "x" * 10
    with pytest.raises(ToolError, match="over"):
        asyncio.run(fetch_limited(server + "/big", max_bytes=64 * 1024))
    with pytest.raises(ToolError, match="within"):
        asyncio.run(fetch_limited(server + "/slow", timeout_s=0.5))


def test_web_search_without_a_provider_says_so():
    with pytest.raises(ToolError, match="ONE_SEARCH_URL"):
        asyncio.run(REGISTRY["web_search"].run({"query": "x"}, SimpleNamespace(settings=SimpleNamespace(search_url=""))))


def test_fetch_to_an_address_keeps_the_name_in_the_host_header():
    with recording_server(lambda path: b"ok") as (port, seen):
        assert asyncio.run(fetch_limited(f"http://127.0.0.1:{port}/", host="news.example", port=port)) == "ok"
        assert seen == [("/", f"news.example:{port}")]


def test_http_get_connects_to_the_address_it_checked_not_a_second_dns_answer(monkeypatch):
    """DNS rebinding: the name first resolves to a public address, then to loopback. The fetch must go to
    the public address that was checked; the local server (what rebinding aims at) must see nothing."""
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14"])

    def rebinding(host, *args, **kwargs):
        if host in ("rebind.example", b"rebind.example"):  # first answer public, every later one loopback (anyio asks in bytes)
            return real(next(answers, "127.0.0.1"), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with recording_server(lambda path: b"secret") as (port, hits):
        try:
            result = asyncio.run(REGISTRY["http_get"].run({"url": f"http://rebind.example:{port}/internal"}, SimpleNamespace()))
        except ToolError:
            result = ""  # the public address is unreachable from here: fine, as long as it was not loopback
        assert hits == [] and "secret" not in result
