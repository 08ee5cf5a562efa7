"""Test data and helpers for the dashboard's tests.

``seed_store`` fills a SQLite file the way trackops would: numbers registered through the
service against a local sandbox (so they carry order, email and tag), then tracking updates
applied by the engine as pushes would, all on a fixed clock so that snapshots are stable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from factories import KEY, hash_of, settings_for
from textual.pilot import Pilot
from trackops.core.channels import RecordingChannel
from trackops.core.config import Settings
from trackops.core.wire import Event, PackageStatus, TrackInfo
from trackops.tui.app import TrackopsApp

NOW = datetime(2026, 11, 30, 15, 0)

# (status, description, location): three shipments per status, the newest first in time.
_EVENTS: dict[PackageStatus, tuple[str, str]] = {
    PackageStatus.NOT_FOUND: ("", ""),
    PackageStatus.IN_TRANSIT: ("Departed from the sorting centre", "Shenzhen"),
    PackageStatus.EXPIRED: ("Acceptance", "Guangzhou"),
    PackageStatus.PICK_UP: ("Ready for pick-up at the post office", "Leeds"),
    PackageStatus.UNDELIVERED: ("Delivery attempt failed: addressee absent", "Berlin"),
    PackageStatus.DELIVERED: ("Delivered, in the mailbox", "Lyon"),
    PackageStatus.ALERT: ("Returned to sender", "Madrid"),
}
HOSTILE = "RR900000009CN"
HOSTILE_TEXT = "[bold red]FAKE[/] \x1b[2J\x1b]0;pwned\x07 parcel \u202eevil"


def seed_numbers() -> list[tuple[str, PackageStatus]]:
    """21 numbers, three per status, plus one whose event text is hostile."""
    out = []
    for i in range(21):
        status = sorted(PackageStatus)[i % 7]
        out.append((f"RR{100000000 + 7919 * i:09d}{('CN', 'GB', 'US')[i % 3]}", status))
    return out


def info_for(status: PackageStatus, when: datetime, description: str, location: str) -> TrackInfo:
    """Tracking info whose latest event happened at ``when`` (carrier-local, no zone)."""
    raw = when.strftime("%Y-%m-%d %H:%M")
    events = (
        [Event(time_raw=raw, location=location, description=description)] if description else []
    )
    return TrackInfo(
        package_status=status,
        first_carrier=3011,
        origin_country=301,
        destination_country=2105,
        latest_event=events[0] if events else None,
        first_carrier_events=events,
        first_last_tracked_raw=raw,
        hash=hash_of(raw, description) if description else None,
    )


async def seed_store(
    settings: Settings, *, clock: Callable[[], datetime] = lambda: NOW, fail_with: str | None = None
) -> None:
    """Register the seed numbers through the service and apply their tracking info."""
    from trackops.core.runtime import open_service
    from trackops.core.service import RegisterRequest

    numbers = seed_numbers()
    async with open_service(
        settings, clock=clock, channels=[RecordingChannel("memory", fail_with)], load_plugins=False
    ) as service:
        requests = [
            RegisterRequest(
                number=number,
                order=f"A{1000 + i}",
                email=f"buyer{i}@example.com",
                tag=("gift", "b2b", None)[i % 3],
            )
            for i, (number, _) in enumerate(numbers)
        ]
        requests.append(RegisterRequest(number=HOSTILE, order="A9999", tag="[link]x[/link]"))
        outcome = await service.register(requests, actor="test")
        assert not outcome.rejected, outcome.rejected
        updates = []
        for i, (number, status) in enumerate(numbers):
            description, location = _EVENTS[status]
            when = NOW - timedelta(hours=5 * i + 1)
            if status is not PackageStatus.NOT_FOUND:
                updates.append((number, info_for(status, when, description, location)))
        updates.append(
            (
                HOSTILE,
                info_for(
                    PackageStatus.IN_TRANSIT, NOW - timedelta(days=2), HOSTILE_TEXT, "Nowhere"
                ),
            )
        )
        await service.engine.apply_track_infos(updates)
        await service.dispatch()


def sandbox_settings(tmp_path: Path, sandbox_url: str) -> Settings:
    """Settings over ``tmp_path/trackops.db`` and the sandbox at ``sandbox_url``."""
    return settings_for(tmp_path, base_url=sandbox_url)


@contextlib.asynccontextmanager
async def sandbox(speed: float = 0.0) -> AsyncIterator[Any]:
    """A sandbox on loopback with a frozen clock (only ``advance`` moves it)."""
    from trackops.core.sandbox import SandboxConfig, running_sandbox

    config = SandboxConfig(key=KEY, speed=speed, start_time=NOW - timedelta(days=1))
    async with running_sandbox(config) as running:
        yield running


def seeded_file(tmp_path: Path) -> Settings:
    """A seeded store in ``tmp_path`` (made in its own event loop); its settings."""

    async def make() -> Settings:
        async with sandbox() as box:
            settings = sandbox_settings(tmp_path, box.base_url)
            await seed_store(settings)
            return settings

    return asyncio.run(make())


class StoreApp(TrackopsApp):
    """The dashboard that opens its own service when it loads, in the app's event loop.

    ``App.run`` (used by the snapshot plugin) makes a new event loop; a service opened
    outside it could not be used inside it.
    """

    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(None, settings, clock=lambda: NOW, live=False, **kw)  # type: ignore[arg-type]
        self._stack = contextlib.AsyncExitStack()

    async def on_load(self) -> None:
        from trackops.core.runtime import open_service

        self.service = await self._stack.enter_async_context(
            open_service(
                self.settings,
                clock=lambda: NOW,
                channels=[RecordingChannel("memory")],
                load_plugins=False,
            )
        )

    async def on_unmount(self) -> None:
        await self._stack.aclose()


async def wait_until(
    pilot: Pilot[Any], predicate: Callable[[], object], seconds: float = 5.0
) -> None:
    """Let the app run until ``predicate()`` is true (bounded; fails with the last state)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {predicate}")
        await pilot.pause(0.02)
