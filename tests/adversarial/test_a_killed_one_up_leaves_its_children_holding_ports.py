"""Whatever stops `one up` (make run) stops everything it started: anvil, the coordinator with its granian worker,
the node workers. None keeps running or holds a port, even when `one up` itself is SIGKILLed or its terminal
closes (SIGHUP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port
from tests.processes import alive, cmdline, descendants, listeners, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_nothing_one_up_started_outlives_it(sig, tmp_path, tiny_models, test_output):
    port, chain_port = free_port(), free_port()
    (tmp_path / "models").symlink_to(tiny_models)  # built once for the session: `one up` skips building them
    log = test_output / f"one-up-{sig.name}.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "backend.cli", "up", "--port", str(port), "--chain-port", str(chain_port), "--workers", "1"],
                              cwd=REPO, env={**os.environ, "ONE_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"},
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    family: set[int] = set()
    try:

        def everything_started() -> set[int]:
            assert up.poll() is None, log.read_text()[-3000:]
            tree = descendants(up.pid)
            worker = any(" backend.cli worker " in cmdline(pid) for pid in tree)
            return tree if worker and listeners(port) and listeners(chain_port) else set()

        family = wait_for(everything_started, 300, 0.5)
        assert family, f"`one up` did not start its network in time: {log.read_text()[-3000:]}"
        family |= descendants(up.pid)  # the coordinator's granian worker and the like, started by now
        up.send_signal(sig)
        up.wait(60)
        gone = wait_for(lambda: not [p for p in family if alive(p)] and not listeners(port) and not listeners(chain_port), 20)
        left = {pid: cmdline(pid) for pid in family if alive(pid)}
        assert gone, f"still running after `one up` got {sig.name}: {left}; listening: {listeners(port)} {listeners(chain_port)}"
    finally:
        for pid in family | descendants(up.pid) | {up.pid}:  # whatever a failure left behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
