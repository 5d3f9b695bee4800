"""The `/worker/ws` endpoint: challenge, signed hello, then frames until the worker leaves or goes silent."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from fastapi import WebSocket, WebSocketDisconnect

from backend.access import clusters
from backend.catalog import Packages
from backend.chain import NO_PAYOUT_ADDRESS, address_problem
from backend.money.settlement import remember_worker
from backend.protocol import frames
from backend.protocol.signing import verify_hex
from backend.scheduler import Scheduler, WorkerConnection

log = logging.getLogger("one.worker_ws")

HELLO_TIMEOUT_S = 10.0


async def serve_worker(ws: WebSocket, scheduler: Scheduler, coordinator_pubkey: str, packages: Packages) -> None:
    await ws.accept()
    nonce = secrets.token_hex(32)
    await ws.send_text(frames.encode(frames.challenge(nonce, coordinator_pubkey)))
    try:
        hello = frames.parse_frame(await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT_S))
        if hello["type"] != "hello":
            raise frames.ProtocolError("expected a hello frame")
        if not verify_hex(hello["pubkey"], bytes.fromhex(nonce), hello["sig"]):
            raise frames.ProtocolError("hello signature does not verify against the challenge nonce")
        payout = hello["payout_address"]
        if payout not in NO_PAYOUT_ADDRESS and (problem := address_problem(payout)):  # refused now, not failing at settlement
            raise frames.ProtocolError(f'payout_address {payout!r} {problem}; send "0x" to work without payouts')
        cluster = hello.get("cluster")
        if cluster is not None and (problem := await asyncio.to_thread(clusters.admission_problem, packages, cluster, hello["pubkey"])):
            raise frames.ProtocolError(problem)
        # A Cluster's private model is served by that Cluster's nodes only: anyone else advertising its id is not asked.
        owners = await asyncio.to_thread(clusters.private_owners, [m["id"] for m in hello["models"]])
        models = {m["id"]: m for m in hello["models"] if owners.get(m["id"], cluster) == cluster}
    except (frames.ProtocolError, asyncio.TimeoutError) as exc:
        reason = str(exc) or "no hello in time"
        await ws.send_text(frames.encode(frames.refused(reason)))
        await ws.close(code=1008)
        log.info("refused a worker: %s", reason)
        return
    except WebSocketDisconnect:
        return

    send_lock = asyncio.Lock()

    async def send(frame: dict) -> None:
        async with send_lock:
            await ws.send_text(frames.encode(frame))

    conn = WorkerConnection(
        worker_id=hello["pubkey"],
        kind=hello["kind"],
        payout_address=hello["payout_address"],
        models=models,
        slots=hello["slots"],
        hardware=hello.get("hardware") or {},
        version=str(hello.get("version", "")),
        send=send,
        cluster=cluster,
        close=ws.close,
    )
    # Remembered before the welcome: a welcomed worker's payout address is on record even if it hangs up at once.
    conn.reliability = await asyncio.to_thread(remember_worker, conn.worker_id, conn.kind, conn.payout_address)
    await scheduler.ready()  # with a broker: joined before this worker is announced to the other replicas
    await send(frames.welcome(conn.worker_id))
    await scheduler.register(conn)
    pinger = asyncio.create_task(_ping_loop(conn, scheduler))
    try:
        while True:
            text = await ws.receive_text()
            if len(text) > frames.MAX_FRAME_BYTES:  # broken or hostile: it does not get to send another
                log.warning("worker %s… sent a %d-byte frame; closing", conn.worker_id[:12], len(text))
                await ws.close(code=1009)
                break
            try:
                frame = frames.parse_frame(text)
            except frames.ProtocolError as exc:
                log.warning("worker %s… sent a bad frame: %s", conn.worker_id[:12], exc)
                continue
            scheduler.on_frame(conn, frame, len(text))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        pinger.cancel()
        await scheduler.unregister(conn)


async def _ping_loop(conn: WorkerConnection, scheduler: Scheduler) -> None:
    """Ping every interval; a worker silent past the limit is dropped (its jobs fail over)."""
    while True:
        await asyncio.sleep(frames.PING_INTERVAL_S)
        if scheduler.workers.get(conn.worker_id) is not conn:  # evicted, or replaced by a newer connection
            return
        if time.monotonic() - conn.last_seen > frames.SILENCE_LIMIT_S:
            await scheduler.unregister(conn, reason="silent too long")
            return
        try:
            await conn.send(frames.ping(time.time()))
        except Exception:
            await scheduler.unregister(conn, reason="ping failed")
            return
