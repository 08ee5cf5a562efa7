"""The quick reader (``trackops status`` and ``trackops list`` without SQLAlchemy) gives what
the service gives: the same rows, details and cursors, on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from factories import BASE, SKIP_POSTGRES, days, make_info, postgres_url, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.config import Settings
from trackops.core.errors import InvalidInputError, NotFoundError, TrackopsError
from trackops.core.reader import QuickReader
from trackops.core.runtime import open_service
from trackops.core.service import Service, ShipmentQuery
from trackops.core.store import NewShipment
from trackops.core.wire import Event, PackageStatus

STATUSES = [0, 10, 20, 30, 35, 40, 50, 60]  # 60: a code the reference does not list


@pytest.fixture(params=["sqlite", "postgresql"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings over a fresh store: a SQLite file, or a PostgreSQL database of its own (the
    quick reader, as the CLI, knows only the URL)."""
    if request.param == "sqlite":
        yield settings_for(tmp_path)
        return
    url = postgres_url()
    if not url:
        pytest.skip(SKIP_POSTGRES)
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    server = url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield settings_for(tmp_path, store_url=server.rsplit("/", 1)[0] + f"/{name}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _fill(service: Service) -> list[str]:
    """29 shipments in every status (an undocumented one too), with ties on the update time
    (the number breaks them), no event, a second carrier's leg, unknown countries, missing
    orders and tags, one stopped, and notifications."""
    numbers = [f"RR{i:09d}CN" for i in range(29)]
    await service.engine.store.add_shipments(
        [
            NewShipment(
                number=n,
                order_number=f"{1000 + i}" if i % 5 else None,
                email=f"buyer{i}@example.com",
                tag="vip" if i % 4 == 0 else None,
                registered_at=BASE - days(10),
            )
            for i, n in enumerate(numbers)
        ]
    )
    for i, number in enumerate(numbers):
        status = STATUSES[i % len(STATUSES)]
        if status:
            # every third shipment shares its event time with the one before it
            when = BASE - timedelta(hours=29 - i + (i % 3 == 1))
            info = make_info(status, when, description=f"ev {i}", carrier=(3011, 100002)[i % 2])
            if i == 9:
                leg = Event(time_raw="2026-11-20 08:15", location="Los Angeles, CA",
                            description="Out for delivery")  # fmt: skip
                info = msgspec.structs.replace(
                    info, second_carrier=21051, second_carrier_events=[leg]
                )
            await service.engine.apply_track_info(number, info)
    await service.engine.store.update_shipment(numbers[3], active=False, stopped_at=BASE)
    return numbers


QUERIES = [
    ShipmentQuery(),
    ShipmentQuery(statuses=frozenset({40})),
    ShipmentQuery(statuses=frozenset({10, 60, 0})),
    ShipmentQuery(active=False),
    ShipmentQuery(active=True, tag="vip"),
    ShipmentQuery(carrier=100002),
    ShipmentQuery(updated_since=BASE - timedelta(hours=12)),
    ShipmentQuery(sort="status"),
    ShipmentQuery(sort="number"),
    ShipmentQuery(sort="updated", descending=False),
    ShipmentQuery(sort="number", descending=True),
]


async def test_the_quick_reader_answers_as_the_service_does(settings: Settings) -> None:
    async with open_service(
        settings, channels=[RecordingChannel("memory")], load_plugins=False, clock=lambda: BASE
    ) as service:
        numbers = await _fill(service)
        expected = {}
        for query in QUERIES:
            pages = [await service.shipments(query, limit=4)]
            while pages[-1].next_cursor:
                pages.append(await service.shipments(query, limit=4, after=pages[-1].next_cursor))
            expected[query] = pages
        details = {n: await service.shipment(n) for n in numbers}
    assert any(d.notifications for d in details.values())
    assert any(d.shipment.status_code == 60 for d in details.values())
    assert any(len({e.leg for e in d.events}) == 2 for d in details.values())

    reader = await QuickReader.open(settings.store.url)
    assert reader is not None
    try:
        for query, pages in expected.items():
            got = [await reader.shipments(query, limit=4)]
            while got[-1].next_cursor:
                got.append(await reader.shipments(query, limit=4, after=got[-1].next_cursor))
            assert got == pages, query
            assert sum(len(p.items) for p in got) == (29 if query == ShipmentQuery() else len(
                {r.number for p in got for r in p.items}
            ))  # fmt: skip
        for number, detail in details.items():
            assert await reader.shipment(f" {number} ") == detail
        with pytest.raises(NotFoundError, match="RR999999999CN is not registered here"):
            await reader.shipment("RR999999999CN")
        with pytest.raises(InvalidInputError, match="not a page cursor"):
            await reader.shipments(ShipmentQuery(sort="number"), after=pages[0].next_cursor)
        with pytest.raises(InvalidInputError, match="page size must be 1 to 1000"):
            await reader.shipments(limit=0)
        assert not reader.supports(ShipmentQuery(search="buyer1"))
        with pytest.raises(ValueError, match="text search"):
            await reader.shipments(ShipmentQuery(search="buyer1"))
    finally:
        await reader.close()


async def test_the_quick_reader_leaves_what_it_cannot_read_to_the_service(
    tmp_path: Path,
) -> None:
    """A new file (not created), an older store, driver options, an in-memory database and
    an unreachable server give None: the service then creates, upgrades or explains."""
    missing = tmp_path / "new" / "trackops.db"
    assert await QuickReader.open(f"sqlite:///{missing}") is None
    assert not missing.exists()
    older = tmp_path / "older.db"
    db = sqlite3.connect(older)
    db.executescript(
        "CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (3);"
    )
    db.close()
    assert await QuickReader.open(f"sqlite:///{older}") is None
    assert await QuickReader.open("sqlite:///:memory:") is None
    assert await QuickReader.open(f"sqlite:///{older}?timeout=5") is None
    assert await QuickReader.open("postgresql://nobody@127.0.0.1:1/none") is None
    assert await QuickReader.open("mysql://u@h/db") is None


async def test_the_quick_reader_reads_and_never_writes(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    memory = [RecordingChannel("memory")]
    async with open_service(settings, channels=memory, load_plugins=False) as service:
        await service.engine.store.add_shipments([NewShipment(number="RR000000001CN")])
        await service.engine.apply_track_info("RR000000001CN", make_info(PackageStatus.IN_TRANSIT))
    reader = await QuickReader.open(settings.store.url)
    assert reader is not None
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._driver._conn.execute("DELETE FROM shipments")  # type: ignore[attr-defined]
        row = (await reader.shipments()).items[0]
        assert (row.number, row.status) == ("RR000000001CN", PackageStatus.IN_TRANSIT)
    finally:
        await reader.close()
    # a store that breaks under it: one line naming the store, not a traceback
    reader = await QuickReader.open(settings.store.url)
    assert reader is not None
    reader._driver._conn.close()  # type: ignore[attr-defined]
    with pytest.raises(TrackopsError, match=r"^store sqlite:///.*trackops\.db: "):
        await reader.shipments()
