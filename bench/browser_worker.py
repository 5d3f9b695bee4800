"""Browser worker speed: MiniLM sentences/s served by a headless Chromium tab (Pyodide + WebGPU on
SwiftShader here) vs sentence-transformers on this machine's CPU, and GFLOP/s of the WGSL matmul kernel
vs a plain JS triple loop in the same browser. Same run, same sentences; reported, never asserted.

    .venv/bin/python bench/browser_worker.py [--sentences 64] [--n 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=16)
    parser.add_argument("--n", type=int, default=256, help="matmul size n x n x n")
    args = parser.parse_args()
    console = Console()

    from playwright.sync_api import sync_playwright
    from sentence_transformers import SentenceTransformer

    from backend.dev.devnet import Devnet
    from gpu_worker.engines.embeddings import minilm_path
    from tests.conftest import free_port
    from tests.e2e.test_browser_worker import join
    from tests.e2e.test_web_app import CHROMIUM, CHROMIUM_ARGS

    texts = [f"Sentence {i}: workers sign receipts, the coordinator links them, anyone can verify." for i in range(args.sentences)]
    with tempfile.TemporaryDirectory() as tmp:
        net = Devnet(port=free_port(), data_dir=Path(tmp) / "data", log_dir=Path(tmp) / "logs")
        try:
            net.start_chain(free_port())
            with console.status("starting the coordinator"):
                net.start_coordinator()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--enable-unsafe-webgpu"])
                with console.status("joining a browser worker"):
                    page, _key = join(browser, net.url)
                post = lambda batch: httpx.post(net.url + "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": batch}, timeout=600)  # noqa: E731
                post(texts[:2]).raise_for_status()  # warm-up: kernels compiled, weights resident
                t = time.perf_counter()
                post(texts).raise_for_status()
                browser_rate = len(texts) / (time.perf_counter() - t)
                matmul = page.evaluate(
                    """n => new Promise(resolve => { const w = new Worker('/web/browser-worker.js', {type: 'module'});
                    w.onmessage = e => { if (e.data.bench) { resolve(e.data.bench); w.terminate(); } };
                    w.postMessage({cmd: 'bench', n}); })""",
                    args.n,
                )
                browser.close()
        finally:
            net.stop_all()

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    model.encode(texts[:2])
    t = time.perf_counter()
    model.encode(texts, batch_size=32)
    cpu_rate = len(texts) / (time.perf_counter() - t)

    table = Table("measure", "browser worker", "baseline", "ratio", title="browser worker (same box, same run)")
    table.add_row(f"MiniLM sentences/s ({len(texts)} sentences)", f"{browser_rate:.1f}", f"{cpu_rate:.1f} (server CPU PyTorch)", f"{browser_rate / cpu_rate:.2f}x")
    table.add_row(f"matmul GFLOP/s ({args.n}^3)", f"{matmul['gpu_gflops']:.2f} (WGSL)", f"{matmul['js_gflops']:.2f} (plain JS loop)", f"{matmul['gpu_gflops'] / matmul['js_gflops']:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
