"""The rest of the OpenAI chat/completions surface, through the official client, on real workers.

The tiny model has random weights, so these tests assert what must hold whatever it says: shapes,
counts, constraints (the JSON it is forced into), and that every receipt matches what was delivered.
"""

from __future__ import annotations

import json
from typing import Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from backend.protocol import receipt as rc

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "What is the weather in Rome?"}]


class Weather(BaseModel):
    city: Literal["Paris", "Rome", "Lagos"]
    celsius: int
    sunny: bool


class GetWeather(BaseModel):
    """Look up the weather in a city."""

    city: Literal["Paris", "Rome", "Lagos"]
    days: int


class GetTime(BaseModel):
    """Current time in a city."""

    city: Literal["Paris", "Rome", "Lagos"]


@pytest.fixture(scope="module")
def client(devnet) -> openai.OpenAI:
    return openai.OpenAI(base_url=devnet.url + "/v1", api_key="dev", max_retries=0, timeout=120)


def _digest_of(choices) -> str:
    """What the client received, digested the way the receipt says."""

    def calls(message):
        if not message.tool_calls:
            return None
        return [{"id": t.id, "type": t.type, "function": {"name": t.function.name, "arguments": t.function.arguments}} for t in message.tool_calls]

    return rc.chat_output_digest([{"index": c.index, "content": c.message.content, "tool_calls": calls(c.message)} for c in choices])


def test_n_choices_and_their_receipt(client):
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, n=3, max_tokens=8, seed=1)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    receipt = reply.model_extra["receipt"]
    assert receipt["usage"]["output_tokens"] == reply.usage.completion_tokens <= 3 * 8
    assert receipt["output_digest"] == _digest_of(reply.choices)


def test_stop_strings_cut_the_output(client):
    stops = [" ", "e", "a", "o"]
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, stop=stops, max_tokens=200, extra_body={"min_tokens": 150}, seed=3)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert not any(s in choice.message.content for s in stops)


def test_logprobs_come_per_token_with_alternatives(client):
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=10, extra_body={"min_tokens": 10}, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens == 10
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.logprob - 1e-6 or entry.token in {t.token for t in entry.top_logprobs}


def test_parse_with_a_pydantic_model_is_enforced_by_constrained_decoding(client):
    for seed in range(3):
        reply = client.chat.completions.parse(model="tiny-chat", messages=MESSAGES, response_format=Weather, max_tokens=200, seed=seed)
        parsed = reply.choices[0].message.parsed
        assert isinstance(parsed, Weather)


def test_json_object_mode_returns_a_json_object(client):
    reply = client.chat.completions.create(
        model="tiny-chat", messages=MESSAGES, response_format={"type": "json_object"}, max_tokens=300, seed=5
    )
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)
    else:  # ran out of tokens inside the object: still a valid JSON prefix of an object
        assert reply.choices[0].message.content.lstrip().startswith("{")


def test_streamed_required_tool_call_is_assembled_by_the_client(client):
    tools = [openai.pydantic_function_tool(GetWeather), openai.pydantic_function_tool(GetTime)]
    with client.chat.completions.stream(model="tiny-chat", messages=MESSAGES, tools=tools, tool_choice="required", max_tokens=200, seed=2) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name in {"GetWeather", "GetTime"}
    assert isinstance(call.function.parsed_arguments, GetWeather if call.function.name == "GetWeather" else GetTime)


def test_named_tool_choice_calls_that_tool(client):
    tools = [openai.pydantic_function_tool(GetWeather), openai.pydantic_function_tool(GetTime)]
    reply = client.chat.completions.parse(
        model="tiny-chat", messages=MESSAGES, tools=tools, tool_choice={"type": "function", "function": {"name": "GetTime"}}, max_tokens=200
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "GetTime" and isinstance(call.function.parsed_arguments, GetTime)
    assert reply.model_extra["receipt"]["output_digest"] == _digest_of(reply.choices)


def test_named_tool_that_does_not_exist_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="tiny-chat", messages=MESSAGES, tools=[openai.pydantic_function_tool(GetTime)], tool_choice={"type": "function", "function": {"name": "Nope"}}
        )
    assert err.value.code == "invalid_request"


def test_context_length_exceeded(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "word " * 4000}])
    assert err.value.code == "context_length_exceeded"


def test_legacy_completions_stream_and_not(client):
    reply = client.completions.create(model="tiny-chat", prompt=["Once upon", "A long time"], n=2, max_tokens=6, logprobs=2)
    assert sorted(c.index for c in reply.choices) == [0, 1, 2, 3]
    assert all(len(c.logprobs.tokens) == len(c.logprobs.token_logprobs) for c in reply.choices)
    receipt = reply.model_extra["receipt"]
    assert receipt["kind"] == "completion"
    assert receipt["output_digest"] == rc.chat_output_digest([{"index": c.index, "content": c.text or None, "tool_calls": None} for c in reply.choices])
    text = "".join(chunk.choices[0].text for chunk in client.completions.create(model="tiny-chat", prompt="Hello", max_tokens=8, stream=True) if chunk.choices)
    assert isinstance(text, str)


def test_completions_reject_echo(devnet):
    response = httpx.post(f"{devnet.url}/v1/completions", json={"model": "tiny-chat", "prompt": "x", "echo": True})
    assert response.status_code == 400 and response.json()["error"]["param"] == "echo"


def _png_data_url(color=(200, 30, 30), size=(48, 40)) -> tuple[str, bytes]:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), buf.getvalue()


def test_vision_with_a_data_url_image(client):
    url, _ = _png_data_url()
    content = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": url}}]
    reply = client.chat.completions.create(model="tiny-vision", messages=[{"role": "user", "content": content}], max_tokens=8)
    receipt = reply.model_extra["receipt"]
    assert receipt["kind"] == "vision" and receipt["model"] == "tiny-vision"
    # The image's tokens count as input: more than the same question without it.
    plain = client.chat.completions.create(model="tiny-vision", messages=[{"role": "user", "content": content[:1]}], max_tokens=2)
    assert reply.usage.prompt_tokens > plain.usage.prompt_tokens
    # Vision is billed per image read: the worker claims (and signs) the one image; the plain question reads none.
    assert receipt["usage"]["images"] == 1 and plain.model_extra["receipt"]["usage"]["images"] == 0


def test_vision_fetches_http_images_and_refuses_bad_and_private_ones(client):
    import http.server
    import threading

    _, png = _png_data_url((10, 10, 200))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = png if self.path == "/cat.png" else b"not an image"
            self.send_response(200 if self.path != "/missing.png" else 404)
            self.send_header("content-type", "image/png")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        def ask(url):
            content = [{"type": "text", "text": "Describe."}, {"type": "image_url", "image_url": {"url": url}}]
            return client.chat.completions.create(model="tiny-vision", messages=[{"role": "user", "content": content}], max_tokens=4)

        assert ask(base + "/cat.png").model_extra["receipt"]["kind"] == "vision"
        # The devnet's workers may reach 127.0.0.1 (ONE_FETCH_ALLOW_NETWORKS, tests only); nothing else private.
        private = ("http://169.254.169.254/latest/meta-data/x.png", "http://10.0.0.1/x.png", f"http://[::ffff:127.0.0.2]:{server.server_address[1]}/cat.png")
        for bad in (base + "/junk.png", base + "/missing.png", "ftp://example/x.png", "data:image/png;base64,@@@", *private):
            with pytest.raises(openai.BadRequestError):
                ask(bad)
    finally:
        server.shutdown()


def test_image_parts_to_a_text_only_model_are_404(client):
    url, _ = _png_data_url()
    content = [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": content}])


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/models/..", 404, "not_found"),
        ("GET", "/v1/models/%0A0", 404, "model_not_found"),
        ("GET", "/v1/x%0Ay", 404, "not_found"),
        ("POST", "/v1/nothing", 404, "not_found"),
        ("DELETE", "/v1/models", 405, "method_not_allowed"),
        ("GET", "/one/nothing", 404, "not_found"),
    ],
)
def test_unknown_endpoints_answer_in_the_openai_error_shape(devnet, method, path, status, code):
    """Paths outside our routes must not fall through to the UI's 404 (schemathesis found `/v1/models/..`
    and `/v1/models/%0A0`: a newline that Starlette's `path` convertor does not cross)."""
    response = httpx.request(method, devnet.url + path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
