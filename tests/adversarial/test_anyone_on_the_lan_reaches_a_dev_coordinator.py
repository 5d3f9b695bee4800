"""Attack: a neighbour on the same network (café Wi-Fi, office LAN) talks to a developer's `make run`.

A dev coordinator runs with open access (requests without a key run on the developer's workers) and the dev
wallet's RPC (/one/dev/rpc signs transactions for the funded demo wallets). Reflex's default listening
address is 0.0.0.0, so every interface of the machine served it. It now listens on ONE_HOST, 127.0.0.1
unless told otherwise: checked in the kernel's socket table (so the test can fail on a loopback-only
machine too) and by connecting to every other address this machine has.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from tests.conftest import free_port
from tests.processes import listeners, non_loopback_addresses

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]


def test_the_coordinator_devnet_starts_listens_on_loopback_only(tmp_path, test_output):
    from backend.dev.devnet import Devnet

    net = Devnet(port=free_port(), data_dir=tmp_path, log_dir=test_output / "logs-loopback")
    try:
        net.start_coordinator()
        bound = listeners(net.port)
        assert bound and all(ipaddress.ip_address(address).is_loopback for address in bound), f"listening on {bound}"
        for address in non_loopback_addresses():
            with pytest.raises(OSError):  # refused: nothing listens there
                socket.create_connection((address, net.port), timeout=3).close()
    finally:
        net.stop_all()
