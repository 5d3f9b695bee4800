"""Scale mode: a coordinator on Postgres with Reflex's UI state in Redis. The web app's chat, flash
session and verify page run against it, then the privacy canary is searched for in Redis and every
Postgres table. Runs last (its build of .web carries its own port)."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest
import redis
from playwright.sync_api import expect, sync_playwright

from tests.conftest import free_port
from tests.e2e.web import CHROMIUM, CHROMIUM_ARGS, send_chat

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/13"
CANARY = f"scale-canary-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def scale_net(tmp_path_factory, tiny_models, test_output):
    from backend.dev.devnet import Devnet, wait_for_workers

    name = f"one_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    net = Devnet(port=free_port(), data_dir=tmp_path_factory.mktemp("one-scale"), log_dir=test_output / "logs-scale")
    try:
        net.start_coordinator(extra_env={"ONE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", "ONE_REDIS_URL": REDIS_URL})
        net.start_worker("scale-worker", models_dir=tiny_models)
        wait_for_workers(net.url, 1)
        net.database = name  # type: ignore[attr-defined]
        yield net
    finally:
        net.stop_all()
        redis.Redis.from_url(REDIS_URL).flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_web_app_on_postgres_and_redis_keeps_no_canary(scale_net):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(scale_net.url + "/")
        send_chat(page, f"scale {CANARY}")
        badge = page.locator("[data-testid=receipt-badge]").first
        expect(badge).to_be_visible(timeout=60_000)
        answer = page.locator(".one-assistant .one-body").first.inner_text()
        receipt_link = badge.get_attribute("href")
        page.locator("#flash-toggle").check()
        send_chat(page, f"flash {CANARY}")
        expect(page.locator("[data-testid=receipt-badge]")).to_be_visible(timeout=60_000)
        # The verify page keeps its state in Redis: the pasted output (with the canary) must not land there.
        page.goto(scale_net.url + receipt_link)
        expect(page.locator("#verify-summary")).to_contain_text("all checks pass", timeout=30_000)
        page.locator("#output-input").fill(f"{answer} {CANARY}")
        page.locator("#verify-button").click()
        expect(page.locator("#verify-summary")).to_contain_text("FAILED", timeout=20_000)
        browser.close()

    store = redis.Redis.from_url(REDIS_URL)
    keys = store.keys("*")
    assert keys, "Reflex kept no state in Redis: scale mode is not in effect"
    for key in keys:
        kind = store.type(key)
        values = [store.get(key)] if kind == b"string" else list(store.hgetall(key).values()) if kind == b"hash" else []
        assert not any(CANARY.encode() in (v or b"") for v in values), key

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{scale_net.database}") as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "receipt" in tables and conn.execute("SELECT count(*) FROM receipt").fetchone()[0] >= 2
        for table in tables:
            rows = conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
            assert not any(CANARY in row[0] for row in rows), table
    assert httpx.get(scale_net.url + "/one/receipts").json()["receipts"]
