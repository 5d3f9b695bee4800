"""How fast each SDK verifies receipts, side by side with `one verify` in the same run, one core each.

    .venv/bin/python bench/sdk_verify.py            # ~3 s per implementation; writes bench/results/sdk-verify-<time>.json

Each implementation checks the shared vectors' "valid chain" (6 receipts: hash, two Ed25519 signatures and the
chain link each) over and over for SECONDS on core 0 (taskset), and reports receipts/s; the ratio is against
`one verify` (backend/trust/verify.py). Most of the time is Ed25519 verification in every language."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECONDS = 3
PIN = ["taskset", "-c", "0"] if shutil.which("taskset") else []

PY_LOOP = """
import json, sys, time
sys.path.insert(0, {src!r})
from {module} import verify_chain
chain = json.load(open({vectors!r}))["cases"][0]["receipts"]
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < {seconds}:
    verdicts = verify_chain(chain)
    assert all(v.ok for v in getattr(verdicts, "verdicts", verdicts)); n += len(chain)  # one verify returns a Report
print(n / (time.perf_counter() - t0))
"""

NODE_LOOP = """
import {{ readFileSync }} from "node:fs";
import {{ verifyChain }} from {receipts!r};
const chain = JSON.parse(readFileSync({vectors!r}, "utf8")).cases[0].receipts;
let n = 0, t = 0; const t0 = process.hrtime.bigint();
while (t < {seconds}) {{ if (!verifyChain(chain).every((v) => v.ok)) throw new Error("invalid"); n += chain.length; t = Number(process.hrtime.bigint() - t0) / 1e9; }}
console.log(n / t);
"""


def python(module: str, src: Path) -> float:
    code = PY_LOOP.format(src=str(src), module=module, vectors=str(REPO / "sdk/vectors/receipts.json"), seconds=SECONDS)
    return float(subprocess.run([*PIN, sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout)


def typescript() -> float:
    code = NODE_LOOP.format(receipts=str(REPO / "sdk/typescript/src/receipts.js"), vectors=str(REPO / "sdk/vectors/receipts.json"), seconds=SECONDS)
    return float(subprocess.run([*PIN, "node", "--input-type=module", "-e", code], capture_output=True, text=True, check=True).stdout)


def go() -> float:
    env = {"GOFLAGS": "-mod=mod", "GOPROXY": "off", "GO111MODULE": "on", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(Path.home())}
    out = subprocess.run([*PIN, "go", "test", "-run", "NONE", "-bench", "VerifyChain", "-benchtime", f"{SECONDS}s", "-cpu", "1"],
                         cwd=REPO / "sdk/go", capture_output=True, text=True, check=True, env=env).stdout  # fmt: skip
    ns_per_chain = float(re.search(r"BenchmarkVerifyChain\S*\s+\d+\s+([\d.]+) ns/op", out).group(1))
    return 6 / (ns_per_chain * 1e-9)


def rust() -> float:
    """sdk/rust/examples/bench.rs (release build; its loop runs 3 s)."""
    subprocess.run(["cargo", "build", "--offline", "--release", "--example", "bench"], cwd=REPO / "sdk/rust", capture_output=True, check=True)
    out = subprocess.run([*PIN, str(REPO / "sdk/rust/target/release/examples/bench")], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def main() -> None:
    runs = {
        "one verify (backend/trust/verify.py)": lambda: python("backend.trust.verify", REPO),
        "sdk/python": lambda: python("one_sdk.receipts", REPO / "sdk/python/src"),
        "sdk/typescript (node:crypto)": typescript,
        "sdk/go (crypto/ed25519)": go,
        "sdk/rust (ring)": rust,
    }
    results: dict[str, float | str] = {}
    for name, run in runs.items():
        try:
            results[name] = round(run())
        except (subprocess.CalledProcessError, FileNotFoundError, AttributeError, ValueError) as exc:
            results[name] = f"not run: {str(exc).splitlines()[0][:120]}"
    base = results["one verify (backend/trust/verify.py)"]
    print(f"{'implementation':40} {'receipts/s':>11}  vs one verify")
    for name, value in results.items():
        ratio = f"{value / base:.2f}x" if isinstance(value, int) and isinstance(base, int) else ""
        print(f"{name:40} {value if isinstance(value, int) else '-':>11}  {ratio or value if not isinstance(value, int) else ratio}")
    out = REPO / "bench/results" / f"sdk-verify-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.write_text(json.dumps({"seconds_each": SECONDS, "pinned_to_core_0": bool(PIN), "receipts_per_s": results}, indent=2) + "\n")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
