"""http_get refuses private addresses and caps size and time; web_search needs a configured provider."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from types import SimpleNamespace

import pytest

from backend.agents.tools import REGISTRY, ToolError, fetch_limited


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://localhost/", "http://10.1.2.3/x", "http://192.168.0.1/", "http://169.254.169.254/latest",
                                 "http://[::1]/", "file:///etc/passwd", "ftp://example.com/"])  # fmt: skip
def test_http_get_refuses_private_and_non_http_urls(url):
    with pytest.raises(ToolError):
        asyncio.run(REGISTRY["http_get"].run({"url": url}, SimpleNamespace()))


@pytest.fixture(scope="module")
def server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/slow":
                time.sleep(3)
            body = b"x" * (1024 * 1024 if self.path == "/big" else 10)
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_caps_size_and_time(server):
    assert asyncio.run(fetch_limited(server + "/small")) == "x" * 10
    with pytest.raises(ToolError, match="over"):
        asyncio.run(fetch_limited(server + "/big", max_bytes=64 * 1024))
    with pytest.raises(ToolError, match="within"):
        asyncio.run(fetch_limited(server + "/slow", timeout_s=0.5))


def test_web_search_without_a_provider_says_so():
    with pytest.raises(ToolError, match="ONE_SEARCH_URL"):
        asyncio.run(REGISTRY["web_search"].run({"query": "x"}, SimpleNamespace(settings=SimpleNamespace(search_url=""))))
