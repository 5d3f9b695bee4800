"""Gateway overhead: ONE's coordinator vs calling the engine directly vs a LiteLLM proxy, same upstream, same run.

    make bench            (or: .venv/bin/python bench/gateway.py [--quick])

Paths measured, all in front of one instant OpenAI-compatible upstream (bench/instant_upstream.py):
  direct   client -> upstream
  one      client -> coordinator (reflex prod, one port) -> WebSocket -> node worker (OpenAI-HTTP engine) -> upstream
  litellm  client -> LiteLLM proxy (pinned in bench/requirements-litellm.txt, offline flags) -> upstream
For each: p50/p99 latency and req/s at concurrency 1 and 32, stream and non-stream. Added latency is
the path's p50 minus direct's p50. Printed as ratios against the targets, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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

from backend.dev.devnet import Devnet, wait_for_workers  # noqa: E402
from tests.conftest import free_port  # noqa: E402

console = Console()
BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}
LITELLM = REPO / ".venv-bench" / "bin" / "litellm"
# The benchmark's coordinator: one model, and no queue or key-less rate cap (the load is one client at thousands of
# requests a minute; the open-caller limit of 120 a minute would turn most of it into 429s).
COORDINATOR_ENV = {"ONE_CATALOG_PATH": str(REPO / "bench" / "catalog.yaml"), "ONE_MAX_QUEUE_DEPTH": "100000", "ONE_RATE_LIMIT_OPEN": "100000000"}


def _wait_http(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not come up")


def start_upstream(procs: list[subprocess.Popen]) -> str:
    """Start the instant upstream on a free port (appended to `procs`); its OpenAI base URL once it answers."""
    port = free_port()
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "bench.instant_upstream:app"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ))  # fmt: skip
    upstream = f"http://127.0.0.1:{port}/v1"
    _wait_http(upstream + "/models")
    return upstream


def start_network(work: Path, procs: list[subprocess.Popen]) -> tuple[Devnet, str]:
    """The instant upstream, a coordinator (bench catalog, no key-less limit) and one node worker driving the upstream
    through the OpenAI-HTTP engine: the `one` path every gateway benchmark measures. (devnet, upstream base URL)."""
    net = Devnet(port=free_port(), data_dir=work / "data", log_dir=work / "logs")
    upstream = start_upstream(procs)
    with console.status("starting the coordinator and a worker"):
        net.start_coordinator(extra_env=COORDINATOR_ENV)
        net.start_worker("bench-worker", "--engine", f"openai:bench-model={upstream}#bench-model", "--slots", "256")
        wait_for_workers(net.url, 1)
    return net, upstream


async def _one_request(client: httpx.AsyncClient, url: str, stream: bool) -> float:
    started = time.perf_counter()
    if stream:
        async with client.stream("POST", url, json={**BODY, "stream": True}) as response:
            response.raise_for_status()
            async for _ in response.aiter_lines():
                pass
    else:
        (await client.post(url, json=BODY)).raise_for_status()
    return time.perf_counter() - started


async def _load(url: str, stream: bool, concurrency: int, total: int, cap_s: float) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for _ in range(min(concurrency, 5)):  # warm connections and caches
            await _one_request(client, url, stream)
        remaining = total
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.perf_counter() - started < cap_s:
                remaining -= 1
                try:
                    latencies.append(await _one_request(client, url, stream))
                except httpx.HTTPError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args()
    n1, n32, cap = (60, 300, 10.0) if args.quick else (300, 2000, 30.0)
    work = Path(tempfile.mkdtemp(prefix="one-bench-"))
    procs: list[subprocess.Popen] = []
    net: Devnet | None = None
    try:
        net, upstream = start_network(work, procs)
        targets = {"direct": upstream + "/chat/completions", "one": net.url + "/v1/chat/completions"}
        if LITELLM.exists():
            litellm_port = free_port()
            config = work / "litellm.yaml"
            config.write_text(json.dumps({"model_list": [{"model_name": "bench-model", "litellm_params": {
                "model": "openai/bench-model", "api_base": upstream, "api_key": "unused"}}]}))  # fmt: skip
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
            procs.append(subprocess.Popen(
                [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(litellm_port), "--num_workers", "1"],
                env=env, stdout=open(work / "litellm.log", "wb"), stderr=subprocess.STDOUT,
            ))  # fmt: skip
            with console.status("starting LiteLLM"):
                _wait_http(f"http://127.0.0.1:{litellm_port}/health/liveliness")
            targets["litellm"] = f"http://127.0.0.1:{litellm_port}/v1/chat/completions"
        else:
            console.print(f"[yellow]LiteLLM not installed at {LITELLM}: run `make bench` to set it up; measuring without it")
        results: dict = {}
        for stream in (False, True):
            for concurrency, total in ((1, n1), (32, n32)):
                for name, url in targets.items():
                    key = f"{name}/{'stream' if stream else 'json'}/c{concurrency}"
                    with console.status(key):
                        results[key] = asyncio.run(_load(url, stream, concurrency, total, cap))
        _report(results, work)
    finally:
        if net is not None:
            net.stop_all()
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _report(results: dict, work: Path) -> None:
    table = Table("path", "mode", "c", "requests", "errors", "p50 ms", "p99 ms", "req/s", "added p50 ms")
    for key, r in results.items():
        name, mode, c = key.split("/")
        direct = results.get(f"direct/{mode}/{c}", {})
        added = r["p50_ms"] - direct["p50_ms"] if r["p50_ms"] is not None and direct.get("p50_ms") is not None else None
        table.add_row(name, mode, c[1:], str(r["requests"]), str(r["errors"]), _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r["rps"], 0), _f(added))
    console.print(table)
    for mode in ("json", "stream"):
        one1, direct1 = results.get(f"one/{mode}/c1"), results.get(f"direct/{mode}/c1")
        if one1 and direct1 and one1["p50_ms"] is not None:
            added, added99 = one1["p50_ms"] - direct1["p50_ms"], one1["p99_ms"] - direct1["p99_ms"]
            console.print(f"{mode}: ONE adds {added:.2f} ms p50 (target <= 1 ms) and {added99:.2f} ms p99 (target <= 3 ms) at c=1")
        one32, lite32 = results.get(f"one/{mode}/c32"), results.get(f"litellm/{mode}/c32")
        if one32 and lite32 and lite32["rps"]:
            direct32 = results[f"direct/{mode}/c32"]
            console.print(f"{mode}: ONE serves {one32['rps'] / direct32['rps']:.2f}x direct's req/s (target >= 0.5x) and "
                          f"{one32['rps'] / lite32['rps']:.2f}x LiteLLM's (target >= 5x) at c=32")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"gateway-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"results": results, "cores": os.cpu_count()}, indent=1))
    console.print(f"results: {path}   logs: {work}")


def _f(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
