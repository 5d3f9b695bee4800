"""/v1/embeddings and /v1/images/generations through the official clients (Python and npm)."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import struct
import subprocess

import openai
import pytest
from PIL import Image

from backend.protocol import receipt as rc
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
SENTENCES = [
    "The cat sat on the mat.", "Stocks fell sharply on Monday.", "¿Dónde está la estación?", "Photosynthesis needs light.",
    "Receipts are hash-linked and signed.", "I love hiking in the Alps.", "print('hello world')", "Der Hund bellt laut.",
]  # fmt: skip


@pytest.fixture(scope="module")
def client(devnet) -> openai.OpenAI:
    return openai.OpenAI(base_url=devnet.url + "/v1", api_key="dev", max_retries=0, timeout=120)


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings_match_local_sentence_transformers(client):
    from sentence_transformers import SentenceTransformer

    from gpu_worker.engines.embeddings import minilm_path

    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(SENTENCES)
    reply = client.embeddings.create(model="all-minilm-l6-v2", input=SENTENCES)  # the client asks for base64 and decodes it
    assert [d.index for d in reply.data] == list(range(8))
    for item, ref in zip(reply.data, reference):
        assert _cos(item.embedding, ref) >= 0.9999
    receipt = reply.model_extra["receipt"]
    assert receipt["kind"] == "embedding" and receipt["usage"]["input_tokens"] == reply.usage.prompt_tokens > 0
    assert receipt["output_digest"] == rc.embedding_output_digest(d.embedding for d in reply.data)


def test_float_and_base64_encodings_carry_the_same_vectors(client):
    floats = client.embeddings.create(model="all-minilm-l6-v2", input="hello", encoding_format="float")
    raw = client.embeddings.with_raw_response.create(model="all-minilm-l6-v2", input="hello", encoding_format="base64")
    packed = json.loads(raw.text)["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(packed) * 3 // 4 // 4}f", base64.b64decode(packed))
    assert len(decoded) == 384
    assert max(abs(a - b) for a, b in zip(decoded, floats.data[0].embedding)) < 1e-6


def test_embedding_errors(client):
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="all-minilm-l6-v2", input="")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="tiny-chat", input="x")


def test_an_image_grid_of_four(client):
    reply = client.images.generate(model="tiny-sd", prompt="a lighthouse at dusk", n=4, response_format="b64_json", size="64x64")
    pngs = [base64.b64decode(item.b64_json) for item in reply.data]
    assert len(pngs) == 4 and len(set(pngs)) == 4
    assert all(Image.open(io.BytesIO(p)).size == (64, 64) for p in pngs)
    receipt = reply.model_extra["receipt"]
    assert receipt["kind"] == "image" and receipt["usage"]["images"] == 4
    assert receipt["output_digest"] == rc.image_output_digest(pngs)
    assert receipt["charge"]["amount"] == 0  # key-less dev-mode work: billable to nobody (a paying caller: 4 x 5000)


def test_image_urls_are_data_urls_and_bad_sizes_are_400(client):
    reply = client.images.generate(model="tiny-sd", prompt="a boat", n=1)
    assert reply.data[0].url.startswith("data:image/png;base64,")
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="tiny-sd", prompt="a boat", size="1024x1024")
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="tiny-sd", prompt="a boat", n=17)


def test_the_openai_npm_client_streams_chat_and_embeds(devnet):
    node = shutil.which("node")
    assert node, "node is needed for the npm client smoke test"
    result = subprocess.run(
        [node, str(REPO / "tests/e2e/js/openai_smoke.mjs"), devnet.url + "/v1"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["chunks"] >= 2 and seen["receipt_kind"] == "chat" and len(seen["receipt_hash"]) == 64
    assert seen["vectors"] == 2 and seen["dims"] == 384
