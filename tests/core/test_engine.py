"""The engine over a real SQLite file: decisions, the outbox, the dispatcher, the daily limit.

Tracking data is applied directly (``apply_track_info``) with an injected clock, so every time
boundary is exact; the sandbox-driven flows are in ``test_engine_sandbox.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from factories import BASE, days, make_info, settings_for
from trackops.core.channels import ChannelError, Message, RecordingChannel
from trackops.core.config import ConditionSettings, ConfigError
from trackops.core.engine import Change, Engine
from trackops.core.service import Service
from trackops.core.store import NewShipment
from trackops.core.wire import PackageStatus as S

NUMBER = "RR123456789CN"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(BASE + timedelta(hours=1))


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel("memory")


@pytest.fixture
async def engine(tmp_path: Path, clock: Clock, channel: RecordingChannel) -> AsyncIterator[Engine]:
    async with Engine(
        settings_for(tmp_path), channels=[channel], load_plugins=False, clock=clock
    ) as eng:
        yield eng


async def add(engine: Engine, number: str = NUMBER, **values: object) -> None:
    values.setdefault("email", "buyer@example.com")
    values.setdefault("order_number", "1001")
    await engine.store.add_shipments(
        [NewShipment(number=number, registered_at=BASE - days(3), **values)]
    )  # type: ignore[arg-type]


async def test_status_changes_notify_the_buyer_once_each(
    engine: Engine, channel: RecordingChannel
) -> None:
    await add(engine)
    for status, when in ((10, BASE - days(2)), (10, BASE - days(1)), (40, BASE)):
        await engine.apply_track_info(NUMBER, make_info(status, when, description=f"at {when}"))
    await engine.dispatch_pending()
    assert [(m.from_status, m.to_status) for m in channel.sent] == [
        (S.NOT_FOUND, S.IN_TRANSIT),
        (S.IN_TRANSIT, S.DELIVERED),
    ]
    message = channel.sent[-1]
    assert message.recipient == "buyer@example.com" and message.order == "1001"
    assert message.condition == "customer" and message.condition_kind == "default"
    assert message.tracking_url.endswith(NUMBER)
    history = await engine.store.history()
    assert {r.send_status for r in history} == {"sent"}


async def test_first_sync_delivered_is_silent(engine: Engine, channel: RecordingChannel) -> None:
    await add(engine)
    transition = await engine.apply_track_info(NUMBER, make_info(40, BASE))
    assert transition.first_sync and transition.applies and not transition.notifies
    await engine.dispatch_pending()
    assert channel.sent == []
    record = await engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.DELIVERED


@pytest.mark.parametrize(
    ("age", "notified"),
    [(timedelta(days=7), True), (timedelta(days=7, minutes=1), False)],
    ids=["exactly-7-days", "7-days-and-a-minute"],
)
async def test_stale_boundary(
    engine: Engine, clock: Clock, channel: RecordingChannel, age: timedelta, notified: bool
) -> None:
    await add(engine)
    await engine.apply_track_info(NUMBER, make_info(10, clock.now - age))
    await engine.dispatch_pending()
    assert bool(channel.sent) is notified
    record = await engine.store.get_shipment(NUMBER)
    assert record is not None and record.status is S.IN_TRANSIT  # the state moves either way


async def test_seller_alert_goes_to_the_one_seller_recipient(
    engine: Engine, channel: RecordingChannel
) -> None:
    await add(engine)
    await engine.apply_track_info(NUMBER, make_info(10, BASE - days(1)))
    await engine.apply_track_info(NUMBER, make_info(50, BASE))
    await engine.dispatch_pending()
    seller = [m for m in channel.sent if m.audience == "seller"]
    assert [(m.recipient, m.to_status, m.condition) for m in seller] == [
        ("ops@shop.example", S.ALERT, "seller")
    ]


async def test_seller_daily_limit_suppresses_and_records(
    tmp_path: Path, clock: Clock, channel: RecordingChannel
) -> None:
    settings = settings_for(tmp_path, daily_limit=3, customer_enabled=False)
    async with Engine(settings, channels=[channel], load_plugins=False, clock=clock) as engine:
        for i in range(5):
            await add(engine, f"RR{i:09d}CN")
            await engine.apply_track_info(f"RR{i:09d}CN", make_info(10, BASE - days(1)))
            await engine.apply_track_info(f"RR{i:09d}CN", make_info(35, BASE))
        await engine.dispatch_pending()
        rows = await engine.store.history(condition="seller")
        statuses = sorted(r.send_status for r in rows)
        assert statuses == ["sent"] * 3 + ["suppressed"] * 2
        assert {r.reason for r in rows if r.send_status == "suppressed"} == {"daily limit"}
        assert len(channel.sent) == 3
        # A new day (in the configured zone) starts a new count.
        clock.now = BASE.replace(hour=0) + days(1) + timedelta(minutes=1)
        await add(engine, "RR900000000CN")
        await engine.apply_track_info(
            "RR900000000CN", make_info(10, clock.now - timedelta(hours=2))
        )
        await engine.apply_track_info("RR900000000CN", make_info(50, clock.now))
        await engine.dispatch_pending()
        assert len(channel.sent) == 4


async def test_daily_limit_counts_days_in_the_configured_time_zone(
    tmp_path: Path, channel: RecordingChannel
) -> None:
    settings = settings_for(tmp_path, daily_limit=1, customer_enabled=False, timezone="Asia/Tokyo")
    # 2026-11-20 14:30 UTC is 23:30 in Tokyo; 15:30 UTC is already the next day there.
    clock = Clock(datetime(2026, 11, 20, 14, 30))
    async with Engine(settings, channels=[channel], load_plugins=False, clock=clock) as engine:
        assert engine.seller_day_start(clock.now) == datetime(2026, 11, 19, 15, 0)
        await add(engine, "RR000000001CN")
        await engine.apply_track_info("RR000000001CN", make_info(50, clock.now))
        clock.now = datetime(2026, 11, 20, 15, 30)
        await add(engine, "RR000000002CN")
        await engine.apply_track_info("RR000000002CN", make_info(50, clock.now))
        rows = await engine.store.history(condition="seller")
        assert sorted(r.send_status for r in rows) == ["pending", "pending"]


async def test_a_failing_channel_is_retried_then_failed_then_resent(
    tmp_path: Path, clock: Clock
) -> None:
    broken = RecordingChannel("memory", fail_with="451 mailbox busy")
    settings = settings_for(tmp_path)
    async with Engine(settings, channels=[broken], load_plugins=False, clock=clock) as engine:
        await add(engine)
        await engine.apply_track_info(NUMBER, make_info(10, BASE))
        assert await engine.dispatch_pending() == 1
        (row,) = await engine.store.history()
        assert (
            row.send_status == "pending" and row.attempts == 1 and row.reason == "451 mailbox busy"
        )
        assert await engine.dispatch_pending() == 0  # not due yet: backoff
        for _ in range(settings.notifications.max_attempts):
            clock.now += timedelta(hours=1)
            await engine.dispatch_pending()
        (row,) = await engine.store.history()
        assert row.send_status == "failed" and row.attempts == settings.notifications.max_attempts
        failed = await engine.store.history(send_status="failed")
        assert [r.id for r in failed] == [row.id]
        # Resend creates a new history row; the failed one stays as it was.
        broken.fail_with = None
        new = await engine.resend(row.id)
        assert new.id != row.id and new.send_status == "sent" and new.resend_of == row.id
        assert len(broken.sent) == 1
        with pytest.raises(ValueError, match="only failed ones are resent"):
            await engine.resend(new.id)
        with pytest.raises(LookupError):
            await engine.resend(99999)


class Exploding:
    """A plugin channel with a bug (raises something that is not ChannelError)."""

    name = "boom"

    async def send(self, message: Message) -> None:
        raise KeyError("template missing")

    async def aclose(self) -> None:
        pass


async def test_a_broken_channel_does_not_stop_the_others(tmp_path: Path, clock: Clock) -> None:
    good = RecordingChannel("memory")
    settings = settings_for(tmp_path, channels=("boom", "memory"))
    async with Engine(
        settings, channels=[Exploding(), good], load_plugins=False, clock=clock
    ) as engine:
        await add(engine)
        await engine.apply_track_info(NUMBER, make_info(10, BASE))
        await engine.dispatch_pending()
        rows = {r.channel: r for r in await engine.store.history()}
        assert rows["memory"].send_status == "sent"
        assert rows["boom"].send_status == "pending"
        assert "KeyError" in (rows["boom"].reason or "")
        assert len(good.sent) == 1


async def test_a_refusal_that_cannot_succeed_fails_at_once(tmp_path: Path, clock: Clock) -> None:
    class Refusing(RecordingChannel):
        async def send(self, message: Message) -> None:
            raise ChannelError("550 5.1.1 no such user", retryable=False)

    async with Engine(
        settings_for(tmp_path), channels=[Refusing("memory")], load_plugins=False, clock=clock
    ) as engine:
        await add(engine)
        await engine.apply_track_info(NUMBER, make_info(10, BASE))
        await engine.dispatch_pending()
        (row,) = await engine.store.history()
        assert (row.send_status, row.attempts, row.reason) == (
            "failed",
            1,
            "550 5.1.1 no such user",
        )


async def test_custom_conditions_are_recorded_with_their_name_and_kind(
    tmp_path: Path, clock: Clock
) -> None:
    channel = RecordingChannel("memory")
    vip = ConditionSettings(
        name="vip-delivered",
        audience="seller",
        channels=("memory",),
        to_statuses=(S.DELIVERED,),
        tag_pattern="^VIP",
        recipients=("vip@shop.example",),
    )
    settings = settings_for(tmp_path, conditions=(vip,))
    async with Engine(settings, channels=[channel], load_plugins=False, clock=clock) as engine:
        await add(engine, tag="VIP-7")
        await add(engine, "RR000000002CN", tag="regular")
        for number in (NUMBER, "RR000000002CN"):
            await engine.apply_track_info(number, make_info(10, BASE - days(1)))
            await engine.apply_track_info(number, make_info(40, BASE))
        await engine.dispatch_pending()
        custom = await engine.store.history(condition="custom")
        assert [(r.number, r.condition, r.condition_kind, r.recipient) for r in custom] == [
            (NUMBER, "vip-delivered", "custom", "vip@shop.example")
        ]
        assert all(
            r.condition_kind == "default" for r in await engine.store.history(condition="default")
        )
        assert await engine.store.history(condition="vip-delivered") == custom


async def test_unknown_channel_in_config_stops_applying_but_not_reading(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, channels=("pigeon",))
    async with Engine(settings, channels=[RecordingChannel("memory")], load_plugins=False) as e:
        assert await e.store.list_shipments() == []  # reading works
        assert e.config_error is not None and "'pigeon' is not configured" in str(e.config_error)
        assert Service(e).config_problem == str(e.config_error)
        with pytest.raises(ConfigError, match="pigeon"):
            e.check_config()
        with pytest.raises(ConfigError, match="pigeon"):
            await e.apply_track_info("LX000000009CN", make_info(10, BASE))
        with pytest.raises(ConfigError, match="pigeon"):
            await e.sync()


async def test_a_push_for_an_unknown_number_creates_the_shipment(engine: Engine) -> None:
    await engine.apply_track_info("LX000000001CN", make_info(10, BASE))
    record = await engine.store.get_shipment("LX000000001CN")
    assert record is not None and record.status is S.IN_TRANSIT and record.carrier == 3011


async def test_changes_stream_shows_shipments_and_notifications(engine: Engine) -> None:
    await add(engine)
    seen: list[Change] = []
    async with engine.subscribe() as queue:
        await engine.apply_track_info(NUMBER, make_info(10, BASE))
        await engine.dispatch_pending()
        while not queue.empty():
            seen.append(queue.get_nowait())
    kinds = [(c.kind, c.send_status) for c in seen]
    assert ("shipment", None) in kinds
    assert ("notification", "pending") in kinds and ("notification", "sent") in kinds
    assert seen[0].number == NUMBER and seen[0].status is S.IN_TRANSIT


CRASHER = textwrap.dedent(
    """
    import asyncio, os, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from factories import BASE, make_info, settings_for
    from trackops.core.channels import RecordingChannel
    from trackops.core.engine import Engine
    from trackops.core.store import NewShipment

    async def main():
        settings = settings_for(Path({tmp!r}))
        engine = Engine(settings, channels=[RecordingChannel("memory")], load_plugins=False,
                        clock=lambda: BASE)
        await engine.open()
        await engine.store.add_shipments([NewShipment(number="RR123456789CN", email="b@x.example")])
        await engine.apply_track_info("RR123456789CN", make_info(10, BASE))
        os.kill(os.getpid(), 9)  # intents are stored; nothing was sent

    asyncio.run(main())
    """
)


async def test_killed_after_intents_are_stored_sends_them_exactly_once_after_restart(
    tmp_path: Path,
) -> None:
    script = CRASHER.format(tests=str(Path(__file__).parent.parent), tmp=str(tmp_path))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, env=dict(os.environ))
    await asyncio.wait_for(proc.wait(), timeout=60)
    assert proc.returncode == -9
    channel = RecordingChannel("memory")
    async with Engine(
        settings_for(tmp_path), channels=[channel], load_plugins=False, clock=lambda: BASE
    ) as engine:
        assert await engine.dispatch_pending() == 1
        assert await engine.dispatch_pending() == 0
    async with Engine(
        settings_for(tmp_path), channels=[channel], load_plugins=False, clock=lambda: BASE
    ) as engine:
        assert await engine.dispatch_pending() == 0
    assert [(m.number, m.to_status) for m in channel.sent] == [(NUMBER, S.IN_TRANSIT)]


def test_cli_path_is_importable_without_front_ends() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, trackops.core.engine, trackops.core.cli; "
            "assert 'textual' not in sys.modules and 'slack_bolt' not in sys.modules",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


async def test_a_notification_sent_late_tells_of_the_event_that_caused_it(
    tmp_path: Path, clock: Clock
) -> None:
    channel = RecordingChannel("memory", fail_with="421 try later")
    async with Engine(
        settings_for(tmp_path), channels=[channel], load_plugins=False, clock=clock
    ) as engine:
        await add(engine)
        await engine.apply_track_info(
            NUMBER, make_info(30, BASE - days(1), description="Out for delivery")
        )
        await engine.dispatch_pending()  # fails; retried later
        await engine.apply_track_info(
            NUMBER, make_info(40, BASE, description="Delivered to the door")
        )
        channel.fail_with = None
        clock.now += timedelta(hours=2)
        await engine.dispatch_pending()
        told = {m.to_status: m.latest_event.description for m in channel.sent if m.latest_event}
        assert told == {S.PICK_UP: "Out for delivery", S.DELIVERED: "Delivered to the door"}
