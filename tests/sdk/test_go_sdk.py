"""The Go SDK (sdk/go, standard library only) passes every shared vector (`go test ./...`), its verify command keeps
`one verify`'s contract, and against a live devnet a streamed chat and an embedding come back with receipts it
checks in Go (a tampered copy is rejected); its README's five-line example runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from tests.sdk.conftest import SDK, assert_e2e_report

GO_SDK = SDK / "go"
VECTORS = SDK / "vectors"
VERIFY = GO_SDK / "bin" / "verify"
ENV = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GO111MODULE": "on"}


def go() -> str:
    """The Go toolchain; missing, the test fails (the Makefile installs it: apt-get install -y golang-go)."""
    path = shutil.which("go")
    if path is None:
        pytest.fail("the Go toolchain is missing: install it with `apt-get install -y golang-go` (make setup does)")
    return path


def build(package: str, name: str) -> str:
    out = GO_SDK / ".bin" / name
    done = subprocess.run([go(), "build", "-o", str(out), package], cwd=GO_SDK, capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(out)


def test_go_test_passes_every_vector():
    done = subprocess.run([go(), "test", "-count=1", "-v", "./..."], cwd=GO_SDK, capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    for name in ("TestCanonicalJSONMatchesEveryVector", "TestReceiptVerdictsMatchTheReferenceForEveryCase", "TestRequestAndOutputDigests",
                 "TestInclusionProofsForTreesOf1To17Leaves", "TestTheClientChecksEveryKindOfReply"):  # fmt: skip
        assert f"--- PASS: {name}" in done.stdout, done.stdout[-3000:]


def test_the_verify_command_prints_a_verdict_per_receipt_and_exits_0_only_when_all_pass(tmp_path):
    go()
    cases = {c["name"]: c["receipts"] for c in json.loads((VECTORS / "receipts.json").read_text())["cases"]}
    good, bad, dropped = tmp_path / "good.json", tmp_path / "bad.jsonl", tmp_path / "dropped.json"
    good.write_text(json.dumps(cases["valid chain"]))
    bad.write_text("\n".join(json.dumps(x) for x in cases["tampered charge.amount"]))
    dropped.write_text(json.dumps({"receipts": cases["receipt seq 2 dropped"]}))
    passed = subprocess.run([str(VERIFY), str(good)], capture_output=True, text=True, timeout=300, env=ENV)
    assert passed.returncode == 0 and passed.stdout.count(" valid") == 6 and "6 receipts: all checks pass" in passed.stdout, passed.stdout + passed.stderr
    assert re.match(r"seq 0 [0-9a-f]{16} valid\n", passed.stdout)
    failed = subprocess.run([str(VERIFY), str(bad)], capture_output=True, text=True, timeout=60, env=ENV)
    assert failed.returncode == 1 and "seq 2 " in failed.stdout and "INVALID: hash check failed" in failed.stdout
    assert "6 receipts: verification FAILED" in failed.stdout
    gap = subprocess.run([str(VERIFY), str(dropped)], capture_output=True, text=True, timeout=60, env=ENV)
    assert gap.returncode == 1 and "INVALID: does not link to receipt seq 1" in gap.stdout


@pytest.mark.e2e
def test_a_streamed_chat_and_an_embedding_through_the_go_sdk_verify_and_a_tampered_copy_does_not(devnet):
    e2e = build("./examples/e2e", "e2e")
    done = subprocess.run([e2e, devnet.url], capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert_e2e_report(out)


@pytest.mark.e2e
def test_the_readme_example_runs(devnet, tmp_path):
    go()
    readme = (GO_SDK / "README.md").read_text()
    example = re.search(r"```go\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) == 5
    (tmp_path / "go.mod").write_text(f"module readme\n\ngo 1.19\n\nrequire github.com/one-network/sdk-go v0.0.0\n\n"
                                     f"replace github.com/one-network/sdk-go => {GO_SDK}\n")  # fmt: skip
    body = example.replace("http://127.0.0.1:3000", devnet.url)
    (tmp_path / "main.go").write_text('package main\n\nimport (\n\t"context"\n\t"fmt"\n\t"log"\n\n\tone "github.com/one-network/sdk-go"\n)\n\n'
                                      f"func main() {{\n{body}}}\n")  # fmt: skip
    done = subprocess.run([go(), "run", "."], cwd=tmp_path, capture_output=True, text=True, timeout=180, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r" [0-9a-f]{64} true ", done.stdout), done.stdout
