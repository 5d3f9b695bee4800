"""Receipt-log fixtures on a real database: a temp SQLite file, or a fresh Postgres database."""

from __future__ import annotations

import uuid

import pytest
from nacl.signing import SigningKey

from backend import config, db
from backend.protocol import receipt as rc
from backend.protocol.signing import public_hex, sign_hex


def _use_database(monkeypatch, tmp_path, url: str) -> None:
    monkeypatch.setenv("ONE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONE_DATABASE_URL", url)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    db.migrate()


@pytest.fixture
def sqlite_db(monkeypatch, tmp_path):
    _use_database(monkeypatch, tmp_path, "")
    yield tmp_path / "one.db"
    db.get_engine().dispose()
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()


@pytest.fixture
def postgres_db(monkeypatch, tmp_path):
    """A database of its own on the machine's Postgres (127.0.0.1:5432), dropped afterwards."""
    import psycopg

    name = f"one_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _use_database(monkeypatch, tmp_path, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    yield name
    db.get_engine().dispose()
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


ACCOUNT_SECRET = b"test account secret, 32 bytes...."


def signed_fields(worker: SigningKey, job: str, output_tokens: int = 5) -> dict:
    """Fields for ReceiptLog.append with a real worker attestation signature."""
    usage = {"input_tokens": 7, "output_tokens": output_tokens, "images": 0}
    request_digest, output_digest = rc.sha256hex(job.encode()), rc.sha256hex(b"out" + job.encode())
    statement = rc.attestation(job, "tiny-chat", request_digest, output_digest, usage)
    return dict(
        job=job, kind="chat", lane="included", account=rc.account_digest("acct", ACCOUNT_SECRET), model="tiny-chat",
        request_digest=request_digest, output_digest=output_digest, usage=usage, charge_unit="credit",
        charge_amount=2 * output_tokens, worker_id=public_hex(worker), worker_sig=sign_hex(worker, rc.jcs(statement)),
        parent=None,
    )  # fmt: skip
