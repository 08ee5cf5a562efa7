"""Notifications after an outage, against a real SMTP server (aiosmtpd) that refuses, then accepts.

Issue 11: with the mail server down and then back, order 1001's buyer received "has been
delivered", then "is on its way", then "is out for delivery"; two failed ``report weekly`` runs
were retried later and the seller got three identical weekly reports. Both failed before the
fix: an older pending notification is now recorded ``superseded`` (with the reason) once a newer
one for the same shipment and audience was sent, and a report goes out once per kind and period.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from factories import BASE, make_info, settings_for
from plugin_helpers import free_port
from trackops.core.config import EmailChannelSettings, ReportSettings
from trackops.core.engine import Engine
from trackops.core.store import NewShipment
from trackops.core.wire import Event, PackageStatus, TrackInfo
from trackops.plugins.email import EmailChannel

BUYER = "buyer@example.com"
SELLER = "ops@shop.example"
NUMBER = "RR123456789CN"


class FlakyMailServer:
    """An aiosmtpd handler that answers 451 (try again later) while ``down``, else accepts."""

    def __init__(self) -> None:
        self.down = True
        self.refused = 0
        self.received: list[Envelope] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.down:
            self.refused += 1
            return "451 4.3.2 System not accepting network messages, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def subjects(self, to: str) -> list[str]:
        out = []
        for envelope in self.received:
            if to in envelope.rcpt_tos:
                raw = envelope.original_content
                assert raw is not None
                message = email.message_from_bytes(raw, policy=email.policy.default)
                out.append(str(message["Subject"]))
        return out


@pytest.fixture
def mail() -> Iterator[tuple[FlakyMailServer, int]]:
    handler = FlakyMailServer()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(BASE + timedelta(hours=1))


@pytest.fixture
async def engine(
    tmp_path: Path, mail: tuple[FlakyMailServer, int], clock: Clock
) -> AsyncIterator[Engine]:
    _, port = mail
    settings = settings_for(tmp_path, channels=("email",), max_attempts=10)
    notifications = dataclasses.replace(
        settings.notifications, reports=ReportSettings(recipients=(SELLER,))
    )
    settings = dataclasses.replace(settings, notifications=notifications)
    channel = EmailChannel(
        EmailChannelSettings(host="127.0.0.1", port=port, sender="Shop <shop@example.com>")
    )
    async with Engine(settings, channels=[channel], load_plugins=False, clock=clock) as eng:
        await eng.store.add_shipments([NewShipment(NUMBER, order_number="1001", email=BUYER)])
        yield eng


def journey() -> list[TrackInfo]:
    """In transit, out for delivery, delivered: each push holding the events before it."""
    steps = [
        (PackageStatus.IN_TRANSIT, BASE - timedelta(hours=20), "Departed sorting center"),
        (PackageStatus.PICK_UP, BASE - timedelta(hours=3), "Out for delivery"),
        (PackageStatus.DELIVERED, BASE, "Delivered"),
    ]
    infos: list[TrackInfo] = []
    earlier: list[Event] = []
    for status, when, text in steps:
        info = make_info(status, when, description=text)
        assert info.latest_event is not None
        events = [info.latest_event, *earlier]
        infos.append(msgspec.structs.replace(info, first_carrier_events=events))
        earlier = events
    return infos


CUSTOMER_SUBJECTS = {
    PackageStatus.IN_TRANSIT: "Your order 1001 is on its way",
    PackageStatus.PICK_UP: "Your order 1001 is out for delivery",
    PackageStatus.DELIVERED: "Your order 1001 has been delivered",
}


async def customer_rows(engine: Engine) -> list[tuple[PackageStatus | None, str, str | None]]:
    rows = [r for r in await engine.store.history() if r.audience == "customer"]
    return [(r.to_status, r.send_status, r.reason) for r in sorted(rows, key=lambda r: r.id)]


async def test_old_news_is_superseded_once_the_newer_was_sent(
    engine: Engine, mail: tuple[FlakyMailServer, int], clock: Clock
) -> None:
    """The issue's sequence: delivered went out first, the older two were retried after it."""
    server, _ = mail
    in_transit, pick_up, delivered = journey()
    await engine.apply_track_info(NUMBER, in_transit)
    assert await engine.dispatch_pending() == 1
    clock.advance(seconds=5)
    await engine.apply_track_info(NUMBER, pick_up)
    assert await engine.dispatch_pending() == 1  # the first row is waiting for its retry
    assert server.refused == 2 and server.received == []
    server.down = False  # the mail server is back
    clock.advance(seconds=5)
    await engine.apply_track_info(NUMBER, delivered)
    assert await engine.dispatch_pending() == 1  # only the new row is due yet
    assert server.subjects(BUYER) == [CUSTOMER_SUBJECTS[PackageStatus.DELIVERED]]

    clock.advance(minutes=30)  # the older rows' retries come due
    await engine.dispatch_pending()
    # Failed before: "is on its way" and "is out for delivery" followed "has been delivered".
    assert server.subjects(BUYER) == [CUSTOMER_SUBJECTS[PackageStatus.DELIVERED]]
    rows = await customer_rows(engine)
    assert [(status, send) for status, send, _ in rows] == [
        (PackageStatus.IN_TRANSIT, "superseded"),
        (PackageStatus.PICK_UP, "superseded"),
        (PackageStatus.DELIVERED, "sent"),
    ]
    delivered_id = max(r.id for r in await engine.store.history() if r.audience == "customer")
    for _, _, reason in rows[:2]:
        assert (
            reason == f"superseded: newer notification #{delivered_id} (Delivered) was already sent"
        )
    superseded = await engine.store.history(send_status="superseded")
    assert len(superseded) == 2 and superseded[0].to_json()["send_status"] == "superseded"
    # Nothing is left to send, now or later.
    clock.advance(hours=2)
    assert await engine.dispatch_pending() == 0


async def test_news_due_together_goes_out_oldest_first(
    engine: Engine, mail: tuple[FlakyMailServer, int], clock: Clock
) -> None:
    """All three rows come due in one dispatch: each is news, told in the order it happened."""
    server, _ = mail
    for info in journey():
        await engine.apply_track_info(NUMBER, info)
        await engine.dispatch_pending()
        clock.advance(seconds=2)
    assert server.refused == 3 and server.received == []
    server.down = False
    clock.advance(minutes=30)
    await engine.dispatch_pending()
    assert server.subjects(BUYER) == list(CUSTOMER_SUBJECTS.values())
    assert [send for _, send, _ in await customer_rows(engine)] == ["sent"] * 3


async def test_news_in_order_is_all_sent(
    engine: Engine, mail: tuple[FlakyMailServer, int], clock: Clock
) -> None:
    """No outage: every change is told, in order (nothing is superseded)."""
    server, _ = mail
    server.down = False
    for info in journey():
        await engine.apply_track_info(NUMBER, info)
        await engine.dispatch_pending()
        clock.advance(minutes=1)
    assert server.subjects(BUYER) == list(CUSTOMER_SUBJECTS.values())
    assert await engine.store.history(send_status="superseded") == []


async def test_a_weekly_report_is_sent_once_per_period(
    engine: Engine, mail: tuple[FlakyMailServer, int], clock: Clock
) -> None:
    """Failed before: two failed runs were retried later, three identical reports arrived."""
    server, _ = mail
    first = await engine.send_report("weekly")
    clock.advance(seconds=10)
    second = await engine.send_report("weekly")
    assert [r.send_status for r in first + second] == ["pending", "pending"]
    assert server.refused == 2
    server.down = False
    clock.advance(seconds=10)
    third = await engine.send_report("weekly")
    assert [r.send_status for r in third] == ["sent"]
    monthly = await engine.send_report("monthly")  # another kind: its own report
    assert [r.send_status for r in monthly] == ["sent"]
    clock.advance(minutes=30)  # the failed runs' retries come due
    await engine.dispatch_pending()
    subjects = server.subjects(SELLER)
    assert len(subjects) == 2, subjects
    assert sum("eekly" in s for s in subjects) == 1 and sum("onthly" in s for s in subjects) == 1
    rows = {r.id: r for r in await engine.store.history() if r.audience == "report"}
    week = third[0].period
    assert week is not None and week.startswith(f"{clock.now:%G}-W")
    for old in (first[0], second[0]):
        assert rows[old.id].send_status == "superseded"
        assert rows[old.id].reason == (
            f"superseded: weekly-report for {week} was already sent (#{third[0].id})"
        )
    # Next week's report is another period: it goes out.
    clock.advance(days=7)
    following = await engine.send_report("weekly")
    assert [r.send_status for r in following] == ["sent"]
    assert following[0].period != week


async def test_reports_that_fail_then_come_due_together_go_out_once(
    engine: Engine, mail: tuple[FlakyMailServer, int], clock: Clock
) -> None:
    server, _ = mail
    for _ in range(3):
        await engine.send_report("weekly")
        clock.advance(seconds=5)
    server.down = False
    clock.advance(minutes=30)
    await engine.dispatch_pending()
    assert len(server.subjects(SELLER)) == 1
    statuses = sorted(r.send_status for r in await engine.store.history() if r.audience == "report")
    assert statuses == ["sent", "superseded", "superseded"]
