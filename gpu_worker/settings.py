"""The node worker's settings, read from its own environment.

They carry the names of the coordinator's settings of the same meaning (`ONE_MAX_IMAGE_BYTES`,
`ONE_FETCH_ALLOW_NETWORKS`, a JSON list of CIDRs), so one environment configures a dev or test network's
coordinator and workers alike; the worker reads them itself and needs none of the coordinator's code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from backend.protocol.jobs import MAX_IMAGE_BYTES


@dataclass(frozen=True)
class WorkerSettings:
    # The largest image a chat request's image_url may bring, fetched or inline.
    max_image_bytes: int = MAX_IMAGE_BYTES
    # Dev and test networks only: private networks image_url fetches may reach besides public addresses.
    fetch_allow_networks: tuple[str, ...] = ()


def worker_settings() -> WorkerSettings:
    """The settings as the environment has them now (read per call: a few dictionary look-ups)."""
    try:
        networks = json.loads(os.environ.get("ONE_FETCH_ALLOW_NETWORKS") or "[]")
    except ValueError:
        networks = None
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise ValueError('ONE_FETCH_ALLOW_NETWORKS must be a JSON list of CIDRs, such as ["127.0.0.1/32"]')
    return WorkerSettings(max_image_bytes=int(os.environ.get("ONE_MAX_IMAGE_BYTES") or MAX_IMAGE_BYTES),
                          fetch_allow_networks=tuple(networks))  # fmt: skip
