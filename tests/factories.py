"""Builders for test data: tracking info, signed pushes, settings around a temp store."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from trackops.core.config import (
    ApiSettings,
    CustomerSettings,
    NotificationSettings,
    Secret,
    SellerSettings,
    Settings,
    StoreSettings,
    WebhookSettings,
)
from trackops.core.store import Store
from trackops.core.wire import (
    Event,
    PackageStatus,
    TrackInfo,
    TrackingStopped,
    TrackingUpdated,
    push_signature,
)

KEY = "test-key-0123456789"
BASE = datetime(2026, 11, 20, 12, 0)


def make_info(
    status: PackageStatus | int,
    when: datetime | str | None = BASE,
    *,
    hash: int | None = None,
    description: str = "event",
    carrier: int = 3011,
) -> TrackInfo:
    """A TrackInfo whose latest event happened at ``when``.

    ``hs`` is honest, as 17TRACK's: a hash of the latest event only (its time, place and
    text), never of the status, so the same event with another status has the same ``hs``.
    """
    raw = when.strftime("%Y-%m-%d %H:%M") if isinstance(when, datetime) else when
    event = Event(time_raw=raw, location="Shenzhen", description=description)
    return TrackInfo(
        package_status=PackageStatus(status),
        first_carrier=carrier,
        origin_country=301,
        destination_country=2105,
        latest_event=event,
        first_carrier_events=[event],
        first_last_tracked_raw=raw,
        hash=hash if hash is not None else event_hash(event),
    )


def event_hash(event: Event | None) -> int | None:
    """A stable stand-in for 17TRACK's ``hs``: the hash of the latest event, and of nothing else."""
    if event is None:
        return None
    return hash_of(event.time_raw, event.location, event.location_detail, event.description)


def hash_of(*parts: Any) -> int:
    """A stable 31-bit hash of ``parts`` (17TRACK's ``hs`` is a positive 32-bit integer)."""
    return zlib.crc32(repr(parts).encode()) % 2**31


def push_body(
    number: str,
    info: TrackInfo | None = None,
    *,
    key: str = KEY,
    sign: str | bool | None = True,
    event: str = "TRACKING_UPDATED",
    tag: str = "",
) -> bytes:
    """A push body as 17TRACK sends it, signed over the exact ``data`` bytes."""
    if event == "TRACKING_UPDATED":
        data = msgspec.json.encode(
            TrackingUpdated(number=number, track=info or make_info(10), tag=tag)
        )
    elif event == "TRACKING_STOPPED":
        data = msgspec.json.encode(TrackingStopped(number=number, carrier=3011, tag=tag))
    else:
        data = msgspec.json.encode({"number": number})
    if sign is True:
        signature: str | None = push_signature(event, data, key)
    elif sign is False or sign is None:
        signature = None
    else:
        signature = sign
    head = b'{"sign":"' + signature.encode() + b'",' if signature else b"{"
    return head + b'"event":"' + event.encode() + b'","data":' + data + b"}"


def settings_for(
    tmp_path: Path,
    *,
    base_url: str = "http://127.0.0.1:9/track/v1",
    store_url: str | None = None,
    channels: tuple[str, ...] = ("memory",),
    seller_email: str = "ops@shop.example",
    daily_limit: int = 100,
    customer_enabled: bool = True,
    **notification_overrides: Any,
) -> Settings:
    """Settings over a temp SQLite file with in-process channels."""
    return Settings(
        api=ApiSettings(
            key=Secret(KEY), base_url=base_url, rate_limit=3.0, timeout=5.0, max_retries=2
        ),
        store=StoreSettings(url=store_url or f"sqlite:///{tmp_path / 'trackops.db'}"),
        webhook=WebhookSettings(port=0),
        notifications=NotificationSettings(
            customer=CustomerSettings(enabled=customer_enabled, channels=channels),
            seller=SellerSettings(email=seller_email, channels=channels, daily_limit=daily_limit),
            **notification_overrides,
        ),
    )


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def days(n: float) -> timedelta:
    return timedelta(days=n)


def api_reference() -> Path | None:
    """The 17TRACK API reference in ``shared/`` (beside the repository, as on CI), if present."""
    root = Path(__file__).resolve().parent.parent
    for shared in (root.parent / "shared", Path("/work/shared")):
        path = shared / "reference" / "17track-api-v1.txt"
        if path.exists():
            return path
    return None


@dataclasses.dataclass
class StoreTarget:
    """Where a test's store lives: a URL plus driver arguments (the PostgreSQL schema)."""

    backend: str
    url: str
    connect_args: dict[str, Any]

    async def open(self, busy_timeout: float = 30.0, **server_settings: Any) -> Store:
        """The store, opened as usual; ``server_settings`` are PostgreSQL's, for this open."""
        args = dict(self.connect_args)
        if server_settings:
            args["server_settings"] = {**args.get("server_settings", {}), **server_settings}
        return await Store.open(self.url, connect_args=args, busy_timeout=busy_timeout)


POSTGRES_URL_ENV = "TRACKOPS_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    """The PostgreSQL URL for store tests, or None (those tests then skip, saying why)."""
    return os.environ.get(POSTGRES_URL_ENV) or None


SKIP_POSTGRES = f"set {POSTGRES_URL_ENV} to run the store tests on PostgreSQL"


@asynccontextmanager
async def serve_process(
    config: Path, *, env: dict[str, str] | None = None, start_within: float = 30
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``trackops --config CONFIG serve`` as a process of its own, once it says it listens
    (``env``: added to this environment). What it logs is in ``proc.said``; it is killed if
    still running when the block ends."""
    trackops = Path(sys.executable).with_name("trackops")
    proc = await asyncio.create_subprocess_exec(
        str(trackops),
        "--config",
        str(config),
        "serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert proc.stdout is not None and proc.stderr is not None
    # serve logs a line per push: read stderr as it comes, or a full pipe would block it.
    said = bytearray()
    stderr = proc.stderr

    async def drain() -> None:
        while chunk := await stderr.read(65536):
            said.extend(chunk)

    draining = asyncio.create_task(drain())
    proc.said = said  # type: ignore[attr-defined]
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=start_within)
        if b"listening" not in line:
            await proc.wait()
            await draining
            raise AssertionError(f"serve did not start: {line!r} {bytes(said[-2000:])!r}")
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await asyncio.wait_for(draining, timeout=10)
