"""The web app in headless Debian Chromium: every page's main flow, wallets through an EIP-1193 shim
backed by anvil's dev accounts, screenshots under test-output/screenshots, then the privacy canary."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import REPO, files_containing
from tests.e2e.web import CANARY, DESKTOP, PHONE, dev_account, fund, send_chat, shoot, wallet_context

pytestmark = pytest.mark.e2e


def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 90)).save(buf, format="PNG")
    return buf.getvalue()


def test_chat_streams_markdown_with_cost_and_a_receipt_that_verifies(browser, devnet, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(devnet.url + "/")
    expect(page.locator("#model-select option")).not_to_have_count(0, timeout=30_000)
    expect(page.locator("#model-info")).to_contain_text("tokens context", timeout=10_000)
    expect(page.locator("#model-info")).to_contain_text("online")
    page.locator("#chat-input").fill("How are receipts checked?")
    expect(page.locator("#cost")).to_contain_text("at most 0.000512 credits", timeout=10_000)  # 256 tokens x 2000/1k
    page.evaluate(
        """() => { window.answerLengths = [];
        new MutationObserver(() => { const a = document.querySelector('.one-assistant .one-body');
          if (a) { const n = a.textContent.length; if (window.answerLengths.at(-1) !== n) window.answerLengths.push(n); } })
        .observe(document.querySelector('#messages'), {subtree: true, childList: true, characterData: true}); }"""
    )
    page.locator("#send-button").click()
    expect(page.locator("#stop-button")).to_be_visible(timeout=5_000)
    badge = page.locator("[data-testid=receipt-badge]").first
    expect(badge).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "chat.png"), full_page=True)
    lengths = [n for n in page.evaluate("window.answerLengths") if n > 0]
    assert len(lengths) >= 2, lengths  # the answer grew in pieces: streamed
    receipt_hash = badge.get_attribute("href").split("hash=")[1]
    receipt = httpx.get(f"{devnet.url}/one/receipts/{receipt_hash}").json()
    assert receipt["kind"] == "chat" and receipt["usage"]["output_tokens"] > 0
    # The conversation is in this browser's localStorage, and survives a reload.
    page.reload()
    expect(page.locator(".one-user .one-body")).to_have_text("How are receipts checked?", timeout=30_000)
    badge.click()
    expect(page.locator("#verify-summary")).to_contain_text("all checks pass", timeout=30_000)
    expect(page.locator("#verify-table")).to_contain_text("valid")
    page.screenshot(path=str(shots / "verify.png"), full_page=True)
    page.close()


def test_stop_ends_the_answer_with_no_receipt_and_no_charge(browser, devnet):
    """Stop aborts the stream; the coordinator cancels the job, so no receipt is written."""
    page = browser.new_page()

    def long_answer(route):  # force a long answer so Stop lands mid-stream
        body = json.loads(route.request.post_data)
        route.continue_(post_data=json.dumps({**body, "max_tokens": 2000, "min_tokens": 2000}))

    page.route("**/v1/chat/completions", long_answer)
    page.goto(devnet.url + "/")
    head = len(httpx.get(f"{devnet.url}/one/receipts?limit=1000").json()["receipts"])
    send_chat(page, "Tell me a long story")
    expect(page.locator(".one-assistant .one-body")).not_to_be_empty(timeout=60_000)
    page.locator("#stop-button").click()
    expect(page.locator(".one-assistant .one-meta")).to_contain_text("stopped — not charged", timeout=10_000)
    expect(page.locator("#send-button")).to_be_visible()
    time.sleep(2)
    assert len(httpx.get(f"{devnet.url}/one/receipts?limit=1000").json()["receipts"]) == head
    assert page.locator("[data-testid=receipt-badge]").count() == 0
    page.close()


def test_markdown_is_rendered_and_html_is_sanitised(browser, devnet):
    """Answers render as markdown; any HTML in them is sanitised (DOMPurify) before it reaches the page."""
    page = browser.new_page()
    page.goto(devnet.url + "/")
    expect(page.locator("#chat-input")).to_be_editable(timeout=30_000)
    conv = {"id": "md1", "title": "md", "model": "tiny-chat", "timer_s": 0, "updated": 1, "messages": [
        {"id": "u", "role": "user", "content": "**not bold for users**"},
        {"id": "a", "role": "assistant", "content": "# Title\n\n```python\nprint(1)\n```\n\n<img src=x onerror=\"window.pwned=1\">"},
    ]}  # fmt: skip
    page.evaluate("c => localStorage.setItem('one.conversations', JSON.stringify([c]))", conv)
    page.reload()
    assistant = page.locator(".one-assistant .one-body")
    expect(assistant.locator("h1")).to_have_text("Title", timeout=30_000)
    expect(assistant.locator("pre code")).to_have_text("print(1)")
    expect(page.locator(".one-user .one-body")).to_have_text("**not bold for users**")
    assert page.evaluate("window.pwned") is None and assistant.locator("img[onerror]").count() == 0
    page.close()


def test_vision_answers_about_an_attached_image(browser, devnet):
    page = browser.new_page()
    page.goto(devnet.url + "/")
    expect(page.locator("#model-select option")).not_to_have_count(0, timeout=30_000)
    page.select_option("#model-select", "tiny-chat")
    page.locator("#attach-input").set_input_files(files=[{"name": "dot.png", "mimeType": "image/png", "buffer": png_bytes()}])
    expect(page.locator("#attachment img")).to_be_visible()
    expect(page.locator("#model-select")).to_have_value("tiny-vision")  # switched to a model that sees images
    expect(page.locator("#model-info")).to_contain_text("/ image read + ")  # and priced per image it reads
    send_chat(page, "What colour is this?")
    badge = page.locator("[data-testid=receipt-badge]").first
    expect(badge).to_be_visible(timeout=60_000)
    receipt = httpx.get(f"{devnet.url}/one/receipts/{badge.get_attribute('href').split('hash=')[1]}").json()
    assert receipt["model"] == "tiny-vision" and receipt["kind"] == "vision"
    expect(page.locator(".one-user img.one-thumb")).to_be_visible()
    page.close()


def test_timer_message_deletes_itself_without_a_reload(browser, devnet, shots):
    context = browser.new_context()
    page, other = context.new_page(), context.new_page()
    page.goto(devnet.url + "/")
    send_chat(page, f"self-destructing {CANARY}", timer="10")
    expect(page.locator("[data-testid=receipt-badge]")).to_be_visible(timeout=60_000)
    expect(page.locator(".one-timer").first).to_be_visible()
    page.screenshot(path=str(shots / "chat-timer.png"))
    other.goto(devnet.url + "/")  # a second tab of the same browser shows it too…
    expect(other.locator(".one-user", has_text=CANARY)).to_be_visible(timeout=30_000)
    # …and both lose it when the interval ends, with no reload.
    expect(page.locator(".one-user", has_text=CANARY)).to_have_count(0, timeout=20_000)
    expect(other.locator(".one-user", has_text=CANARY)).to_have_count(0, timeout=5_000)
    assert CANARY not in (page.evaluate("localStorage.getItem('one.conversations')") or "")
    context.close()


def test_flash_session_vanishes_when_the_tab_closes(browser, devnet):
    context = browser.new_context()
    page = context.new_page()
    page.goto(devnet.url + "/")
    expect(page.locator("#chat-input")).to_be_editable(timeout=30_000)
    page.locator("#flash-toggle").check()
    expect(page.locator("#flash-banner")).to_be_visible()
    send_chat(page, f"flash {CANARY}")
    expect(page.locator("[data-testid=receipt-badge]")).to_be_visible(timeout=60_000)
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage))")
    assert CANARY not in stored
    page.close()
    again = context.new_page()
    again.goto(devnet.url + "/")
    expect(again.locator("#chat-input")).to_be_editable(timeout=30_000)
    expect(again.locator("#conversation-list")).not_to_contain_text(CANARY)
    assert CANARY not in again.content()
    context.close()


def test_image_grid_generates_candidates_in_parallel(browser, devnet, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page.goto(devnet.url + "/images")
    expect(page.locator("#image-model option")).not_to_have_count(0, timeout=30_000)
    page.select_option("#image-count", "4")
    expect(page.locator("#image-cost")).to_contain_text("0.02 credits for 4")  # 4 x 5000 micro-credits
    page.locator("#image-prompt").fill("a lighthouse at dusk")
    page.locator("#generate-button").click()
    expect(page.locator("#image-grid img.one-image")).to_have_count(4, timeout=120_000)
    expect(page.locator("#image-status")).to_contain_text("4 of 4 ready")
    with page.expect_download() as download:
        page.locator("[data-testid=download-image]").first.click()
    assert download.value.suggested_filename == "one-image-1.png"
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.locator("[data-testid=open-image]").first.get_attribute("href").startswith("blob:")
    hashes = {a.get_attribute("href") for a in page.locator("#image-grid [data-testid=receipt-badge]").all()}
    assert len(hashes) == 4  # one receipt per candidate
    page.screenshot(path=str(shots / "images.png"), full_page=True)
    page.close()


def test_verify_page_flags_tampering_and_checks_the_output(browser, devnet):
    for _ in range(20):  # a textarea turns "\r" into "\n" (and drops NUL); the random tiny model can emit any byte
        reply = httpx.post(f"{devnet.url}/v1/chat/completions", json={"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}, timeout=60).json()
        receipt, answer = reply["receipt"], reply["choices"][0]["message"]["content"]
        if all(c.isprintable() or c == "\n" for c in answer):
            break
    page = browser.new_page()
    page.goto(devnet.url + "/verify")
    field = page.locator("#receipts-input")
    expect(field).to_be_editable(timeout=30_000)
    # the page says which check needs the model's weights, and how to run it
    expect(page.locator("#verify-needs-model")).to_contain_text("one verify-audit reply.json --request request.json --model-dir")
    field.fill(json.dumps(receipt))
    page.locator("#output-input").fill(answer)
    page.locator("#verify-button").click()
    expect(page.locator("#verify-summary")).to_contain_text("all checks pass", timeout=20_000)
    page.locator("#output-input").fill(answer + "!")
    page.locator("#verify-button").click()
    expect(page.locator("#verify-summary")).to_contain_text("FAILED", timeout=20_000)
    expect(page.locator("#verify-table")).to_contain_text("output does not match")
    field.fill(json.dumps({**receipt, "charge": {"unit": receipt["charge"]["unit"], "amount": receipt["charge"]["amount"] + 1}}))
    page.locator("#output-input").fill("")
    page.locator("#verify-button").click()
    expect(page.locator("#verify-table")).to_contain_text("hash check failed", timeout=20_000)
    # Upload a file of JSON lines: the first receipts of the log, linked from genesis (three of them, even when this
    # test runs on a devnet of its own).
    while len(first := httpx.get(f"{devnet.url}/one/receipts?limit=3").json()["receipts"]) < 3:
        assert httpx.post(f"{devnet.url}/v1/chat/completions", json={"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                          timeout=60).status_code == 200  # fmt: skip
    lines = "\n".join(json.dumps(r) for r in first)
    page.locator("#receipts-upload input[type=file]").set_input_files(files=[{"name": "log.jsonl", "mimeType": "application/json", "buffer": lines.encode()}])
    expect(page.locator("#verify-summary")).to_contain_text("3 receipts: all checks pass", timeout=20_000)
    expect(page.locator("#verify-table tbody tr")).to_have_count(3)
    page.close()


def test_operator_dashboard_needs_an_operator_wallet(browser, devnet, shots):
    tick = {"model": "tiny-chat", "messages": [{"role": "user", "content": "tick"}], "max_tokens": 4}
    assert httpx.post(f"{devnet.url}/v1/chat/completions", json=tick, timeout=60).status_code == 200
    outsider = wallet_context(browser, devnet, dev_account(6))
    page = outsider.new_page()
    page.goto(devnet.url + "/operator")
    page.locator("[data-testid=browser-wallet]").click()
    expect(page.locator("#operator-denied")).to_contain_text("not an operator", timeout=30_000)
    outsider.close()

    operator = wallet_context(browser, devnet, dev_account(0))  # the dev chain's deployer operates the devnet
    page = operator.new_page()
    page.goto(devnet.url + "/operator")
    page.locator("[data-testid=browser-wallet]").click()
    expect(page.locator("#operator-address")).to_have_text(dev_account(0), timeout=30_000)
    expect(page.locator("#workers-table tbody tr")).to_have_count(2, timeout=10_000)
    expect(page.locator("#receipts-table tbody tr")).not_to_have_count(0)
    seq_before = int(page.locator("#receipts-table tbody tr").first.locator("td").first.inner_text())
    assert httpx.post(f"{devnet.url}/v1/chat/completions", json=tick, timeout=60).status_code == 200
    # live: the newest row moves past it (an audit of a sampled job may add receipts of its own meanwhile)
    expect(page.locator("#receipts-table tbody tr").first.locator("td").first).not_to_have_text(str(seq_before), timeout=10_000)
    assert int(page.locator("#receipts-table tbody tr").first.locator("td").first.inner_text()) > seq_before
    expect(page.locator("#operator-charts .recharts-line")).to_have_count(2)
    page.screenshot(path=str(shots / "operator.png"), full_page=True)
    operator.close()


def test_dev_wallet_signs_in_without_an_extension(browser, devnet, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(devnet.url + "/balance")
    assert page.evaluate("window.ethereum") is None
    dev = page.locator("[data-testid=dev-wallet]").first
    expect(dev).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid=browser-wallet]")).to_have_count(0)
    dev.click()
    expect(page.locator("#balance-amount")).to_contain_text("credits", timeout=30_000)
    expect(page.locator("#balance-allotment")).to_contain_text("of 20 credits")  # demo wallets hold 10,000 $ONE: the top tier
    expect(page.locator("#refresh-countdown")).to_have_text(re.compile(r"^\d+:\d\d:\d\d$"))
    countdown = page.locator("#refresh-countdown").inner_text()
    page.wait_for_timeout(1500)
    assert page.locator("#refresh-countdown").inner_text() != countdown  # it counts down live
    page.screenshot(path=str(shots / "balance.png"), full_page=True)
    page.close()


@pytest.mark.holds_capacity
def test_holder_spends_out_sees_the_upsell_and_buys_a_package_with_the_wallet(browser, devnet, shots):
    address = dev_account(7)  # held 150 $ONE (the 3000 micro-credit tier) when the epoch began (tests/conftest.py)
    fund(devnet, address, one_tokens=0, usdc=10)  # Starter costs 5 USDC
    context = wallet_context(browser, devnet, address)
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(devnet.url + "/balance")
    page.locator("[data-testid=browser-wallet]").click()
    expect(page.locator("#balance-allotment")).to_contain_text("of 0.003 credits", timeout=30_000)
    expect(page.locator("#session-chip")).to_contain_text(address[:6])

    # Spend it all through the API with the browser's own session key (2000 + 1000 micro-credits).
    key = json.loads(page.evaluate("localStorage.getItem('one.session')"))["api_key"]
    for tokens in (1000, 500):
        r = httpx.post(f"{devnet.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=120,
                       json={"model": "tiny-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": tokens, "min_tokens": tokens})  # fmt: skip
        assert r.status_code == 200, r.text
    page.reload()
    expect(page.locator("#balance-amount")).to_have_text("0 credits", timeout=30_000)
    expect(page.locator("#upsell")).to_be_visible()
    expect(page.locator("#usage-table")).to_contain_text("tiny-chat")
    expect(page.locator("#usage-table")).to_contain_text("1500")  # output tokens, summed from receipts

    page.goto(devnet.url + "/")
    send_chat(page, "one more?")
    expect(page.locator("#upsell")).to_be_visible(timeout=30_000)  # soft stop: 402 becomes an offer
    expect(page.locator(".one-assistant .one-error")).to_contain_text("insufficient_quota")
    page.screenshot(path=str(shots / "chat-upsell.png"))

    page.locator("#upsell-packages").click()
    page.locator("[data-testid=buy-starter]").click()  # the wallet connected at sign-in is remembered across pages
    page.locator("#confirm-purchase").click()  # the confirm step naming amount, wallet and chain
    expect(page.locator("#purchase-status")).to_contain_text("Starter confirmed", timeout=60_000)
    api_key = page.locator("#api-key").inner_text().strip()
    assert api_key.startswith("one_sk_")
    page.screenshot(path=str(shots / "packages.png"), full_page=True)
    me = httpx.get(f"{devnet.url}/one/auth/me", headers={"authorization": f"Bearer {api_key}"}).json()
    assert me == {"account": address, "lane": "dedicated", "package": "starter"}
    expect(page.locator("#session-chip")).to_contain_text("starter")

    page.goto(devnet.url + "/")  # chat now runs on the Dedicated key
    send_chat(page, "and now?")
    badge = page.locator(".one-assistant [data-testid=receipt-badge]").last
    expect(badge).to_be_visible(timeout=60_000)
    receipt = httpx.get(f"{devnet.url}/one/receipts/{badge.get_attribute('href').split('hash=')[1]}").json()
    assert receipt["lane"] == "dedicated" and receipt["charge"]["unit"] == "usdc"
    # The chat says it runs on the package (issue 16 item 3), with what is left and until when, on either screen.
    expect(badge).to_contain_text(" USDC · Dedicated")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        page.goto(devnet.url + "/")
        expect(page.locator("#chat-balance")).to_contain_text("Dedicated · starter · ", timeout=30_000)
        expect(page.locator("#chat-balance")).to_contain_text(" USDC left · until ")
        page.goto(devnet.url + "/balance")  # both lanes: the package does not hide the Included credits
        expect(page.locator("#dedicated-amount")).to_contain_text(" USDC", timeout=30_000)
        expect(page.locator("#dedicated-expiry")).to_contain_text("(in 30 days)")
        expect(page.locator("#included-card")).to_contain_text("0 credits")
        assert page.locator("body").inner_text().count(address) == 1  # the address once
        shoot(page, shots, "balance-dedicated", viewport)
    context.close()


def test_no_prompt_text_is_written_anywhere(devnet):
    """After UI chats, a timer message and a flash session carrying the canary (above), plus an API chat,
    no file the network writes contains it: database, logs, keys, Reflex's .web and .states."""
    reply = httpx.post(f"{devnet.url}/v1/chat/completions", json={"model": "tiny-chat", "messages": [{"role": "user", "content": f"secret {CANARY}"}], "max_tokens": 4}, timeout=60)
    assert reply.status_code == 200
    time.sleep(2.5)  # anvil and SQLite flush on their own schedule
    scanned, hits = files_containing([devnet.data_dir, devnet.log_dir, REPO / ".web", REPO / ".states"], CANARY.encode())
    assert scanned > 0
    assert any(p.name.startswith("one.db") for p in devnet.data_dir.iterdir())
    assert hits == []


def test_worker_page_says_plainly_when_webgpu_is_missing(browser, devnet):
    """This browser fixture runs without --enable-unsafe-webgpu: no adapter, so the tab cannot join."""
    page = browser.new_page()
    page.goto(devnet.url + "/worker")
    expect(page.locator("#no-webgpu")).to_contain_text("cannot serve models", timeout=30_000)
    expect(page.locator("#join-button")).to_be_disabled()
    page.close()
