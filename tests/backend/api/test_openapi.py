"""/openapi.json documents every reply: each /v1 and /one operation has a success schema and the OpenAI error shape,
and reply models keep exactly the keys a route set (a signed receipt must come back byte for byte the same)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.api import create_api
from backend.api.schemas.responses import StoredReceipt, WorkerStats


@pytest.fixture(scope="module")
def document() -> dict:
    return create_api().openapi()


def _operations(document: dict):
    for path, operations in document["paths"].items():
        if path.startswith(("/v1/", "/one/")):
            for method, operation in operations.items():
                yield f"{method.upper()} {path}", operation


def test_every_operation_documents_its_reply_and_its_errors(document):
    operations = dict(_operations(document))
    assert len(operations) >= 30
    for name, operation in operations.items():
        responses = operation["responses"]
        success = next(code for code in responses if code.startswith("2"))
        schemas = [media.get("schema") for media in responses[success].get("content", {}).values()]
        assert schemas and all(schemas), f"{name}: no reply schema"
        assert responses["4XX"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, name
        assert "422" not in responses, f"{name}: the API answers bad requests with 400, not FastAPI's 422"


def test_openai_replies_name_their_wire_types_and_a_stream_its_chunks(document):
    paths = document["paths"]
    chat = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert chat["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert chat["text/event-stream"]["schema"]["title"] == "ChatCompletionChunk"
    for path, model in [("/v1/completions", "Completion"), ("/v1/embeddings", "EmbeddingList"), ("/v1/images/generations", "ImagesResponse")]:
        assert paths[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/" + model)
    receipt = document["components"]["schemas"]["StoredReceipt"]
    assert {"receipt", "request_salt"} <= set(document["components"]["schemas"]["ChatCompletion"]["properties"])
    assert {"hash", "sig", "parent", "charge", "worker"} <= set(receipt["required"])


def test_the_document_is_served():
    reply = TestClient(create_api()).get("/openapi.json")
    assert reply.status_code == 200 and "/v1/chat/completions" in reply.json()["paths"]


def test_a_reply_keeps_exactly_the_keys_it_was_given():
    stored = {"v": 1, "seq": 0, "prev": "0" * 64, "ts": "2026-01-01T00:00:00Z", "job": "j", "kind": "chat", "lane": "included",
              "account": "a" * 64, "model": "tiny-chat", "request_digest": "b" * 64, "output_digest": "c" * 64,
              "usage": {"input_tokens": 1, "output_tokens": 2, "images": 0}, "charge": {"unit": "credit", "amount": 4},
              "worker": {"id": "d" * 64, "sig": "e" * 128}, "parent": None, "coordinator": "f" * 64, "hash": "1" * 64, "sig": "2" * 128}  # fmt: skip
    assert StoredReceipt.model_validate(stored).model_dump(exclude_unset=True) == stored  # no logprobs_digest added, parent kept
    offline = {"id": "d" * 64, "online": False, "receipts": 0, "billed": {}}
    assert WorkerStats.model_validate(offline).model_dump(exclude_unset=True) == offline  # no live fields as nulls
