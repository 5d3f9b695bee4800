"""A browser tab as a worker: headless Debian Chromium with WebGPU (SwiftShader) serves MiniLM embeddings
through Pyodide on a network of its own; then the tab closes mid-job and a node worker takes over."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from backend.trust.verify import verify_chain
from tests.conftest import E2E_ENV, own_network
from tests.e2e.web import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.own_network]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Receipts are hash-linked and signed by both the worker and the coordinator.",
    "¿Dónde está la biblioteca? Está cerca de la estación.",
    "東京は日本の首都です。",
    "GPU kernels: matmul, layernorm, GELU, softmax attention; 3.5x faster!",
    "a",
    "The stock market fell sharply on Tuesday after the central bank raised interest rates. " * 6,
    "emoji 🚀 and naïve café déjà vu",
]


@pytest.fixture(scope="module")
def net(tmp_path_factory, tiny_models, test_output):
    """A coordinator and chain with no node worker yet, so embeddings can only go to the browser."""
    # The demo wallet's Included allotment raised to cover the tab-close test's request (E2E_ENV's 3,000 tokens).
    env = {**E2E_ENV, "ONE_INCLUDED_TIERS": "[[100, 20000], [1000, 5000000], [10000, 20000000]]"}
    with own_network(tmp_path_factory, test_output, "browser", env) as network:
        yield network


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--enable-unsafe-webgpu"])
        yield browser
        browser.close()


def join(browser, url: str, query: str = ""):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url + "/worker" + query)
    expect(page.locator("#servable")).to_contain_text("all-minilm-l6-v2", timeout=30_000)
    page.locator("[data-testid=dev-wallet]").first.click()
    expect(page.locator("#payout-address")).to_be_visible()
    page.locator("#join-button").click()
    expect(page.locator("#worker-status")).to_have_attribute("data-state", "joined", timeout=120_000)
    return page, page.get_attribute("#worker-status", "data-worker")


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)


def reference(texts: list[str]):
    from sentence_transformers import SentenceTransformer

    from gpu_worker.engines.embeddings import minilm_path

    return SentenceTransformer(str(minilm_path()), device="cpu").encode(texts)


def test_browser_worker_embeddings_match_sentence_transformers_and_verify(net, chromium, test_output):
    page, browser_key = join(chromium, net.url)
    workers = httpx.get(net.url + "/one/workers").json()["workers"]
    assert [(w["id"], w["kind"], w["models"]) for w in workers] == [(browser_key, "browser", ["all-minilm-l6-v2"])]

    reply = httpx.post(net.url + "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": SENTENCES}, timeout=300)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    for item, ref in zip(body["data"], reference(SENTENCES), strict=True):
        assert cosine(item["embedding"], ref) >= 0.999, (item["index"], cosine(item["embedding"], ref))
    receipt = body["receipt"]
    assert receipt["worker"]["id"] == browser_key and receipt["kind"] == "embedding"
    assert receipt["usage"]["input_tokens"] == body["usage"]["prompt_tokens"] > len(SENTENCES)
    assert verify_chain(httpx.get(net.url + "/one/receipts").json()["receipts"]).ok
    expect(page.locator("#jobs-served")).to_have_text("1", timeout=10_000)
    expect(page.locator("#reliability")).to_have_text("100%")
    page.screenshot(path=str(test_output / "screenshots" / "worker.png"), full_page=True)
    page.close()
    deadline = time.monotonic() + 20  # the tab left: the coordinator deregisters it
    while httpx.get(net.url + "/one/workers").json()["workers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert httpx.get(net.url + "/one/workers").json()["workers"] == []


def test_sentences_of_different_lengths_batched_across_passes_each_match_sentence_transformers(net, chromium):
    """Sentences of 1 to 60 words share passes (rows stacked, a segment table per pass) and, at 80 tokens a pass,
    span several: a segment off by one would mix sentences' attention or pooling, or shift position ids."""
    long = " ".join(f"word{i} of the longer sentence" for i in range(12))  # 60 words
    texts = ["hello", long, "a", "ten words: receipts are signed, linked and verified by anyone", long[::-1], "three small words", "end"]
    page, _key = join(chromium, net.url, "?batch_tokens=80")
    reply = httpx.post(net.url + "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": texts}, timeout=300)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [item["index"] for item in data] == list(range(len(texts)))
    for item, ref in zip(data, reference(texts), strict=True):
        assert cosine(item["embedding"], ref) >= 0.999, (item["index"], cosine(item["embedding"], ref))
    page.close()
    deadline = time.monotonic() + 20  # gone before the next test joins its own tab
    while httpx.get(net.url + "/one/workers").json()["workers"] and time.monotonic() < deadline:
        time.sleep(0.5)


def test_closing_the_tab_mid_job_fails_over_and_charges_once(net, chromium, tiny_models):
    from backend.chain.devchain import dev_accounts
    from backend.dev.demo import sign_in
    from backend.dev.devnet import wait_for_workers

    page, browser_key = join(chromium, net.url)
    key = sign_in(net.url, dev_accounts(4)[3])  # a demo wallet: metered, with an Included allotment
    headers = {"authorization": f"Bearer {key}"}
    before = int(httpx.get(net.url + "/one/account", headers=headers).json()["balance"])
    result: dict = {}

    def request() -> None:
        # ~7,000 tokens (at most 256 inputs): the batched tab (~170 tokens/s on SwiftShader here) is still on it when
        # the node worker has joined (~8 s), so the tab closes mid-job.
        texts = [f"sentence number {i} about receipts, workers and the network, signed by the worker and the coordinator, "
                 "linked by hash and verified by anyone" for i in range(250)]  # fmt: skip
        result["reply"] = httpx.post(net.url + "/v1/embeddings", headers=headers, json={"model": "all-minilm-l6-v2", "input": texts}, timeout=300)

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 60  # wait until the browser worker has the job, then close its tab
    while httpx.get(f"{net.url}/one/workers/{browser_key}").json().get("busy", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"{net.url}/one/workers/{browser_key}").json()["busy"] == 1
    net.start_worker("node-after-tab", models_dir=tiny_models)  # somewhere for the job to go
    wait_for_workers(net.url, 2)
    page.close()
    thread.join(300)

    reply = result["reply"]
    after = int(httpx.get(net.url + "/one/account", headers=headers).json()["balance"])
    if reply.status_code == 200:  # failed over before any output: finished on the node worker, charged once
        receipt = reply.json()["receipt"]
        assert receipt["worker"]["id"] != browser_key
        assert before - after == receipt["charge"]["amount"] > 0
    else:  # or a clean error, and nothing charged
        assert reply.json()["error"]["code"] and after == before
    assert httpx.get(f"{net.url}/one/workers/{browser_key}").json()["online"] is False
