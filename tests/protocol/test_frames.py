import json

import pytest

from backend.protocol import frames


def _hello(**over):
    frame = frames.hello(
        kind="node", pubkey="ab" * 32, payout_address="0x" + "0" * 40,
        models=[{"id": "tiny-chat", "max_context": 2048, "tasks": ["chat"]}],
        slots=1, hardware={}, version="t", sig="cd" * 64,
    )  # fmt: skip
    frame.update(over)
    return frame


def test_every_builder_round_trips_through_the_parser():
    built = [
        frames.challenge("00" * 32, "ab" * 32),
        _hello(),
        frames.welcome("ab" * 32),
        frames.refused("no"),
        frames.job(job_id="j", task="chat", model="m", body={"a": 1}, request_salt="00", request_digest="11", deadline_ms=5),
        frames.delta("j", 0, [{"index": 0, "delta": {"content": "x"}}]),
        frames.done("j", {"input_tokens": 1, "output_tokens": 2, "images": 0}, "aa", "bb"),
        frames.error("j", "engine_error", "boom"),
        frames.cancel("j"),
        frames.ping(1.5),
        frames.pong(1.5, 0.5, 0),
    ]
    for frame in built:
        assert frames.parse_frame(frames.encode(frame)) == frame


@pytest.mark.parametrize(
    "text, reason",
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"type":"nope"}', "unknown frame type"),
        ('{"type":"cancel"}', "lacks 'job_id'"),
        ('{"type":"delta","job_id":"j","n":"0","data":[]}', "delta.n has the wrong type"),
        ('{"type":"job","job_id":"j","task":"chat","model":"m","body":{},"request_salt":"","request_digest":"","deadline_ms":true,"audit":false}',
         "deadline_ms has the wrong type"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(text, reason):
    with pytest.raises(frames.ProtocolError, match=reason):
        frames.parse_frame(text)


@pytest.mark.parametrize(
    "over, reason",
    [
        ({"protocol": 2}, "not supported"),
        ({"kind": "phone"}, "kind"),
        ({"slots": 0}, "slots"),
        ({"models": [{"id": "m", "max_context": 10, "tasks": ["dance"]}]}, "tasks"),
        ({"models": [{"id": "m", "tasks": ["chat"]}]}, "max_context"),
    ],
)
def test_hello_is_checked(over, reason):
    with pytest.raises(frames.ProtocolError, match=reason):
        frames.parse_frame(json.dumps(_hello(**over)))


def test_a_delta_batch_carries_its_deltas_in_order_and_a_malformed_one_is_refused():
    chunks = [[{"index": 0, "delta": {"content": f"w{i}"}}] for i in range(3)]
    batch = frames.parse_frame(frames.encode(frames.delta_batch("j", 4, chunks)))
    assert batch["n"] == 4 and frames.delta_chunks(batch) == chunks
    assert frames.delta_batch("j", 0, chunks[:1]) == frames.delta("j", 0, chunks[0])  # one delta: the plain frame
    for data in ({"chunks": []}, {"chunks": "x"}, {"chunks": chunks, "more": 1}, {}):
        with pytest.raises(frames.ProtocolError):
            frames.delta_chunks(frames.delta("j", 0, data))
