"""Streaming relay: tokens per second through one coordinator, and the coordinator's CPU time per token.

    .venv/bin/python bench/relay.py [--quick]

The instant upstream (bench/instant_upstream.py) streams `pace 0 <words> 0`: a long answer with no gaps, so the
node worker streams as fast as it can and the coordinator relays every delta (checking, assembling and digesting
it, then writing the receipt). Measured in the same run:
  direct   the same streams read straight from the upstream (the baseline: what the client and upstream cost alone)
  one      client -> coordinator -> WebSocket -> node worker (OpenAI-HTTP engine) -> upstream
For each: tokens/s delivered to the clients (content chunks counted as they arrive), and for `one` the CPU seconds
the coordinator's process group (and the worker's) spent, as tokens per CPU-second: what one core relays.
Results go to bench/results/relay-<utc time>.json. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.dev.devnet import Devnet  # noqa: E402
from bench.gateway import start_network  # noqa: E402

console = Console()
TARGET_TOKENS_PER_S = 100_000
_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (the coordinator's granian worker too)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


async def _read_stream(client: httpx.AsyncClient, url: str, words: int) -> int:
    """One streamed chat; the number of content chunks received, in order (checked: w0, w1, ...)."""
    body = {"model": "bench-model", "messages": [{"role": "user", "content": f"pace 0 {words} 0"}], "max_tokens": words + 16, "stream": True}
    count = 0
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if content != f"w{count} ":
                        raise RuntimeError(f"token {count} arrived as {content!r}")
                    count += 1
    if count != words:
        raise RuntimeError(f"{count} of {words} tokens arrived")
    return count


async def _relay(url: str, streams: int, words: int, rounds: int) -> tuple[int, float]:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=streams)) as client:
        await _read_stream(client, url, 50)  # warm the connection and caches
        started = time.perf_counter()
        tokens = 0
        for _ in range(rounds):
            tokens += sum(await asyncio.gather(*(_read_stream(client, url, words) for _ in range(streams))))
        return tokens, time.perf_counter() - started


def measure(url: str, streams: int, words: int, rounds: int, groups: dict[str, int]) -> dict:
    """Tokens/s at the clients, and CPU seconds per process group named in `groups` while they streamed."""
    before = {name: group_cpu_s(pgid) for name, pgid in groups.items()}
    tokens, elapsed = asyncio.run(_relay(url, streams, words, rounds))
    cpu = {name: group_cpu_s(pgid) - before[name] for name, pgid in groups.items()}
    result = {"tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed}
    for name, seconds in cpu.items():
        result[f"{name}_cpu_s"] = seconds
        result[f"tokens_per_{name}_cpu_s"] = tokens / seconds if seconds else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens (a smoke run)")
    args = parser.parse_args()
    streams, words, rounds = (4, 2000, 1) if args.quick else (8, 3000, 3)
    work = Path(tempfile.mkdtemp(prefix="one-relay-"))
    procs: list[subprocess.Popen] = []
    net: Devnet | None = None
    try:
        net, upstream = start_network(work, procs)
        groups = {"coordinator": net.processes["coordinator"].pid, "worker": net.processes["bench-worker"].pid, "upstream": procs[0].pid}
        results = {}
        with console.status("direct"):
            results["direct"] = measure(upstream + "/chat/completions", streams, words, rounds, {"upstream": procs[0].pid})
        with console.status("one"):
            results["one"] = measure(net.url + "/v1/chat/completions", streams, words, rounds, groups)
        _report(results, {"streams": streams, "words": words, "rounds": rounds}, work)
    finally:
        if net is not None:
            net.stop_all()
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _report(results: dict, shape: dict, work: Path) -> None:
    table = Table("path", "tokens", "seconds", "tokens/s", "vs direct", "coordinator CPU s", "tokens / coordinator CPU-s", "worker CPU s")
    direct = results["direct"]["tokens_per_s"]
    for name, r in results.items():
        table.add_row(name, str(r["tokens"]), f"{r['seconds']:.2f}", f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / direct:.2f}x",
                      _f(r.get("coordinator_cpu_s")), _f(r.get("tokens_per_coordinator_cpu_s"), 0), _f(r.get("worker_cpu_s")))  # fmt: skip
    console.print(table)
    per_core = results["one"].get("tokens_per_coordinator_cpu_s")
    if per_core:
        console.print(f"one coordinator core relays {per_core:,.0f} tokens/s (target >= {TARGET_TOKENS_PER_S:,}: ratio {per_core / TARGET_TOKENS_PER_S:.2f})")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"relay-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"results": results, "shape": shape, "cores": os.cpu_count()}, indent=1))
    console.print(f"results: {path}   logs: {work}")


def _f(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


if __name__ == "__main__":
    main()
