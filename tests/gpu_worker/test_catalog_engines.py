"""`one worker --engine vllm:chat-large` needs nothing else: the worker reads the model's repo, engine arguments and
context limit from the coordinator's catalog. vLLM needs a GPU, so the `vllm` on PATH here is a script that records
the command line it was started with and exits (the worker then stops with the engine's error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from gpu_worker.cli import catalog_cards
from gpu_worker.engines.registry import EngineSpec, complete_from_catalog, parse_engine_spec

pytestmark = pytest.mark.e2e


def test_the_catalog_names_what_a_spec_leaves_out(devnet):
    cards = catalog_cards(devnet.url)
    large = next(c for c in cards if c["id"] == "chat-large")
    assert large["status"] == "offline" and large["serve"]["engine"] == "vllm"
    specs = complete_from_catalog([parse_engine_spec("vllm:chat-large"), parse_engine_spec("transformers:tiny-chat=/models/tiny")], cards)
    assert specs[0] == EngineSpec("vllm", "chat-large", "meta-llama/Llama-3.3-70B-Instruct", ("--tensor-parallel-size", "2"), 32768)
    assert specs[1] == EngineSpec("transformers", "tiny-chat", "/models/tiny")  # a given TARGET is kept as given
    with pytest.raises(ValueError, match="no model 'no-such-model'"):
        complete_from_catalog([parse_engine_spec("vllm:no-such-model")], cards)
    with pytest.raises(ValueError, match="no repo for 'tiny-chat'"):  # the dev overlay's tiny models are built locally
        complete_from_catalog([parse_engine_spec("transformers:tiny-chat")], cards)


def test_worker_starts_vllm_with_the_catalogs_repo(devnet, tmp_path):
    record = tmp_path / "argv.json"
    fake = tmp_path / "vllm"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\nsys.exit(3)\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, "-m", "backend.cli", "worker", "--coordinator", devnet.url, "--key-file", str(tmp_path / "w.key"),
                          "--engine", "vllm:chat-large"], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode != 0 and "vllm serve exited with 3" in run.stderr
    argv = json.loads(record.read_text())
    assert argv[:2] == ["serve", "meta-llama/Llama-3.3-70B-Instruct"]
    assert argv[argv.index("--served-model-name") + 1] == "chat-large" and argv[argv.index("--max-model-len") + 1] == "32768"
    assert argv[-2:] == ["--tensor-parallel-size", "2"]


def test_offline_models_are_listed_and_quoted(devnet):
    cards = {m["id"]: m for m in httpx.get(f"{devnet.url}/v1/models").json()["data"]}
    assert cards["chat-large"]["status"] == "offline" and cards["chat-large"]["available"] is False
    assert cards["tiny-chat"]["status"] == "online"  # the dev overlay, served by the devnet's CPU workers
    quote = httpx.post(f"{devnet.url}/one/quote", json={"model": "chat-large", "body": {"messages": [], "max_tokens": 1000}}).json()
    assert quote["max_amount"] == 400 and quote["billing"] == "per_1k_output_tokens"
    vision = httpx.post(f"{devnet.url}/one/quote", json={"model": "vision-7b", "task": "vision", "body": {"max_tokens": 1000, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}] * 2}]}}).json()  # fmt: skip
    assert vision["max_amount"] == 2 * 500 + 200 and vision["image_rate"] == 500
    refused = httpx.post(f"{devnet.url}/v1/chat/completions", json={"model": "chat-large", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_unavailable"
