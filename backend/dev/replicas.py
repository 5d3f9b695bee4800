"""Several coordinator replicas behind one front door (nginx): `one up-scale` (`make run-scale`) and the tests.

Replicas are ordinary coordinators (Reflex prod, one port each, each reachable directly) that share what makes
them one network: the Postgres database, Reflex's UI state in Redis, the broker (Redis Streams), the data dir
(coordinator key, account secret, network.env) and ONE_PUBLIC_URL, the front door's URL, which the UI build
bakes in, so every replica's pages talk to the front door. Each has a name (ONE_REPLICA: r1, r2, ...) that
/one/workers shows beside the workers connected to it; replicas are numbered from 1 like their names.

The UI is built once, by the first replica's `reflex run --env prod`; the others (and any replica started
again later) serve that build through backend/dev/prebuilt.py, so no start rewrites `.web` under a replica
that is serving it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.config import local_url
from backend.dev import frontdoor
from backend.dev.devnet import REFLEX_PROD, Devnet, coordinator_env
from backend.dev.web_assets import prepare_assets

REPLICA_PORTS = (3001, 3002, 3003)
TRUSTED_PROXIES = '["127.0.0.1/32"]'  # the front door: its X-Forwarded-For names each caller (ONE_TRUSTED_PROXIES)
PREBUILT = [sys.executable, "-m", "backend.dev.prebuilt"]


class ServiceUnavailable(RuntimeError):
    """A service the replicas share (Postgres, Redis) cannot be reached; the message names it."""


class ReplicaSet(Devnet):
    """Devnet's chain, watchdog, workers and stopping, with coordinator replicas on `replica_ports` behind a front
    door on `front_port` (Devnet's `port`; `url` is the front door's)."""

    def __init__(self, data_dir: Path, log_dir: Path, front_port: int = 3000, replica_ports: Sequence[int] = REPLICA_PORTS,
                 database_url: str = "", redis_url: str = "", broker_url: str = "", extra_env: dict[str, str] | None = None) -> None:  # fmt: skip
        """database_url (ONE_DATABASE_URL), redis_url (ONE_REDIS_URL, Reflex UI state) and broker_url (ONE_BROKER_URL):
        empty leaves a setting unset (then replicas share a SQLite file, keep UI state each in memory and dispatch
        only to their own workers: enough to try, not to scale). extra_env: more coordinator settings (tests)."""
        host = "127.0.0.1"  # the front door and the replicas listen on loopback only
        super().__init__(port=front_port, data_dir=Path(data_dir), log_dir=Path(log_dir), host=host, public_url=local_url(host, front_port))
        self.replica_ports = tuple(replica_ports)
        shared = {"ONE_DATABASE_URL": database_url, "ONE_REDIS_URL": redis_url, "ONE_BROKER_URL": broker_url}
        self.network_settings = {key: value for key, value in shared.items() if value}
        self.coordinator_extra_env = dict(extra_env or {})
        self.replicas = 0  # how many `start` runs behind the front door
        self.ui_built = False

    def replica_url(self, i: int) -> str:
        """Replica i's own address (1-based), bypassing the front door."""
        return local_url(self.host, self.replica_ports[i - 1])

    @staticmethod
    def replica_process(i: int) -> str:
        return f"replica-r{i}"  # its process name, and its log: log_dir/replica-r1.log

    def stop_rank(self, name: str) -> int:
        """Workers, then the front door (closing its keepalive connections to the replicas), then the replicas."""
        return 2 if name.startswith("replica-") else 1 if name == "frontdoor" else 0

    def start(self, replicas: int = 3, timeout_s: float = 300) -> None:
        """Start `replicas` coordinators (the first builds the UI; the rest start together on its build), then the
        front door, and wait until each answers."""
        if not 1 <= replicas <= len(self.replica_ports):
            raise ValueError(f"{replicas} replicas, but {len(self.replica_ports)} replica ports")
        self.replicas = replicas
        self.start_replica(1, timeout_s)
        for i in range(2, replicas + 1):
            self._spawn_replica(i)
        for i in range(2, replicas + 1):
            self.wait_ready(timeout_s, self.replica_process(i), self.replica_url(i))
        self.start_front_door(timeout_s)

    def start_replica(self, i: int, timeout_s: float = 300) -> None:
        """Start replica i (again, after kill_replica) and wait until it answers directly."""
        self._spawn_replica(i)
        self.wait_ready(timeout_s, self.replica_process(i), self.replica_url(i))
        self.ui_built = True

    def _spawn_replica(self, i: int) -> subprocess.Popen:
        if self.ui_built:
            command = PREBUILT
        else:
            prepare_assets()
            command = [*REFLEX_PROD, "--backend-host", self.host]
        env = {"ONE_HOST": self.host, "ONE_PUBLIC_URL": self.url, "ONE_REPLICA": f"r{i}", "ONE_TRUSTED_PROXIES": TRUSTED_PROXIES,
               **self.network_settings, **self.coordinator_extra_env}  # fmt: skip
        return self.spawn(self.replica_process(i), command, coordinator_env(self.replica_ports[i - 1], self.data_dir, env))

    def start_front_door(self, timeout_s: float = 60) -> None:
        """nginx on the front port before the replicas `start` started (its errors: log_dir/frontdoor.log)."""
        conf = frontdoor.write_config(self.data_dir / "nginx", self.port, self.replica_ports[: self.replicas], self.host,
                                      access_log=self.log_dir / "frontdoor-access.log")  # fmt: skip
        self.spawn("frontdoor", frontdoor.nginx_command(conf), dict(os.environ))
        self.wait_ready(timeout_s, "frontdoor")

    def kill_replica(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Stop replica i and its server processes (SIGKILL by default: a crash, no goodbye to its workers)."""
        self.stop(self.replica_process(i), sig=sig)

    def start_worker(self, name: str, *args: str, replica: int | None = None, models_dir: Path | None = None,
                     threads: int = 1) -> subprocess.Popen:  # fmt: skip
        """A node worker connected straight to replica i (1-based), or through the front door (replica=None)."""
        url = self.url if replica is None else self.replica_url(replica)
        return super().start_worker(name, *args, models_dir=models_dir, threads=threads, coordinator=url)


def ensure_database(database_url: str) -> None:
    """Create the Postgres database `database_url` names when it is missing."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(database_url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(f"Postgres is not reachable at {target.host}:{target.port or 5432} ({exc}): start it, "
                                 "or name another with ONE_DATABASE_URL") from None  # fmt: skip


def require_redis(redis_url: str, role: str) -> None:
    """Fail with a clear message when the Redis of `role` (UI state, broker) does not answer."""
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"Redis ({role}) is not reachable at {redis_url} ({exc}): start it, or name another") from None
