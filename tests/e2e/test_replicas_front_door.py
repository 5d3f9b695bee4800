"""Scale mode's shape: three coordinator replicas on one Postgres database and Redis, nginx in front of them.

The front door serves the API and the UI and passes WebSockets (Reflex's /_event, workers' /worker/ws)
through; every replica also answers on its own port; a worker may join any replica, directly or through the
front door; a replica killed outright (SIGKILL) drops out of the rotation without a failed request, and starts
again on the UI build the first replica made."""

from __future__ import annotations

import ipaddress
import uuid

import httpx
import psycopg
import pytest
import redis
from websockets.sync.client import connect

from tests.conftest import free_port
from tests.processes import listeners, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
STATE_REDIS = "redis://127.0.0.1:6379/11"  # Reflex UI state
BROKER_REDIS = "redis://127.0.0.1:6379/12"  # cross-replica dispatch (Redis Streams)


@pytest.fixture(scope="module")
def replica_set(tmp_path_factory, tiny_models, test_output):
    from backend.dev.replicas import ReplicaSet, ensure_database

    database = f"one_replicas_{uuid.uuid4().hex[:8]}"
    ensure_database(f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}")
    for url in (STATE_REDIS, BROKER_REDIS):
        redis.Redis.from_url(url).flushdb()
    net = ReplicaSet(tmp_path_factory.mktemp("one-replicas"), test_output / "logs-replicas", front_port=free_port(),
                     replica_ports=(free_port(), free_port(), free_port()),
                     database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}", redis_url=STATE_REDIS,
                     broker_url=BROKER_REDIS,
                     # these tests poll key-less from one address while workers join (slowly on a loaded box): the
                     # shared per-minute limit is not what they test (tests/adversarial covers it)
                     extra_env={"ONE_RATE_LIMIT_OPEN": "100000"})  # fmt: skip
    try:
        net.start(replicas=3)
        net.models_dir = tiny_models  # type: ignore[attr-defined]
        yield net
    finally:
        net.stop_all()
        for url in (STATE_REDIS, BROKER_REDIS):
            redis.Redis.from_url(url).flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def worker_id(net, name: str) -> str:
    """The worker's public key, from the key file it will load (created here first)."""
    from backend.protocol.signing import load_or_create_key, public_hex

    return public_hex(load_or_create_key(net.data_dir / f"{name}.key"))


def listed_by(url: str) -> dict[str, dict]:
    try:
        return {w["id"]: w for w in httpx.get(url + "/one/workers", timeout=5).json()["workers"]}
    except (httpx.HTTPError, ValueError, KeyError):
        return {}


def test_front_door_and_each_replica_serve_api_and_ui(replica_set):
    bound = listeners(replica_set.port)
    assert bound and all(ipaddress.ip_address(address).is_loopback for address in bound), f"front door listens on {bound}"
    for url in [replica_set.url] + [replica_set.replica_url(i) for i in (1, 2, 3)]:
        models = httpx.get(url + "/v1/models", timeout=10)
        assert models.status_code == 200 and models.json()["data"], url
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text, url


def test_the_ui_event_socket_opens_through_the_front_door(replica_set):
    socket_url = replica_set.url.replace("http", "ws") + "/_event/?EIO=4&transport=websocket"
    with connect(socket_url, open_timeout=10) as ws:
        assert ws.recv(timeout=10).startswith("0")  # engine.io's open packet: Reflex's socket answered through nginx


def test_workers_join_a_replica_directly_or_through_the_front_door(replica_set):
    direct, door = worker_id(replica_set, "direct-r2"), worker_id(replica_set, "via-door")
    replica_set.start_worker("direct-r2", replica=2, models_dir=replica_set.models_dir)
    replica_set.start_worker("via-door", models_dir=replica_set.models_dir)  # its /worker/ws goes through nginx

    def everywhere() -> dict[str, dict]:
        return {k: v for i in (1, 2, 3) for k, v in listed_by(replica_set.replica_url(i)).items()}

    assert wait_for(lambda: {direct, door} <= everywhere().keys(), 120), f"registered: {list(everywhere())}"
    on_r2 = listed_by(replica_set.replica_url(2))
    assert direct in on_r2
    assert on_r2[direct].get("replica", "r2") == "r2"  # the replica its socket is on, once workers carry it


def test_a_killed_replica_is_skipped_and_comes_back(replica_set):
    replica_set.kill_replica(1)  # the replica that built the UI: the others serve its build on their own
    answers = [httpx.get(replica_set.url + "/v1/models", timeout=10).status_code for _ in range(30)]
    assert answers == [200] * 30
    assert httpx.get(replica_set.url + "/", timeout=10).status_code == 200
    replica_set.start_replica(1)
    assert httpx.get(replica_set.replica_url(1) + "/", timeout=10).status_code == 200
