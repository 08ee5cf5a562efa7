"""17TRACK as it really behaves, pushed through the listener into a real engine and SQLite file.

DESIGN.md, "What real 17TRACK data does": ``hs`` hashes the latest event (a status can change
without one), event times are carriers' local clocks (Shanghai, then Los Angeles), undocumented
status codes appear, and fields come as ``null``, ``""`` or ``{}``. Each case here was lost or
mishandled before issue 11 (said per test).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from factories import KEY, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.engine import Engine, RegisterRequest
from trackops.core.service import Service
from trackops.core.store import NewShipment
from trackops.core.webhook import create_app
from trackops.core.wire import PackageStatus as S
from trackops.core.wire import push_signature

NUMBER = "RR123456789CN"
BUYER = "buyer@example.com"
NOW = datetime(2026, 3, 10, 0, 0)


@dataclasses.dataclass
class Listener:
    url: str
    engine: Engine
    channel: RecordingChannel
    session: aiohttp.ClientSession

    async def push(self, data: dict[str, Any]) -> None:
        """POST ``data`` as a signed TRACKING_UPDATED push, then apply and send what is due."""
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        sign = push_signature("TRACKING_UPDATED", raw, KEY)
        body = b'{"sign":"%s","event":"TRACKING_UPDATED","data":%s}' % (sign.encode(), raw)
        async with self.session.post(self.url, data=body) as response:
            assert response.status == 200
        while await self.engine.process_inbox():
            pass
        await self.engine.dispatch_pending()

    def told(self) -> list[tuple[S | None, S | None]]:
        return [(m.from_status, m.to_status) for m in self.channel.sent if m.audience == "customer"]


@asynccontextmanager
async def running_listener(tmp_path: Path) -> AsyncIterator[Listener]:
    settings = settings_for(tmp_path)
    channel = RecordingChannel("memory")
    async with Engine(settings, channels=[channel], load_plugins=False, clock=lambda: NOW) as eng:
        app = create_app(settings, Service(eng), background=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}{settings.webhook.path}"
                yield Listener(url, eng, channel, session)
        finally:
            await runner.cleanup()


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    async with running_listener(tmp_path) as lst:
        await lst.engine.store.add_shipments([NewShipment(NUMBER, email=BUYER)])
        yield lst


def event(a: str, c: str, z: str) -> dict[str, Any]:
    return {"a": a, "b": None, "c": c, "d": "", "z": z}


def track(
    e: int, events: list[dict[str, Any]], ylt: str | None, hs: int, **extra: Any
) -> dict[str, Any]:
    """A ``track`` object shaped like a real push (China Post to USPS, newest event first)."""
    body: dict[str, Any] = {
        "b": 301,
        "c": 2105,
        "e": e,
        "f": -1,
        "w1": 3011,
        "w2": 21051,
        "z0": events[0] if events else {},
        "z1": [ev for ev in events if ev["c"] == "Shanghai"],
        "z2": [ev for ev in events if ev["c"] != "Shanghai"],
        "z9": [],
        "hs": hs,
        "ylt1": ylt or "2079-01-01 00:00:00",
        "ylt2": ylt or "2079-01-01 00:00:00",
        "ylt9": "2079-01-01 00:00:00",
        "is1": 1,
        "is2": 1,
        "ln1": "en",
        "ln2": None,
        "ln9": None,
        "yt": "",
        "zex": {"trN": "", "trC": 0},
    }
    body.update(extra)
    return body


# China Post in Shanghai (UTC+8), then USPS in Los Angeles (UTC-8): the Los Angeles events
# read earlier than the last Shanghai one although they happened after it.
ACCEPTED = event("2026-03-08 09:30", "Shanghai", "Item accepted")
DEPARTED = event("2026-03-09 10:00", "Shanghai", "Departed from the office of exchange")
ARRIVED = event("2026-03-09 00:00", "LOS ANGELES, CA 90009", "Arrived at USPS facility")
OUT = event("2026-03-09 06:10", "LOS ANGELES, CA 90009", "Out for delivery")
HISTORY = [
    (S.IN_TRANSIT, [ACCEPTED], "2026-03-08 01:40:11", 1_111),
    (S.IN_TRANSIT, [DEPARTED, ACCEPTED], "2026-03-09 02:10:40", 2_222),
    (S.IN_TRANSIT, [ARRIVED, DEPARTED, ACCEPTED], "2026-03-09 08:05:02", 3_333),
    (S.PICK_UP, [OUT, ARRIVED, DEPARTED, ACCEPTED], "2026-03-09 14:20:13", 4_444),
]


def history_push(step: int) -> dict[str, Any]:
    status, events, ylt, hs = HISTORY[step]
    return {"number": NUMBER, "tag": "", "track": track(int(status), events, ylt, hs)}


async def test_los_angeles_after_shanghai_is_news_and_late_shanghai_pushes_are_not(
    listener: Listener,
) -> None:
    """Failed before: Los Angeles 00:00 was judged older than Shanghai 10:00 the same day, so
    "Out for delivery" was neither stored nor sent."""
    for step in (0, 1, 3):  # the listener missed step 2; 17TRACK's push of step 3 holds it
        await listener.push(history_push(step))
    record = await listener.engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.PICK_UP
    assert record.latest_event_description == "Out for delivery"
    assert listener.told() == [(S.NOT_FOUND, S.IN_TRANSIT), (S.IN_TRANSIT, S.PICK_UP)]
    # 17TRACK's retries of older pushes arrive late, and the newest again: nothing moves back
    # and nothing is sent twice.
    for step in (2, 1, 3, 0, 3):
        await listener.push(history_push(step))
    record = await listener.engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.PICK_UP
    assert listener.told() == [(S.NOT_FOUND, S.IN_TRANSIT), (S.IN_TRANSIT, S.PICK_UP)]


async def test_a_status_change_with_the_same_event_and_hs_is_applied(listener: Listener) -> None:
    """Failed before: the same ``hs`` with ``e`` 10 -> 50 was answered 200 and dropped as a
    duplicate, and the shipment stayed In transit."""
    await listener.push(history_push(3))
    alert = history_push(3)
    alert["track"].update(e=50, ylt1="2026-03-09 20:00:00", ylt2="2026-03-09 20:00:00")
    await listener.push(alert)
    record = await listener.engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.ALERT and record.hash == 4_444
    assert listener.told() == [(S.NOT_FOUND, S.PICK_UP), (S.PICK_UP, S.ALERT)]
    # The earlier copy (e 30, earlier ylt) arriving late does not undo it.
    await listener.push(history_push(3))
    record = await listener.engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.ALERT
    assert len(listener.told()) == 2


@pytest.mark.parametrize("tracked_again", [True, False], ids=["later-ylt", "same-push-resent"])
async def test_expired_without_a_new_event_moves_the_shipment(
    listener: Listener, tracked_again: bool
) -> None:
    """Failed before (a duplicate): Expired (20) is set by 17TRACK with no new event. The
    issue's case is the second: the very same push re-sent with only ``e`` 10 -> 20."""
    await listener.push(history_push(2))
    expired = history_push(2)
    expired["track"]["e"] = 20
    if tracked_again:
        expired["track"].update(ylt1="2026-04-09 08:00:00", ylt2="2026-04-09 08:00:00")
    await listener.push(expired)
    record = await listener.engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.EXPIRED
    assert listener.told() == [(S.NOT_FOUND, S.IN_TRANSIT), (S.IN_TRANSIT, S.EXPIRED)]


async def test_an_undocumented_code_with_empty_fields_is_kept_with_its_events(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed before: ``e`` 60 made the push unreadable; the inbox row errored and the update
    was lost with nothing logged at the default level."""
    odd = history_push(2)
    odd["track"].update(e=60, f="", w2=None, c="", ygt1={}, zex=None, ln1="", is2=None)
    odd["track"]["z1"][0].update(b={}, d=None)
    with caplog.at_level(logging.WARNING):
        await listener.push(odd)
    record = await listener.engine.store.get_shipment(NUMBER)
    assert record is not None
    assert (int(record.status), record.status.display) == (60, "Unknown (60)")
    assert record.to_json()["status_code"] == 60
    assert record.latest_event_description == "Arrived at USPS facility"
    assert record.info is not None and len(record.info.all_events) == 3
    assert record.info.destination_country is None and record.info.second_carrier == 0
    assert listener.told() == []  # nobody can explain code 60 to a buyer
    assert (await listener.engine.store.inbox_stats()).backlog == 0
    # The next documented status is a change from the code that was shown.
    await listener.push(history_push(3))
    assert listener.told() == [(S(60), S.PICK_UP)]


@pytest.mark.parametrize("empty", [None, "", {}], ids=["null", "empty-string", "empty-object"])
async def test_empty_values_in_a_push_never_lose_it(listener: Listener, empty: Any) -> None:
    data = history_push(1)
    for field in ("b", "w2", "hs", "ylt2", "ygt1", "ln1", "yt", "zex", "z9", "f"):
        data["track"][field] = empty
    data["tag"] = empty
    await listener.push(data)
    record = await listener.engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.IN_TRANSIT
    assert record.latest_event_description == "Departed from the office of exchange"
    assert listener.told() == [(S.NOT_FOUND, S.IN_TRANSIT)]


@pytest.mark.parametrize(
    "error", [None, {}, "", {"code": "", "message": None}], ids=["null", "{}", "empty", "no-code"]
)
async def test_a_rejection_without_a_usable_error_still_names_its_number(
    tmp_path: Path, error: Any
) -> None:
    """A rejected item whose ``error`` came empty was dropped while decoding: its number was
    neither registered nor reported, and ``trackops register`` said nothing about it."""

    async def register(request: web.Request) -> web.Response:
        asked = [item["number"] for item in await request.json()]
        body = {
            "code": 0,
            "data": {
                "accepted": [{"origin": 1, "number": asked[0], "carrier": 3011}],
                "rejected": [{"number": asked[1], "error": error}],
            },
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/track/v1/register", register)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        settings = settings_for(tmp_path, base_url=f"http://127.0.0.1:{port}/track/v1")
        async with Engine(settings, load_plugins=False) as engine:
            outcome = await engine.register(
                [RegisterRequest("RR123456789CN"), RegisterRequest("RR987654321CN")]
            )
    finally:
        await runner.cleanup()
    assert outcome.accepted == ["RR123456789CN"]
    assert [(r.number, r.error.code, r.error.message) for r in outcome.rejected] == [
        ("RR987654321CN", 0, "rejected by 17TRACK without an error code")
    ]
