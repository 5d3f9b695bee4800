"""The OpenAI-HTTP engine's line reader over an upstream's streamed reply: lines split anywhere across chunks, CRLF,
lines longer than aiohttp's own reader takes, bytes that are not UTF-8, and the cap on one unfinished line."""

from __future__ import annotations

import asyncio
from unittest.mock import Mock

import aiohttp
import pytest

from gpu_worker.engines import EngineError, openai_http


async def _read(chunks: list[bytes]) -> list[str]:
    body = aiohttp.StreamReader(Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        body.feed_data(chunk)
    body.feed_eof()
    return [line async for line in openai_http._lines(body)]


async def test_lines_split_anywhere_across_chunks():
    text = b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    whole = await _read([text])
    assert whole == ['data: {"a": 1}', "", 'data: {"b": 2}', "", "data: [DONE]", ""]
    for size in (1, 2, 3, 7):
        assert await _read([text[i : i + size] for i in range(0, len(text), size)]) == whole


async def test_a_line_longer_than_aiohttps_reader_and_bad_bytes_come_through():
    long_line = b"data: " + b"x" * 300_000
    assert await _read([long_line[:100_000], long_line[100_000:], b"\nok\xff\n", b"tail"]) == [long_line.decode(), "ok\ufffd", "tail"]


async def test_an_unfinished_line_over_the_cap_is_refused(monkeypatch):
    monkeypatch.setattr(openai_http, "MAX_LINE_BYTES", 1000)
    assert len((await _read([b"y" * 900 + b"\n" + b"z" * 900]))[1]) == 900  # complete lines do not count
    with pytest.raises(EngineError, match="over 1000 bytes"):
        await _read([b"z" * 600, b"z" * 600])
