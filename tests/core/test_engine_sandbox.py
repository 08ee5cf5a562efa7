"""The engine against the sandbox: real loopback HTTP, a real SQLite file, scripted parcels.

The sandbox's clock is frozen (``speed=0``) at a fixed start and moves only through
``state.advance()``; the engine reads that same clock, so the stale check sees the sandbox's
time. Parcels get exact histories through ``state.script()``. Pushes are awaited with bounded
waits (``wait_for_pushes``), never with sleeps. Decisions at exact time boundaries are in
``test_engine.py``; here the flows go through the API as a user's commands would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from factories import KEY, settings_for
from trackops.core import registration
from trackops.core.channels import RecordingChannel
from trackops.core.client import ApiAuthError
from trackops.core.config import Settings
from trackops.core.engine import Engine, RegisterRequest
from trackops.core.sandbox import RunningSandbox, SandboxConfig, ScriptedEvent, running_sandbox
from trackops.core.service import Service, ShipmentQuery
from trackops.core.wire import Event, NumberItem, RegisterItem, TrackInfo
from trackops.core.wire import PackageStatus as S

START = datetime(2026, 3, 2, 8, 0)
HOUR = 3600.0
DAY = 24 * HOUR
SELLER = "ops@shop.example"
BUYER = "buyer@example.com"


def sandbox_config(webhook_url: str | None = None) -> SandboxConfig:
    return SandboxConfig(
        key=KEY,
        webhook_url=webhook_url,
        speed=0.0,
        seed=3,
        rate_limit=10_000.0,
        start_time=START,
    )


def fast_settings(tmp_path: Path, base_url: str) -> Settings:
    """``settings_for`` with a client-side rate limit that never slows a test down."""
    settings = settings_for(tmp_path, base_url=base_url)
    return dataclasses.replace(settings, api=dataclasses.replace(settings.api, rate_limit=1000.0))


def step(hours: float, status: S, description: str = "") -> ScriptedEvent:
    return ScriptedEvent(
        after=hours * HOUR,
        status=status,
        description=description or f"{status.slug} after {hours:g} h",
        location="Shenzhen",
    )


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel("memory")


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(sandbox_config()) as running:
        yield running


@pytest.fixture
async def engine(
    tmp_path: Path, sandbox: RunningSandbox, channel: RecordingChannel
) -> AsyncIterator[Engine]:
    settings = fast_settings(tmp_path, sandbox.base_url)
    async with Engine(
        settings, channels=[channel], load_plugins=False, clock=sandbox.state.now
    ) as eng:
        yield eng


def api_requests(sandbox: RunningSandbox, path: str | None = None) -> int:
    return sum(1 for _, p, _ in sandbox.state.requests if path is None or p.endswith(path))


async def register(engine: Engine, *numbers: str, **fields: object) -> None:
    fields.setdefault("email", BUYER)
    outcome = await engine.register([RegisterRequest(number=n, **fields) for n in numbers])  # type: ignore[arg-type]
    assert outcome.ok, outcome.rejected
    assert sorted(outcome.accepted) == sorted(numbers)


async def status_of(engine: Engine, number: str) -> S:
    record = await engine.store.get_shipment(number)
    assert record is not None, f"{number} is not in the store"
    return record.status


# --------------------------------------------------------------------------- register


async def test_register_stores_the_shipment_as_not_found_with_our_details(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    outcome = await engine.register(
        [RegisterRequest("RR123456789CN", order="A-1001", email=BUYER, name="Ada Buyer")]
    )
    assert outcome.accepted == ["RR123456789CN"] and outcome.rejected == []
    record = await engine.store.get_shipment("RR123456789CN")
    assert record is not None
    assert record.status is S.NOT_FOUND and record.active
    assert (record.order_number, record.email, record.buyer_name) == ("A-1001", BUYER, "Ada Buyer")
    assert record.carrier == 3011  # detected by 17TRACK (China Post)
    data = record.to_json(engine.carrier_name)
    assert data["status"] == "not_found" and data["status_code"] == 0
    assert data["tracking"] == "active" and data["carrier_name"] == "China Post"
    registered = sandbox.state.tracked("RR123456789CN")
    assert registered is not None and registered.carrier == 3011
    assert registered.tag == "A-1001"  # the order number goes to 17TRACK as the tag
    assert api_requests(sandbox, "/register") == 1


async def test_each_register_batch_is_stored_once_answered(
    tmp_path: Path, sandbox: RunningSandbox, channel: RecordingChannel
) -> None:
    """A bulk register keeps each batch's numbers as soon as 17TRACK answers it: before the
    next batch is even sent (the rate limit holds it back), and even when a later batch
    fails. Failed before: the numbers were stored after the last answer, and a failing later
    batch lost every number 17TRACK had already registered."""
    settings = settings_for(tmp_path, base_url=sandbox.base_url)
    # One request per 1.05 s: the second batch waits its turn after the first is answered.
    settings = dataclasses.replace(settings, api=dataclasses.replace(settings.api, rate_limit=1.0))
    numbers = [f"RR{i:09d}CN" for i in range(50)]
    stored_after_first: list[int] = []
    async with Engine(settings, channels=[channel], load_plugins=False) as eng:

        async def progress(done: int, total: int) -> None:
            if done == 40:  # the first batch was answered; the second waits for its turn
                stored_after_first.append(len(await eng.store.list_shipments()))
                sandbox.state.fail_next(401)  # and 17TRACK then refuses the key

        with pytest.raises(ApiAuthError):
            await eng.register([RegisterRequest(n) for n in numbers], progress=progress)
        assert stored_after_first == [40]
        assert api_requests(sandbox, "/register") == 2
        kept = sorted(r.number for r in await eng.store.list_shipments())
        assert kept == numbers[:40]
        assert all(sandbox.state.tracked(n) is not None for n in kept)


async def test_a_registration_sent_before_the_store_opens_is_kept_once_it_is(
    tmp_path: Path, sandbox: RunningSandbox
) -> None:
    """``trackops register`` sends its numbers first and opens the store while the rate limit
    spaces the requests (``registration.start``): 17TRACK's answers wait, then every batch is
    stored, with the buyers' details, and local refusals are reported as before."""
    settings = fast_settings(tmp_path, sandbox.base_url)
    numbers = [f"RR{i:09d}CN" for i in range(45)]
    requests = [RegisterRequest(n, email=BUYER, order=f"A-{n[2:11]}") for n in numbers]
    requests.append(RegisterRequest("AB-1"))
    async with registration.start(settings, requests) as started:
        deadline = asyncio.get_running_loop().time() + 10
        while api_requests(sandbox, "/register") < 2:  # both batches sent, with no store
            assert asyncio.get_running_loop().time() < deadline, "the requests were not sent"
            await asyncio.sleep(0.01)
        assert not (tmp_path / "trackops.db").exists()
        async with Engine(
            settings, client=started.client, load_plugins=False, clock=sandbox.state.now
        ) as eng:
            outcome = await eng.register(requests, started=started)
            stored = await eng.store.get_shipments(numbers)
    assert started.client._session is None  # the registration closed its client
    assert outcome.accepted == numbers
    assert [(r.number, r.error.code) for r in outcome.rejected] == [("AB-1", -18010012)]
    assert sorted(stored) == numbers
    assert all(r.email == BUYER and r.order_number == f"A-{n[2:11]}" for n, r in stored.items())
    assert api_requests(sandbox, "/register") == 2


async def test_registering_a_number_twice_keeps_one_shipment(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    await register(engine, "RR123456789CN", order="A-1")
    again = await engine.register([RegisterRequest("RR123456789CN", order="A-1")])
    assert again.accepted == ["RR123456789CN"]
    assert "already registered" in again.notes["RR123456789CN"]
    assert [r.number for r in await engine.store.list_shipments()] == ["RR123456789CN"]


async def test_a_bad_number_is_refused_locally_without_spending_a_request(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    outcome = await engine.register([RegisterRequest("AB-1"), RegisterRequest("x y")])
    assert [(r.number, r.error.code) for r in outcome.rejected] == [
        ("AB-1", -18010012),
        ("x y", -18010012),
    ]
    assert outcome.accepted == []
    assert sandbox.state.requests == []
    assert await engine.store.list_shipments() == []
    # Mixed with a good number: one request, for the good one only.
    mixed = await engine.register([RegisterRequest("RR123456789CN"), RegisterRequest("no!")])
    assert mixed.accepted == ["RR123456789CN"]
    assert [r.number for r in mixed.rejected] == ["no!"]
    assert api_requests(sandbox) == 1
    assert sandbox.state.numbers() == ["RR123456789CN"]


async def test_a_carrier_that_needs_an_extra_param_is_refused_locally_with_the_reason(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    pytest.importorskip(
        "trackops.plugins.carriers", reason="the carriers plugin (extra-param table) is absent"
    )
    gls = 100005  # GLS: the recipient's postal code is required
    outcome = await engine.register([RegisterRequest("GLS1234567890", carrier=gls)])
    assert outcome.accepted == []
    (rejected,) = outcome.rejected
    assert rejected.number == "GLS1234567890" and rejected.error.code == -18010019
    assert "GLS" in rejected.error.message and "postal code" in rejected.error.message
    assert sandbox.state.requests == []
    # With the parameter it is registered, and 17TRACK receives the parameter.
    await register(engine, "GLS1234567890", carrier=gls, param="75001")
    registered = sandbox.state.tracked("GLS1234567890")
    assert registered is not None and (registered.carrier, registered.param) == (gls, "75001")


# --------------------------------------------------------------------------- sync


async def test_sync_before_any_tracking_data_leaves_the_shipment_not_found(
    engine: Engine, sandbox: RunningSandbox, channel: RecordingChannel
) -> None:
    sandbox.state.script("RR123456789CN", [step(2, S.IN_TRANSIT)])
    await register(engine, "RR123456789CN")
    outcome = await engine.sync()
    assert outcome.asked == 1 and outcome.applied == 0 and outcome.notifications == 0
    assert outcome.no_info_yet == ["RR123456789CN"] and outcome.rejected == []
    assert await status_of(engine, "RR123456789CN") is S.NOT_FOUND
    assert await engine.store.history() == []
    # The first event arrives: now it moves.
    sandbox.state.advance(2 * HOUR)
    outcome = await engine.sync()
    assert outcome.applied == 1 and outcome.no_info_yet == []
    assert await status_of(engine, "RR123456789CN") is S.IN_TRANSIT


async def test_sync_moves_shipments_and_notifies_exactly_as_the_rules_say(
    engine: Engine, sandbox: RunningSandbox, channel: RecordingChannel
) -> None:
    state = sandbox.state
    journey = "RR000000001CN"  # in transit -> pick up -> delivered: the buyer hears each
    alert = "RR000000002CN"  # in transit -> alert: buyer and seller
    failed = "RR000000003CN"  # in transit -> undelivered: buyer and seller
    delivered = "RR000000004CN"  # first seen already delivered: silent
    state.script(
        journey,
        [step(1, S.IN_TRANSIT), step(10, S.PICK_UP), step(20, S.DELIVERED)],
    )
    state.script(alert, [step(1, S.IN_TRANSIT), step(10, S.ALERT, "Held by customs")])
    state.script(failed, [step(1, S.IN_TRANSIT), step(20, S.UNDELIVERED, "Addressee absent")])
    state.script(delivered, [step(1, S.IN_TRANSIT), step(3, S.DELIVERED)])
    await register(engine, journey, alert, failed, order="A-7")

    state.advance(2 * HOUR)
    first = await engine.sync()
    assert (first.asked, first.applied, first.notifications) == (3, 3, 3)
    await register(engine, delivered)
    state.advance(4 * HOUR)  # delivered's whole history is now visible; the others are idle

    second = await engine.sync()
    assert (second.applied, second.notifications) == (1, 0)  # delivered, silently
    assert await status_of(engine, delivered) is S.DELIVERED

    state.advance(6 * HOUR)  # 12 h: journey picks up, alert is held
    third = await engine.sync()
    assert (third.applied, third.notifications) == (2, 3)
    state.advance(10 * HOUR)  # 22 h: journey delivered, failed undelivered
    fourth = await engine.sync()
    assert (fourth.applied, fourth.notifications) == (2, 3)

    statuses = {n: await status_of(engine, n) for n in (journey, alert, failed, delivered)}
    assert statuses == {
        journey: S.DELIVERED,
        alert: S.ALERT,
        failed: S.UNDELIVERED,
        delivered: S.DELIVERED,
    }
    assert await engine.dispatch_pending() == 9
    sent = sorted(
        (m.number, m.audience, m.recipient, m.from_status, m.to_status) for m in channel.sent
    )
    assert sent == sorted(
        [
            (journey, "customer", BUYER, S.NOT_FOUND, S.IN_TRANSIT),
            (journey, "customer", BUYER, S.IN_TRANSIT, S.PICK_UP),
            (journey, "customer", BUYER, S.PICK_UP, S.DELIVERED),
            (alert, "customer", BUYER, S.NOT_FOUND, S.IN_TRANSIT),
            (alert, "customer", BUYER, S.IN_TRANSIT, S.ALERT),
            (alert, "seller", SELLER, S.IN_TRANSIT, S.ALERT),
            (failed, "customer", BUYER, S.NOT_FOUND, S.IN_TRANSIT),
            (failed, "customer", BUYER, S.IN_TRANSIT, S.UNDELIVERED),
            (failed, "seller", SELLER, S.IN_TRANSIT, S.UNDELIVERED),
        ]
    )
    assert all(m.order == "A-7" for m in channel.sent if m.number != delivered)
    history = await engine.store.history()
    assert len(history) == 9 and {r.send_status for r in history} == {"sent"}
    assert {(r.condition, r.condition_kind) for r in history} == {
        ("customer", "default"),
        ("seller", "default"),
    }
    latest = (await engine.store.get_shipment(alert)).info.latest_event  # type: ignore[union-attr]
    assert latest is not None and latest.description == "Held by customs"

    # Nothing new at 17TRACK: syncing again changes nothing and notifies no one.
    for _ in range(2):
        again = await engine.sync()
        assert (again.asked, again.applied, again.notifications) == (4, 0, 0)
    assert await engine.dispatch_pending() == 0
    assert len(await engine.store.history()) == 9


async def test_one_undocumented_code_never_fails_its_batch_of_40(
    engine: Engine, sandbox: RunningSandbox, channel: RecordingChannel
) -> None:
    """Failed before: the item with ``e`` 60 made the whole answer unreadable, so the sync of
    all 40 shipments of its batch (and every batch after it) failed."""
    numbers = [f"RR{i:09d}CN" for i in range(45)]
    odd = numbers[7]
    for number in numbers:
        sandbox.state.script(number, [step(1, S.IN_TRANSIT)])
    sandbox.state.script(
        odd, [step(1, S.IN_TRANSIT, "Accepted"), step(1.5, S(60), "Customs declaration lodged")]
    )
    await register(engine, *numbers)
    sandbox.state.advance(2 * HOUR)
    outcome = await engine.sync()
    assert (outcome.asked, outcome.applied, outcome.rejected) == (45, 45, [])
    assert outcome.requests == 2  # two batches, both read
    record = await engine.store.get_shipment(odd)
    assert record is not None
    assert int(record.status) == 60 and record.status.display == "Unknown (60)"
    assert record.to_json()["status_code"] == 60 and record.to_json()["status"] == "unknown"
    assert record.info is not None
    assert [e.description for e in record.info.all_events] == [
        "Customs declaration lodged",
        "Accepted",
    ]
    # Everyone else moved and was told; nobody was told of a code nobody can explain.
    assert outcome.notifications == 44
    history = await engine.store.history(search=odd)
    assert [(r.from_status, r.to_status) for r in history] == []
    # The next documented status is news as usual.
    sandbox.state.script(
        odd,
        [
            step(1, S.IN_TRANSIT, "Accepted"),
            step(1.5, S(60), "Customs declaration lodged"),
            step(2.5, S.DELIVERED, "Delivered"),
        ],
    )
    sandbox.state.advance(1 * HOUR)
    again = await engine.sync(numbers=[odd])
    assert (again.applied, again.notifications) == (1, 1)
    history = await engine.store.history(search=odd)
    assert [(r.from_status, r.to_status) for r in history] == [(S(60), S.DELIVERED)]


async def test_a_push_before_the_registration_is_stored_keeps_the_buyers_details(
    engine: Engine, sandbox: RunningSandbox, channel: RecordingChannel
) -> None:
    """17TRACK pushes a number's first data seconds after registering it (the sandbox does
    too): the push can create the shipment before ``register`` stores it. The order, email
    and name must still be kept, and the buyer told. Failed before: the pushed row was kept
    as it was, without them."""
    state = sandbox.state
    state.script("RR123456789CN", [step(-2, S.IN_TRANSIT, "Accepted"), step(5, S.DELIVERED)])
    await engine.apply_track_info(
        "RR123456789CN",
        TrackInfo(package_status=S.IN_TRANSIT, latest_event=Event(time_raw="2026-03-02 06:00")),
    )
    record = await engine.store.get_shipment("RR123456789CN")
    assert record is not None and record.email is None  # made by the push
    await register(engine, "RR123456789CN", order="A-1001", name="Ada Buyer")
    record = await engine.store.get_shipment("RR123456789CN")
    assert record is not None
    assert (record.order_number, record.email, record.buyer_name, record.status) == (
        "A-1001",
        BUYER,
        "Ada Buyer",
        S.IN_TRANSIT,
    )
    state.advance(6 * HOUR)
    await engine.sync()
    await engine.dispatch_pending()
    assert [(m.recipient, m.order, m.to_status) for m in channel.sent] == [
        (BUYER, "A-1001", S.DELIVERED)
    ]
    # Registering again never overwrites what is there.
    await register(engine, "RR123456789CN", order="B-2", email="other@example.com")
    record = await engine.store.get_shipment("RR123456789CN")
    assert record is not None and (record.order_number, record.email) == ("A-1001", BUYER)


async def test_stale_information_moves_the_shipment_but_notifies_no_one(
    engine: Engine, sandbox: RunningSandbox, channel: RecordingChannel
) -> None:
    sandbox.state.script("RR123456789CN", [step(1, S.IN_TRANSIT), step(5, S.UNDELIVERED)])
    await register(engine, "RR123456789CN")
    sandbox.state.advance(8 * DAY)  # the last event is more than 7 days old when first synced
    outcome = await engine.sync()
    assert (outcome.applied, outcome.notifications) == (1, 0)
    assert await status_of(engine, "RR123456789CN") is S.UNDELIVERED
    assert await engine.dispatch_pending() == 0
    assert channel.sent == [] and await engine.store.history() == []


# --------------------------------------------------------------------------- commands


async def test_stop_retrack_once_and_the_second_retrack_is_refused(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    number = "RR123456789CN"
    await register(engine, number)

    stopped = await engine.stop([number])
    assert stopped.accepted == [number] and stopped.ok
    record = await engine.store.get_shipment(number)
    assert record is not None and not record.active and record.to_json()["tracking"] == "stopped"
    assert sandbox.state.tracked(number).active is False  # type: ignore[union-attr]
    assert [r.number for r in await engine.store.list_shipments(active=True)] == []

    resumed = await engine.retrack([number])
    assert resumed.accepted == [number] and resumed.ok
    record = await engine.store.get_shipment(number)
    assert record is not None and record.active and record.to_json()["tracking"] == "active"

    assert (await engine.stop([number])).ok
    refused = await engine.retrack([number])
    assert refused.accepted == []
    assert [(r.number, r.error.code) for r in refused.rejected] == [(number, -18019905)]
    record = await engine.store.get_shipment(number)
    assert record is not None and not record.active  # still stopped


async def test_commands_on_numbers_we_do_not_hold_are_refused_without_a_request(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    for outcome in (
        await engine.stop(["RR999999999CN"]),
        await engine.retrack(["RR999999999CN"]),
        await engine.delete(["RR999999999CN"]),
        await engine.change_carrier("RR999999999CN", 190271),
        await engine.change_tag("RR999999999CN", "x"),
    ):
        assert outcome.accepted == []
        assert [(r.number, r.error.code) for r in outcome.rejected] == [
            ("RR999999999CN", -18019902)
        ]
    assert sandbox.state.requests == []


async def test_delete_removes_the_number_here_and_at_17track(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    await register(engine, "RR000000001CN", "RR000000002CN")
    outcome = await engine.delete(["RR000000001CN"])
    assert outcome.accepted == ["RR000000001CN"] and outcome.ok
    assert await engine.store.get_shipment("RR000000001CN") is None
    assert sandbox.state.tracked("RR000000001CN") is None
    assert [r.number for r in await engine.store.list_shipments()] == ["RR000000002CN"]
    assert sandbox.state.numbers() == ["RR000000002CN"]


async def test_change_carrier_and_change_tag_update_both_sides(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    number = "RR123456789CN"
    await register(engine, number, tag="old-tag")
    cainiao = 190271
    changed = await engine.change_carrier(number, cainiao)
    assert changed.accepted == [number] and changed.ok
    record = await engine.store.get_shipment(number)
    assert record is not None and record.carrier == cainiao
    assert engine.carrier_name(record.carrier) == "Cainiao"
    assert sandbox.state.tracked(number).carrier == cainiao  # type: ignore[union-attr]
    # The same carrier again is refused by 17TRACK, and the store keeps the carrier.
    same = await engine.change_carrier(number, cainiao)
    assert same.accepted == [] and [r.error.code for r in same.rejected] == [-18019803]

    tagged = await engine.change_tag(number, "VIP-1")
    assert tagged.accepted == [number] and tagged.ok
    record = await engine.store.get_shipment(number)
    assert record is not None and record.tag == "VIP-1"
    assert sandbox.state.tracked(number).tag == "VIP-1"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- pushes


async def test_a_push_is_stored_by_the_listener_then_applied_from_the_inbox(
    tmp_path: Path, listener_socket: socket.socket, channel: RecordingChannel
) -> None:
    from trackops.core.webhook import create_app

    port = listener_socket.getsockname()[1]
    settings_path = "/webhooks/17track"
    config = sandbox_config(webhook_url=f"http://127.0.0.1:{port}{settings_path}")
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox.base_url)
        assert settings.webhook.path == settings_path
        state = sandbox.state
        number = "RR123456789CN"
        state.script(number, [step(1, S.IN_TRANSIT), step(5, S.ALERT, "Held by customs")])
        async with Engine(
            settings, channels=[channel], load_plugins=False, clock=state.now
        ) as engine:
            app = create_app(settings, Service(engine), background=False)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                await web.SockSite(runner, listener_socket).start()
                await register(engine, number, order="A-9")

                state.advance(2 * HOUR)
                (attempt,) = await asyncio.wait_for(state.wait_for_pushes(1), 10)
                assert attempt.ok and attempt.number == number
                # Acknowledged means stored; nothing is applied until the inbox is processed.
                assert len(await engine.store.inbox_pending()) == 1
                assert await status_of(engine, number) is S.NOT_FOUND
                assert await engine.process_inbox() == 1
                assert await status_of(engine, number) is S.IN_TRANSIT
                assert await engine.process_inbox() == 0

                state.advance(4 * HOUR)
                pushes = await asyncio.wait_for(state.wait_for_pushes(2), 10)
                assert [p.ok for p in pushes] == [True, True]
                assert await engine.process_inbox() == 1
                record = await engine.store.get_shipment(number)
                assert record is not None and record.status is S.ALERT
                assert record.info is not None and record.info.latest_event is not None
                assert record.info.latest_event.description == "Held by customs"

                await engine.dispatch_pending()
                assert sorted((m.audience, m.to_status) for m in channel.sent) == [
                    ("customer", S.IN_TRANSIT),
                    ("customer", S.ALERT),
                    ("seller", S.ALERT),
                ]
                stats = await engine.store.inbox_stats()
                assert stats.backlog == 0
            finally:
                await runner.cleanup()


# --------------------------------------------------------------------------- periodic resync


async def test_resync_asks_only_for_shipments_quiet_longer_than_resync_hours(
    tmp_path: Path, channel: RecordingChannel
) -> None:
    config = dataclasses.replace(sandbox_config(), start_time=None)  # the real clock, frozen
    async with running_sandbox(config) as sandbox:
        settings = fast_settings(tmp_path, sandbox.base_url)
        async with Engine(settings, channels=[channel], load_plugins=False) as engine:
            numbers = ("RR100000001CN", "RR100000002CN", "RR100000003CN")
            for number in numbers:
                sandbox.state.script(number, [step(1, S.IN_TRANSIT)])
            await register(engine, *numbers)
            sandbox.state.advance(2 * HOUR)
            # Two shipments heard nothing for a day or more (a push lost); one just now.
            for number, quiet in (("RR100000002CN", 30), ("RR100000003CN", 40)):
                await engine.store.update_shipment(
                    number, updated_at=engine.clock() - timedelta(hours=quiet)
                )
            service = Service(engine)
            before = api_requests(sandbox, "/gettrackinfo")
            # A pass takes at most its limit, the longest quiet first.
            first = await service.resync_quiet(hours=24, limit=1)
            assert first.numbers == ["RR100000003CN"] and first.sync.applied == 1
            resync = await service.resync_quiet(hours=24)
            assert resync.numbers == ["RR100000002CN"] and resync.sync.applied == 1
            assert api_requests(sandbox, "/gettrackinfo") == before + 2
            assert (await service.resync_quiet(hours=24)).numbers == []
            assert await status_of(engine, "RR100000003CN") is S.IN_TRANSIT
            assert await status_of(engine, "RR100000002CN") is S.IN_TRANSIT
            assert await status_of(engine, "RR100000001CN") is S.NOT_FOUND
            # Quiet again, and 17TRACK's answers now repeat what is stored (duplicates leave
            # the update times alone): the passes take turns instead of asking for the same
            # ones forever.
            for number, quiet in (("RR100000003CN", 50), ("RR100000002CN", 40)):
                await engine.store.update_shipment(
                    number, updated_at=engine.clock() - timedelta(hours=quiet)
                )
            await engine.store.update_shipment(
                "RR100000001CN", updated_at=engine.clock() - timedelta(hours=30)
            )
            passes = [(await service.resync_quiet(hours=24, limit=2)) for _ in range(3)]
            assert [p.numbers for p in passes] == [
                ["RR100000003CN", "RR100000002CN"],
                ["RR100000001CN"],
                ["RR100000003CN", "RR100000002CN"],
            ]
            assert passes[0].sync.applied == 0  # duplicates: nothing new, nothing moved


# --------------------------------------------------------------------------- -18019902


async def test_a_number_17track_forgot_is_marked_and_no_longer_fails_syncs(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    kept, forgotten = "RF000000001CN", "RF000000002CN"
    outcome = await engine.register([RegisterRequest(kept), RegisterRequest(forgotten)])
    assert sorted(outcome.accepted) == [kept, forgotten]
    client = await engine.client()
    gone = NumberItem(number=forgotten, carrier=3011)
    deleted = await client.delete_track([gone])  # gone at 17TRACK, not here
    assert [a.number for a in deleted.accepted] == [forgotten]

    first = await engine.sync()
    assert (first.asked, first.unknown, first.rejected) == (2, [forgotten], [])
    record = await engine.store.get_shipment(forgotten)
    assert record is not None and record.unknown_since == sandbox.state.now()
    assert (record.active, record.tracking) == (False, "stopped")
    assert record.to_json()["unknown_since"] == sandbox.state.now().isoformat() + "Z"

    later = await engine.sync()
    assert (later.asked, later.unknown, later.rejected) == (1, [], [])
    service = Service(engine)  # what the front-ends see
    page = await service.shipments(ShipmentQuery())
    rows = {r.number: r for r in page.items}
    assert rows[forgotten].unknown_since == sandbox.state.now()
    assert rows[forgotten].to_json()["unknown_since"] == sandbox.state.now().isoformat() + "Z"
    assert rows[kept].to_json()["unknown_since"] is None
    detail = await service.shipment(forgotten)
    assert detail.shipment.unknown_since == sandbox.state.now()

    again = await engine.register([RegisterRequest(forgotten)])
    assert again.accepted == [forgotten]
    assert again.notes[forgotten] == "registered again at 17TRACK; tracked again"
    record = await engine.store.get_shipment(forgotten)
    assert record is not None and (record.active, record.unknown_since) == (True, None)
    assert (await engine.sync()).asked == 2

    # Forgotten again, then registered at 17TRACK by someone else: -18019901 also brings it back.
    await client.delete_track([gone])
    assert (await engine.sync()).unknown == [forgotten]
    await client.register([RegisterItem(number=forgotten)])
    back = await engine.register([RegisterRequest(forgotten)])
    assert back.accepted == [forgotten]
    record = await engine.store.get_shipment(forgotten)
    assert record is not None and (record.active, record.unknown_since) == (True, None)


async def test_sync_stops_between_chunks_keeping_what_was_done(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trackops.core.engine as engine_module

    monkeypatch.setattr(engine_module, "SYNC_CHUNK", 2)
    numbers = [f"RT00000000{i}CN" for i in range(1, 6)]
    await engine.register([RegisterRequest(n) for n in numbers])
    stop = asyncio.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 2:
            stop.set()  # as Ctrl-C would, in the middle of the sync

    outcome = await engine.sync(progress=progress, stop=stop)
    assert (outcome.interrupted, outcome.asked, outcome.total) == (True, 2, 5)
    assert seen == [(0, 5), (2, 5)]
    full = await engine.sync()
    assert (full.interrupted, full.asked, full.total) == (False, 5, 5)
