"""schemathesis against our own OpenAPI for /v1/*: no 5xx, and every error in the OpenAI shape."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.e2e


def _check_openai_error_shape(response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        sent = response.request
        raise AssertionError(f"error body is not JSON: {sent.method} {sent.url} -> {response.status_code} "
                             f"{response.headers.get('content-type')} {response.text[:300]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"error body not in the OpenAI shape: {body!r}"
    assert isinstance(error.get("message"), str) and error["message"]
    assert isinstance(error.get("type"), str)
    assert "param" in error and "code" in error


def test_v1_never_500s_and_errors_are_openai_shaped(devnet):
    """Generated requests for every /v1 operation (hypothesis via schemathesis, its pytest plugin predates pytest 9)."""
    schema = schemathesis.openapi.from_url(devnet.url + "/openapi.json").include(path_regex="^/v1/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/images/generations", "/v1/models"}
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=int(__import__("os").environ.get("SCHEMA_EXAMPLES", "25")), deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(timeout=60)
            statuses.append(response.status_code)
            assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])
            _check_openai_error_shape(response)

        check()
    assert len(statuses) >= 50 and 400 in statuses and 200 in statuses, statuses
