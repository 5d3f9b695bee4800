"""What the web app's browser tests share: headless Debian Chromium, wallets through an EIP-1193 shim backed by
anvil's dev accounts, the two viewports every page is checked at (desktop 1366 px, phone 390x844), screenshots."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
CANARY = f"canary-{uuid.uuid4().hex}"

# window.ethereum for tests: accounts from the test, every other call to anvil (which holds the dev keys).
ETHEREUM_SHIM = """
window.ethereum = {
  isShim: true,
  async request({ method, params }) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [window.__shimAccount];
    const reply = await window.anvilRpc(method, params || []);
    if (reply.error) throw new Error(reply.error.message);
    return reply.result;
  },
};
"""


DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])


def size_name(viewport: dict) -> str:
    return "phone" if viewport["width"] < 600 else "desktop"


def shoot(page, shots: Path, name: str, viewport: dict, full_page: bool = True) -> None:
    """test-output/screenshots/<name>-<desktop|phone>.png"""
    page.screenshot(path=str(shots / f"{name}-{size_name(viewport)}.png"), full_page=full_page)


def wallet_context(browser, devnet, address: str, viewport: dict | None = None):
    """A browser context whose window.ethereum is an anvil dev account (anvil signs for it)."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 860})
    rpc = devnet.chain.rpc_url
    context.expose_function("anvilRpc", lambda method, params: httpx.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30).json())
    context.add_init_script(f"window.__shimAccount = {json.dumps(address)};" + ETHEREUM_SHIM)
    return context


def fund(devnet, address: str, one_tokens: int, usdc: int) -> None:
    from backend.chain import token_at

    w3, d = devnet.chain.web3(), devnet.deployment
    for token, amount in ((d.one_token, one_tokens * 10**18), (d.usdc_token, usdc * 10**6)):
        if amount:
            w3.eth.wait_for_transaction_receipt(token_at(w3, token).functions.mint(address, amount).transact({"from": d.deployer}))


def dev_account(index: int) -> str:
    from backend.chain.devchain import dev_accounts

    return dev_accounts(index + 1)[index].address


def send_chat(page, text: str, timer: str | None = None):
    field = page.locator("#chat-input")
    expect(field).to_be_editable(timeout=30_000)
    if timer is not None:
        page.select_option("#message-timer", timer)
    field.fill(text)
    page.locator("#send-button").click()


