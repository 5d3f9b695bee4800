"""The worker distribution alone: `pip install ./worker` into a fresh venv (no system site packages, nothing of this
checkout on its path) brings a `one-worker` that needs neither Reflex nor web3 nor SQLModel, joins a real
coordinator and serves a request through the API with a receipt its key signed.

The engine is the worker's OpenAI-compatible one (the light install has no ML stack), pointed at a small local
OpenAI-compatible server; the coordinator is a network of its own, so this worker is the only one serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from backend.protocol import receipt as rc
from backend.protocol.signing import load_or_create_key, public_hex, verify_hex
from backend.trust.verify import verify_chain
from tests.conftest import E2E_ENV, REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]
ANSWER = ["Hello from ", "a small upstream."]


class Upstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible server with one model that always streams ANSWER (what vLLM or llama.cpp would be)."""

    def do_GET(self):
        self._reply("application/json", json.dumps({"object": "list", "data": [{"id": "upstream", "max_model_len": 2048}]}))

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ANSWER[0]}, "finish_reason": None}]},
                  {"choices": [{"index": 0, "delta": {"content": ANSWER[1]}, "finish_reason": "stop"}]},
                  {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}}]  # fmt: skip
        self._reply("text/event-stream", "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")

    def _reply(self, content_type: str, text: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def worker_venv(tmp_path_factory):
    """A fresh venv holding the worker distribution and its light dependencies, nothing else (pip's cache off)."""
    venv = tmp_path_factory.mktemp("worker-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir", str(REPO / "worker")],
                   check=True, timeout=600, env=env, cwd=venv.parent)  # fmt: skip
    return venv


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def net(tmp_path_factory, test_output):
    """A coordinator and chain with no node worker."""
    from backend.dev.devnet import Devnet

    network = Devnet(
        port=free_port(), data_dir=tmp_path_factory.mktemp("one-worker-only"), log_dir=test_output / "logs-worker-only"
    )
    try:
        network.start_chain(free_port())
        network.start_coordinator(extra_env=E2E_ENV)
        yield network
    finally:
        network.stop_all()


def test_the_worker_installs_alone_without_the_coordinators_stack(worker_venv, tmp_path):
    probe = "import importlib.util as u, json, gpu_worker; print(json.dumps([gpu_worker.__file__, {m: u.find_spec(m) is not None for m in %r}]))"
    modules = ["reflex", "web3", "sqlmodel", "torch", "backend.protocol.session", "backend.config"]
    out = subprocess.run(
        [str(worker_venv / "bin" / "python"), "-I", "-c", probe % modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    location, found = json.loads(out.stdout)
    assert location.startswith(str(worker_venv))  # the installed wheel, not this checkout
    assert found == {
        "reflex": False,
        "web3": False,
        "sqlmodel": False,
        "torch": False,
        "backend.protocol.session": True,
        "backend.config": False,
    }


def test_a_worker_only_install_serves_a_request_with_a_receipt_it_signed(worker_venv, upstream, net):
    from backend.dev.devnet import wait_for_workers

    key_file = net.data_dir / "worker-only.key"
    worker_id = public_hex(load_or_create_key(key_file))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    net.spawn("worker-only", [str(worker_venv / "bin" / "one-worker"), "--coordinator", net.url, "--key-file", str(key_file),
                              "--engine", f"openai:tiny-chat={upstream}#upstream"], {**env, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert [w["id"] for w in wait_for_workers(net.url, 1, timeout_s=60)] == [worker_id]

    reply = httpx.post(f"{net.url}/v1/chat/completions", json={"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
                       timeout=120)  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"] == "".join(ANSWER)
    receipt = body["receipt"]
    assert receipt["worker"]["id"] == worker_id and receipt["kind"] == "chat"
    assert verify_hex(worker_id, rc.jcs(rc.attestation_of_receipt(receipt)), receipt["worker"]["sig"])
    assert verify_chain(httpx.get(f"{net.url}/one/receipts").json()["receipts"]).ok
