"""Real local HTTP servers that record every request, and a DNS stand-in (the stdlib resolver, wrapped) that
lets a test say what a name resolves to on each lookup: what a hostile DNS server can answer."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from typing import Callable, Iterator

import pytest

PUBLIC = "93.184.215.14"  # a globally routable address (example.com's)


@contextlib.contextmanager
def recording_server(answer: Callable[[str], tuple[int, dict[str, str], bytes]] | None = None) -> Iterator[tuple[int, list]]:
    """A server on 127.0.0.1 answering `answer(path)` -> (status, headers, body) (default 200 "ok") to every
    GET and POST; yields its port and the (method, path, Host) of each request it saw."""
    seen: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            seen.append((self.command, self.path, self.headers["host"]))
            self.rfile.read(int(self.headers.get("content-length") or 0))
            status, headers, body = answer(self.path) if answer else (200, {}, b"ok")
            try:
                self.send_response(status)
                for name, value in {**headers, "content-length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a time or size cap): what these tests want

        do_GET = do_POST = _serve

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()


class Dns:
    """`answer(name, *addresses)`: the next lookups of `name` get these addresses, one per lookup, the last one
    repeated. Other names resolve normally. `lookups` lists every name asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def resolve(host, *args, **kwargs):
            name = host.decode() if isinstance(host, bytes) else host  # anyio asks in bytes
            self.lookups.append(name)
            if name in self.answers:
                queue = self.answers[name]
                return real(queue.pop(0) if len(queue) > 1 else queue[0], *args, **kwargs)
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)

    def answer(self, name: str, *addresses: str) -> None:
        self.answers[name] = list(addresses)


@pytest.fixture
def dns(monkeypatch) -> Dns:
    return Dns(monkeypatch)
