"""One error type for the whole API: the serving layer's and the money services' refusals are ApiErrors, answered by
one handler in the OpenAI shape."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.api.errors import ApiError, install_handlers
from backend.money.purchases import PurchaseError
from backend.serving.inference import InferenceError


def _app(exc: Exception) -> TestClient:
    app = FastAPI()
    install_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app)


def test_service_errors_are_api_errors_in_the_openai_shape():
    refused = _app(PurchaseError("the USDC did not go to the treasury", "wrong_recipient")).get("/boom")
    assert refused.status_code == 400
    assert refused.json() == {"error": {"message": "the USDC did not go to the treasury", "type": "invalid_request_error",
                                        "param": "tx_hash", "code": "wrong_recipient"}}  # fmt: skip
    busy = _app(InferenceError(503, "All workers are busy.", "no_capacity", type_="server_error")).get("/boom")
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2" and busy.json()["error"]["code"] == "no_capacity"


def test_extra_fields_sit_beside_the_error():
    offer = {"lane": "dedicated", "packages_url": "/one/packages"}
    reply = _app(ApiError(402, "No credits left.", "insufficient_quota", type_="insufficient_quota", extra={"offer": offer})).get("/boom")
    assert reply.status_code == 402 and reply.json()["offer"] == offer and reply.json()["error"]["type"] == "insufficient_quota"
