"""The service: keyset pages, filters, search, detail, audit, the change feed across stores,
and the listener hook (``trackops_setup_server``)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from factories import BASE, days, make_info, push_body, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.hookspecs import hookimpl
from trackops.core.plugins import PluginHost
from trackops.core.runtime import open_service, running
from trackops.core.service import (
    HistoryQuery,
    InvalidInputError,
    NotFoundError,
    PruneOutcome,
    Service,
    ShipmentQuery,
    StoreError,
)
from trackops.core.store import NewShipment
from trackops.core.wire import PackageStatus

STATUSES = [0, 10, 20, 30, 35, 40, 50]


async def _fill(service: Service, count: int) -> list[str]:
    """``count`` shipments, each in a status by turn, updated at distinct times."""
    numbers = [f"RR{i:09d}CN" for i in range(count)]
    await service.engine.store.add_shipments(
        [
            NewShipment(
                number=n,
                order_number=f"{1000 + i}",
                email=f"buyer{i}@example.com",
                tag="vip" if i % 10 == 0 else None,
                registered_at=BASE - days(10),
            )
            for i, n in enumerate(numbers)
        ]
    )
    for i, number in enumerate(numbers):
        status = STATUSES[i % 7]
        if status:
            info = make_info(status, BASE - timedelta(hours=count - i), description=f"ev {i}")
            await service.engine.apply_track_info(number, info)
    return numbers


@pytest.fixture
async def service(tmp_path: Path):
    clock = [BASE]
    async with open_service(
        settings_for(tmp_path), channels=[RecordingChannel("memory")], load_plugins=False,
        clock=lambda: clock[0],
    ) as svc:  # fmt: skip
        yield svc


async def test_pages_walk_forward_and_back_over_every_row_once(service: Service) -> None:
    numbers = await _fill(service, 53)
    seen: list[str] = []
    page = await service.shipments(limit=10)
    pages = [page]
    while page.next_cursor:
        page = await service.shipments(limit=10, after=page.next_cursor)
        pages.append(page)
    seen = [r.number for p in pages for r in p.items]
    assert sorted(seen) == sorted(numbers) and len(seen) == 53
    # back from the last page reaches the same rows in the same order
    back = await service.shipments(limit=10, from_end=True)
    assert [r.number for r in back.items] == seen[-10:]
    assert back.next_cursor is None and back.prev_cursor is not None
    before = await service.shipments(limit=10, before=back.prev_cursor)
    assert [r.number for r in before.items] == seen[-20:-10]


@pytest.mark.parametrize("sort", ["updated", "status", "number"])
async def test_each_sort_is_total_and_stable(service: Service, sort: str) -> None:
    await _fill(service, 30)
    query = ShipmentQuery(sort=sort)  # type: ignore[arg-type]
    first = await service.shipments(query, limit=7)
    second = await service.shipments(query, limit=7, after=first.next_cursor)
    everything = await service.shipments(query, limit=100)
    assert [r.number for r in first.items + second.items] == [
        r.number for r in everything.items[:14]
    ]
    if sort == "number":
        assert [r.number for r in everything.items] == sorted(r.number for r in everything.items)
    if sort == "status":
        codes = [r.status_code for r in everything.items]
        assert codes == sorted(codes)


async def test_a_cursor_from_another_sort_is_refused(service: Service) -> None:
    await _fill(service, 12)
    page = await service.shipments(limit=5)
    with pytest.raises(InvalidInputError, match="not a page cursor"):
        await service.shipments(ShipmentQuery(sort="number"), after=page.next_cursor)


async def test_filters_search_and_counts(service: Service) -> None:
    await _fill(service, 70)
    delivered = await service.shipments(ShipmentQuery(statuses=frozenset({40})), limit=100)
    assert len(delivered.items) == 10
    assert {r.status for r in delivered.items} == {PackageStatus.DELIVERED}
    counts = await service.status_counts()
    assert set(counts.values()) == {10} and len(counts) == 7
    # an exact order number answers that row only; a fragment finds what contains it
    exact = await service.shipments(ShipmentQuery(search="1012"), limit=50)
    assert [r.order for r in exact.items] == ["1012"]
    fragment = await service.shipments(ShipmentQuery(search="buyer6"), limit=50)
    assert {r.email for r in fragment.items} == {"buyer6@example.com"} | {
        f"buyer{i}@example.com" for i in range(60, 70)
    }
    assert await service.count_shipments(ShipmentQuery(search="vip")) == 7
    by_email = await service.shipments(ShipmentQuery(search="BUYER3@example.com"), limit=5)
    assert [r.number for r in by_email.items] == ["RR000000003CN"]


async def test_detail_has_the_timeline_and_notifications(service: Service) -> None:
    await service.engine.store.add_shipments(
        [NewShipment(number="RR123456785CN", email="b@example.com", order_number="77")]
    )
    await service.engine.apply_track_info(
        "RR123456785CN", make_info(10, BASE - timedelta(hours=2), description="Accepted")
    )
    detail = await service.shipment("RR123456785CN")
    assert detail.shipment.status is PackageStatus.IN_TRANSIT
    assert [e.description for e in detail.events] == ["Accepted"]
    assert detail.events[0].carrier_name == "China Post" and detail.events[0].leg == 1
    assert detail.shipment.route == "CN -> US"
    assert [n.to_status for n in detail.notifications] == [PackageStatus.IN_TRANSIT]
    assert (await service.find_shipment("77")).shipment.number == "RR123456785CN"
    with pytest.raises(NotFoundError):
        await service.shipment("RR999999999CN")


async def test_history_pages_and_filters(service: Service) -> None:
    await _fill(service, 21)
    page = await service.history(limit=5)
    rest = await service.history(limit=100, after=page.next_cursor)
    everything = await service.history(limit=100)
    assert [r.id for r in page.items + rest.items] == [r.id for r in everything.items]
    mine = await service.history(HistoryQuery(search="buyer8@example.com"))
    assert {r.recipient for r in mine.items} == {"buyer8@example.com"}
    # nothing equals these: a fragment of an email, and the start of a recipient
    fragment = await service.history(HistoryQuery(search="uyer1"), limit=100)
    assert [r.id for r in fragment.items] == [
        r.id for r in everything.items if "uyer1" in r.recipient
    ]
    assert len(fragment.items) > 3
    seller = await service.history(HistoryQuery(search="ops@shop"))
    assert seller.items and {r.recipient for r in seller.items} == {"ops@shop.example"}
    with pytest.raises(InvalidInputError, match="unknown send status"):
        await service.history(HistoryQuery(send_statuses=frozenset({"lost"})))


async def test_commands_are_audited_with_their_actor(service: Service) -> None:
    await service.record("slack:U123", "stop", "RR1", "denied", "not an admin")
    with pytest.raises(InvalidInputError):
        await service.stop([], actor="tui")
    page = await service.audit(actor="slack:U123")
    (row,) = page.items
    assert (row.action, row.target, row.outcome) == ("stop", "RR1", "denied")


async def test_the_change_feed_sees_another_store_on_the_same_file(tmp_path: Path) -> None:
    """Two services on one SQLite file stand for two processes: what one applies, the other's
    feed reports within a second."""
    settings = settings_for(tmp_path)
    async with (
        open_service(
            settings, load_plugins=False, channels=[RecordingChannel("memory")], clock=lambda: BASE
        ) as a,
        open_service(settings, load_plugins=False, channels=[RecordingChannel("memory")]) as b,
    ):
        feed = b.changes(since=await b.change_seq())
        await a.engine.store.add_shipments(
            [NewShipment(number="RR000000001CN", email="b@example.com")]
        )
        change = await asyncio.wait_for(anext(feed), 1.0)
        assert (change.kind, change.number, change.status) == (
            "shipment", "RR000000001CN", PackageStatus.NOT_FOUND,
        )  # fmt: skip
        await a.engine.apply_track_info("RR000000001CN", make_info(10, BASE))
        kinds = set()
        while "notification" not in kinds:
            kinds.add((await asyncio.wait_for(anext(feed), 1.0)).kind)
        await a.engine.store.delete_shipment("RR000000001CN")
        while True:
            change = await asyncio.wait_for(anext(feed), 1.0)
            if change.kind == "shipment" and change.status is None:
                break
        await feed.aclose()


async def test_statistics(service: Service) -> None:
    await _fill(service, 14)
    stats = await service.statistics(days=30, stuck_days=1)
    assert sum(n for _, n in stats.deliveries_per_day) == 2
    assert stats.by_carrier[0].key == "China Post" and stats.by_carrier[0].delivered == 2
    assert stats.by_route[0].key == "CN -> US"
    assert all(r.status is not PackageStatus.DELIVERED for r in stats.stuck)
    # What a person or a plugin typed: one clear message, never a date overflow.
    for kwargs, why in (
        ({"days": 0}, "days is from 1 to 36500, not 0"),
        ({"stuck_days": -3}, "stuck_days is from 1 to 36500, not -3"),
        ({"stuck_days": 10**11}, "stuck_days is from 1 to 36500, not 100000000000"),
    ):
        with pytest.raises(InvalidInputError, match=why):
            await service.statistics(**kwargs)


class _PingPlugin:
    @hookimpl
    def trackops_setup_server(self, app: web.Application, service: Service, settings) -> None:
        async def ping(request: web.Request) -> web.Response:
            return web.json_response({"shipments": await service.count_shipments()})

        app.router.add_get("/plugin/ping", ping)


class _BrokenPlugin:
    @hookimpl
    def trackops_setup_server(self, app: web.Application) -> None:
        raise RuntimeError("boom")


async def test_plugins_extend_the_listener_and_a_broken_one_is_isolated(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    host = PluginHost(
        settings,
        load_entrypoints=False,
        extra_plugins=[("ping", _PingPlugin()), ("broken", _BrokenPlugin())],
    )
    async with (
        open_service(settings, plugins=host, channels=[RecordingChannel("memory")]) as svc,
        running(svc, port=0, host="127.0.0.1") as run,
        ClientSession() as http,
    ):
        async with http.get(f"{run.url}/plugin/ping") as resp:
            assert resp.status == 200 and await resp.json() == {"shipments": 0}
        async with http.get(f"{run.url}/healthz") as resp:
            assert resp.status == 200
    (broken,) = [p for p in host.describe() if p.name == "broken"]
    assert broken.errors == ["trackops_setup_server: RuntimeError: boom"]


async def test_several_statuses_page_in_update_order_without_gaps(service: Service) -> None:
    await _fill(service, 70)
    query = ShipmentQuery(statuses=frozenset({10, 35, 50}))
    walked = []
    page = await service.shipments(query, limit=7)
    walked += page.items
    while page.next_cursor:
        page = await service.shipments(query, limit=7, after=page.next_cursor)
        walked += page.items
    assert len(walked) == 30 and {r.status_code for r in walked} == {10, 35, 50}
    keys = [(r.updated_at, r.number) for r in walked]
    assert keys == sorted(keys, reverse=True)


async def test_the_search_index_follows_edits_and_short_texts_still_match(
    service: Service,
) -> None:
    await _fill(service, 14)
    assert service.engine.store.query_dialect in ("sqlite+fts", "sqlite")
    await service.engine.store.update_shipment("RR000000003CN", email="Zoë.Martin@shop.example")
    found = await service.shipments(ShipmentQuery(search="zoë.mar"), limit=5)
    assert [r.number for r in found.items] == ["RR000000003CN"]
    assert (await service.shipments(ShipmentQuery(search="buyer3@"), limit=5)).items == []
    short = await service.shipments(ShipmentQuery(search="13"), limit=50)
    assert {r.number for r in short.items} >= {"RR000000013CN"}
    await service.engine.store.delete_shipment("RR000000003CN")
    assert (await service.shipments(ShipmentQuery(search="zoë.mar"), limit=5)).items == []


async def test_pruning_keeps_recent_and_unapplied_pushes(tmp_path: Path) -> None:
    clock = [BASE]
    async with open_service(
        settings_for(tmp_path), load_plugins=False, channels=[RecordingChannel("memory")],
        clock=lambda: clock[0],
    ) as svc:  # fmt: skip
        store = svc.engine.store
        old, recent, waiting = await store.inbox_add_many(
            [(b"{}", BASE - days(9)), (b"{}", BASE - days(2)), (b"{}", BASE - days(9))]
        )
        await store.inbox_done_many([old, recent], processed_at=BASE)
        await store.add_shipments([NewShipment(number="RR000000001CN")])
        await store.delete_shipment("RR000000001CN")
        assert await svc.prune_inbox(7) == PruneOutcome(1, 0)  # the 9-day-old applied push
        clock[0] = BASE + days(60)  # everything applied is old by then
        assert await svc.prune_inbox(7) == PruneOutcome(1, 1)
        # the push not applied yet stays, however old
        assert [row.id for row in await store.inbox_pending(10)] == [waiting]


# --------------------------------------------------------------------------- the listener's work


async def test_pushes_stored_through_the_service_wait_until_processed(service: Service) -> None:
    numbers = [f"RR00000000{i}CN" for i in (1, 2, 3)]
    bodies = [push_body(n, make_info(10, BASE - timedelta(hours=1))) for n in numbers]
    ids = await service.store_pushes([(b, BASE - timedelta(seconds=5)) for b in bodies])
    assert len(ids) == 3 and ids == sorted(ids)
    waiting = await service.inbox_status()
    assert (waiting.backlog, waiting.failed) == (3, 0)
    assert waiting.oldest_unprocessed_at == BASE - timedelta(seconds=5)
    assert await service.count_shipments() == 0  # stored is not applied
    assert await service.process_inbox(limit=2) == 2
    assert await service.process_inbox(limit=2) == 1
    assert await service.process_inbox() == 0
    assert (await service.inbox_status()).backlog == 0
    for number in numbers:
        assert (await service.shipment(number)).shipment.status is PackageStatus.IN_TRANSIT


async def test_a_store_that_cannot_be_used_is_a_transient_store_error_a_bug_stays_a_bug(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def locked(limit: int = 500) -> int:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(service.engine, "process_inbox", locked)
    with pytest.raises(StoreError, match="database is locked") as caught:
        await service.process_inbox()
    assert caught.value.transient

    async def broken(limit: int = 500) -> int:
        raise KeyError("a bug of ours")

    monkeypatch.setattr(service.engine, "process_inbox", broken)
    with pytest.raises(KeyError):
        await service.process_inbox()


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.process_inbox(limit=0),
        lambda s: s.prune_inbox(-1),
        lambda s: s.resync_quiet(0),
        lambda s: s.resync_quiet(24, limit=0),
    ],
    ids=["inbox batch", "retention", "quiet hours", "resync limit"],
)
async def test_the_listener_s_bounds_are_checked(service: Service, call) -> None:
    with pytest.raises(InvalidInputError):
        await call(service)


async def test_a_read_only_service_answers_as_the_writer_does_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """``open_service(read_only=True)`` (``list``, ``status``, ``history``) reads the SQLite
    file through the blocking engine: same pages, search, counts and detail; no write."""
    settings = settings_for(tmp_path)
    async with open_service(
        settings, channels=[RecordingChannel("memory")], load_plugins=False, clock=lambda: BASE
    ) as writer:
        await _fill(writer, 35)
        queries = [ShipmentQuery(), ShipmentQuery(statuses=frozenset({40, 50})),
                   ShipmentQuery(search="buyer3"), ShipmentQuery(search="1012")]  # fmt: skip
        expected = [await writer.shipments(q, limit=10) for q in queries]
        expected_counts = await writer.status_counts()
        expected_detail = await writer.shipment("RR000000005CN")
        expected_history = await writer.history(HistoryQuery(), limit=50)
        seq = await writer.change_seq()
    async with open_service(settings, load_plugins=False, read_only=True) as reader:
        assert [await reader.shipments(q, limit=10) for q in queries] == expected
        second = await reader.shipments(queries[0], limit=10, after=expected[0].next_cursor)
        assert second.items and second.items[0].number not in {r.number for r in expected[0].items}
        assert await reader.status_counts() == expected_counts
        assert await reader.shipment("RR000000005CN") == expected_detail
        assert await reader.history(HistoryQuery(), limit=50) == expected_history
        with pytest.raises(StoreError, match="opened for reading only"):
            await reader.engine.store.add_shipments([NewShipment(number="RR999999999CN")])
    async with open_service(settings, load_plugins=False) as again:
        assert await again.change_seq() == seq
        with pytest.raises(NotFoundError):
            await again.shipment("RR999999999CN")


async def test_a_read_only_service_over_a_new_file_creates_the_store(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with open_service(settings, load_plugins=False, read_only=True) as reader:
        assert set((await reader.status_counts()).values()) == {0}
    async with open_service(settings, load_plugins=False, read_only=True) as reader:
        assert (await reader.shipments(ShipmentQuery(), limit=5)).items == []


async def test_an_audit_row_waiting_for_a_busy_store_is_written_before_the_service_closes(
    tmp_path: Path,
) -> None:
    """``record_within`` (the Slack bot's 3-second deadline) returns while another process
    holds SQLite's write lock; closing the service waits for that row instead of losing it."""
    settings = settings_for(tmp_path)
    opened = open_service(settings, channels=[RecordingChannel("memory")], load_plugins=False)
    service = await opened.__aenter__()
    closing: asyncio.Task[bool | None] | None = None
    other = sqlite3.connect(tmp_path / "trackops.db", isolation_level=None, timeout=30)
    try:
        await service.record("cli:test", "warm-up", "", "ok")
        other.execute("BEGIN IMMEDIATE")  # another process writing
        await asyncio.wait_for(
            service.record_within(0.05, "slack:U1", "help", "", "ok"), timeout=10
        )
        closing = asyncio.ensure_future(opened.__aexit__(None, None, None))
        done, _ = await asyncio.wait({closing}, timeout=0.5)
        assert not done, "the service closed with an audit row still unwritten"
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        if closing is None:
            await opened.__aexit__(None, None, None)
        else:
            await asyncio.wait_for(closing, timeout=30)
    rows = other.execute("SELECT actor, action, outcome FROM audit ORDER BY id").fetchall()
    other.close()
    assert ("slack:U1", "help", "ok") in rows
