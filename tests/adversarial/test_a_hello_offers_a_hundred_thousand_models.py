"""Attack: a worker's hello lists 100,000 model ids (a few MB, well inside one frame). The coordinator looks the
offered ids up among the Clusters' private models before admitting the worker: one query with 100,000 bound
parameters (SQLite refuses it mid-handshake and the socket dies without an answer; Postgres plans and runs it), for
every hello, from anyone who can open the socket.

Defence: protocol v1 caps a hello at MAX_HELLO_MODELS offers; more is refused, with the reason, before any lookup."""

from __future__ import annotations

from nacl.signing import SigningKey

from backend.protocol import frames
from backend.scheduler import Scheduler
from tests.adversarial.test_a_worker_poses_as_a_clusters_node import _hello


def _offers(count: int) -> list[dict]:
    return [{"id": f"m{i}", "max_context": 2048, "tasks": ["chat"]} for i in range(count)]


def test_a_hello_with_too_many_models_is_refused_before_any_lookup(sqlite_db):
    answer = _hello(Scheduler(), SigningKey.generate(), None, _offers(100_000))
    assert answer["type"] == "refused" and f"at most {frames.MAX_HELLO_MODELS}" in answer["reason"], answer


def test_a_worker_offering_up_to_the_cap_is_welcome(sqlite_db):
    answer = _hello(Scheduler(), SigningKey.generate(), None, _offers(frames.MAX_HELLO_MODELS))
    assert answer["type"] == "welcome" and len(answer["models"]) == frames.MAX_HELLO_MODELS
