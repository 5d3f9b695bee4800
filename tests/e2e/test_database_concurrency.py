"""The coordinator's SQLite database under a second writer and readers: the way `make run` is used.

While the coordinator serves traffic (receipts, ledger, agent-free chat), `one settle` runs again and again in
processes of its own, another process writes through the coordinator's own database layer (as `one agent` and
`one worker bond` do beside it), and read-only readers in other processes (and this one) poll the tables. Then
`PRAGMA integrity_check` must say ok and no reader may have seen an error. ONE_STRESS_S stretches the run.

This is the setting that once read "database disk image is malformed" in a test: the cause was in the test
process (see tests/conftest.py read_only_db), never in the file; this test keeps both honest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from backend.dev.devnet import coordinator_env
from tests.conftest import REPO, files_containing, read_only_db
from tests.e2e.test_settlement import run_settle

pytestmark = pytest.mark.e2e

STRESS_S = float(os.environ.get("ONE_STRESS_S", "75"))

WRITER = (  # a table of its own, written through backend.db as the `one` commands write beside the coordinator
    "import sys, time\n"
    "from sqlalchemy import text\n"
    "from backend.db import session\n"
    "end = time.time() + float(sys.argv[1])\n"
    "n = 0\n"
    "with session() as db:\n"
    "    db.connection().execute(text('CREATE TABLE IF NOT EXISTS stress_probe (n INTEGER PRIMARY KEY, pad BLOB)'))\n"
    "    db.commit()\n"
    "while time.time() < end:\n"
    "    with session() as db:\n"
    "        db.connection().execute(text('INSERT INTO stress_probe (n, pad) VALUES (:n, randomblob(2000))'), {'n': n})\n"
    "        db.commit()\n"
    "    n += 1\n"
    "    time.sleep(0.02)\n"
    "print(n)\n"
)

READER = (  # a read-only reader in a process of its own, as `one verify` or an operator's sqlite3 shell reads
    "import sqlite3, sys, time\n"
    "from contextlib import closing\n"
    "end, errors, reads = time.time() + float(sys.argv[2]), 0, 0\n"
    "with closing(sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True, timeout=30)) as db:\n"
    "    while time.time() < end:\n"
    "        try:\n"
    "            db.execute('SELECT count(*), max(seq) FROM receipt').fetchall()\n"
    "            db.execute('SELECT count(*) FROM ledger_entry').fetchall()\n"
    "            db.execute('SELECT count(*) FROM stress_probe').fetchall()\n"
    "            reads += 1\n"
    "        except sqlite3.DatabaseError as exc:\n"
    "            errors += 1\n"
    "            print('error', exc, file=sys.stderr)\n"
    "        time.sleep(0.01)\n"
    "print(reads, errors)\n"
)


def test_the_database_stays_sound_under_a_second_writer_and_readers(devnet):
    db_file = devnet.data_dir / "one.db"
    env = coordinator_env(devnet.port, devnet.data_dir, {**devnet.chain_env, **devnet.coordinator_extra_env})
    made = subprocess.run([sys.executable, "-c", WRITER, "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)  # the table
    assert made.returncode == 0, made.stderr
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(STRESS_S)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(db_file), str(STRESS_S)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]  # fmt: skip
    stop, failures, served = threading.Event(), [], [0]

    def traffic() -> None:  # the coordinator appends receipts and ledger entries the whole time
        while not stop.is_set():
            body = {"model": "tiny-chat", "messages": [{"role": "user", "content": f"stress {served[0]}"}], "max_tokens": 4}
            reply = httpx.post(f"{devnet.url}/v1/chat/completions", json=body, timeout=60)
            if reply.status_code != 200:
                failures.append(reply.status_code)
            served[0] += 1

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    settles, local_reads, deadline = 0, 0, time.monotonic() + STRESS_S
    try:
        while time.monotonic() < deadline:
            run_settle(devnet)  # a second writer process: closes an epoch, anchors it, pays
            settles += 1
            with read_only_db(devnet.data_dir) as db:  # and a reader in this process, between byte scans
                local_reads += db.execute("SELECT count(*) FROM receipt").fetchone()[0] > 0
            files_containing([devnet.data_dir], b"no such text")
    finally:
        stop.set()
        thread.join(90)
    written = writer.communicate(timeout=120)[0]
    assert writer.returncode == 0 and int(written) > 0
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        reads, errors = map(int, out.split())
        assert (reads > 0, errors) == (True, 0), err
    assert failures == [] and served[0] > 0 and settles >= 2 and local_reads == settles
    with read_only_db(devnet.data_dir) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM stress_probe").fetchone()[0] == int(written)
