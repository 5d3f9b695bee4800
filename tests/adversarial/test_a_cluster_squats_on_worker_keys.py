"""Attack: the public worker keys are listed at /one/workers. A Cluster consents to all of them; if consent were one
Cluster per worker, no other Cluster could ever take any of those workers as its node.

Defence: consent is per (Cluster, worker). Another Cluster consents to the same key and the worker, naming that
Cluster in its hello, joins it; the squatter gets nothing (the hello names one Cluster)."""

from __future__ import annotations

import time

from nacl.signing import SigningKey

from backend.access import auth, clusters
from backend.db import session
from backend.protocol.signing import public_hex
from backend.scheduler import Scheduler
from tests.adversarial.test_a_worker_poses_as_a_clusters_node import _hello

SQUATTER, OWNER = "0x" + "5a" * 20, "0x" + "0b" * 20


def test_another_clusters_consent_is_not_taken_and_the_worker_joins_it(sqlite_db):
    with session() as db:
        auth.add_key(db, "one_sk_owner", OWNER, "dedicated", "cluster", time.time() + 60)
        db.commit()
    key = SigningKey.generate()
    clusters.add_node(SQUATTER, public_hex(key))
    clusters.add_node(OWNER, public_hex(key))  # used to answer 409 "already a node of another Cluster"
    assert clusters.nodes_of(OWNER) == [public_hex(key)] and clusters.nodes_of(SQUATTER) == [public_hex(key)]
    assert _hello(Scheduler(), key, OWNER)["type"] == "welcome"  # admitted to the Cluster it names, with that one's consent
    assert _hello(Scheduler(), key, SQUATTER)["type"] == "refused"  # the squatter's consent alone: its package is not live
