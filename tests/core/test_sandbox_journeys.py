"""The engine follows the sandbox's generated parcels from registration to their end.

Issue 11: the sandbox behaves as 17TRACK does (histories that start before registration, Expired
set without a new event, each carrier's local clock, undocumented codes on request), so that the
engine is exercised on those paths by parcels nobody scripted. Here 80 generated parcels are
registered and synced every four simulated hours for five weeks. After every sync each stored
status must be the one 17TRACK (the sandbox) shows, and the buyers must have been told exactly
the documented, fresh status changes those syncs saw: a newer event judged older (a Los Angeles
event that reads earlier than the Shanghai one before it) or an Expired verdict taken for a
duplicate would leave a shipment behind and a buyer untold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import msgspec
import pytest
from factories import KEY, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.engine import Engine, RegisterRequest
from trackops.core.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from trackops.core.status import event_time_of
from trackops.core.wire import PackageStatus as S
from trackops.core.wire import decode_track_info

START = datetime(2026, 3, 2, 8, 0)
STEP = timedelta(hours=4)
WEEK = timedelta(days=7)
ROUTES = (("RR", "CN"), ("LX", "US"), ("CP", "FR"), ("EX", "AU"))
NUMBERS = [f"{prefix}{i:09d}{suffix}" for prefix, suffix in ROUTES for i in range(20)]


@dataclasses.dataclass
class Seen:
    """What the sandbox showed for one number at the previous sync."""

    status: S | None = None  # None: no tracking data yet
    told: list[tuple[S, S]] = dataclasses.field(default_factory=list)


@pytest.fixture(params=[False, True], ids=["documented", "undocumented-codes"])
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        key=KEY,
        speed=0.0,
        seed=11,
        rate_limit=10_000.0,
        start_time=START,
        undocumented_codes=request.param,
    )
    async with running_sandbox(config) as running:
        yield running


async def test_every_generated_journey_is_followed_and_told_in_order(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    settings = settings_for(tmp_path, base_url=sandbox.base_url)
    settings = dataclasses.replace(
        settings, api=dataclasses.replace(settings.api, rate_limit=1000.0)
    )
    channel = RecordingChannel("memory")
    state = sandbox.state
    async with Engine(settings, channels=[channel], load_plugins=False, clock=state.now) as eng:
        outcome = await eng.register(
            [RegisterRequest(number=n, email=f"buyer-{n}@example.com") for n in NUMBERS]
        )
        assert sorted(outcome.accepted) == sorted(NUMBERS), outcome.rejected
        seen = {n: Seen() for n in NUMBERS}
        local_clock_backwards = expired = undocumented = 0
        for _ in range(int(timedelta(days=35) / STEP)):
            state.advance(STEP.total_seconds())
            await eng.sync()
            await eng.dispatch_pending()
            records = await eng.store.get_shipments(NUMBERS)
            for number in NUMBERS:
                raw = state.track_info(number)
                if raw is None:
                    assert records[number].status is S.NOT_FOUND
                    continue
                info = decode_track_info(msgspec.json.encode(raw))
                shown = info.package_status
                record = records[number]
                assert record.status == shown, (number, state.now())
                z0 = raw["z0"] or {}
                latest = (record.latest_event_raw, record.latest_event_description)
                assert latest == (z0.get("a"), z0.get("z")), (number, state.now())
                before = seen[number]
                first_sync = before.status is None
                old = S.NOT_FOUND if before.status is None else before.status
                when = event_time_of(info)
                stale = when is not None and state.now() - when > WEEK
                if (
                    shown != old
                    and shown.is_known
                    and not stale
                    and not (first_sync and shown is S.DELIVERED)
                ):
                    before.told.append((old, shown))
                if before.status is not None and shown != before.status:
                    times = [e["a"] for e in raw["z1"] + raw["z2"]]
                    local_clock_backwards += any(b > a for a, b in pairwise(times))
                    expired += shown is S.EXPIRED
                    undocumented += not shown.is_known
                before.status = shown
        told: dict[str, list[tuple[S | None, S | None]]] = {n: [] for n in NUMBERS}
        for message in channel.sent:
            if message.audience == "customer":
                told[message.number].append((message.from_status, message.to_status))
        assert told == {n: s.told for n, s in seen.items()}
    # The journeys went through the paths this test is about.
    assert sum(len(s.told) for s in seen.values()) > 150
    assert local_clock_backwards >= 5, "no later event read earlier than the one before it"
    assert expired >= 3, "no parcel expired"
    assert (undocumented > 0) is sandbox.state.config.undocumented_codes
