"""Attack: behind the front door of several replicas, spread requests over them (nginx's round robin does it for
free) to get the per-minute limit once per replica; and, as an abuser without a key, use up the per-address limit
that every key-less caller behind the front door shared, since each replica saw only nginx's address.

Before: each replica counted in its own memory, so three replicas meant three times the limit, and every caller
behind the front door was one address. Now: with a broker the windows live in its Redis (one count per caller for
the network), and a request from a trusted proxy (ONE_TRUSTED_PROXIES) counts against the address its
X-Forwarded-For names; entries the caller wrote itself are ignored, and so is the header from anyone else."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from backend.access.limits import client_address

BROKER_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def replicas(sqlite_db, monkeypatch):
    """Two replicas' APIs (each its own door) on one database and one broker."""
    from backend.api import create_api
    from backend.config import get_settings
    from backend.runtime import get_runtime

    redis.Redis.from_url(BROKER_URL).flushdb()
    monkeypatch.setenv("ONE_BROKER_URL", BROKER_URL)
    monkeypatch.setenv("ONE_RATE_LIMIT_OPEN", "3")
    monkeypatch.setenv("ONE_TRUSTED_PROXIES", '["127.0.0.1/32"]')
    get_settings.cache_clear()
    get_runtime.cache_clear()
    with TestClient(create_api(), client=("127.0.0.1", 5001)) as one, TestClient(create_api(), client=("127.0.0.1", 5002)) as two:
        yield one, two
    get_runtime.cache_clear()
    get_settings.cache_clear()
    redis.Redis.from_url(BROKER_URL).flushdb()


def test_spreading_requests_over_replicas_does_not_multiply_the_limit(replicas):
    one, two = replicas
    caller = {"x-forwarded-for": "203.0.113.7"}
    codes = [(one if i % 2 else two).get("/v1/models", headers=caller).status_code for i in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]


def test_callers_behind_the_front_door_are_told_apart_by_the_address_it_forwards(replicas):
    one, _ = replicas
    abuser, neighbour = {"x-forwarded-for": "203.0.113.7"}, {"x-forwarded-for": "198.51.100.9"}
    assert [one.get("/v1/models", headers=abuser).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert one.get("/v1/models", headers=neighbour).status_code == 200  # not locked out by the abuser
    # The abuser writes its own X-Forwarded-For: nginx appends the address it saw, and that right-most one counts.
    assert one.get("/v1/models", headers={"x-forwarded-for": "192.0.2.1, 203.0.113.7"}).status_code == 429


def test_only_a_trusted_proxy_names_the_caller():
    trusted = ["127.0.0.1/32"]
    assert client_address("127.0.0.1", "203.0.113.7", trusted) == "203.0.113.7"
    assert client_address("203.0.113.7", "10.0.0.1", trusted) == "203.0.113.7"  # a caller's own header proves nothing
    assert client_address("127.0.0.1", "192.0.2.1, 203.0.113.7", trusted) == "203.0.113.7"
    assert client_address("127.0.0.1", "203.0.113.7, 127.0.0.1", trusted) == "203.0.113.7"  # proxies in a chain are skipped
    assert client_address("127.0.0.1", "", trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "203.0.113.7", []) == "127.0.0.1"  # no proxy trusted: the peer
