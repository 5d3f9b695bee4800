import hashlib
import struct

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.protocol import receipt as rc


def test_jcs_is_rfc8785_canonical():
    # Keys sorted by UTF-16 code units, no whitespace, shortest number forms.
    assert rc.jcs({"b": 1, "a": [1.0, "é", None, True]}) == '{"a":[1,"é",null,true],"b":1}'.encode()


_any_text = st.text(st.characters(exclude_categories=()))  # lone surrogates too
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | st.floats() | _any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_any_text.filter(lambda k: len(k) < 7), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values)
def test_jcs_fast_path_writes_the_bytes_rfc8785_writes(value):
    """jcs() encodes plain values with the stdlib instead of rfc8785: for any JSON value (control characters,
    quotes, non-ASCII and astral keys, lone surrogates, floats, integers past 2**53) it gives the reference's
    bytes, or fails where the reference fails."""
    try:
        expected = rfc8785.dumps(value)
    except ValueError as refused:  # rfc8785's CanonicalizationError, or UnicodeEncodeError for a surrogate in a key
        with pytest.raises(type(refused)):
            rc.jcs(value)
        return
    assert rc.jcs(value) == expected


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.floats(min_value=-1e6, max_value=1e6))
def test_jcs_writes_every_float_as_rfc8785_does(number):
    """Plain decimals (a request's temperature) stay on the fast path; exponents and whole floats go to rfc8785."""
    assert rc.jcs({"temperature": number, "n": [number]}) == rfc8785.dumps({"temperature": number, "n": [number]})


def test_jcs_fast_path_edges_match_rfc8785():
    edges = [
        {"\u00e9": 1, "z": 2, "a\x7f": "\x00\x1f\x7f\u2028\"\\/\b\f\n\r\t"},  # escapes; U+2028 stays raw
        {"\U0001f600": 1, "\uffff": 2},  # UTF-16 order puts the astral key first; code-point order would not
        [2**53 - 1, -(2**53) + 1, 0, -0, True, False, None, [], {}],
        [0.7, -0.5, 0.1 + 0.2, 0.0001, 0.00001, 1e-7, 123.0, -0.0, 1e16, 1e21, 1234567890123456.8, 5e-324, 1.7976931348623157e308],
        {"usage": {"input_tokens": 7, "output_tokens": 5, "images": 0}, "parent": None, "ts": "2026-01-01T00:00:00.000Z"},
    ]
    for value in edges:
        assert rc.jcs(value) == rfc8785.dumps(value)
    for bad in (2**53, -(2**53), {1: "x"}, "\ud800", float("nan")):
        with pytest.raises(rfc8785.CanonicalizationError):
            rc.jcs(bad)


def test_request_digest_is_salted_sha256_of_jcs():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    salt = "00112233445566778899aabbccddeeff"
    expected = hashlib.sha256(bytes.fromhex(salt) + rc.jcs(body)).hexdigest()
    assert rc.request_digest(body, salt) == expected
    assert rc.request_digest(body, "ff" * 16) != expected


def test_chat_output_digest_orders_choices_and_keeps_tool_calls():
    a = {"index": 0, "content": "x", "tool_calls": None}
    b = {"index": 1, "content": None, "tool_calls": [{"id": "c"}]}
    expected = hashlib.sha256(rc.jcs({"choices": [{"content": "x", "tool_calls": None}, {"content": None, "tool_calls": [{"id": "c"}]}]})).hexdigest()
    assert rc.chat_output_digest([b, a]) == expected


def test_accumulate_choice_assembles_stream_chunks():
    out = {}
    for chunk in [
        {"index": 0, "delta": {"role": "assistant", "content": "Hel"}},
        {"index": 0, "delta": {"content": "lo"}},
        {"index": 0, "delta": {}, "finish_reason": "stop"},
    ]:
        rc.accumulate_choice(out, chunk)
    assert out == {0: {"index": 0, "content": "Hello", "tool_calls": None, "finish_reason": "stop", "logprobs": None}}


def test_embedding_and_image_digests():
    vecs = [[1.0, -0.5], [0.25, 2.0]]
    raw = b"".join(struct.pack("<2f", *v) for v in vecs)
    assert rc.embedding_output_digest(vecs) == hashlib.sha256(raw).hexdigest()
    pngs = [b"\x89PNG1", b"\x89PNG2"]
    assert rc.image_output_digest(pngs) == hashlib.sha256(rc.jcs([hashlib.sha256(p).hexdigest() for p in pngs])).hexdigest()


def _receipt(**over):
    fields = dict(
        seq=0, prev=rc.GENESIS_PREV, ts="2026-11-25T00:00:00.000Z", job="j", kind="chat", lane="included",
        account=rc.account_digest("acct", b"k" * 32), model="tiny-chat", request_digest="aa" * 32, output_digest="bb" * 32,
        usage={"input_tokens": 3, "output_tokens": 4}, charge_unit="credit", charge_amount=8,
        worker_id="cc" * 32, worker_sig="dd" * 64, parent=None, coordinator="ee" * 32,
    )  # fmt: skip
    fields.update(over)
    return rc.build_receipt(**fields)


def test_receipt_has_exactly_the_v1_keys_and_hash_ignores_envelope():
    receipt = _receipt()
    assert set(receipt) == {"v", "seq", "prev", "ts", "job", "kind", "lane", "account", "model", "request_digest",
                            "output_digest", "usage", "charge", "worker", "parent", "coordinator"}
    assert receipt["usage"] == {"input_tokens": 3, "output_tokens": 4, "images": 0}
    digest = rc.receipt_hash(receipt)
    assert digest == hashlib.sha256(rc.jcs(receipt)).hexdigest()
    assert rc.receipt_hash({**receipt, "hash": digest, "sig": "00"}) == digest
    assert "logprobs_digest" in _receipt(logprobs_digest="ff" * 32)


@pytest.mark.parametrize(
    "over",
    [{"kind": "poem"}, {"lane": "vip"}, {"charge_unit": "eur"}, {"charge_amount": 1.5}, {"charge_amount": -1},
     {"usage": {"input_tokens": 1.0}}, {"usage": {"output_tokens": True}}],
)
def test_receipt_rejects_bad_values_and_float_money(over):
    with pytest.raises(ValueError):
        _receipt(**over)


def test_streamed_tool_calls_assemble_like_the_openai_client_does():
    out = {}
    for chunk in [
        {"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_", "arguments": ""}}]}},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": '{"city":'}}]}},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}, {"index": 1, "id": "call_2", "function": {"name": "now"}}]}},
        {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
    ]:
        rc.accumulate_choice(out, chunk)
    assert out[0]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
    ]
    assert out[0]["content"] is None and out[0]["finish_reason"] == "tool_calls"


def test_output_assembler_digests_every_task():
    import base64

    text = rc.OutputAssembler("completion")
    text.add([{"index": 1, "text": "b"}, {"index": 0, "text": "a"}])
    assert text.digest() == rc.chat_output_digest([{"content": "a", "tool_calls": None}, {"index": 1, "content": "b", "tool_calls": None}])
    emb = rc.OutputAssembler("embedding")
    emb.add([{"index": 1, "embedding": [0.5]}, {"index": 0, "embedding": [1.0]}])
    assert emb.digest() == rc.embedding_output_digest([[1.0], [0.5]])
    img = rc.OutputAssembler("image")
    img.add([{"index": 0, "b64_json": base64.b64encode(b"png").decode()}])
    assert img.digest() == rc.image_output_digest([b"png"])
    with pytest.raises(ValueError):
        emb.add({"not": "a list"})
