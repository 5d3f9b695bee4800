"""Attack (or just time passing): a Dedicated package expires, but its reserved slots stay reserved until
the coordinator restarts, starving the Included lane.

Reservations are per model, from live packages only, and recomputed when a package expires.
"""

from __future__ import annotations

import asyncio
import time

from backend.access import auth
from backend.catalog import Package, Packages
from backend.money.lanes import reservations
from backend.serving.inference import Caller, Finished
from tests.adversarial.conftest import Peer, make_service, run_chat

INCLUDED = Caller(account_id="anonymous", lane="included")
PACKAGES = Packages(packages=[
    Package(id="short", name="Short", price=1, duration_s=1, reserved=1, priority=20, balance=1),
    Package(id="images", name="Images only", price=1, duration_s=3600, reserved=1, priority=20, balance=1, models=["tiny-sd"]),
])  # fmt: skip


async def test_an_expired_package_frees_its_reserved_slot_without_a_restart(sqlite_db):
    service = make_service(queue_timeout_s=5)
    service.scheduler.reservations = lambda: reservations(PACKAGES)
    await asyncio.to_thread(auth.create_key, "0x" + "ab" * 20, "dedicated", "short", ttl_s=1.5)
    service.scheduler.refresh_reservations()
    assert service.scheduler.reserved_for("tiny-chat") == 1
    worker = await Peer(service.scheduler, slots=1).join()
    worker.auto = lambda job: worker.answer(job, "served")
    started = time.monotonic()
    events = await run_chat(service, INCLUDED)  # waits while the slot is reserved, then runs once it expires
    assert isinstance(events[-1], Finished) and 1.0 <= time.monotonic() - started < 5
    assert service.scheduler.reserved_for("tiny-chat") == 0


async def test_a_package_reserves_only_on_its_models(sqlite_db):
    service = make_service(queue_timeout_s=2)
    service.scheduler.reservations = lambda: reservations(PACKAGES)
    await asyncio.to_thread(auth.create_key, "0x" + "cd" * 20, "dedicated", "images", ttl_s=3600)
    service.scheduler.refresh_reservations()
    assert service.scheduler.reserved_for("tiny-sd") == 1 and service.scheduler.reserved_for("tiny-chat") == 0
    worker = await Peer(service.scheduler, slots=1).join()
    worker.auto = lambda job: worker.answer(job, "served")
    assert isinstance((await run_chat(service, INCLUDED))[-1], Finished)  # chat is not starved by an image package
