"""Nothing poisons the pipeline: odd values, failing rows, stalls, and what /healthz says.

Every test runs on a real SQLite file and, with ``TRACKOPS_TEST_POSTGRES_URL`` set, on a fresh
PostgreSQL schema, behind a real listener on loopback. Each value that does not fit a column
has a deliberate outcome (see "values that fit" in core/store.py):

==================================  =============================================================
value                               outcome (both stores)
==================================  =============================================================
``w1``/``b``/``c`` >= 2^31, 2^63    column NULL, raw value kept in the stored tracking JSON
``hs`` >= 2^63                      ``hash`` NULL (a repeat re-applies, never re-notifies); raw kept
``\\u0000`` in event text, tag       U+FFFD in the columns, exact in the tracking JSON
event time overflowing UTC          parsed time None (raw string kept); applied
tracking number with ``\\u0000``     quarantined at once: no shipment can be keyed on it
==================================  =============================================================
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from factories import BASE, KEY, StoreTarget, days, make_info, push_body, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.config import Settings
from trackops.core.engine import Engine
from trackops.core.plugins import PluginHost
from trackops.core.service import Service
from trackops.core.store import NewShipment, Store
from trackops.core.text import has_unsafe
from trackops.core.webhook import create_app, runner_options
from trackops.core.wire import PackageStatus, push_signature


class Clock:
    """The engine's clock, moved by the test (no sleeping)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclasses.dataclass
class Listener:
    url: str
    base: str
    engine: Engine
    channel: RecordingChannel
    session: aiohttp.ClientSession
    clock: Clock

    async def post(self, body: bytes, **kwargs: Any) -> int:
        async with self.session.post(self.url, data=body, **kwargs) as response:
            await response.read()
            return response.status

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.base + "/healthz") as response:
            return response.status, json.loads(await response.read())

    async def settle(self) -> None:
        while await self.engine.process_inbox():
            pass
        await self.engine.dispatch_pending()


@asynccontextmanager
async def listening(
    target: StoreTarget,
    tmp_path: Path,
    *,
    plugins: PluginHost | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
    **webhook: Any,
) -> AsyncIterator[Listener]:
    settings = settings or settings_for(tmp_path, store_url=target.url)
    settings = dataclasses.replace(
        settings, webhook=dataclasses.replace(settings.webhook, **webhook)
    )
    own = store is None
    store = store or await target.open()
    clock = Clock(BASE + days(1))
    channel = RecordingChannel("memory")
    try:
        async with Engine(
            settings,
            store=store,
            channels=[channel],
            plugins=plugins,
            load_plugins=False,
            clock=clock,
        ) as engine:
            app = create_app(settings, Service(engine), background=False)
            runner = web.AppRunner(app, **runner_options(settings))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            base = f"http://127.0.0.1:{port}"
            try:
                async with aiohttp.ClientSession() as session:
                    yield Listener(
                        base + settings.webhook.path, base, engine, channel, session, clock
                    )
            finally:
                await runner.cleanup()
    finally:
        if own:
            await store.close()


def signed(number: str, track: dict[str, Any], *, tag: str = "") -> bytes:
    """A signed TRACKING_UPDATED push whose ``track`` is given as plain JSON."""
    data = json.dumps({"number": number, "track": track, "tag": tag}).encode()
    sign = push_signature("TRACKING_UPDATED", data, KEY)
    return b'{"sign":"%s","event":"TRACKING_UPDATED","data":%s}' % (sign.encode(), data)


def track(status: int = 10, **changes: Any) -> dict[str, Any]:
    """Realistic tracking JSON (``make_info``), with some fields replaced."""
    value: dict[str, Any] = json.loads(msgspec.json.encode(make_info(status)))
    for key, item in changes.items():
        if key == "z0":
            value["z0"] = {**value["z0"], **item}
            value["z1"] = [value["z0"]]
        else:
            value[key] = item
    return value


CLEAN = "RR123456789CN"


# --------------------------------------------------------------------------- values that fit


@pytest.mark.parametrize(
    ("field", "value", "column"),
    [
        ("w1", 2**63, "carrier"),
        ("w1", 2**31, "carrier"),
        ("w1", 10**30, "carrier"),
        ("b", 2**63, "origin_country"),
        ("b", 2**31, "origin_country"),
        ("c", 2**63, "destination_country"),
        ("c", 2**31, "destination_country"),
        ("hs", 2**63, "hash"),
        ("hs", -(2**63) - 1, "hash"),
    ],
)
async def test_a_number_too_large_for_its_column_is_kept_raw_and_blocks_nothing(
    target: StoreTarget, tmp_path: Path, field: str, value: int, column: str
) -> None:
    async with listening(target, tmp_path) as lst:
        assert await lst.post(signed("RR000000001CN", track(**{field: value}))) == 200
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200
        await lst.settle()
        odd = await lst.engine.store.get_shipment("RR000000001CN")
        assert odd is not None and odd.status is PackageStatus.IN_TRANSIT
        assert getattr(odd, column) is None
        assert json.loads(odd.info_json or "{}")[field] == value  # the raw value, exactly
        clean = await lst.engine.store.get_shipment(CLEAN)
        assert clean is not None and clean.status is PackageStatus.IN_TRANSIT
        stats = await lst.engine.store.inbox_stats()
        assert (stats.backlog, stats.failed) == (0, 0)


async def test_a_repeat_of_a_push_whose_hash_does_not_fit_notifies_once(
    target: StoreTarget, tmp_path: Path
) -> None:
    async with listening(target, tmp_path) as lst:
        body = signed("RR000000001CN", track(hs=2**64 + 5))
        for _ in range(3):
            assert await lst.post(body) == 200
            await lst.settle()
        sent = [m for m in lst.channel.sent if m.number == "RR000000001CN"]
        assert len(sent) <= 1  # first sync In transit: at most the one seller/customer row
        assert (await lst.engine.store.inbox_stats()).failed == 0


async def test_nul_in_pushed_text_is_replaced_in_columns_and_exact_in_json(
    target: StoreTarget, tmp_path: Path
) -> None:
    async with listening(target, tmp_path) as lst:
        z0 = {"z": "Sorted\u0000 at hub", "c": "Shen\u0000zhen"}
        assert await lst.post(signed("RR000000001CN", track(**{"z0": z0}), tag="t\u0000")) == 200
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200
        await lst.settle()
        odd = await lst.engine.store.get_shipment("RR000000001CN")
        assert odd is not None
        assert odd.latest_event_description == "Sorted\ufffd at hub"
        assert odd.latest_event_location == "Shen\ufffdzhen"
        assert odd.tag == "t\ufffd"
        assert odd.info is not None and odd.info.latest_event is not None
        assert odd.info.latest_event.description == "Sorted\u0000 at hub"
        assert await lst.engine.store.get_shipment(CLEAN) is not None
        assert (await lst.engine.store.inbox_stats()).failed == 0


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_an_event_time_outside_the_calendar_is_kept_raw(
    target: StoreTarget, tmp_path: Path, raw: str
) -> None:
    async with listening(target, tmp_path) as lst:
        body = signed("RR000000001CN", track(z0={"a": raw}, ylt1=raw))
        assert await lst.post(body) == 200
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200
        await lst.settle()
        odd = await lst.engine.store.get_shipment("RR000000001CN")
        assert odd is not None and odd.status is PackageStatus.IN_TRANSIT
        assert odd.latest_event_raw == raw and odd.latest_event_time is None
        assert await lst.engine.store.get_shipment(CLEAN) is not None


async def test_a_tracking_number_with_nul_is_quarantined_at_once(
    target: StoreTarget, tmp_path: Path
) -> None:
    async with listening(target, tmp_path) as lst:
        assert await lst.post(signed("RR0000\u000001CN", track())) == 200
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200
        await lst.settle()
        (failed,) = await lst.engine.store.inbox_failed()
        assert failed.attempts == 1 and "control characters" in (failed.error or "")
        assert await lst.engine.store.get_shipment(CLEAN) is not None


async def test_a_status_code_no_column_can_hold_is_quarantined_at_once(
    target: StoreTarget, tmp_path: Path
) -> None:
    async with listening(target, tmp_path) as lst:
        assert await lst.post(signed("RR000000001CN", track(e=2**63))) == 200
        assert await lst.post(signed("RR000000002CN", track(e=60))) == 200  # unknown, kept
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200
        await lst.settle()
        (failed,) = await lst.engine.store.inbox_failed()
        assert "status code 9223372036854775808 is out of range" in (failed.error or "")
        kept = await lst.engine.store.get_shipment("RR000000002CN")
        assert kept is not None and int(kept.status) == 60
        assert await lst.engine.store.get_shipment(CLEAN) is not None


# --------------------------------------------------------------------------- failing rows


async def poison(store: Store, number: str) -> None:
    """A real database fault for one shipment only: a trigger that refuses its row (as a
    constraint the data breaks would), on either backend."""
    async with store._write() as conn:
        if store._dialect.is_sqlite:
            for when in ("INSERT", "UPDATE"):
                await conn.exec_driver_sql(
                    f"CREATE TRIGGER poison_{when.lower()} BEFORE {when} ON shipments "
                    f"WHEN NEW.number = '{number}' "
                    "BEGIN SELECT RAISE(ABORT, 'poisoned row: refused by a trigger'); END"
                )
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.number = '{number}' THEN RAISE EXCEPTION "
                "USING ERRCODE = 'check_violation', "
                "MESSAGE = 'poisoned row: refused by a trigger'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON shipments "
                "FOR EACH ROW EXECUTE FUNCTION poison()"
            )


async def cure(store: Store) -> None:
    async with store._write() as conn:
        if store._dialect.is_sqlite:
            await conn.exec_driver_sql("DROP TRIGGER poison_insert")
            await conn.exec_driver_sql("DROP TRIGGER poison_update")
        else:
            await conn.exec_driver_sql("DROP TRIGGER poison ON shipments")


async def test_one_failing_row_is_retried_with_backoff_then_quarantined_and_replayable(
    target: StoreTarget, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with listening(target, tmp_path) as lst:
        engine = lst.engine
        await poison(engine.store, "RR000000002CN")
        numbers = ["RR000000001CN", "RR000000002CN", "RR000000003CN"]
        for number in numbers:
            assert await lst.post(push_body(number, make_info(10))) == 200
        caplog.set_level(logging.WARNING, logger="trackops.engine")
        await lst.settle()
        # The rows around the bad one are applied at once.
        for number in (numbers[0], numbers[2]):
            assert await engine.store.get_shipment(number) is not None
        assert await engine.store.get_shipment(numbers[1]) is None
        (row,) = await engine.store.inbox_pending()
        assert row.attempts == 1 and "poisoned row" in (row.error or "")
        assert "poisoned row" in caplog.text
        # Not due before its backoff; later pushes keep flowing meanwhile.
        assert await engine.process_inbox() == 0
        assert await lst.post(push_body("RR000000004CN", make_info(10))) == 200
        await lst.settle()
        assert await engine.store.get_shipment("RR000000004CN") is not None
        for delay in engine.inbox_retry_delays:
            lst.clock.advance(delay)
            assert await engine.process_inbox() == 1
        (failed,) = await engine.store.inbox_failed()
        assert failed.id == row.id and failed.failed
        assert failed.attempts == len(engine.inbox_retry_delays) + 1
        assert "quarantined" in caplog.text
        stats = await engine.store.inbox_stats()
        assert (stats.backlog, stats.failed) == (0, 1)
        status, body = await lst.health()
        assert status == 503 and "1 pushes quarantined" in " ".join(body["problems"])
        # Once the cause is fixed, the row is replayed and applied.
        await cure(engine.store)
        assert await engine.replay_inbox([row.id, 99999]) == [row.id]
        assert await engine.store.get_shipment(numbers[1]) is not None
        assert await engine.store.inbox_failed() == []
        assert (await lst.health())[0] == 200


async def test_a_store_fault_charges_no_row(target: StoreTarget, tmp_path: Path) -> None:
    if target.backend != "sqlite":
        pytest.skip("the fault is a second SQLite connection holding the write lock")
    import sqlite3

    store = await target.open(busy_timeout=0.5)
    async with listening(target, tmp_path, store=store) as lst:
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200
        db = sqlite3.connect(tmp_path / "trackops.db", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(Exception, match="locked"):
                await asyncio.wait_for(lst.engine.process_inbox(), 60)
        finally:
            db.execute("ROLLBACK")
            db.close()
        (row,) = await lst.engine.store.inbox_pending()
        assert row.attempts == 0  # the store was at fault, not the push
        await lst.settle()
        assert await lst.engine.store.get_shipment(CLEAN) is not None
    await store.close()


# --------------------------------------------------------------------------- health


async def test_healthz_reports_a_stalled_inbox(target: StoreTarget, tmp_path: Path) -> None:
    async with listening(target, tmp_path, stall_seconds=300) as lst:
        assert (await lst.health())[0] == 200
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200
        lst.clock.advance(299)
        assert (await lst.health())[0] == 200
        lst.clock.advance(2)
        status, body = await lst.health()
        assert status == 503 and body["status"] == "unhealthy"
        assert "inbox stalled" in body["problems"][0] and body["inbox_backlog"] == 1
        await lst.settle()
        assert (await lst.health())[0] == 200


async def test_healthz_reports_a_store_that_cannot_be_written(
    target: StoreTarget, tmp_path: Path
) -> None:
    async with listening(target, tmp_path) as lst:  # creates the schema
        assert (await lst.health())[0] == 200
    if target.backend == "sqlite":
        path = tmp_path / "trackops.db"
        readonly = await Store.open(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        readonly = await target.open(default_transaction_read_only="on")
    try:
        async with listening(target, tmp_path, store=readonly) as lst:
            status, body = await lst.health()
            assert status == 503 and body["store"] is False
            assert any(p.startswith("store not writable") for p in body["problems"])
            assert await lst.post(push_body(CLEAN, make_info(10))) == 503
    finally:
        await readonly.close()


# --------------------------------------------------------------------------- SQLite's lock

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


async def test_another_process_holding_the_write_lock_gets_a_prompt_503(
    target: StoreTarget, tmp_path: Path
) -> None:
    if target.backend != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    async with listening(target, tmp_path, store_timeout=1.0) as lst:
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            HOLD_LOCK,
            str(tmp_path / "trackops.db"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            line = await asyncio.wait_for(holder.stdout.readline(), 30)
            assert line.strip() == b"locked"
            started = time.monotonic()
            statuses = await asyncio.gather(
                *(lst.post(push_body(f"RR{i:09d}CN", make_info(10))) for i in range(20))
            )
            elapsed = time.monotonic() - started
            assert statuses == [503] * 20
            assert elapsed < 8, f"20 pushes took {elapsed:.1f} s to be refused"
        finally:
            holder.stdin.write(b"\n")
            await holder.stdin.drain()
            await asyncio.wait_for(holder.wait(), 10)
        assert await lst.post(push_body(CLEAN, make_info(10))) == 200


# --------------------------------------------------------------------------- text to channels


async def test_pushed_control_and_bidi_characters_never_reach_a_channel(
    target: StoreTarget, tmp_path: Path
) -> None:
    async with listening(target, tmp_path) as lst:
        await lst.engine.store.add_shipments(
            [NewShipment(number=CLEAN, email="buyer@example.com", order_number="[/bold]\x1b[31m")]
        )
        z0 = {"z": "\x1b[2J\x1b]0;pwned\x07Sorted [/HUB-7]", "c": "Shen\u202ezhen"}
        assert await lst.post(signed(CLEAN, track(**{"z0": z0}))) == 200
        await lst.settle()
        (message,) = [m for m in lst.channel.sent if m.audience == "customer"]
        event = message.latest_event
        assert event is not None
        assert event.description == "␛[2J␛]0;pwned␇Sorted [/HUB-7]"
        assert event.location == "Shenzhen"
        assert message.order == "[/bold]␛[31m"
        shown = " ".join(str(v) for v in (event.description, event.location, message.order))
        assert not has_unsafe(shown)
        # The store keeps the data exactly as pushed.
        record = await lst.engine.store.get_shipment(CLEAN)
        assert record is not None and record.latest_event_description == z0["z"]


async def test_healthz_reports_a_full_disk(target: StoreTarget, tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL), from a size cap on the file."""
    if target.backend != "sqlite":
        pytest.skip("the cap is SQLite's max_page_count")
    from sqlalchemy import event

    store = await target.open()
    async with store._write() as conn:
        (pages,) = (await conn.exec_driver_sql("PRAGMA page_count")).one()

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages + 2}")

    event.listen(store._engine.sync_engine, "connect", cap)
    await store._engine.dispose()  # every connection from now on is capped
    try:
        async with listening(target, tmp_path, store=store) as lst:
            big = make_info(10, description="x" * 200_000)  # needs pages the file cannot get
            assert await lst.post(push_body(CLEAN, big)) == 503
            status, body = await lst.health()
            assert status == 503
            assert any("full" in p for p in body["problems"]), body["problems"]
            assert body["store_failures"] == 1
    finally:
        await store.close()
