"""Coordinator replicas share one database: a due agent is claimed by exactly one of them per run."""

from __future__ import annotations

import threading
import time

import pytest
from sqlmodel import select

from backend.agents.runner import claim_due
from backend.db import session
from backend.db.models import AgentRecord
from tests.backend.conftest import postgres_db, sqlite_db  # noqa: F401  (fixtures)

SPEC = """agent: {name}
model: tiny-chat
trigger: {{ schedule: "every 1h" }}
tools: [ summarize ]
budget: {{ lane: included }}
"""


@pytest.mark.parametrize("database", ["sqlite_db", "postgres_db"])
def test_replicas_claiming_at_once_start_each_due_run_once(request, database):
    request.getfixturevalue(database)
    now = time.time()
    with session() as db:
        for i in range(5):
            db.add(AgentRecord(id=f"acct:a{i}", name=f"a{i}", account="acct", lane="included", spec=SPEC.format(name=f"a{i}"),
                               webhook_secret="s", status="active", next_run_at=now - 1, created_at=now))  # fmt: skip
        db.commit()
    replicas, claimed, errors = 8, [], []
    start = threading.Barrier(replicas)

    def replica() -> None:
        start.wait()
        for _ in range(3):
            try:
                claimed.extend(claim_due())
            except Exception as exc:  # SQLite may refuse a writer while another holds the lock: that replica claims nothing
                errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == [f"acct:a{i}" for i in range(5)], (claimed, errors)
    with session() as db:
        assert all(r.next_run_at > now + 3000 for r in db.exec(select(AgentRecord)).all())
