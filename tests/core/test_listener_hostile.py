"""The listener answers every hostile request with a 4xx, never a 500, and keeps its log sane.

Real loopback HTTP (aiohttp client and raw sockets) against a real listener and SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from factories import KEY, StoreTarget, make_info, push_body
from test_poison import Listener, listening
from trackops.core import webhook
from trackops.core.wire import push_signature


@pytest.fixture
async def lst(tmp_path: Path) -> AsyncIterator[Listener]:
    target = StoreTarget("sqlite", f"sqlite:///{tmp_path / 'trackops.db'}", {})
    async with listening(target, tmp_path, header_timeout=1.0, body_timeout=1.0) as listener:
        yield listener


def _deep(levels: int) -> bytes:
    return b'{"number":"RR123456789CN","x":' + b"[" * levels + b"]" * levels + b"}"


async def test_a_non_ascii_sign_is_401(lst: Listener) -> None:
    body = push_body("RR123456789CN", make_info(10), sign="é" * 64)
    assert await lst.post(body) == 401
    # A lone surrogate is not valid JSON text at all: refused before the signature check.
    body = b'{"sign":"\\ud800","event":"TRACKING_UPDATED","data":{"number":"RR123456789CN"}}'
    assert await lst.post(body) == 400


@pytest.mark.parametrize("signed", [True, False])
async def test_data_nested_5000_deep_is_400(lst: Listener, signed: bool) -> None:
    data = _deep(5000)
    sign = push_signature("TRACKING_UPDATED", data, KEY) if signed else "0" * 64
    body = b'{"sign":"%s","event":"TRACKING_UPDATED","data":%s}' % (sign.encode(), data)
    assert await lst.post(body) == 400
    assert (await lst.engine.store.inbox_stats()).backlog == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_content_encoding_the_body_does_not_have_is_400(
    lst: Listener, encoding: str
) -> None:
    body = push_body("RR123456789CN", make_info(10))
    assert await lst.post(body, headers={"Content-Encoding": encoding}) == 400


async def test_a_really_compressed_body_is_accepted(lst: Listener) -> None:
    body = push_body("RR123456789CN", make_info(10))
    packed = zlib.compress(body)
    assert await lst.post(packed, headers={"Content-Encoding": "deflate"}) == 200


async def test_slow_headers_are_cut_off(lst: Listener) -> None:
    host, port = lst.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /webhooks/17track HTTP/1.1\r\nHost: x\r\n")  # never finishes
    await writer.drain()
    # The server closes the connection (EOF) after header_timeout (1 s), well within 10 s.
    data = await asyncio.wait_for(reader.read(), timeout=10)
    assert b" 200 " not in data
    writer.close()


async def test_malformed_requests_are_not_logged_at_error(
    lst: Listener, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The filter is process-wide and rate-limited: start this test with a fresh minute.
    monkeypatch.setattr(webhook._AIOHTTP_FILTER, "_last", float("-inf"))
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    host, port = lst.base.removeprefix("http://").split(":")
    for request in (
        b"POST /webhooks/17track HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /webhooks/17track HTTP/1.1\r\nHo\x00st: x\r\n\r\n",
        b"POST /webhooks/17track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ) * 3:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        assert answer.split(b" ")[1] == b"400", answer[:80]
        writer.close()
    errors = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= 40]
    assert errors == []
    warnings = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert 1 <= len(warnings) <= 2  # rate-limited: one line per minute
    assert all(r.exc_info is None and "malformed HTTP request" in r.getMessage() for r in warnings)
