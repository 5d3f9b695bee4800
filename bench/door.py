"""Oversized requests against a whole local network: memory and service before and after, same run.

    .venv/bin/python bench/door.py [--oversized 1000]

Starts the network as `one up` does (coordinator + UI, one CPU node worker with the tiny models), measures the
resident memory of the coordinator's process tree and of the worker, then sends one 40 MB key-less chat
request and N oversized ones (half with a Content-Length, half streamed without one), and measures again.
Target (issue "Ready to deploy"): 413 every time, each side's memory grows by < 50 MB, and a normal chat
still answers. Latency of a normal chat before vs after is printed as a ratio. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.dev.devnet import Devnet, wait_for_workers  # noqa: E402
from tests.conftest import free_port  # noqa: E402

console = Console()
CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
FORTY_MB = 40 * 2**20


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the coordinator is reflex -> granian worker)."""
    pids, total = [pid], 0
    while pids:
        p = pids.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * 4096
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(c) for c in children)
    return total / 2**20


def chat_latency_ms(url: str, n: int = 10) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=60).status_code == 200
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def streamed(size: int, chunk: int = 1 << 20):
    sent = 0
    while sent < size:
        yield b"a" * min(chunk, size - sent)
        sent += chunk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--oversized", type=int, default=1000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="one-bench-door-"))
    net = Devnet(port=free_port(), data_dir=data_dir, log_dir=data_dir / "logs")
    try:
        from gpu_worker.tiny_models import build_all

        build_all(data_dir / "models")
        net.start_coordinator(extra_env={"ONE_RATE_LIMIT_OPEN": "1000000"})
        worker = net.start_worker("bench-worker", "--payout-address", "0x")
        wait_for_workers(net.url, 1)
        coordinator = net.processes["coordinator"].pid
        before_latency = chat_latency_ms(net.url)
        rss0 = (tree_rss_mb(coordinator), tree_rss_mb(worker.pid))
        statuses = []
        body = b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "' + b"a" * FORTY_MB + b'"}]}'
        statuses.append(httpx.post(net.url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"}, timeout=120).status_code)
        rss1 = (tree_rss_mb(coordinator), tree_rss_mb(worker.pid))
        with httpx.Client(timeout=120) as client:
            for i in range(args.oversized):
                if i % 2:
                    reply = client.post(net.url + "/v1/chat/completions", content=streamed(9 * 2**20), headers={"content-type": "application/json"})
                else:
                    reply = client.post(net.url + "/v1/chat/completions", content=body[: 9 * 2**20], headers={"content-type": "application/json"})
                statuses.append(reply.status_code)
        rss2 = (tree_rss_mb(coordinator), tree_rss_mb(worker.pid))
        after_latency = chat_latency_ms(net.url)
        table = Table("measure", "coordinator", "worker")
        table.add_row("RSS before (MB)", f"{rss0[0]:.0f}", f"{rss0[1]:.0f}")
        table.add_row("growth after one 40 MB request (MB)", f"{rss1[0] - rss0[0]:+.0f}", f"{rss1[1] - rss0[1]:+.0f}")
        table.add_row(f"growth after {args.oversized} more oversized (MB)", f"{rss2[0] - rss0[0]:+.0f}", f"{rss2[1] - rss0[1]:+.0f}")
        console.print(table)
        answered = {s: statuses.count(s) for s in set(statuses)}
        console.print(f"statuses: {answered}   (target: all 413)")
        console.print(f"growth vs the 50 MB target: coordinator {(rss2[0] - rss0[0]) / 50:.2f}x, worker {(rss2[1] - rss0[1]) / 50:.2f}x")
        console.print(f"normal chat p50 before {before_latency:.0f} ms, after {after_latency:.0f} ms: ratio {after_latency / before_latency:.2f}")
    finally:
        net.stop_all()


if __name__ == "__main__":
    main()
