"""The web app as a first-time user meets it (issue 16 items 1, 2, 3, 4, 6 and 11's chat parts), at desktop 1366 px
and phone 390x844, with the keyboard where it applies. Conversations are seeded into localStorage where a test
needs a long history: that is where the app keeps them, and nothing about them reaches the server."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.web import VIEWPORTS, send_chat, shoot, size_name

pytestmark = pytest.mark.e2e
NAV_PAGES = ["/", "/images", "/balance", "/packages", "/verify", "/agents", "/worker", "/operator"]


def open_chat(browser, devnet, viewport, conversations: list | None = None, **context_args):
    """A fresh browser context on the chat page, with `conversations` already in its localStorage."""
    context = browser.new_context(viewport=viewport, **context_args)
    if conversations is not None:
        context.add_init_script(f"if (!sessionStorage.getItem('seeded')) {{ localStorage.setItem('one.conversations', {json.dumps(json.dumps(conversations))}); sessionStorage.setItem('seeded', '1'); }}")
    page = context.new_page()
    page.goto(devnet.url + "/")
    expect(page.locator("#chat-input")).to_be_editable(timeout=30_000)
    expect(page.locator("#model-select option")).not_to_have_count(0, timeout=30_000)
    return context, page


def conversation(messages: list[tuple[str, str]], title: str = "New chat", **fields) -> dict:
    return {"id": uuid.uuid4().hex[:16], "title": title, "model": "tiny-chat", "timer_s": 0, "settings": {}, "updated": int(time.time() * 1000),
            "messages": [{"id": uuid.uuid4().hex[:16], "role": role, "content": text, **fields} for role, text in messages]}  # fmt: skip


def chat_requests(page) -> list[dict]:
    """The bodies of the chat requests this page sends, as they leave the browser."""
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/v1/chat/completions") else None)
    return sent


def prose(n_chars: int, seed: int) -> str:
    words = ["receipt", "worker", "network", "verify", "token", "answer", "ledger", "epoch", "signature", "model"]
    out, i = [], seed
    while sum(len(w) + 1 for w in out) < n_chars:
        out.append(words[i % len(words)] + str(i % 97))
        i = (i * 31 + 7) % 10007
    return " ".join(out)


# ---- 1. an over-long message is caught before it is sent; history that no longer fits is trimmed ----


@VIEWPORTS
def test_an_over_long_message_is_refused_before_sending_and_old_turns_are_trimmed_to_fit(browser, devnet, shots, viewport):
    long_history = conversation([(role, prose(700, i)) for i, role in enumerate(["user", "assistant"] * 4)], title="long history")
    context, page = open_chat(browser, devnet, viewport, [long_history])
    sent = chat_requests(page)
    quote = httpx.post(f"{devnet.url}/one/quote", json={"model": "tiny-chat", "body": {"messages": [{"role": "user", "content": m["content"]} for m in long_history["messages"]]}}).json()
    assert quote["context"] == 2048 and len(quote["message_tokens"]) == 8 and quote["prompt_tokens"] > 2048 - 256  # the seeded history overflows

    paste = prose(20_000, 99)
    page.locator("#chat-input").fill(paste)
    expect(page.locator("#cost")).to_contain_text("Too long for tiny-chat", timeout=10_000)
    expect(page.locator("#cost")).to_have_class("one-error")
    page.locator("#chat-input").press("Enter")
    expect(page.locator("#cost")).to_contain_text("Not sent", timeout=10_000)
    assert page.locator("#chat-input").input_value() == paste  # nothing lost
    assert page.locator(".one-msg").count() == 8 and sent == []

    page.locator("#chat-input").fill("and now a short one")
    expect(page.locator("#cost")).to_contain_text("oldest messages will be left out", timeout=10_000)
    page.locator("#chat-input").press("Enter")
    expect(page.locator(".one-assistant [data-testid=receipt-badge]")).to_have_count(1, timeout=60_000)
    expect(page.locator("#context-cut")).to_contain_text("no longer fit tiny-chat's context")
    assert len(sent) == 1 and 1 < len(sent[0]["messages"]) < 9 and sent[0]["messages"][-1]["content"] == "and now a short one"
    assert sent[0]["messages"][0]["role"] == "user"  # whole turns: the kept history starts with a question
    shoot(page, shots, "chat-context-trimmed", viewport, full_page=False)

    # Any single message can be deleted.
    first = page.locator(".one-user").first
    first.hover()
    first.locator("[data-action=delete]").click()
    expect(page.locator(".one-msg")).to_have_count(9)
    context.close()


# ---- 2. the operator opens the dashboard from the page; the header names who is signed in ----


@VIEWPORTS
def test_the_dev_operator_opens_the_dashboard_and_the_header_follows_the_signed_in_wallet(browser, devnet, shots, viewport):
    from backend.chain.devchain import dev_accounts

    operator = dev_accounts(6)[5].address
    context = browser.new_context(viewport=viewport)
    # A package of another wallet was in use in this browser: signing in as the operator must not keep showing it.
    context.add_init_script("if (!localStorage.getItem('one.dedicated')) localStorage.setItem('one.dedicated', JSON.stringify("
                            "{api_key: 'one_sk_other', package: 'starter', account: '0x1111111111111111111111111111111111111111', in_use: true}));")  # fmt: skip
    page = context.new_page()
    page.goto(devnet.url + "/operator")
    button = page.locator("[data-testid=dev-wallet]")
    expect(button).to_have_count(1, timeout=30_000)  # only the wallet that operates is offered here
    expect(button).to_contain_text("(operator)")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#operator-address")).to_have_text(operator, timeout=30_000)
    expect(page.locator("#session-chip")).to_have_text(f"{operator[:6]}…{operator[-4:]} · Included")
    shoot(page, shots, "operator", viewport)
    context.close()


# ---- 3. money reads the same everywhere: amount, unit, lane ----


@VIEWPORTS
def test_every_amount_names_its_unit_and_the_lane_it_is_charged_to(browser, devnet, shots, viewport):
    context, page = open_chat(browser, devnet, viewport)
    expect(page.locator("#chat-balance")).to_contain_text("Not signed in: open dev access")
    page.goto(devnet.url + "/balance")
    page.locator("[data-testid=dev-wallet]").first.click()
    expect(page.locator("#balance-amount")).to_contain_text("credits", timeout=30_000)
    account = page.locator("#balance-account").inner_text()
    page.goto(devnet.url + "/")
    if size_name(viewport) == "desktop":
        expect(page.locator("#model-info")).to_contain_text("0.002 credits / 1k output tokens", timeout=30_000)
    expect(page.locator("#chat-balance")).to_contain_text("Included · ", timeout=30_000)
    expect(page.locator("#chat-balance")).to_contain_text("credits left · refreshes in")
    send_chat(page, "what does a receipt prove?")
    expect(page.locator("#cost")).to_contain_text("credits (Included)", timeout=30_000)
    badge = page.locator(".one-assistant [data-testid=receipt-badge]")
    expect(badge).to_contain_text(" credits · Included", timeout=60_000)

    page.goto(devnet.url + "/balance")
    expect(page.locator("#included-card")).to_contain_text("Included lane", timeout=30_000)
    assert page.locator("body").inner_text().count(account) == 1  # the address once
    expect(page.locator("#usage-table")).to_contain_text("tiny-chat")
    for cell in page.locator("#usage-table tbody tr td:last-child").all_inner_texts():
        assert cell.endswith(" credits") or cell.endswith(" USDC"), cell
    today = page.evaluate("new Date().toISOString().slice(0, 10)")
    bar = page.locator(f"#usage-plot rect[data-day='{today}']")
    expect(bar).to_have_count(1)
    assert int(bar.get_attribute("data-charged")) > 0  # usage over time, from the account's receipts
    shoot(page, shots, "balance", viewport)
    context.close()


# ---- 4. auto-delete leaves nothing behind; deleting asks first ----


@VIEWPORTS
def test_expired_messages_take_their_title_with_them_and_deleting_a_chat_or_flash_asks_first(browser, devnet, shots, viewport):
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    expiring = conversation([("user", f"{secret} please forget me"), ("assistant", "done")], title=f"{secret} please forget me",
                            expires_at=int(time.time() * 1000) + 4000)  # fmt: skip
    kept = conversation([("user", "a chat worth keeping"), ("assistant", "yes")], title="a chat worth keeping")
    context, page = open_chat(browser, devnet, viewport, [expiring, kept])
    if size_name(viewport) == "phone":
        page.locator("#chat-drawer > summary").click()
    page.locator(f"#conversation-list li[data-id='{expiring['id']}'] .one-conv").click()
    expect(page.locator("#expired-notice")).to_contain_text("2 messages of this chat expired", timeout=15_000)
    expect(page.locator("#conversation-list")).not_to_contain_text(secret)
    assert secret not in (page.evaluate("localStorage.getItem('one.conversations')") or "")
    shoot(page, shots, "chat-expired", viewport, full_page=False)

    row = page.locator(f"#conversation-list li[data-id='{kept['id']}']")
    page.once("dialog", lambda d: d.dismiss())
    row.get_by_role("button", name="Delete a chat worth keeping").click()
    expect(row).to_have_count(1)  # declined: still there
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    row.get_by_role("button", name="Delete a chat worth keeping").click()
    expect(row).to_have_count(0)
    assert "a chat worth keeping" in asked[0]

    page.locator("#flash-toggle").check()
    send_chat(page, "a flash question")
    expect(page.locator("[data-testid=receipt-badge]")).to_be_visible(timeout=60_000)
    page.once("dialog", lambda d: d.dismiss())
    page.locator("#flash-toggle").click()  # declined: the flash chat stays
    expect(page.locator("#flash-toggle")).to_be_checked()
    expect(page.locator(".one-user .one-body")).to_have_text("a flash question")
    page.once("dialog", lambda d: d.accept())
    page.locator("#flash-toggle").uncheck()
    expect(page.locator("#flash-banner")).to_be_hidden()
    expect(page.locator(".one-user", has_text="a flash question")).to_have_count(0)
    context.close()


# ---- 6. layout: the message list scrolls, the message box is on screen and first for the keyboard ----


@VIEWPORTS
def test_the_chat_fits_the_window_and_the_keyboard_starts_at_the_message_box(browser, devnet, shots, viewport):
    chats = [conversation([("user", f"chat {i}"), ("assistant", "ok")], title=f"chat {i}") for i in range(5)]
    long_chat = conversation([(role, f"line {i} " + prose(200, i)) for i, role in enumerate(["user", "assistant"] * 30)], title="a long chat")
    long_chat["updated"] += 1000  # the newest: it opens first
    context, page = open_chat(browser, devnet, viewport, [long_chat, *chats])
    expect(page.locator(".one-msg")).to_have_count(60)
    page.wait_for_timeout(300)
    sizes = page.evaluate("""() => { const m = document.getElementById('messages'), box = document.getElementById('chat-input').getBoundingClientRect();
        return {page: document.scrollingElement.scrollHeight, view: innerHeight, top: m.scrollTop, bottom: m.scrollHeight - m.clientHeight,
                box: box.bottom, focused: document.activeElement && document.activeElement.id}; }""")  # fmt: skip
    assert sizes["page"] <= sizes["view"] + 1, sizes  # the page does not grow with the chat…
    assert sizes["bottom"] > 0 and abs(sizes["top"] - sizes["bottom"]) <= 2, sizes  # …its list scrolls, opened at the newest message
    assert sizes["box"] <= sizes["view"], sizes  # the message box is on screen, phones too
    assert sizes["focused"] == "chat-input", sizes  # and focused
    if size_name(viewport) == "phone":
        expect(page.locator("#chat-drawer")).not_to_have_attribute("open", "")  # the chat list folds away on a phone
    shoot(page, shots, "chat", viewport, full_page=False)

    page.mouse.click(2, 2)  # the page's top corner, before everything: where a keyboard user starts
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "chat-input"

    widths = {}
    for path in NAV_PAGES:
        page.goto(devnet.url + path)
        expect(page.locator("#main")).to_be_visible(timeout=30_000)
        widths[path] = page.evaluate("""() => { const m = document.getElementById('main').getBoundingClientRect(), h = document.querySelector('header').getBoundingClientRect();
            return [Math.round(m.width), Math.round(h.height)]; }""")  # fmt: skip
    assert len(set(map(tuple, widths.values()))) == 1, widths  # one width and one header on every page
    context.close()


# ---- 11. what chat users look for: copy, regenerate, edit, per-chat settings, rename and search ----


@VIEWPORTS
def test_a_message_can_be_copied_regenerated_and_edited_and_each_chat_keeps_its_settings(browser, devnet, shots, viewport):
    context, page = open_chat(browser, devnet, viewport, [conversation([("user", "an older chat"), ("assistant", "yes")], title="older chat")])
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=devnet.url)
    sent = chat_requests(page)
    page.locator("#new-chat").click()
    page.locator("#chat-settings > summary").click()
    page.locator("#setting-system").fill("Answer in one word.")
    page.locator("#setting-temperature").fill("0")
    page.locator("#setting-max-tokens").fill("5")
    page.locator("#setting-max-tokens").press("Tab")
    page.locator("#chat-settings > summary").click()
    send_chat(page, "first question")
    badge = page.locator(".one-assistant [data-testid=receipt-badge]")
    expect(badge).to_have_count(1, timeout=60_000)
    assert sent[-1]["messages"][0] == {"role": "system", "content": "Answer in one word."}
    assert sent[-1]["temperature"] == 0 and sent[-1]["max_tokens"] == 5

    answer = page.locator(".one-assistant")
    answer.hover()
    answer.locator("[data-action=copy]").click()
    expect(answer.locator("[data-action=copy]")).to_have_text("Copied ✓")
    stored = json.loads(page.evaluate("localStorage.getItem('one.conversations')"))
    raw = next(m["content"] for c in stored for m in c["messages"] if m["role"] == "assistant" and m.get("receipt") == badge.get_attribute("data-hash"))
    assert page.evaluate("navigator.clipboard.readText()") == raw  # the answer as written, markdown and all
    first_hash = badge.get_attribute("data-hash")
    answer.locator("[data-action=regenerate]").click()
    expect(badge).to_have_count(1, timeout=60_000)
    expect(badge).not_to_have_attribute("data-hash", first_hash, timeout=60_000)  # a new answer, a new receipt
    assert sent[-1]["messages"][-1]["content"] == "first question" and len(sent) == 2

    question = page.locator(".one-user")
    question.hover()
    question.locator("[data-action=edit]").click()
    expect(page.locator("#editing-note")).to_be_visible()
    assert page.locator("#chat-input").input_value() == "first question"
    page.locator("#chat-input").fill("edited question")
    page.locator("#chat-input").press("Enter")
    expect(page.locator(".one-user .one-body")).to_have_text("edited question", timeout=30_000)
    expect(page.locator(".one-assistant [data-testid=receipt-badge]")).to_have_count(1, timeout=60_000)
    assert [m["content"] for m in sent[-1]["messages"][1:]] == ["edited question"]

    if size_name(viewport) == "phone":
        page.locator("#chat-drawer > summary").click()
    current = page.locator("#conversation-list li.active")
    current.get_by_role("button", name="Rename edited question").click()
    expect(page.get_by_label("Chat name")).to_be_focused()
    page.keyboard.type("My renamed chat")
    page.keyboard.press("Enter")
    expect(current.locator(".one-conv")).to_have_text("My renamed chat")
    page.locator("#chat-search").fill("older")
    expect(page.locator("#conversation-list li[data-id]")).to_have_count(1)
    expect(page.locator("#conversation-list")).to_contain_text("older chat")
    page.locator("#chat-search").fill("zzz-nothing")
    expect(page.locator("#no-chat-found")).to_be_visible()
    shoot(page, shots, "chat-actions", viewport, full_page=False)
    context.close()
