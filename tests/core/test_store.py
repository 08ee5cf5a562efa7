"""Tests of core/store.py, each run on a real SQLite file and (when configured) on PostgreSQL.

PostgreSQL runs when ``TRACKOPS_TEST_POSTGRES_URL`` is set; every test then gets a schema of
its own (``search_path`` set through asyncpg's ``server_settings``), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from factories import StoreTarget, event_hash
from sqlalchemy.ext.asyncio import create_async_engine
from trackops.core import queries
from trackops.core import store as store_mod
from trackops.core.reports import EXPORT_COLUMNS, CsvExport
from trackops.core.rules import NotificationIntent
from trackops.core.status import StoredState, Transition
from trackops.core.store import (
    SCHEMA_VERSION,
    InboxStats,
    NewNotification,
    NewShipment,
    ShipmentUpdate,
    Store,
    StoreError,
    mask_url,
    normalize_url,
)
from trackops.core.wire import Event, PackageStatus, TrackInfo

P = PackageStatus
NOW = datetime(2024, 5, 1, 12, 0, 0)
DAY_START = datetime(2024, 5, 1, 0, 0, 0)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def store(target: StoreTarget) -> AsyncIterator[Store]:
    """An open store on a fresh database."""
    opened = await target.open()
    try:
        yield opened
    finally:
        await opened.close()


# --------------------------------------------------------------------------- helpers


def info(
    status: PackageStatus = P.IN_TRANSIT,
    *,
    time: str | None = "2024-05-01 10:00:00",
    hash: int | Literal["honest"] | None = "honest",
    location: str = "Paris",
    description: str = "Departed facility",
    carrier: int = 100003,
) -> TrackInfo:
    latest = (
        Event(time_raw=time, location=location, description=description)
        if time is not None
        else None
    )
    return TrackInfo(
        package_status=status,
        first_carrier=carrier,
        origin_country=301,
        destination_country=2105,
        latest_event=latest,
        first_carrier_events=[latest] if latest else [],
        hash=event_hash(latest) if hash == "honest" else hash,
    )


def transition(
    number: str,
    old: PackageStatus,
    new: PackageStatus,
    *,
    duplicate: bool = False,
    out_of_order: bool = False,
    first_sync: bool = False,
) -> Transition:
    return Transition(
        number=number,
        old_status=old,
        new_status=new,
        first_sync=first_sync,
        status_changed=old != new,
        stale=False,
        duplicate=duplicate,
        out_of_order=out_of_order,
        event_time=None,
    )


def intent(
    audience: str = "customer",
    *,
    recipient: str = "buyer@example.com",
    channel: str = "email",
    condition: str | None = None,
    kind: str = "default",
    old: PackageStatus = P.NOT_FOUND,
    new: PackageStatus = P.IN_TRANSIT,
) -> NotificationIntent:
    return NotificationIntent(
        audience=audience,  # type: ignore[arg-type]
        channel=channel,
        recipient=recipient,
        condition=condition or audience,
        condition_kind=kind,  # type: ignore[arg-type]
        from_status=old,
        to_status=new,
    )


def update(
    number: str,
    new: PackageStatus = P.IN_TRANSIT,
    *,
    old: PackageStatus = P.NOT_FOUND,
    intents: list[NotificationIntent] | None = None,
    **kwargs: Any,
) -> ShipmentUpdate:
    extra = {k: kwargs.pop(k) for k in ("duplicate", "out_of_order") if k in kwargs}
    return ShipmentUpdate(
        number=number,
        info=info(new, **kwargs),
        transition=transition(number, old, new, **extra),
        intents=intents or [],
    )


async def apply(store: Store, updates: list[ShipmentUpdate], **kwargs: Any):
    options = {"now": NOW, "seller_day_start": DAY_START, "seller_daily_limit": 100}
    options.update(kwargs)
    return await store.apply_updates(updates, **options)


async def raw(target: StoreTarget, sql: str, **params: Any) -> list[Any]:
    """Run SQL on the test database outside the store (to inspect or to prepare)."""
    engine = create_async_engine(normalize_url(target.url), connect_args=target.connect_args)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- URLs and errors


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///trackops.db", "sqlite+aiosqlite:///trackops.db"),
        ("sqlite:////var/lib/t.db", "sqlite+aiosqlite:////var/lib/t.db"),
        ("sqlite+aiosqlite:///t.db", "sqlite+aiosqlite:///t.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h:5433/db", "postgresql+asyncpg://u@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_url_is_a_store_error(url: str) -> None:
    with pytest.raises(StoreError, match="expected sqlite:///PATH or postgresql://"):
        normalize_url(url)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://bob:s3cr%40t@db.example/x", "postgresql://bob:***@db.example/x"),
        (
            "postgres://bob:pw@h:5432/x?sslmode=require",
            "postgres://bob:***@h:5432/x?sslmode=require",
        ),
        ("postgresql://bob@h/x?password=pw&x=1", "postgresql://bob@h/x?password=***&x=1"),
        ("sqlite:///t.db", "sqlite:///t.db"),
    ],
)
def test_mask_url(given: str, expected: str) -> None:
    assert mask_url(given) == expected


async def test_connection_failure_names_the_url_with_the_password_masked() -> None:
    url = "postgresql://trackops:hunter2secret@127.0.0.1:1/trackops"
    with pytest.raises(StoreError) as caught:
        await Store.open(url)
    message = str(caught.value)
    assert "hunter2secret" not in message
    assert "postgresql://trackops:***@127.0.0.1:1/trackops" in message
    assert message.startswith("cannot open the store at ")


async def test_sqlite_file_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the store at sqlite:///"):
        await Store.open(f"sqlite:///{blocker / 'sub' / 'db.sqlite'}")


# --------------------------------------------------------------------------- schema


async def test_open_creates_the_schema_and_records_its_version(target: StoreTarget) -> None:
    store = await target.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert await store.ping() is True
    finally:
        await store.close()
    rows = await raw(target, "SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == [m[0] for m in store_mod.MIGRATIONS]


async def test_migrated_schema_matches_the_table_definitions(
    store: Store, target: StoreTarget
) -> None:
    """The migrations and the ``Table`` objects the queries use describe the same columns."""

    def columns(conn: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(conn)
        return {
            name: {c["name"] for c in inspector.get_columns(name)}
            for name in store_mod.metadata.tables
        }

    def indexes(conn: sa.Connection) -> set[str]:
        inspector = sa.inspect(conn)
        return {
            ix["name"] for name in store_mod.metadata.tables for ix in inspector.get_indexes(name)
        }

    engine = create_async_engine(normalize_url(target.url), connect_args=target.connect_args)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(columns)
            found_indexes = await conn.run_sync(indexes)
    finally:
        await engine.dispose()
    expected = {t.name: {c.name for c in t.columns} for t in store_mod.metadata.tables.values()}
    assert found == expected
    assert {
        "ix_shipments_status",
        "ix_notifications_due",
        "ix_notifications_number",
        "ix_notifications_created",
        "ix_inbox_unprocessed",
    } <= found_indexes


async def test_reopening_is_idempotent_and_keeps_data(target: StoreTarget) -> None:
    first = await target.open()
    await first.add_shipments([NewShipment("RR123456789CN", order_number="A-1")])
    await first.close()
    second = await target.open()
    try:
        assert await second.schema_version() == SCHEMA_VERSION
        record = await second.get_shipment("RR123456789CN")
        assert record is not None and record.order_number == "A-1"
    finally:
        await second.close()
    rows = await raw(target, "SELECT count(*) FROM schema_version")
    assert rows[0][0] == len(store_mod.MIGRATIONS)


async def _version_1_store(target: StoreTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store as trackops made it at schema version 1."""
    with monkeypatch.context() as patch:
        patch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:1])
        patch.setattr(store_mod, "SCHEMA_VERSION", 1)
        old = await target.open()
        assert await old.schema_version() == 1
        await old.close()


async def test_a_version_1_database_is_upgraded(
    target: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _version_1_store(target, monkeypatch)
    await raw(
        target,
        "INSERT INTO notifications (created_at, number, audience, channel, recipient, condition,"
        " condition_kind, send_status, attempts) VALUES (:at, 'RR1', 'customer', 'email',"
        " 'a@b.c', 'customer', 'default', 'sent', 1)",
        at=NOW,
    )
    store = await target.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        (row,) = await store.history()
        assert (row.number, row.send_status, row.subject, row.body) == ("RR1", "sent", None, None)
        made = await store.add_notification(
            NewNotification(
                audience="report",
                channel="email",
                recipient="team@example.com",
                condition="weekly report",
                subject="Week 18",
                body="12 delivered",
            )
        )
        assert (await store.get_notification(made.id)).subject == "Week 18"  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_the_superseded_step_keeps_every_notification_and_its_links(
    target: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 8 rebuilds the SQLite table to widen its CHECK: rows, ids, the resend link and
    the indexes survive; ``superseded`` is accepted and a made-up status is still refused."""
    before = next(v for v, _, step in store_mod.MIGRATIONS if step is store_mod._superseded_v8) - 1
    with monkeypatch.context() as patch:
        patch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:before])
        patch.setattr(store_mod, "SCHEMA_VERSION", before)
        old = await target.open()
        await old.close()
    insert = (
        "INSERT INTO notifications (id, created_at, number, audience, channel, recipient,"
        " condition, condition_kind, send_status, attempts, resend_of) VALUES (:id, :at, 'RR1',"
        " 'customer', 'email', 'a@b.c', 'customer', 'default', :status, 1, :of)"
    )
    await raw(target, insert, id=7, at=NOW, status="failed", of=None)
    await raw(target, insert, id=9, at=NOW, status="pending", of=7)
    first, again = SimpleNamespace(id=7), SimpleNamespace(id=9)
    store = await target.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        rows = {r.id: r for r in await store.history()}
        assert set(rows) == {first.id, again.id}
        assert rows[again.id].resend_of == first.id and rows[first.id].send_status == "failed"
        await store.mark_notification(
            again.id, send_status="superseded", reason="superseded: test", attempts=0,
            sent_at=None, next_attempt_at=None,
        )  # fmt: skip
        assert [r.id for r in await store.history(send_status="superseded")] == [again.id]
        made = await store.add_notification(
            NewNotification(audience="report", channel="email", recipient="t@x.io",
                            condition="weekly-report", period="2026-W49")
        )  # fmt: skip
        assert (await store.get_notification(made.id)).period == "2026-W49"  # type: ignore[union-attr]
    finally:
        await store.close()
    with pytest.raises(Exception, match=r"(?i)check"):
        await raw(
            target, "UPDATE notifications SET send_status = 'lost' WHERE id = :id", id=first.id
        )
    names = await raw(
        target,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'notifications'"
        " AND schemaname = current_schema()"
        if target.url.startswith("postgres")
        else "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'notifications'",
    )
    assert {"ix_notifications_due", "ix_notifications_number"} <= {n for (n,) in names}


async def test_a_newer_schema_is_refused(target: StoreTarget) -> None:
    store = await target.open()
    await store.close()
    await raw(
        target,
        "INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'x', :at)",
        at=NOW,
    )
    with pytest.raises(StoreError, match=r"schema version 99, newer .* upgrade trackops"):
        await target.open()


async def test_two_processes_opening_at_once_both_succeed(target: StoreTarget) -> None:
    stores = await asyncio.gather(target.open(), target.open(), target.open())
    try:
        for store in stores:
            assert await store.schema_version() == SCHEMA_VERSION
    finally:
        for store in stores:
            await store.close()
    rows = await raw(target, "SELECT count(*) FROM schema_version")
    assert rows[0][0] == len(store_mod.MIGRATIONS)


async def test_a_store_opened_for_reading_reads_alike_and_writes_nothing(
    target: StoreTarget,
) -> None:
    """``read_only`` (``trackops list``, ``status``): SQLAlchemy's plain engine, no asyncio
    extension; the same answers, and a write is refused with a clear message."""
    writer = await target.open()
    await _three_shipments(writer)
    await apply(writer, [update("BB22222222", P.DELIVERED)])
    listed = [r.number for r in await writer.list_shipments()]
    counts = await writer.count_by_status()
    await writer.close()
    reader = await Store.open(target.url, connect_args=target.connect_args, read_only=True)
    try:
        assert [r.number for r in await reader.list_shipments()] == listed
        assert [r.number for r in await reader.list_shipments(search="ann@")] == ["AA11111111"]
        assert await reader.count_by_status() == counts
        record = await reader.get_shipment("BB22222222")
        assert record is not None and record.package_status is P.DELIVERED
        assert await reader.ping() and await reader.schema_version() == SCHEMA_VERSION
        with pytest.raises(StoreError, match="opened for reading only"):
            await reader.add_shipments([NewShipment("DD44444444")])
    finally:
        await reader.close()
    rows = await raw(target, "SELECT count(*) FROM shipments")
    assert rows[0][0] == 3


async def test_reading_an_older_store_upgrades_it_first(
    target: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _version_1_store(target, monkeypatch)
    store = await Store.open(target.url, connect_args=target.connect_args, read_only=True)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert await store.list_shipments() == []
    finally:
        await store.close()


async def test_sqlite_settings(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "t.db"
    store = await Store.open(f"sqlite:///{path}")
    try:
        assert path.exists()
        async with store._read() as conn:
            values = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        assert values == ["wal", 1, 1, 30_000]
    finally:
        await store.close()


# --------------------------------------------------------------------------- shipments


async def test_add_shipments_returns_only_new_numbers_and_keeps_existing(store: Store) -> None:
    inserted = await store.add_shipments(
        [
            NewShipment("RR000000001CN", carrier=3011, order_number="A-1", email="a@x.io"),
            NewShipment("RR000000002CN", registered_at=NOW),
            NewShipment("RR000000001CN", order_number="duplicate in input"),
        ]
    )
    assert inserted == ["RR000000001CN", "RR000000002CN"]
    again = await store.add_shipments(
        [NewShipment("RR000000001CN", order_number="B-2"), NewShipment("RR000000003CN")]
    )
    assert again == ["RR000000003CN"]
    kept = await store.get_shipment("RR000000001CN")
    assert kept is not None
    assert (kept.order_number, kept.carrier, kept.email) == ("A-1", 3011, "a@x.io")
    assert (kept.status, kept.active, kept.synced, kept.info) == (P.NOT_FOUND, True, False, None)
    second = await store.get_shipment("RR000000002CN")
    assert second is not None and second.registered_at == NOW == second.updated_at


async def test_get_shipments_many_and_unknown(store: Store) -> None:
    numbers = [f"NB{i:08d}" for i in range(1_200)]
    await store.add_shipments([NewShipment(n) for n in numbers])
    found = await store.get_shipments([*numbers, "UNKNOWN123"])
    assert set(found) == set(numbers)
    assert await store.get_shipment("UNKNOWN123") is None
    assert await store.get_shipments([]) == {}


async def test_get_states_match_the_full_records(store: Store) -> None:
    numbers = [f"NB{i:08d}" for i in range(600)]
    await store.add_shipments(
        [
            NewShipment(n, carrier=3011, tag="t", order_number="o", email="e@x.example")
            for n in numbers
        ]
    )
    states = await store.get_states([*numbers, "UNKNOWN123"])
    records = await store.get_shipments(numbers)
    assert set(states) == set(numbers)
    for number, state in states.items():
        record = records[number]
        assert state.state == record.stored_state()
        assert (state.carrier, state.tag, state.order_number, state.email) == (
            record.carrier, record.tag, record.order_number, record.email,
        )  # fmt: skip


async def _three_shipments(store: Store) -> None:
    await store.add_shipments(
        [
            NewShipment("AA11111111", order_number="ORD-7", email="Ann@Example.com", tag="vip"),
            NewShipment("BB22222222", order_number="ord-8", email="bob@example.com"),
            NewShipment("CC33333333", tag="50%_off"),
        ]
    )
    for number, at in (("AA11111111", 3), ("BB22222222", 1), ("CC33333333", 2)):
        await store.update_shipment(number, updated_at=NOW + timedelta(hours=at))


async def test_list_shipments_order_filters_and_paging(store: Store) -> None:
    await _three_shipments(store)
    await apply(store, [update("BB22222222", P.DELIVERED)])
    await store.update_shipment("CC33333333", active=False, stopped_at=NOW)

    async def numbers(**kwargs: Any) -> list[str]:
        return [r.number for r in await store.list_shipments(**kwargs)]

    assert await numbers() == ["CC33333333", "AA11111111", "BB22222222"]
    assert await numbers(status=P.DELIVERED) == ["BB22222222"]
    assert await numbers(status="delivered") == ["BB22222222"]
    assert await numbers(status=40) == ["BB22222222"]
    assert await numbers(status=P.NOT_FOUND, active=True) == ["AA11111111"]
    assert await numbers(active=False) == ["CC33333333"]
    assert await numbers(search="ord") == ["AA11111111", "BB22222222"]  # order, any case
    assert await numbers(search="ann@") == ["AA11111111"]  # email
    assert await numbers(search="22222") == ["BB22222222"]  # number
    assert await numbers(search="VIP") == ["AA11111111"]  # tag
    assert await numbers(search="50%") == ["CC33333333"]  # % is literal, not a wildcard
    assert await numbers(search="0%") == ["CC33333333"]
    assert await numbers(search="%") == ["CC33333333"]
    assert await numbers(limit=2) == ["CC33333333", "AA11111111"]
    assert await numbers(limit=2, offset=2) == ["BB22222222"]


async def test_the_export_writes_what_is_stored_alike_in_either_database(
    target: StoreTarget,
) -> None:
    """Outside text with commas, quotes and line breaks survives, an unknown status code is
    named, a time without a fraction has none (as ``isoformat``), on SQLite (the driver's own
    rows) and PostgreSQL alike."""
    store = await target.open()
    try:
        await store.add_shipments(
            [
                NewShipment("AA11111111", order_number='A,"1"', email="ann@example.com",
                            tag="two\nlines"),
                NewShipment("BB22222222"),
            ]
        )  # fmt: skip
        left = 'Left, "by door"'
        delivered = update("AA11111111", P.DELIVERED, description=left, location="Nîmes")
        await apply(store, [delivered])
        await store.update_shipment(
            "AA11111111",
            registered_at=datetime(2024, 5, 1, 8, 0, 0, 123456),
            updated_at=datetime(2024, 5, 2, 9, 30, 0),
        )
        await store.update_shipment("BB22222222", active=False, updated_at=NOW)
        await raw(
            target,
            "UPDATE shipments SET package_status = 99, carrier = 0 WHERE number = 'BB22222222'",
        )
        export = CsvExport(lambda code: {100003: "FedEx"}.get(code or 0, ""))
        async with store.read() as conn:  # a batch a row: the keyset walks every row
            async for batch in queries.iter_export_rows(conn, store.dialect_name, batch=1):
                export.add_plain(batch)
            recent = [  # a weekly report's list: the shipments updated since its start
                row[0]
                async for batch in queries.iter_export_rows(
                    conn, store.dialect_name, batch=1, updated_since=datetime(2024, 5, 2)
                )
                for row in batch
            ]
    finally:
        await store.close()
    assert export.content().startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(export.content().decode("utf-8-sig"), newline="")))
    assert rows == [
        list(EXPORT_COLUMNS),
        ["AA11111111", "100003", "FedEx", "delivered", "40", "active", "2024-05-01 10:00:00",
         "Nîmes", 'Left, "by door"', 'A,"1"', "ann@example.com", "two\nlines",
         "2024-05-01T08:00:00.123456", "2024-05-02T09:30:00"],
        ["BB22222222", "", "", "unknown", "99", "stopped", "", "", "", "", "", "",
         rows[2][12], NOW.isoformat()],
    ]  # fmt: skip
    assert export.rows == 2
    assert recent == ["AA11111111"]


async def test_count_by_status(store: Store) -> None:
    await _three_shipments(store)
    await apply(store, [update("BB22222222", P.DELIVERED), update("CC33333333", P.ALERT)])
    counts = await store.count_by_status()
    assert counts == {**dict.fromkeys(P, 0), P.NOT_FOUND: 1, P.DELIVERED: 1, P.ALERT: 1}


async def test_update_and_delete_shipment(store: Store) -> None:
    await store.add_shipments([NewShipment("RR123456789CN")])
    await store.update_shipment(
        "RR123456789CN", carrier=190271, final_carrier=21051, tag="t", active=False, stopped_at=NOW
    )
    record = await store.get_shipment("RR123456789CN")
    assert record is not None
    assert (record.carrier, record.final_carrier, record.tag) == (190271, 21051, "t")
    assert (record.active, record.tracking, record.stopped_at) == (False, "stopped", NOW)
    with pytest.raises(ValueError, match="cannot update shipment column"):
        await store.update_shipment("RR123456789CN", colour="red")
    await store.delete_shipment("RR123456789CN")
    assert await store.get_shipment("RR123456789CN") is None


async def test_shipment_record_json_state_and_lazy_info(store: Store) -> None:
    await store.add_shipments(
        [NewShipment("RR123456789CN", order_number="A-1", email="a@x.io", tag="vip")]
    )
    fresh = await store.get_shipment("RR123456789CN")
    assert fresh is not None
    assert fresh.to_json()["latest_event"] == {"time": None, "location": None, "description": None}
    assert fresh.stored_state() == StoredState(P.NOT_FOUND, None, None, False)
    await apply(store, [update("RR123456789CN", P.PICK_UP, hash=77)])
    record = await store.get_shipment("RR123456789CN")
    assert record is not None
    assert record.to_json(lambda code: f"carrier {code}") == {
        "number": "RR123456789CN",
        "carrier": 100003,
        "carrier_name": "carrier 100003",
        "status": "pick_up",
        "status_code": 30,
        "tracking": "active",
        "latest_event": {
            "time": "2024-05-01 10:00:00",
            "location": "Paris",
            "description": "Departed facility",
        },
        "order": "A-1",
        "email": "a@x.io",
        "tag": "vip",
        "unknown_since": None,
    }
    assert record.to_json()["carrier_name"] == ""
    assert record.stored_state() == StoredState(
        P.PICK_UP,
        datetime(2024, 5, 1, 10),
        77,
        True,
        latest_event=("2024-05-01 10:00:00", "Departed facility"),
        event_count=1,
    )
    assert record.info == info(P.PICK_UP, hash=77)
    assert record.info is record.info  # decoded once
    assert (record.origin_country, record.destination_country) == (301, 2105)


# --------------------------------------------------------------------------- apply_updates


async def test_apply_updates_stores_states_and_pending_notifications(store: Store) -> None:
    await store.add_shipments([NewShipment("KNOWN00001", order_number="ORD-1")])
    created = await apply(
        store,
        [
            update("KNOWN00001", P.IN_TRANSIT, intents=[intent(), intent(channel="slack")]),
            ShipmentUpdate(
                number="PUSHED0001",
                info=info(P.ALERT),
                transition=transition("PUSHED0001", P.NOT_FOUND, P.ALERT, first_sync=True),
                intents=[intent("seller", recipient="seller@shop.io", new=P.ALERT)],
                order="ORD-9",
                email="c@x.io",
                name="Cleo",
                tag="from-push",
                pushed_at=NOW,
            ),
        ],
    )
    assert [(r.number, r.order_number, r.audience, r.channel) for r in created] == [
        ("KNOWN00001", "ORD-1", "customer", "email"),
        ("KNOWN00001", "ORD-1", "customer", "slack"),
        ("PUSHED0001", "ORD-9", "seller", "email"),
    ]
    assert all(r.send_status == "pending" and r.next_attempt_at == NOW for r in created)
    assert all(r.created_at == NOW and r.attempts == 0 for r in created)
    for record in created:
        assert await store.get_notification(record.id) == record
    known = await store.get_shipment("KNOWN00001")
    assert known is not None
    assert (known.status, known.synced, known.updated_at, known.hash) == (
        P.IN_TRANSIT,
        True,
        NOW,
        info().hash,
    )
    assert (known.event_count, known.latest_event_raw) == (1, "2024-05-01 10:00:00")
    assert known.last_push_at is None
    pushed = await store.get_shipment("PUSHED0001")
    assert pushed is not None
    assert (pushed.order_number, pushed.email, pushed.buyer_name, pushed.tag) == (
        "ORD-9",
        "c@x.io",
        "Cleo",
        "from-push",
    )
    assert (pushed.status, pushed.carrier, pushed.active, pushed.last_push_at) == (
        P.ALERT,
        100003,
        True,
        NOW,
    )


async def test_apply_updates_skips_states_that_do_not_apply(store: Store) -> None:
    await store.add_shipments([NewShipment("KNOWN00001")])
    await apply(store, [update("KNOWN00001", P.IN_TRANSIT, hash=1)])
    created = await apply(
        store,
        [
            update("KNOWN00001", P.DELIVERED, hash=1, duplicate=True),
            update("KNOWN00001", P.NOT_FOUND, time="2024-04-01 00:00:00", out_of_order=True),
            update("UNKNOWN001", P.DELIVERED, duplicate=True),
        ],
    )
    assert created == []
    record = await store.get_shipment("KNOWN00001")
    assert record is not None and record.status is P.IN_TRANSIT
    assert await store.get_shipment("UNKNOWN001") is None


async def test_apply_updates_in_order_and_keeps_event_time_without_one(store: Store) -> None:
    await apply(
        store,
        [
            update("TWICE00001", P.IN_TRANSIT, hash=1, time="2024-05-01 09:00:00"),
            update("TWICE00001", P.PICK_UP, hash=2, time="2024-05-01 11:00:00"),
        ],
    )
    record = await store.get_shipment("TWICE00001")
    assert record is not None
    assert (record.status, record.hash) == (P.PICK_UP, 2)
    assert record.latest_event_time == datetime(2024, 5, 1, 11)
    await apply(store, [update("TWICE00001", P.DELIVERED, hash=3, time=None)])
    record = await store.get_shipment("TWICE00001")
    assert record is not None
    assert (record.status, record.latest_event_time) == (P.DELIVERED, datetime(2024, 5, 1, 11))
    assert record.latest_event_raw is None


async def test_apply_updates_is_all_or_nothing(store: Store) -> None:
    await store.add_shipments([NewShipment("KNOWN00001")])
    with pytest.raises(StoreError):
        await apply(
            store,
            [
                update("KNOWN00001", P.DELIVERED, intents=[intent()]),
                update("NEWNUMBER1", P.IN_TRANSIT),
                update("KNOWN00001", P.ALERT, intents=[intent(audience="martians")]),
            ],
        )
    record = await store.get_shipment("KNOWN00001")
    assert record is not None
    assert (record.status, record.synced, record.info) == (P.NOT_FOUND, False, None)
    assert await store.get_shipment("NEWNUMBER1") is None
    assert await store.history() == []
    # the store is still usable after the rollback
    assert len(await apply(store, [update("KNOWN00001", intents=[intent()])])) == 1


async def test_seller_daily_limit(store: Store) -> None:
    seller = {"recipient": "seller@shop.io", "new": P.ALERT}
    # Yesterday's rows do not count against today.
    yesterday = await apply(
        store,
        [update(f"OLD{i:07d}", P.ALERT, intents=[intent("seller", **seller)]) for i in range(3)],
        now=DAY_START - timedelta(hours=1),
        seller_day_start=DAY_START - timedelta(days=1),
        seller_daily_limit=3,
    )
    assert [r.send_status for r in yesterday] == ["pending"] * 3
    today = await apply(
        store,
        [update(f"NEW{i:07d}", P.ALERT, intents=[intent("seller", **seller)]) for i in range(99)],
    )
    assert [r.send_status for r in today] == ["pending"] * 99
    for row in today[:50]:  # sent rows count as much as pending ones
        await store.mark_notification(
            row.id, send_status="sent", reason=None, attempts=1, sent_at=NOW, next_attempt_at=None
        )
    more = await apply(
        store,
        [
            update("LAST000001", P.ALERT, intents=[intent("seller", **seller), intent()]),
            update("LAST000002", P.ALERT, intents=[intent("seller", **seller)]),
        ],
    )
    assert [(r.audience, r.send_status, r.reason) for r in more] == [
        ("seller", "pending", None),  # the 100th
        ("customer", "pending", None),  # customers have no limit
        ("seller", "suppressed", "daily limit"),  # the 101st
    ]
    assert more[2].next_attempt_at is None
    # suppressed rows are recorded, never sent, and do not use up the limit
    assert more[2].id not in {r.id for r in await store.due_notifications(now=NOW, limit=1000)}
    later = await apply(store, [update("LAST000003", intents=[intent("seller", **seller)])])
    assert later[0].send_status == "suppressed"
    tomorrow = await apply(
        store,
        [update("LAST000004", intents=[intent("seller", **seller)])],
        now=DAY_START + timedelta(days=1, hours=1),
        seller_day_start=DAY_START + timedelta(days=1),
    )
    assert tomorrow[0].send_status == "pending"


async def test_seller_daily_limit_within_one_call(store: Store) -> None:
    rows = await apply(
        store,
        [update(f"N{i:09d}", intents=[intent("seller", recipient="s@x.io")]) for i in range(5)],
        seller_daily_limit=2,
    )
    assert [r.send_status for r in rows] == ["pending", "pending"] + ["suppressed"] * 3


async def test_seller_daily_limit_holds_across_processes(target: StoreTarget) -> None:
    """Two stores on one database (as two ``trackops serve`` processes) share the limit."""
    first, second = await target.open(), await target.open()
    try:

        async def batch(store: Store, prefix: str) -> list[str]:
            updates = [
                update(f"{prefix}{i:08d}", intents=[intent("seller", recipient="s@x.io")])
                for i in range(8)
            ]
            return [r.send_status for r in await apply(store, updates, seller_daily_limit=10)]

        results = await asyncio.gather(*(batch(s, p) for s, p in ((first, "AA"), (second, "BB"))))
    finally:
        await first.close()
        await second.close()
    statuses = [status for result in results for status in result]
    assert statuses.count("pending") == 10
    assert statuses.count("suppressed") == 6


# --------------------------------------------------------------------------- notifications


async def _history_rows(store: Store) -> None:
    await store.add_shipments(
        [
            NewShipment("RR000000001CN", order_number="SHOP-1001"),
            NewShipment("RR000000002CN", order_number="SHOP-2002"),
        ]
    )
    await apply(
        store,
        [update("RR000000001CN", intents=[intent(recipient="Ann@Example.com")])],
        now=NOW,
    )
    await apply(
        store,
        [
            update(
                "RR000000002CN",
                P.ALERT,
                intents=[
                    intent("seller", recipient="seller@shop.io", new=P.ALERT),
                    intent(
                        "seller",
                        channel="slack",
                        recipient="slack",
                        condition="late parcels",
                        kind="custom",
                        new=P.ALERT,
                    ),
                ],
            )
        ],
        now=NOW + timedelta(minutes=5),
    )


async def test_history_search_filters_and_order(store: Store) -> None:
    await _history_rows(store)
    rows = await store.history()
    assert [(r.number, r.condition) for r in rows] == [
        ("RR000000002CN", "late parcels"),
        ("RR000000002CN", "seller"),
        ("RR000000001CN", "customer"),
    ]

    async def conditions(**kwargs: Any) -> list[str]:
        return [r.condition for r in await store.history(**kwargs)]

    assert await conditions(search="000001") == ["customer"]  # tracking number
    assert await conditions(search="ann@EXAMPLE") == ["customer"]  # recipient, any case
    assert await conditions(search="shop-2002") == ["late parcels", "seller"]  # order number
    assert await conditions(search="nothing like it") == []
    assert await conditions(condition="default") == ["seller", "customer"]
    assert await conditions(condition="custom") == ["late parcels"]
    assert await conditions(condition="seller") == ["seller"]
    assert await conditions(condition="late parcels", search="shop") == ["late parcels"]
    assert await conditions(send_status="pending", limit=2) == ["late parcels", "seller"]
    first = rows[2]
    await store.mark_notification(
        first.id,
        send_status="failed",
        reason="550 no such user",
        attempts=3,
        sent_at=None,
        next_attempt_at=None,
    )
    assert await conditions(send_status="failed") == ["customer"]
    assert await conditions(send_status="sent") == []
    with pytest.raises(ValueError, match="unknown send status"):
        await store.history(send_status="lost")


async def test_history_row_json(store: Store) -> None:
    await _history_rows(store)
    row = (await store.history(condition="custom"))[0]
    assert row.to_json() == {
        "id": row.id,
        "created_at": "2024-05-01T12:05:00Z",
        "number": "RR000000002CN",
        "order": "SHOP-2002",
        "recipient": "slack",
        "channel": "slack",
        "audience": "seller",
        "condition": "late parcels",
        "condition_kind": "custom",
        "from_status": "not_found",
        "to_status": "alert",
        "send_status": "pending",
        "reason": None,
    }


async def test_due_and_mark_notifications(store: Store) -> None:
    await _history_rows(store)
    due = await store.due_notifications(now=NOW + timedelta(minutes=10))
    assert [r.condition for r in due] == ["customer", "seller", "late parcels"]  # oldest first
    assert [r.condition for r in await store.due_notifications(now=NOW)] == ["customer"]
    assert len(await store.due_notifications(now=NOW + timedelta(minutes=10), limit=1)) == 1
    customer, seller, custom = due
    await store.mark_notification(
        customer.id, send_status="sent", reason=None, attempts=1, sent_at=NOW, next_attempt_at=None
    )
    retry_at = NOW + timedelta(hours=1)
    await store.mark_notification(
        seller.id,
        send_status="pending",
        reason="timeout",
        attempts=1,
        sent_at=None,
        next_attempt_at=retry_at,
    )
    later = NOW + timedelta(minutes=10)
    assert [r.id for r in await store.due_notifications(now=later)] == [custom.id]
    assert [r.id for r in await store.due_notifications(now=retry_at)] == [custom.id, seller.id]
    sent = await store.get_notification(customer.id)
    assert sent is not None
    assert (sent.send_status, sent.attempts, sent.sent_at, sent.reason) == ("sent", 1, NOW, None)
    retried = await store.get_notification(seller.id)
    assert retried is not None
    assert (retried.send_status, retried.reason, retried.next_attempt_at) == (
        "pending",
        "timeout",
        retry_at,
    )
    await store.mark_notification(
        custom.id, send_status="pending", reason="x", attempts=1, sent_at=None, next_attempt_at=None
    )
    assert custom.id in {r.id for r in await store.due_notifications(now=datetime(2100, 1, 1))}
    with pytest.raises(ValueError, match="unknown send status"):
        await store.mark_notification(
            seller.id, send_status="ok", reason=None, attempts=1, sent_at=None, next_attempt_at=None
        )
    assert await store.get_notification(999_999) is None


LEASE = timedelta(minutes=2)


def _pending(recipient: str, due: datetime, **kwargs: Any) -> NewNotification:
    return NewNotification(
        audience="customer",
        channel="email",
        recipient=recipient,
        condition="customer",
        created_at=due,
        **kwargs,
    )


async def test_claim_due_takes_the_longest_due_first_within_the_limit(store: Store) -> None:
    minutes_ago = (1, 30, 10, 10)  # the two at -10 min go by id
    due = [
        await store.add_notification(_pending(f"r{i}@x.io", NOW - timedelta(minutes=m)))
        for i, m in enumerate(minutes_ago)
    ]
    long_ago = NOW - timedelta(days=1)
    for send_status in ("sent", "failed", "suppressed"):  # never claimed, whatever their time
        await store.add_notification(
            _pending(send_status, long_ago, send_status=send_status, next_attempt_at=long_ago)
        )
    later = await store.add_notification(_pending("later@x.io", NOW + timedelta(seconds=1)))

    first = await store.claim_due(now=NOW, limit=2, lease=LEASE)
    assert [r.id for r in first] == [due[1].id, due[2].id]
    second = await store.claim_due(now=NOW.replace(tzinfo=UTC), limit=2, lease=LEASE)
    assert [r.id for r in second] == [due[3].id, due[0].id]
    assert await store.claim_due(now=NOW, limit=2, lease=LEASE) == []
    assert [r.id for r in await store.claim_due(now=later.created_at)] == [later.id]
    assert await store.claim_due(now=NOW + LEASE, limit=0) == []
    with pytest.raises(ValueError, match="lease must be positive"):
        await store.claim_due(now=NOW, lease=timedelta(0))


async def test_claim_due_leases_a_row_until_the_lease_ends(store: Store) -> None:
    await _history_rows(store)  # customer due at NOW, the two seller rows at NOW + 5 min
    (claimed,) = await store.claim_due(now=NOW, lease=LEASE)
    assert claimed.condition == "customer"
    assert claimed.next_attempt_at == NOW + LEASE
    stored = await store.get_notification(claimed.id)
    assert stored == claimed  # as stored: still pending, attempts untouched
    assert (claimed.send_status, claimed.attempts, claimed.reason) == ("pending", 0, None)

    # While the lease lasts, the row is neither due nor claimable (another dispatcher has it).
    just_before = NOW + LEASE - timedelta(seconds=1)
    assert await store.due_notifications(now=just_before) == []
    assert await store.claim_due(now=just_before) == []

    # The dispatcher died without marking it: the row is due again once the lease ends.
    assert [r.id for r in await store.due_notifications(now=NOW + LEASE)] == [claimed.id]
    (again,) = await store.claim_due(now=NOW + LEASE, lease=LEASE)
    assert (again.id, again.next_attempt_at) == (claimed.id, NOW + 2 * LEASE)

    # Marking decides what happens next: a retry time replaces the lease, sent is final.
    retry_at = NOW + timedelta(hours=1)
    await store.mark_notification(
        claimed.id,
        send_status="pending",
        reason="timeout",
        attempts=1,
        sent_at=None,
        next_attempt_at=retry_at,
    )
    # (the seller rows, due since NOW + 5 min, are claimed for longer: out of the way)
    others = await store.claim_due(now=retry_at - timedelta(seconds=1), lease=timedelta(hours=2))
    assert [r.condition for r in others] == ["seller", "late parcels"]
    (retried,) = await store.claim_due(now=retry_at, lease=LEASE)
    assert (retried.id, retried.attempts, retried.reason) == (claimed.id, 1, "timeout")
    await store.mark_notification(
        claimed.id, send_status="sent", reason=None, attempts=2, sent_at=NOW, next_attempt_at=None
    )
    final = await store.claim_due(now=datetime(2100, 1, 1), limit=1000)
    assert [r.condition for r in final] == ["seller", "late parcels"]  # not the sent row


async def test_concurrent_dispatchers_claim_every_row_exactly_once(target: StoreTarget) -> None:
    """Three stores on one database (three ``trackops serve`` processes), two dispatch loops
    each, claim 300 due rows in small batches at once: each row goes to exactly one loop."""
    stores = [await target.open() for _ in range(3)]
    try:
        created = await apply(
            stores[0], [update(f"CL{i:08d}", intents=[intent()]) for i in range(300)]
        )
        expected = sorted(r.id for r in created)

        async def dispatcher(store: Store, limit: int) -> list[int]:
            claimed: list[int] = []
            while batch := await store.claim_due(now=NOW, limit=limit, lease=LEASE):
                assert len(batch) <= limit
                assert all(r.next_attempt_at == NOW + LEASE for r in batch)
                claimed.extend(r.id for r in batch)
            return claimed

        results = await asyncio.gather(
            *(dispatcher(store, limit) for store in stores for limit in (5, 7))
        )
        claimed = [id_ for result in results for id_ in result]
        duplicates = sorted(id_ for id_, n in Counter(claimed).items() if n > 1)
        assert duplicates == []
        assert sorted(claimed) == expected
        assert sum(1 for result in results if result) >= 2  # the loops did run side by side

        # Nothing is left to claim until the lease ends; then every row is due again.
        assert await stores[1].due_notifications(now=NOW, limit=1000) == []
        again = await stores[2].claim_due(now=NOW + LEASE, limit=1000)
        assert sorted(r.id for r in again) == expected
    finally:
        for store in stores:
            await store.close()


async def test_add_notification_for_resends_and_reports(store: Store) -> None:
    await _history_rows(store)
    original = (await store.history(condition="customer"))[0]
    resent = await store.add_notification(
        NewNotification(
            number=original.number,
            order_number=original.order_number,
            audience=original.audience,
            channel=original.channel,
            recipient=original.recipient,
            condition=original.condition,
            condition_kind=original.condition_kind,
            from_status=original.from_status,
            to_status=original.to_status,
            created_at=NOW + timedelta(hours=2),
            resend_of=original.id,
        )
    )
    assert resent.id != original.id
    assert (resent.resend_of, resent.send_status) == (original.id, "pending")
    assert resent.next_attempt_at == resent.created_at == NOW + timedelta(hours=2)
    assert await store.get_notification(resent.id) == resent
    report = await store.add_notification(
        NewNotification(
            audience="report",
            channel="email",
            recipient="team@shop.io",
            condition="weekly report",
            subject="Week 18",
            body="42 delivered",
        )
    )
    assert (report.number, report.from_status, report.to_status) == (None, None, None)
    assert report.to_json()["from_status"] is None
    assert (await store.history(limit=1))[0].id in {report.id, resent.id}


# --------------------------------------------------------------------------- inbox


async def test_inbox(store: Store) -> None:
    assert await store.inbox_stats() == InboxStats(backlog=0, last_received_at=None)
    assert await store.inbox_add_many([]) == []
    t = [NOW + timedelta(seconds=s) for s in range(4)]
    ids = await store.inbox_add_many([(b'{"event":"a"}', t[0]), (b"\x00\xffraw", t[1])])
    ids += await store.inbox_add_many([(b"third", t[2])])
    assert ids == sorted(ids) and len(set(ids)) == 3
    pending = await store.inbox_pending()
    assert [(r.id, r.body, r.received_at) for r in pending] == [
        (ids[0], b'{"event":"a"}', t[0]),
        (ids[1], b"\x00\xffraw", t[1]),
        (ids[2], b"third", t[2]),
    ]
    assert all(r.processed_at is None and r.error is None for r in pending)
    assert [r.id for r in await store.inbox_pending(limit=1)] == [ids[0]]
    await store.inbox_done(ids[0], processed_at=t[3], error=None)
    await store.inbox_done(ids[1], processed_at=t[3], error="not JSON")
    assert [r.id for r in await store.inbox_pending()] == [ids[2]]
    assert await store.inbox_stats() == InboxStats(
        backlog=1, last_received_at=t[2], oldest_unprocessed_at=t[2]
    )
    assert await store.inbox_prune(before=t[2]) == 2
    assert [r.id for r in await store.inbox_pending()] == [ids[2]]
    more = await store.inbox_add_many([(b"fourth", t[3])])
    assert more[0] > ids[2]


async def test_inbox_writers_at_once_get_distinct_ids(store: Store) -> None:
    batches = [[(f"{w}-{i}".encode(), NOW) for i in range(20)] for w in range(5)]
    results = await asyncio.gather(*(store.inbox_add_many(b) for b in batches))
    all_ids = [i for ids in results for i in ids]
    assert len(set(all_ids)) == 100
    bodies = {r.id: r.body for r in await store.inbox_pending(limit=200)}
    for batch, ids in zip(batches, results, strict=True):
        assert [bodies[i] for i in ids] == [body for body, _ in batch]


async def test_a_common_text_pages_without_listing_its_matches_first(target: StoreTarget) -> None:
    """A text in most rows: the page is the first matches in the sort's order. On PostgreSQL
    the planner's estimate says it is common, so its matches are not listed first (the probe,
    which would read a thousand of them); a rare text is still probed and listed."""
    store = await target.open()
    try:
        await store.add_shipments(
            [
                NewShipment(
                    f"RS{i:09d}CN",
                    email=f"buyer{i}@shop.example" if i % 10 else f"buyer{i}@other.example",
                    order_number=f"SO-{i}",
                    registered_at=NOW - timedelta(minutes=i),
                )
                for i in range(6000)
            ]
        )
        if target.backend == "postgresql":
            await raw(target, "ANALYZE shipments")
        engine = getattr(store, "_engine", None)
        statements: list[str] = []
        if engine is not None:
            sa.event.listen(
                engine.sync_engine,
                "before_cursor_execute",
                lambda _c, _k, sql, *_a: statements.append(sql),
            )
        flt = queries.ShipmentFilter(search="shop.EXAMPLE", sort="number")
        async with store.read() as conn:
            page, next_cursor, _ = await queries.shipment_page(
                conn, store.query_dialect, flt, limit=25
            )
            expected = [f"RS{i:09d}CN" for i in range(6000) if i % 10][:25]
            assert [r.number for r in page] == expected and next_cursor is not None
            probes = [s for s in statements if "LIKE" in s.upper() and "ORDER BY" not in s]
            planned = [s for s in statements if s.startswith("EXPLAIN")]
            if target.backend == "postgresql":
                assert planned and not [s for s in probes if not s.startswith("EXPLAIN")]
            rare = queries.ShipmentFilter(search="S00000599", sort="number")
            page, _, _ = await queries.shipment_page(conn, store.query_dialect, rare, limit=25)
            assert [r.number for r in page] == [f"RS00000599{d}CN" for d in range(10)]
    finally:
        await store.close()
