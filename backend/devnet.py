"""Start a whole local network: the coordinator + UI (Reflex prod, one port) and node workers.

`one up` (what `make run` calls) and the end-to-end tests both use this, so the tests exercise the
same start-up a newcomer runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backend.chain import Deployment
from backend.chain.devchain import DEMO_WALLETS, DevChain, dev_accounts
from backend.npm_tools import REPO, npm_tool
from backend.web_assets import prepare_assets


def bun_path() -> str:
    """bun from the npm registry; Reflex 0.10 needs it over this machine's Node 20."""
    return npm_tool("bun")


def coordinator_env(port: int, data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ONE_PORT": str(port),
            "ONE_DATA_DIR": str(Path(data_dir).resolve()),
            "REFLEX_BUN_PATH": bun_path(),
            "REFLEX_CHECK_LATEST_VERSION": "0",
            "REFLEX_TELEMETRY_ENABLED": "false",
            "GRANIAN_WORKERS": "1",  # one process: the scheduler and worker sockets live in it
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Devnet:
    port: int
    data_dir: Path
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    chain: DevChain | None = None
    chain_env: dict[str, str] = field(default_factory=dict)
    coordinator_extra_env: dict[str, str] = field(default_factory=dict)  # kept for restarts
    worker_args: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def start_chain(self, port: int, holders: dict[str, int] | None = None) -> Deployment:
        """anvil with the test tokens deployed; the coordinator started after this is pointed at it. `holders`:
        wallets given whole $ONE before today's Included epoch began (see DevChain.ensure_deployed)."""
        self.chain = DevChain(port=port, data_dir=self.data_dir / "chain")
        self.chain.start()
        deployment = self.chain.ensure_deployed(holders)
        self.chain_env = {
            "ONE_CHAIN_RPC_URL": self.chain.rpc_url,
            "ONE_CHAIN_ID": str(deployment.chain_id),
            "ONE_ONE_TOKEN_ADDRESS": deployment.one_token,
            "ONE_USDC_TOKEN_ADDRESS": deployment.usdc_token,
            "ONE_TREASURY_ADDRESS": deployment.treasury,
            "ONE_ANCHOR_ADDRESS": deployment.anchor,
            "ONE_TREASURY_KEY": "0x" + bytes(dev_accounts(2)[1].key).hex(),  # anvil's public dev key for account 1
            # anvil unlocks its dev accounts: the demo wallets back the web app's dev wallet, the deployer operates.
            "ONE_DEV_WALLETS": json.dumps([a.address for a in dev_accounts(2 + DEMO_WALLETS)[2:]]),
            "ONE_OPERATORS": json.dumps([dev_accounts(1)[0].address]),
        }
        return deployment

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_coordinator(self, timeout_s: float = 300, extra_env: dict[str, str] | None = None) -> None:
        """Start (or restart, with the same settings) the coordinator + UI and wait until it answers."""
        if extra_env is not None:
            self.coordinator_extra_env = dict(extra_env)
        prepare_assets()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / "coordinator.log", "ab")
        self.processes["coordinator"] = subprocess.Popen(
            [sys.executable, "-m", "reflex", "run", "--env", "prod", "--single-port", "--loglevel", "info"],
            cwd=REPO,
            env=coordinator_env(self.port, self.data_dir, {**self.chain_env, **self.coordinator_extra_env}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        proc = self.processes["coordinator"]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"coordinator exited with {proc.returncode}; see {self.log_dir / 'coordinator.log'}")
            try:
                if httpx.get(self.url + "/v1/models", timeout=2).status_code == 200 and httpx.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"coordinator not ready on {self.url} after {timeout_s}s")

    def start_worker(self, name: str, *args: str, models_dir: Path | None = None, threads: int = 1) -> subprocess.Popen:
        """A node worker process with its own key file under the data dir.

        One torch thread by default: several CPU workers on one small box otherwise fight over cores
        (measured here: two 2-thread workers ran 25x slower than one).
        """
        args = args or self.worker_args.get(name, ())  # a restart keeps the worker's options (payout address...)
        self.worker_args[name] = args
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        cmd = [
            sys.executable, "-m", "backend.cli", "worker",
            "--coordinator", self.url,
            "--key-file", str(self.data_dir / f"{name}.key"),
            "--models-dir", str(models_dir or (self.data_dir / "models")),
            "--threads", str(threads),
            *args,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.processes[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 15) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for name in [n for n in self.processes if n != "coordinator"] + ["coordinator"]:
            self.stop(name)
        if self.chain is not None:
            self.chain.stop()


def wait_for_workers(url: str, count: int, timeout_s: float = 120) -> list[dict]:
    """Block until the coordinator lists at least `count` workers."""
    deadline = time.monotonic() + timeout_s
    workers: list[dict] = []
    while time.monotonic() < deadline:
        try:
            workers = httpx.get(url + "/one/workers", timeout=2).json()["workers"]
            if len(workers) >= count:
                return workers
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"only {len(workers)} of {count} workers registered at {url}")
