"""The Rust SDK (sdk/rust; ring, sha2 and serde_json from Debian's packaged sources, nothing fetched) passes every
shared vector (`cargo test --offline`), its verify command keeps `one verify`'s contract, and against a live devnet
a streamed chat and an embedding come back with receipts it checks in Rust (a tampered copy is rejected); its
README's five-line example runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.sdk.conftest import SDK, assert_e2e_report

RUST_SDK = SDK / "rust"
VECTORS = SDK / "vectors"
VERIFY = RUST_SDK / "bin" / "verify"
REGISTRY = Path("/usr/share/cargo/registry")
CRATES = ("ring", "sha2", "serde_json")


def cargo() -> str:
    """cargo, and the Debian-packaged crates; missing, the test fails (make setup installs them)."""
    path = shutil.which("cargo") or next((p for p in [Path.home() / ".cargo" / "bin" / "cargo"] if p.exists()), None)
    if path is None:
        pytest.fail("the Rust toolchain (cargo) is missing: install it (make setup does)")
    missing = [c for c in CRATES if not any(REGISTRY.glob(f"{c}-*"))]
    if missing:
        pytest.fail(f"Debian's packaged crates {missing} are missing: apt-get install -y librust-ring-dev librust-sha2-dev "
                    "librust-serde-json-dev (make setup does)")  # fmt: skip
    return str(path)


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(cargo()).parent}:{os.environ.get('PATH', '')}", "CARGO_NET_OFFLINE": "true"}


def test_cargo_test_passes_every_vector():
    done = subprocess.run([cargo(), "test", "--offline"], cwd=RUST_SDK, capture_output=True, text=True, timeout=600, env=env())
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    for name in ("canonical_json_matches_every_vector", "receipt_verdicts_match_the_reference_for_every_case", "request_and_output_digests",
                 "inclusion_proofs_for_trees_of_1_to_17_leaves", "the_client_checks_every_kind_of_reply"):  # fmt: skip
        assert f"test {name} ... ok" in done.stdout, done.stdout[-3000:]


def test_the_verify_command_prints_a_verdict_per_receipt_and_exits_0_only_when_all_pass(tmp_path):
    cases = {c["name"]: c["receipts"] for c in json.loads((VECTORS / "receipts.json").read_text())["cases"]}
    good, bad, dropped = tmp_path / "good.json", tmp_path / "bad.jsonl", tmp_path / "dropped.json"
    good.write_text(json.dumps(cases["valid chain"]))
    bad.write_text("\n".join(json.dumps(x) for x in cases["tampered charge.amount"]))
    dropped.write_text(json.dumps({"receipts": cases["receipt seq 2 dropped"]}))
    passed = subprocess.run([str(VERIFY), str(good)], capture_output=True, text=True, timeout=600, env=env())
    assert passed.returncode == 0 and passed.stdout.count(" valid") == 6 and "6 receipts: all checks pass" in passed.stdout, passed.stdout + passed.stderr
    assert re.match(r"seq 0 [0-9a-f]{16} valid\n", passed.stdout)
    failed = subprocess.run([str(VERIFY), str(bad)], capture_output=True, text=True, timeout=60, env=env())
    assert failed.returncode == 1 and "seq 2 " in failed.stdout and "INVALID: hash check failed" in failed.stdout
    assert "6 receipts: verification FAILED" in failed.stdout
    gap = subprocess.run([str(VERIFY), str(dropped)], capture_output=True, text=True, timeout=60, env=env())
    assert gap.returncode == 1 and "INVALID: does not link to receipt seq 1" in gap.stdout
    python = subprocess.run([str(SDK / "python" / "bin" / "verify"), str(dropped)], capture_output=True, text=True, timeout=60)
    assert gap.stdout == python.stdout  # the same words as the Python reference


@pytest.mark.e2e
def test_a_streamed_chat_and_an_embedding_through_the_rust_sdk_verify_and_a_tampered_copy_does_not(devnet):
    build = subprocess.run([cargo(), "build", "--offline", "--release", "--quiet", "--example", "e2e"], cwd=RUST_SDK,
                           capture_output=True, text=True, timeout=600, env=env())  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    done = subprocess.run([str(RUST_SDK / "target" / "release" / "examples" / "e2e"), devnet.url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert_e2e_report(out)
    assert re.fullmatch(r"[0-9a-f]{32,}", out["chat"]["request_salt"]), out["chat"]  # x-one-lane and the rest come to signed-in callers only


@pytest.mark.e2e
def test_the_readme_example_runs(devnet, tmp_path):
    readme = (RUST_SDK / "README.md").read_text()
    example = re.search(r"```rust\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) == 5
    (tmp_path / "src").mkdir()
    shutil.copytree(RUST_SDK / ".cargo", tmp_path / ".cargo")
    (tmp_path / "Cargo.toml").write_text(f'[package]\nname = "readme"\nversion = "0.0.0"\nedition = "2021"\n\n'
                                         f'[dependencies]\none-sdk = {{ path = "{RUST_SDK}" }}\n')  # fmt: skip
    body = example.replace("http://127.0.0.1:3000", devnet.url)
    (tmp_path / "src" / "main.rs").write_text(f"fn main() -> Result<(), Box<dyn std::error::Error>> {{\n{body}    Ok(())\n}}\n")
    # The SDK's own target folder: the crates it already built are reused.
    run_env = {**env(), "CARGO_TARGET_DIR": str(RUST_SDK / "target")}
    done = subprocess.run([cargo(), "run", "--offline", "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=run_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^[0-9a-f]{64} true", done.stdout, re.M), done.stdout
