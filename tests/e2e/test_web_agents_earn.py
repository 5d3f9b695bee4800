"""Agents and Earn pages at desktop and phone size: an agent file checked on the coordinator line by line,
deployed from the page, its card saying what it does and its webhook secret shown once; the Earn page's billed
work with its unit and the share the next settlement pays, and no Join or Leave without WebGPU."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.web import VIEWPORTS, shoot, size_name

pytestmark = pytest.mark.e2e


@VIEWPORTS
def test_an_agent_file_is_checked_line_by_line_then_deployed_with_its_secret_shown_once(browser, devnet, shots, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(devnet.url + "/agents")
    page.locator("[data-testid=dev-wallet]").nth(2).click()  # the third demo wallet: it holds $ONE, so Included pays
    field = page.locator("#agent-yaml")
    expect(field).to_be_editable(timeout=30_000)
    name = f"digest-{size_name(viewport)}-{uuid.uuid4().hex[:6]}"
    good = field.input_value().replace("agent: daily-summary", f"agent: {name}")
    lines = good.splitlines()
    assert lines[2] == "model: tiny-chat" and lines[4] == "tools: [ summarize ]", lines
    field.fill(good.replace("model: tiny-chat", "model: tiny-chatt").replace("[ summarize ]", "[ summarise ]"))
    page.keyboard.press("Tab")  # from the file straight to Validate
    expect(page.locator("#validate-agent")).to_be_focused()
    page.keyboard.press("Enter")
    problems = page.locator("#agent-problems li")
    expect(problems).to_have_count(2, timeout=10_000)
    expect(problems.nth(0)).to_contain_text("line 3 · model: no model `tiny-chatt` in the catalog")
    expect(problems.nth(1)).to_contain_text("line 5 · tools[0]: unknown tool `summarise`")
    expect(page.locator(".agent-gutter li.agent-bad")).to_have_count(2)
    expect(page.locator(".agent-gutter li[data-line='3']")).to_have_class("agent-bad")
    expect(page.locator(".agent-gutter li[data-line='5']")).to_contain_text("⚠")
    shoot(page, shots, "agents-problems", viewport)

    field.fill(good)
    page.locator("#validate-agent").click()
    expect(page.locator("#agent-valid")).to_be_visible(timeout=10_000)
    expect(problems).to_have_count(0)
    page.locator("#deploy-agent").click()
    expect(page.locator("#webhook-secret")).to_contain_text("shown this once", timeout=10_000)
    secret = page.get_by_test_id("webhook-secret").inner_text()
    assert re.fullmatch(r"[0-9a-f]{48}", secret), secret
    page.locator("#copy-secret").click()
    expect(page.locator("#copy-status")).not_to_have_text("")
    card = page.locator(f"[data-agent={name}]")
    expect(card.get_by_test_id("agent-model")).to_have_text("tiny-chat", timeout=10_000)
    expect(card.get_by_test_id("agent-tools")).to_have_text("summarize")
    expect(card.get_by_test_id("agent-schedule")).to_have_text("every 6 hours")
    expect(card.get_by_test_id("agent-budget")).to_have_text("at most 0.002 credits per run · 8 steps at most")
    expect(card.get_by_test_id("agent-goal")).to_have_text("Summarize what is new today in three sentences.")
    expect(card.get_by_test_id("agent-spend")).to_have_text("no runs yet (0 credits spent)")
    shoot(page, shots, "agents", viewport)

    page.reload()
    expect(card.get_by_test_id("agent-model")).to_have_text("tiny-chat", timeout=30_000)
    expect(page.locator("#webhook-secret")).to_have_count(0)
    assert secret not in page.content()
    context.close()


@VIEWPORTS
def test_earn_without_webgpu_neither_joins_nor_leaves_and_bills_in_credits(browser, devnet, shots, viewport):
    page = browser.new_page(viewport=viewport)
    page.goto(devnet.url + "/worker")
    expect(page.locator("#no-webgpu")).to_contain_text("cannot serve models", timeout=30_000)
    expect(page.locator("#join-button")).to_be_disabled()
    expect(page.locator("#leave-button")).to_be_disabled()
    expect(page.locator("#earnings")).to_have_text("0 credits")
    expect(page.locator("#earnings-estimate")).to_have_text("≈ 0 USDC at the next settlement (after the 10% network fee)")
    shoot(page, shots, "earn", viewport)
    page.close()
