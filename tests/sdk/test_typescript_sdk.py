"""The TypeScript SDK (sdk/typescript, plain ES modules on Node.js) passes every shared vector under node's own test
runner, its verify command keeps `one verify`'s contract (and prints what the Python SDK's prints), and against a
live devnet a streamed chat and an embedding come back with receipts it checks (tampered copies rejected)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import pytest

from one_sdk import receipts as py  # noqa: E402  (tests/sdk/conftest.py puts it on the path)
from tests.sdk.conftest import SDK

TS = SDK / "typescript"
VERIFY = TS / "bin" / "verify"


def load(name: str) -> dict:
    return json.loads((SDK / "vectors" / name).read_text())


@pytest.fixture(scope="module")
def node() -> str:
    """Node.js >= 18 and the package's dependencies (npm ci from its package-lock.json, as `make setup` does)."""
    path = shutil.which("node")
    if path is None:
        pytest.fail("Node.js is not installed: the TypeScript SDK needs node >= 18 and npm (apt-get install nodejs npm)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.fail(f"the TypeScript SDK needs node >= 18, found {version}")
    if not (TS / "node_modules" / "openai").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not installed: needed for the TypeScript SDK's dependencies (apt-get install npm)")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TS, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"npm ci in sdk/typescript failed (make setup installs it):\n{done.stdout}\n{done.stderr}")
    return path


def test_node_test_runner_passes_every_vector_and_the_client_tests(node):
    done = subprocess.run([node, "--test", "--test-reporter=tap"], cwd=TS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.M)
    assert passed and int(passed.group(1)) >= 10 and re.search(r"^# fail 0$", done.stdout, re.M), done.stdout


def test_the_verify_command_keeps_the_contract_and_prints_what_the_python_sdk_prints(node, tmp_path):
    cases = {c["name"]: c["receipts"] for c in load("receipts.json")["cases"]}
    good, bad = tmp_path / "good.json", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(cases["valid chain"]))
    bad.write_text("\n".join(json.dumps(x) for x in cases["tampered charge.amount"]))
    passed = subprocess.run([str(VERIFY), str(good)], capture_output=True, text=True, timeout=60)
    assert passed.returncode == 0 and passed.stdout.count(" valid") == 6, passed.stdout + passed.stderr
    assert "6 receipts: all checks pass" in passed.stdout
    failed = subprocess.run([str(VERIFY), str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "INVALID: hash check failed" in failed.stdout, failed.stdout
    assert "verification FAILED" in failed.stdout
    for name in ("valid chain", "tampered charge.amount", "receipts 2 and 3 reordered", "one receipt signed by another coordinator"):
        path = tmp_path / "case.json"
        path.write_text(json.dumps({"receipts": cases[name]}))
        ts = subprocess.run([str(VERIFY), str(path)], capture_output=True, text=True, timeout=60)
        reference = subprocess.run([str(SDK / "python" / "bin" / "verify"), str(path)], capture_output=True, text=True, timeout=60)
        assert (ts.returncode, ts.stdout) == (reference.returncode, reference.stdout), name
    unreadable = tmp_path / "nothing.json"
    unreadable.write_text("[1, 2]")
    assert subprocess.run([str(VERIFY), str(unreadable)], capture_output=True, text=True, timeout=60).returncode == 1


@pytest.mark.e2e
def test_a_streamed_chat_and_an_embedding_through_the_sdk_verify_and_tampered_copies_do_not(node, devnet, tmp_path):
    done = subprocess.run([node, "examples/e2e.js", devnet.url], cwd=TS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    chat, embedding = out["chat"], out["embedding"]
    assert chat["ok"] and chat["pieces"] >= 2 and chat["text"] and chat["sent_stream"], chat  # streamed, then checked whole
    assert chat["checks"] == {"hash": True, "coordinator_sig": True, "worker_sig": True, "request": True, "output": True}
    assert chat["kind"] == "chat" and "lane" in chat  # open access (the devnet): no x-one-* account headers
    assert embedding["ok"] and embedding["kind"] == "embedding" and embedding["vectors"] == 2 and embedding["dims"] > 0, embedding
    assert embedding["checks"]["request"] and embedding["checks"]["output"]
    assert out["chain_each_ok"]
    assert not out["forged"]["ok"] and "hash check failed" in out["forged"]["problems"]
    assert out["other_request"] == {"ok": False, "request": False} and out["other_answer"] == {"ok": False, "output": False}
    assert out["verify_mode_threw"] and "hash check failed" in out["verify_mode_threw"]

    # The reference agrees on the live receipts, and the verify command accepts them and rejects the forged copy.
    receipts = out["receipts"]
    assert py.verify_receipt(receipts["chat"]).ok and py.verify_receipt(receipts["embedding"]).ok
    assert not py.verify_receipt(receipts["forged"]).ok
    (tmp_path / "live.jsonl").write_text(json.dumps({"receipt": receipts["chat"]}) + "\n")
    (tmp_path / "forged.json").write_text(json.dumps(receipts["forged"]))
    assert subprocess.run([str(VERIFY), str(tmp_path / "live.jsonl")], capture_output=True, timeout=60).returncode == 0
    forged = subprocess.run([str(VERIFY), str(tmp_path / "forged.json")], capture_output=True, text=True, timeout=60)
    assert forged.returncode == 1 and "hash check failed" in forged.stdout
    worker_forged = copy.deepcopy(receipts["embedding"])
    worker_forged["usage"]["input_tokens"] += 1
    assert "worker_sig check failed" in py.verify_receipt(worker_forged).problems


@pytest.mark.e2e
def test_the_readme_example_runs(node, devnet):
    readme = (TS / "README.md").read_text()
    example = re.search(r"```js\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) == 5
    example = example.replace("http://127.0.0.1:3000", devnet.url)
    # Run from the package folder, so that `import "@one-network/sdk"` resolves to this package (self-reference).
    done = subprocess.run([node, "--input-type=module", "-e", example], cwd=TS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r" [0-9a-f]{64} true ", done.stdout), done.stdout
