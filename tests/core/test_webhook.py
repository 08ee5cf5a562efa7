"""The push listener over real loopback HTTP, a real SQLite file, and a real engine.

Each fault the issue names is a test: wrong/missing/foreign sign, not JSON, not an object, too
large, a slow body, ten concurrent duplicates, reverse order, the store unavailable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from factories import BASE, KEY, days, make_info, push_body, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.engine import Engine, utcnow
from trackops.core.service import Service
from trackops.core.webhook import create_app
from trackops.core.wire import PackageStatus

PATH = "/webhooks/17track"


@dataclasses.dataclass
class Listener:
    url: str
    base: str
    engine: Engine
    channel: RecordingChannel
    session: aiohttp.ClientSession

    async def post(self, body: bytes, **kwargs: object) -> aiohttp.ClientResponse:
        async with self.session.post(self.url, data=body, **kwargs) as response:  # type: ignore[arg-type]
            await response.read()
            return response

    async def settle(self) -> None:
        """Process the inbox and send what is due (no sleeping: drive the engine directly)."""
        while await self.engine.process_inbox():
            pass
        await self.engine.dispatch_pending()


@asynccontextmanager
async def listener_with(
    tmp_path: Path, *, clock: Callable[[], datetime] = utcnow, **webhook: object
) -> AsyncIterator[Listener]:
    """A listener on a free loopback port over a real engine and SQLite file."""
    settings = settings_for(tmp_path)
    settings = dataclasses.replace(
        settings, webhook=dataclasses.replace(settings.webhook, **webhook)
    )
    channel = RecordingChannel("memory")
    async with Engine(settings, channels=[channel], load_plugins=False, clock=clock) as engine:
        app = create_app(settings, Service(engine), background=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            yield Listener(base + settings.webhook.path, base, engine, channel, session)
        await runner.cleanup()


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    now = BASE + days(1)
    async with listener_with(
        tmp_path, clock=lambda: now, max_body_bytes=64 * 1024, body_timeout=0.5
    ) as lst:
        yield lst


async def test_a_signed_push_is_stored_then_applied(listener: Listener) -> None:
    response = await listener.post(push_body("RR123456789CN", make_info(10)))
    assert response.status == 200
    stats = await listener.engine.store.inbox_stats()
    assert stats.backlog == 1
    await listener.settle()
    record = await listener.engine.store.get_shipment("RR123456789CN")
    assert record is not None and record.status is PackageStatus.IN_TRANSIT
    assert (await listener.engine.store.inbox_stats()).backlog == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (push_body("RR123456789CN", sign="0" * 64), 401),
        (push_body("RR123456789CN", sign=False), 401),
        (push_body("RR123456789CN", key="another-key"), 401),
        (b"this is not json", 400),
        (b'["a", "list"]', 400),
        (b'{"event": "TRACKING_UPDATED"}', 400),
        (b'{"sign": "x", "data": {}}', 400),
        (b'{"event": 5, "data": {}}', 400),
    ],
    ids=[
        "wrong-sign",
        "missing-sign",
        "other-key",
        "not-json",
        "not-object",
        "no-data",
        "no-event",
        "event-not-string",
    ],
)
async def test_bad_pushes_are_refused_and_not_stored(
    listener: Listener, body: bytes, status: int
) -> None:
    response = await listener.post(body)
    assert response.status == status
    assert (await listener.engine.store.inbox_stats()).backlog == 0


async def test_a_body_over_the_limit_is_413_before_anything_else(listener: Listener) -> None:
    response = await listener.post(b"x" * (64 * 1024 + 1))
    assert response.status == 413

    # Chunked (no Content-Length) is counted while reading.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"y" * 1024

    response = await listener.post(chunks())  # type: ignore[arg-type]
    assert response.status == 413


async def test_the_signature_covers_the_exact_data_bytes(listener: Listener) -> None:
    # Spacing and escapes inside data would change a re-serialised signature; ours must hold.
    data = (
        b'{ "number" : "RR123456789CN",  "tag":"caf\\u00e9", '
        b'"track": {"e": 10, "z0": {"a": "2026-11-20 12:00", "z": "x"}, "hs": 7}}'
    )
    from trackops.core.wire import push_signature

    sign = push_signature("TRACKING_UPDATED", data, KEY)
    body = b'{"sign":"' + sign.encode() + b'","event":"TRACKING_UPDATED","data":' + data + b"}"
    assert (await listener.post(body)).status == 200


async def test_a_slow_body_times_out_with_408(listener: Listener) -> None:
    host, port = listener.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        'Content-Length: 500\r\n\r\n{"sign":'.encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    writer.close()
    assert b" 408 " in status_line


async def test_unknown_events_are_stored_and_answered_200(listener: Listener) -> None:
    response = await listener.post(push_body("RR123456789CN", event="TRACKING_SOMETHING_NEW"))
    assert response.status == 200
    await listener.settle()
    assert (await listener.engine.store.inbox_stats()).backlog == 0
    assert await listener.engine.store.get_shipment("RR123456789CN") is None


async def test_the_same_push_ten_times_concurrently_notifies_once(listener: Listener) -> None:
    await listener.engine.store.add_shipments([_new("RR123456789CN", email="buyer@example.com")])
    body = push_body("RR123456789CN", make_info(10, BASE))
    responses = await asyncio.gather(*(listener.post(body) for _ in range(10)))
    assert [r.status for r in responses] == [200] * 10
    await listener.settle()
    customer = [m for m in listener.channel.sent if m.audience == "customer"]
    assert len(customer) == 1
    assert customer[0].to_status is PackageStatus.IN_TRANSIT


async def test_pushes_in_reverse_order_notify_only_the_newest(listener: Listener) -> None:
    await listener.engine.store.add_shipments([_new("RR123456789CN", email="buyer@example.com")])
    first = push_body("RR123456789CN", make_info(10, BASE - days(2)))
    middle = push_body("RR123456789CN", make_info(30, BASE - days(1)))
    last = push_body("RR123456789CN", make_info(40, BASE))
    for body in (first, last, middle):  # the middle push arrives late
        assert (await listener.post(body)).status == 200
        await listener.settle()
    record = await listener.engine.store.get_shipment("RR123456789CN")
    assert record is not None and record.status is PackageStatus.DELIVERED
    assert [m.to_status for m in listener.channel.sent if m.audience == "customer"] == [
        PackageStatus.IN_TRANSIT,
        PackageStatus.DELIVERED,
    ]


async def test_tracking_stopped_stops_without_a_notification(listener: Listener) -> None:
    await listener.engine.store.add_shipments([_new("RR123456789CN", email="buyer@example.com")])
    assert (await listener.post(push_body("RR123456789CN", event="TRACKING_STOPPED"))).status == 200
    await listener.settle()
    record = await listener.engine.store.get_shipment("RR123456789CN")
    assert record is not None and not record.active
    assert listener.channel.sent == []


async def test_an_undecodable_push_keeps_its_error_and_does_not_block_the_next(
    listener: Listener,
) -> None:
    from trackops.core.wire import push_signature

    bad_data = b'{"number": "RR000000001CN", "track": {"e": "not-a-status"}}'
    sign = push_signature("TRACKING_UPDATED", bad_data, KEY)
    bad = b'{"sign":"' + sign.encode() + b'","event":"TRACKING_UPDATED","data":' + bad_data + b"}"
    assert (await listener.post(bad)).status == 200
    assert (await listener.post(push_body("RR123456789CN", make_info(10)))).status == 200
    await listener.settle()
    assert await listener.engine.store.get_shipment("RR123456789CN") is not None
    stats = await listener.engine.store.inbox_stats()
    assert stats.backlog == 0


async def test_store_unavailable_answers_503_never_200(listener: Listener, tmp_path: Path) -> None:
    import sqlite3

    # Break the store for real: another connection drops the inbox table under the listener.
    with sqlite3.connect(tmp_path / "trackops.db") as db:
        db.execute("DROP TABLE inbox")
    response = await listener.post(push_body("RR123456789CN", make_info(10)))
    assert response.status == 503
    async with listener.session.get(listener.base + "/healthz") as health:
        assert health.status == 503


async def test_healthz_reports_store_backlog_and_last_push(listener: Listener) -> None:
    async with listener.session.get(listener.base + "/healthz") as response:
        body = json.loads(await response.read())
    assert response.status == 200 and body["store"] is True and body["inbox_backlog"] == 0
    assert body["last_push_at"] is None
    await listener.post(push_body("RR123456789CN", make_info(10)))
    async with listener.session.get(listener.base + "/healthz") as response:
        body = json.loads(await response.read())
    assert body["inbox_backlog"] == 1 and body["last_push_at"] is not None


def _new(number: str, **values: object) -> object:
    from trackops.core.store import NewShipment

    return NewShipment(number=number, registered_at=BASE - days(2), **values)  # type: ignore[arg-type]


async def test_allow_list_refuses_other_sources(tmp_path: Path) -> None:
    async with listener_with(tmp_path, allow_networks=("10.0.0.0/8",)) as lst:
        assert (await lst.post(push_body("RR123456789CN"))).status == 403
        # X-Forwarded-For is not believed from an untrusted peer.
        forged = {"X-Forwarded-For": "10.1.2.3"}
        assert (await lst.post(push_body("RR123456789CN"), headers=forged)).status == 403
    async with listener_with(tmp_path, allow_networks=("127.0.0.0/8",)) as lst:
        assert (await lst.post(push_body("RR123456789CN"))).status == 200


async def test_a_trusted_proxy_forwards_the_client_address(tmp_path: Path) -> None:
    async with listener_with(
        tmp_path, allow_networks=("10.0.0.0/8",), trusted_proxies=("127.0.0.1/32",)
    ) as lst:
        ok = {"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}
        assert (await lst.post(push_body("RR123456789CN"), headers=ok)).status == 200
        outside = {"X-Forwarded-For": "203.0.113.9"}
        assert (await lst.post(push_body("RR123456789CN"), headers=outside)).status == 403


async def test_a_path_prefix_behind_a_reverse_proxy(tmp_path: Path) -> None:
    async with listener_with(tmp_path, path="/shop/hooks/17track") as lst:
        assert lst.url.endswith("/shop/hooks/17track")
        assert (await lst.post(push_body("RR123456789CN"))).status == 200
        async with lst.session.post(lst.base + PATH, data=push_body("RR123456789CN")) as r:
            assert r.status == 404
