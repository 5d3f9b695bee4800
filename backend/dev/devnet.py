"""Start a whole local network: the coordinator + UI (Reflex prod, one port) and node workers.

`one up` (what `make run` calls) and the end-to-end tests both use this, so the tests exercise the
same start-up a newcomer runs. The settings it generates go to data_dir/network.env, which every `one`
command and the coordinator read. Each child runs in a process group of its own, handed to a watchdog
process that stops every group still registered when we die, however we die (SIGKILL included).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backend.chain import Deployment
from backend.chain.devchain import DEMO_WALLETS, DevChain, dev_accounts
from backend.config import local_url, network_env_path
from backend.dev.npm_tools import REPO, npm_tool
from backend.dev.web_assets import prepare_assets
from backend.protocol.signing import write_private_file


def bun_path() -> str:
    """bun from the npm registry; Reflex 0.10 needs it over this machine's Node 20."""
    return npm_tool("bun")


# The coordinator + UI: Reflex prod serves the frontend build, API and websockets on one port.
REFLEX_PROD = [sys.executable, "-m", "reflex", "run", "--env", "prod", "--single-port", "--loglevel", "info"]


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
    host: str = "127.0.0.1"  # the coordinator's listening address (ONE_HOST): loopback unless told otherwise
    public_url: str = ""  # ONE_PUBLIC_URL, written to network.env when given
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    chain: DevChain | None = None
    chain_env: dict[str, str] = field(default_factory=dict)
    coordinator_extra_env: dict[str, str] = field(default_factory=dict)  # kept for restarts
    worker_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)  # ONE_* settings the workers read (tests: fetch allowlist)
    worker_urls: dict[str, str] = field(default_factory=dict)  # the coordinator each worker connects to
    # Settings every process of this network shares, written to network.env (scale mode: database, Redis, broker).
    network_settings: dict[str, str] = field(default_factory=dict)
    watchdog: subprocess.Popen | None = None

    def start_chain(self, port: int, holders: dict[str, int] | None = None) -> Deployment:
        """anvil with the test tokens deployed; its settings go to network.env, where the coordinator started
        after this (and every `one` command) reads them. `holders`: wallets given whole $ONE before today's
        Included epoch began (see DevChain.ensure_deployed)."""
        self.chain = DevChain(port=port, data_dir=self.data_dir / "chain", on_start=self.watch)
        self.chain.start()
        deployment = self.chain.ensure_deployed(holders)
        deployer, treasury, *demo, dev_operator = dev_accounts(3 + DEMO_WALLETS)
        treasury_key_file = Path(self.data_dir).resolve() / "treasury.key"
        # The treasury signs with anvil's public dev key of account 1, read from a 0600 file as production does.
        write_private_file(treasury_key_file, "0x" + bytes(treasury.key).hex() + "\n")
        self.chain_env = {
            "ONE_CHAIN_RPC_URL": self.chain.rpc_url,
            "ONE_CHAIN_ID": str(deployment.chain_id),
            "ONE_ONE_TOKEN_ADDRESS": deployment.one_token,
            "ONE_USDC_TOKEN_ADDRESS": deployment.usdc_token,
            "ONE_TREASURY_ADDRESS": deployment.treasury,
            "ONE_ANCHOR_ADDRESS": deployment.anchor,
            "ONE_POOL_ADDRESS": deployment.pool,
            "ONE_TREASURY_KEY_FILE": str(treasury_key_file),
            # anvil unlocks its dev accounts: the demo wallets back the web app's dev wallet. The deployer operates
            # (from the CLI), and so does a dev operator wallet the page offers: it has no powers on the chain, so
            # the public dev RPC may sign for it, never for the deployer.
            "ONE_DEV_WALLETS": json.dumps([a.address for a in (*demo, dev_operator)]),
            "ONE_OPERATORS": json.dumps([deployer.address, dev_operator.address]),
        }
        self.write_network_env()
        return deployment

    def write_network_env(self) -> None:
        """data_dir/network.env (mode 0600): what this network generated, as settings, for every `one` command."""
        settings = {**self.chain_env, **self.network_settings, "ONE_PORT": str(self.port)}
        if self.public_url:
            settings["ONE_PUBLIC_URL"] = self.public_url
        # Single-quoted, so dotenv takes the JSON lists literally (no value here holds a quote).
        write_private_file(network_env_path(self.data_dir), "".join(f"{k}='{v}'\n" for k, v in settings.items()))

    @property
    def url(self) -> str:
        return local_url(self.host, self.port)

    def watch(self, proc: subprocess.Popen) -> None:
        """Hand a child's process group to the watchdog (started on first use), which stops the group if we die
        without stopping it. It learns of our death from its stdin: the kernel closes our end of that pipe."""
        if self.watchdog is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / "watchdog.log", "ab") as log:
                self.watchdog = subprocess.Popen([sys.executable, "-m", "backend.dev.devnet"], cwd=REPO, stdin=subprocess.PIPE,
                                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self._tell_watchdog(proc.pid)

    def _tell_watchdog(self, pgid: int) -> None:
        """A group to watch, or (negative) one we stopped ourselves."""
        if self.watchdog is not None and self.watchdog.stdin is not None:
            try:
                self.watchdog.stdin.write(f"{pgid}\n".encode())
                self.watchdog.stdin.flush()
            except (BrokenPipeError, ValueError):  # the watchdog is gone, or we already closed its stdin
                pass

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start a child in a process group of its own (its children stop with it), logging to log_dir/<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.watch(proc)
        self.processes[name] = proc
        return proc

    def start_coordinator(self, timeout_s: float = 300, extra_env: dict[str, str] | None = None) -> None:
        """Start (or restart, with the same settings) the coordinator + UI and wait until it answers."""
        if extra_env is not None:
            self.coordinator_extra_env = dict(extra_env)
        prepare_assets()
        self.spawn("coordinator", [*REFLEX_PROD, "--backend-host", self.host],
                   coordinator_env(self.port, self.data_dir, {"ONE_HOST": self.host, **self.coordinator_extra_env}))  # fmt: skip
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float, name: str = "coordinator", url: str | None = None) -> None:
        """Wait until the coordinator `name` (at `url`, by default ours) answers the API and the UI."""
        url = url or self.url
        deadline = time.monotonic() + timeout_s
        proc = self.processes[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.log_dir / f'{name}.log'}")
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200 and httpx.get(url + "/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{name} not ready on {url} after {timeout_s}s")

    def build_models(self, models_dir: Path | None = None, timeout_s: float = 300) -> None:
        """Build the tiny test models the workers serve by default, once, before workers start (two building into one
        folder at once would race). The worker's own command does it: the coordinator imports no worker code."""
        out = models_dir or (self.data_dir / "models")
        subprocess.run([sys.executable, "-m", "gpu_worker.cli", "build-models", "--out", str(out)], cwd=REPO, check=True,
                       timeout=timeout_s, stdout=subprocess.DEVNULL)  # fmt: skip

    def start_worker(self, name: str, *args: str, models_dir: Path | None = None, threads: int = 1,
                     coordinator: str | None = None) -> subprocess.Popen:  # fmt: skip
        """A node worker process with its own key file under the data dir, connected to `coordinator` (default: the one
        it had before a restart, else ours).

        One torch thread by default: several CPU workers on one small box otherwise fight over cores
        (measured here: two 2-thread workers ran 25x slower than one).
        """
        args = args or self.worker_args.get(name, ())  # a restart keeps the worker's options (payout address...)
        self.worker_args[name] = args
        self.worker_urls[name] = coordinator or self.worker_urls.get(name, self.url)
        cmd = [
            sys.executable, "-m", "backend.cli", "worker",
            "--coordinator", self.worker_urls[name],
            "--key-file", str(self.data_dir / f"{name}.key"),
            "--models-dir", str(models_dir or (self.data_dir / "models")),
            "--threads", str(threads),
            *args,
        ]  # fmt: skip
        return self.spawn(name, cmd, {**os.environ, **self.worker_env, "PYTHONUNBUFFERED": "1"})

    def stop(self, *names: str, sig: int = signal.SIGTERM, timeout_s: float = 15) -> None:
        """Stop children, together, and everything in their process groups (the coordinator's granian worker too)."""
        procs = [proc for name in names if (proc := self.processes.pop(name, None)) is not None]
        stop_groups({proc.pid: proc for proc in procs}, sig, timeout_s)
        for proc in procs:
            self._tell_watchdog(-proc.pid)

    def stop_rank(self, name: str) -> int:
        """When stop_all stops the process `name`: the coordinator after the workers, so none reconnects to it."""
        return 1 if name == "coordinator" else 0

    def stop_all(self) -> None:
        """Rank by rank (stop_rank), each rank's processes at once: a worker takes seconds to leave."""
        for rank in sorted({self.stop_rank(name) for name in self.processes}):
            self.stop(*[name for name in self.processes if self.stop_rank(name) == rank])
        if self.chain is not None:
            self.chain.stop()
            if self.chain.process is not None:
                self._tell_watchdog(-self.chain.process.pid)
        if self.watchdog is not None:  # nothing left to watch: EOF lets it exit
            self.watchdog.stdin.close()
            self.watchdog.wait(10)
            self.watchdog = None


def stop_groups(groups: dict[int, subprocess.Popen | None], sig: int = signal.SIGTERM, grace_s: float = 15) -> None:
    """Signal whole process groups, wait until they are gone and SIGKILL what is left after grace_s. `groups` maps
    each group id to its leader's Popen when the leader is our child (we reap it: a zombie still counts)."""
    def alive(pgid: int, leader: subprocess.Popen | None) -> bool:
        if leader is not None:
            leader.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a process of another user took over the id: not ours any more
            return False
        return True

    def kill(pgid: int, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):  # gone meanwhile
            os.killpg(pgid, sig)

    for pgid in groups:
        kill(pgid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(pgid, leader) for pgid, leader in groups.items()):
        time.sleep(0.1)
    for pgid, leader in groups.items():
        if alive(pgid, leader):
            kill(pgid, signal.SIGKILL)
        if leader is not None:
            leader.wait(5)


def watchdog() -> None:
    """`python -m backend.dev.devnet`, started by Devnet.watch: read process groups from stdin (one a line; a negative
    one was stopped already) until EOF, which comes when our parent is gone (Ctrl-C, SIGTERM, SIGKILL, a
    closed terminal) or done; then stop every group still listed. Its own session keeps terminal signals off it."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        pgid = int(line)
        if pgid > 0:
            groups.add(pgid)
        else:
            groups.discard(-pgid)
    stop_groups(dict.fromkeys(groups), grace_s=5)


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


if __name__ == "__main__":
    watchdog()
