"""schemathesis against our own OpenAPI for /v1/*: no 5xx, every error in the OpenAI shape, and every JSON reply
matching the schema the document gives for it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import response_schema_conformance

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


def _check_reply(case, response) -> None:
    """Errors in the OpenAI shape; a JSON reply (a stream is not one) as the document says it is."""
    _check_openai_error_shape(response)
    if "application/json" in str(response.headers.get("content-type")):  # header values are lists here
        case.validate_response(response, checks=[response_schema_conformance])


def test_v1_never_500s_and_errors_are_openai_shaped(devnet):
    """Generated requests for every /v1 operation (hypothesis via schemathesis, its pytest plugin predates pytest 9);
    JSON replies, successes and errors alike, are checked against their documented schema (a stream is not JSON)."""
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
            _check_reply(case, response)

        check()
    assert len(statuses) >= 50 and 400 in statuses and 200 in statuses, statuses


def _enlarge(value, depth: int = 0):
    """The same request, bigger: integers pushed past 2^53 and strings repeated, lists grown."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value * 2**60 + 2**60
    if isinstance(value, str):
        return value * 500 if value else "x" * 5000
    if isinstance(value, list):
        return [_enlarge(v, depth + 1) for v in value] * (50 if depth < 2 else 1)
    if isinstance(value, dict):
        return {k: _enlarge(v, depth + 1) for k, v in value.items()}
    return value


def test_larger_and_invalid_inputs_never_500_on_v1_or_one(devnet):
    """Negative-mode and enlarged cases for every /v1 and /one operation (the money routes included); JSON replies
    match their documented schema."""
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(devnet.url + "/openapi.json").include(path_regex="^/(v1|one)/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path.startswith("/one/") for op in operations)
    statuses: list[int] = []
    for operation in operations:
        for mode in (GenerationMode.NEGATIVE, GenerationMode.POSITIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=int(__import__("os").environ.get("SCHEMA_EXAMPLES", "12")), deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case):
                if mode is GenerationMode.POSITIVE and isinstance(case.body, (dict, list)):
                    case.body = _enlarge(case.body)
                response = case.call(timeout=60)
                statuses.append(response.status_code)
                assert response.status_code < 500, (case.method, case.path, str(case.body)[:300], response.text[:300])
                _check_reply(case, response)

            try:
                check()
            except Unsatisfiable:  # an operation with nothing to break (no parameters, no body) has no negative cases
                assert mode is GenerationMode.NEGATIVE
    assert 400 in statuses and 200 in statuses, statuses
