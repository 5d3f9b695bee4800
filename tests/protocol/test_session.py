"""The worker session both workers run, driven frame by frame as a coordinator would: the connection is a pair of
queues (the transport is not ours to test), the frames, digests, signatures and session loop are the real ones."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from nacl.signing import SigningKey

from backend.protocol import frames, outputs
from backend.protocol import receipt as rc
from backend.protocol.jobs import JobRefused
from backend.protocol.session import DeltaSender, Finished, Identity, Job, Refused, SessionEvents, WorkerSession, stay_joined
from backend.protocol.signing import public_hex, sign_hex, verify_hex

NONCE = "ab" * 32
MODEL = {"id": "echo", "max_context": 64, "tasks": ["chat", "embedding"]}


class Connection:
    """Both ends of a socket: the coordinator's side (`to_worker`, `from_worker`) and the worker's transport."""

    def __init__(self):
        self.to_worker: asyncio.Queue[str | None] = asyncio.Queue()
        self.from_worker: asyncio.Queue[dict] = asyncio.Queue()

    async def send(self, text: str) -> None:
        self.from_worker.put_nowait(json.loads(text))

    async def recv(self) -> str | None:
        return await self.to_worker.get()

    def tell(self, frame: dict | None) -> None:
        self.to_worker.put_nowait(None if frame is None else frames.encode(frame))

    async def heard(self) -> dict:
        return await asyncio.wait_for(self.from_worker.get(), 5)


class EchoEngine:
    """Chat: streams the last message back in two chunks. Embedding: one vector per input. `hold` keeps a job open."""

    models = [MODEL]

    def __init__(self):
        self.hold = asyncio.Event()
        self.hold.set()

    async def run(self, job: Job, cancel: threading.Event):
        if job.body.get("refuse"):
            raise JobRefused("context_length_exceeded", "too long")
        if job.body.get("crash"):
            raise KeyError("secret prompt text")
        if job.task == "embedding":
            yield outputs.embedding_items([[0.5, -1.0] for _ in job.body["input"]])
            yield Finished(input_tokens=len(job.body["input"]))
            return
        text = job.body["messages"][-1]["content"]
        yield [outputs.chat_choice(0, {"role": "assistant", "content": text[:2]})]
        await self.hold.wait()
        if cancel.is_set():
            return
        yield [outputs.chat_choice(0, {"content": text[2:]}, "stop")]
        yield Finished(input_tokens=3, output_tokens=2)


class Recorder(SessionEvents):
    def __init__(self):
        self.events: list[tuple] = []

    def joined(self, worker_id):
        self.events.append(("joined", worker_id))

    def served(self, job, finished):
        self.events.append(("served", job.job_id, finished.usage))

    def failed(self, job, error):
        self.events.append(("failed", job.job_id, type(error).__name__))


def job_frame(
    job_id: str = "j1", task: str = "chat", body: dict | None = None, salt: str = "00" * 16, digest: str | None = None
) -> dict:
    body = body if body is not None else {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}
    return frames.job(job_id=job_id, task=task, model="echo", body=body, request_salt=salt,
                      request_digest=digest or rc.request_digest(body, salt), deadline_ms=5000)  # fmt: skip


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def worker(key):
    async def sign(message: bytes) -> str:
        return sign_hex(key, message)

    identity = Identity(kind="node", pubkey=public_hex(key), payout_address="0x" + "1" * 40, version="t", sign=sign)
    engine, events = EchoEngine(), Recorder()
    return WorkerSession(identity, engine, slots=2, events=events), engine, events


async def joined(worker, key) -> tuple[Connection, asyncio.Task]:
    session = worker[0]
    conn = Connection()
    running = asyncio.ensure_future(session.run(conn))
    conn.tell(frames.challenge(NONCE, "cd" * 32))
    hello = await conn.heard()
    assert frames.parse_frame(frames.encode(hello)) == hello  # a valid v1 hello
    assert hello["models"] == [MODEL] and hello["slots"] == 2 and hello["kind"] == "node"
    assert verify_hex(public_hex(key), bytes.fromhex(NONCE), hello["sig"])
    conn.tell(frames.welcome(public_hex(key)))
    return conn, running


async def test_join_answers_the_challenge_with_a_signed_hello_and_pings_with_the_load(worker, key):
    conn, running = await joined(worker, key)
    conn.tell(frames.ping(7.5))
    assert await conn.heard() == frames.pong(7.5, 0.0, 0)
    conn.tell(None)  # the coordinator closed the socket
    await asyncio.wait_for(running, 5)
    assert worker[2].events == [("joined", public_hex(key))]


async def test_a_refusal_ends_the_session_with_its_reason(worker, key):
    conn = Connection()
    running = asyncio.ensure_future(worker[0].run(conn))
    conn.tell(frames.challenge(NONCE, "cd" * 32))
    await conn.heard()
    conn.tell(frames.refused("bad signature"))
    with pytest.raises(Refused, match="bad signature"):
        await asyncio.wait_for(running, 5)


async def deltas_then_done(conn: Connection) -> tuple[list, dict]:
    """Every delta's data the worker sent for one job, in order (batched frames unpacked), and its done frame; the
    frames are numbered 0, 1, 2... and each is valid v1."""
    chunks: list = []
    n = 0
    while (frame := await conn.heard())["type"] == "delta":
        assert frames.parse_frame(frames.encode(frame)) == frame and frame["n"] == n
        chunks += frames.delta_chunks(frame)
        n += 1
    assert frame["type"] == "done"
    return chunks, frame


async def test_a_job_streams_its_deltas_then_a_done_whose_attestation_the_worker_signed(worker, key):
    conn, running = await joined(worker, key)
    job = job_frame()
    conn.tell(job)
    chunks, done = await deltas_then_done(conn)
    output = rc.OutputAssembler("chat")
    for data in chunks:
        output.add(data)
    assert len(chunks) == 2 and output.ordered_choices()[0]["content"] == "hello" and done["output_digest"] == output.digest()
    assert done["usage"] == {"input_tokens": 3, "output_tokens": 2, "images": 0}
    statement = rc.attestation("j1", "echo", job["request_digest"], done["output_digest"], done["usage"])
    assert verify_hex(public_hex(key), rc.jcs(statement), done["attestation_sig"])
    assert ("served", "j1", done["usage"]) in worker[2].events
    conn.tell(None)
    await asyncio.wait_for(running, 5)


async def test_embedding_items_come_in_one_delta(worker, key):
    conn, running = await joined(worker, key)
    conn.tell(job_frame(task="embedding", body={"model": "echo", "input": ["a", "b"]}))
    delta, done = await conn.heard(), await conn.heard()
    assert delta["data"] == [
        {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
        {"object": "embedding", "index": 1, "embedding": [0.5, -1.0]},
    ]
    assert done["output_digest"] == rc.embedding_output_digest([[0.5, -1.0], [0.5, -1.0]])
    conn.tell(None)
    await asyncio.wait_for(running, 5)


@pytest.mark.parametrize("job, code", [
    (job_frame(digest="ff" * 32), "digest_mismatch"),  # a body that is not the one the client sent: nothing is signed
    (job_frame(task="image"), "model_not_served"),
    (job_frame(body={"refuse": True}), "context_length_exceeded"),
    (job_frame(body={"crash": True}), "worker_error"),
])  # fmt: skip
async def test_jobs_that_cannot_run_get_an_error_frame_with_a_code(worker, key, job, code):
    conn, running = await joined(worker, key)
    conn.tell(job)
    error = await conn.heard()
    assert error["type"] == "error" and error["job_id"] == "j1" and error["code"] == code
    assert "secret prompt text" not in error["message"]  # an exception's text stays on the worker
    assert (("failed", "j1", "KeyError") in worker[2].events) == (code == "worker_error")
    conn.tell(None)
    await asyncio.wait_for(running, 5)


async def test_a_cancelled_job_stops_without_a_done_and_frees_its_slot(worker, key):
    conn, running = await joined(worker, key)
    engine = worker[1]
    engine.hold.clear()
    conn.tell(job_frame())
    assert (await conn.heard())["type"] == "delta"
    conn.tell(frames.ping(1))
    assert await conn.heard() == frames.pong(1, 0.5, 0)  # one of two slots busy
    conn.tell(frames.cancel("j1"))
    engine.hold.set()
    for t in range(2, 50):  # until the job has wound down: nothing but pongs come back meanwhile (no done, no error)
        conn.tell(frames.ping(t))
        pong = await conn.heard()
        assert pong["type"] == "pong"
        if pong["load"] == 0.0:
            break
    assert pong["load"] == 0.0
    conn.tell(None)
    await asyncio.wait_for(running, 5)


async def test_stay_joined_backs_off_and_stops_when_told():
    stop, attempts, waits = asyncio.Event(), [], []

    async def join():
        attempts.append(1)
        if len(attempts) == 3:
            stop.set()
        raise ConnectionRefusedError("away")

    await asyncio.wait_for(stay_joined(join, stop, lambda problem, wait_s: waits.append((type(problem), wait_s)), 0.01, 0.02), 5)
    assert len(attempts) == 3 and [p for p, _ in waits] == [ConnectionRefusedError] * 2
    assert 0.0075 <= waits[0][1] <= 0.0125 and 0.015 <= waits[1][1] <= 0.025  # doubled, capped, with jitter


class FastEngine:
    """Chat: `count` one-word deltas with no pause between them (a fast stream: deltas pile up while one is sent)."""

    models = [MODEL]

    def __init__(self, count: int):
        self.count = count

    async def run(self, job: Job, cancel: threading.Event):
        for i in range(self.count):
            yield [outputs.chat_choice(0, {"content": f"w{i} "})]
        yield [outputs.chat_choice(0, {}, "stop")]
        yield Finished(input_tokens=3, output_tokens=self.count)


class SlowTransport(Connection):
    """A socket whose every send takes a moment, as a real one does under load."""

    async def send(self, text: str) -> None:
        await asyncio.sleep(0.001)
        await super().send(text)


@pytest.mark.parametrize("batches", [True, False])
async def test_a_fast_stream_arrives_whole_and_in_order_batched_only_when_the_coordinator_takes_batches(key, batches):
    async def sign(message: bytes) -> str:
        return sign_hex(key, message)

    identity = Identity(kind="node", pubkey=public_hex(key), payout_address="0x" + "1" * 40, version="t", sign=sign)
    count = 1000  # more than DeltaSender.MAX_BATCH: a batch is capped and the rest follow
    session, conn = WorkerSession(identity, FastEngine(count), slots=1), SlowTransport()
    running = asyncio.ensure_future(session.run(conn))
    conn.tell(frames.challenge(NONCE, "cd" * 32))
    await conn.heard()
    welcome = frames.welcome(public_hex(key))
    if not batches:  # a coordinator from before batches: its welcome does not offer them
        del welcome["delta_batches"]
    conn.tell(welcome)
    job = job_frame()
    conn.tell(job)
    frames_seen = []
    while (frame := await conn.heard())["type"] == "delta":
        frames_seen.append(frame)
    chunks = [data for f in frames_seen for data in frames.delta_chunks(f)]
    assert [f["n"] for f in frames_seen] == list(range(len(frames_seen)))
    assert [c[0]["delta"].get("content") for c in chunks] == [f"w{i} " for i in range(count)] + [None]
    assert all(not isinstance(f["data"], dict) for f in frames_seen) is not batches  # batched frames only when offered
    assert all(len(frames.delta_chunks(f)) <= DeltaSender.MAX_BATCH for f in frames_seen)
    output = rc.OutputAssembler("chat")
    for data in chunks:
        output.add(data)
    assert frame["type"] == "done" and frame["output_digest"] == output.digest()
    assert frame["usage"]["output_tokens"] == count
    conn.tell(None)
    await asyncio.wait_for(running, 5)
