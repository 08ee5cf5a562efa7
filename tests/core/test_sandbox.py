"""The 17TRACK sandbox over real HTTP on loopback: endpoints, error codes, limits, simulated
parcels and signed pushes.

Most sandboxes here run with ``speed=0`` (a frozen clock) and a fixed ``start_time``, so time
moves only through ``state.advance()`` and every answer is exact. Pushes are awaited on a
queue fed by a local receiver, always with a bounded ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from factories import free_port
from trackops.core import wire
from trackops.core.sandbox import (
    RunningSandbox,
    SandboxConfig,
    SandboxState,
    ScriptedEvent,
    detect_carrier,
    generate_history,
    running_sandbox,
    serve_sandbox,
)
from trackops.core.wire import PackageStatus, TrackingStopped, TrackingUpdated

KEY = "SANDBOX-TEST-KEY-0123456789"
START = datetime(2026, 3, 2, 8, 0)
HOUR = 3600.0
DAY = 24 * HOUR
EVENT_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
FULL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
LIST_KEYS = ["number", "w1", "b", "w2", "c", "e", "rt", "tt", "pt", "ps", "st", "sr", "ir", "ts"]
LIST_KEYS += ["mc", "tag"]


def config(**overrides: Any) -> SandboxConfig:
    """A frozen-clock sandbox with no practical rate limit."""
    values: dict[str, Any] = {
        "key": KEY,
        "speed": 0.0,
        "seed": 7,
        "rate_limit": 10_000.0,
        "start_time": START,
    }
    values.update(overrides)
    return SandboxConfig(**values)


def upu(count: int, suffix: str = "CN", prefix: str = "RR") -> list[str]:
    return [f"{prefix}{i:09d}{suffix}" for i in range(count)]


@dataclass
class Api:
    """POSTs to one sandbox over a real HTTP session."""

    sandbox: RunningSandbox
    session: aiohttp.ClientSession

    async def raw(
        self, endpoint: str, data: bytes, *, key: str | None = KEY, method: str = "POST"
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["17token"] = key
        url = f"{self.sandbox.base_url}/{endpoint}"
        async with self.session.request(method, url, data=data, headers=headers) as response:
            return response.status, await response.read()

    async def call(self, endpoint: str, body: Any) -> dict[str, Any]:
        status, raw = await self.raw(endpoint, json.dumps(body).encode())
        assert status == 200, raw
        return json.loads(raw)

    async def rejected(self, endpoint: str, body: Any) -> list[int]:
        answer = await self.call(endpoint, body)
        assert answer["code"] == 0, answer
        return [r["error"]["code"] for r in answer["data"]["rejected"]]

    async def accepted(self, endpoint: str, body: Any) -> list[dict[str, Any]]:
        answer = await self.call(endpoint, body)
        assert answer["code"] == 0, answer
        assert answer["data"].get("rejected", []) == [], answer
        return answer["data"]["accepted"]

    async def register(self, *numbers: str, **fields: Any) -> list[dict[str, Any]]:
        return await self.accepted("register", [{"number": n, **fields} for n in numbers])

    async def info(self, number: str) -> dict[str, Any]:
        (item,) = await self.accepted("gettrackinfo", [{"number": number}])
        return item

    async def listing(self, **query: Any) -> list[dict[str, Any]]:
        answer = await self.call("gettracklist", query)
        assert answer["code"] == 0 and not answer["data"].get("errors"), answer
        return answer["data"]["accepted"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(config()) as running:
        yield running


@pytest.fixture
def api(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> Api:
    return Api(sandbox, http)


@dataclass
class Receiver:
    """A webhook endpoint: queues (monotonic time, body) and answers the next scripted status."""

    statuses: list[int] = field(default_factory=list)
    received: asyncio.Queue[tuple[float, bytes]] = field(default_factory=asyncio.Queue)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.put_nowait((time.monotonic(), body))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def next(self, seconds: float = 5.0) -> tuple[float, bytes]:
        return await asyncio.wait_for(self.received.get(), seconds)

    async def next_push(self, seconds: float = 5.0) -> wire.PushEnvelope:
        _, body = await self.next(seconds)
        return wire.decode_push(body)


@asynccontextmanager
async def receiver(*statuses: int) -> AsyncIterator[tuple[Receiver, str]]:
    rcv = Receiver(list(statuses))
    app = web.Application()
    app.router.add_post("/hook", rcv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield rcv, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def pushing_sandbox(*statuses: int, **overrides: Any) -> AsyncIterator[tuple[Api, Receiver]]:
    async with receiver(*statuses) as (rcv, url), aiohttp.ClientSession() as session:
        async with running_sandbox(config(webhook_url=url, **overrides)) as running:
            yield Api(running, session), rcv


DELIVERED_SCRIPT = [
    ScriptedEvent(600, PackageStatus.IN_TRANSIT, "电子信息已收到", "深圳市"),
    ScriptedEvent(4 * HOUR, PackageStatus.IN_TRANSIT, "Arrivé au centre de tri", "Roissy", leg=2),
    ScriptedEvent(9 * HOUR, PackageStatus.DELIVERED, "Distribué", "Paris", leg=2),
]


# --------------------------------------------------------------------------- register


async def test_register_answers_like_the_reference(api: Api) -> None:
    answer = await api.call(
        "register",
        [{"number": "RR123456789CN", "carrier": 3011, "tag": "MyId"}, {"number": "1234"}],
    )
    assert answer == {
        "code": 0,
        "data": {
            "accepted": [{"origin": 1, "number": "RR123456789CN", "carrier": 3011}],
            "rejected": [
                {
                    "number": "1234",
                    "error": {"code": -18010012, "message": "The format of '1234' is invalid."},
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("number", "carrier"),
    [
        ("RR123456789CN", 3011),  # China Post
        ("LZ123456789US", 21051),  # USPS
        ("RR123456789GB", 11031),  # Royal Mail
        ("RR123456789DE", 7041),
        ("RR123456789FR", 6051),  # La Poste
        ("RR123456789NL", 14041),  # PostNL
        ("CP123456789JP", 10021),  # Japan Post
        ("1Z999AA10123456784", 100002),  # UPS
        ("123456789012", 100003),  # FedEx, 12 digits
        ("123456789012345", 100003),  # FedEx, 15 digits
        ("1234567890", 100001),  # DHL Express
        ("9400111899223100001234", 21051),  # USPS, 22 digits
        ("92055901755477000000000", None),  # 23 digits: nothing
        ("STOAA0000272952YQ", None),
        ("RR123456789ZZ", None),  # no such country
    ],
)
def test_detect_carrier(number: str, carrier: int | None) -> None:
    assert detect_carrier(number) == carrier


async def test_detection_origins(api: Api) -> None:
    accepted = await api.accepted(
        "register",
        [
            {"number": "LZ123456789US"},  # detected: 1
            {"number": "RR123456789CN", "carrier": 3011},  # passed and detected the same: 1
            {"number": "RR223456789CN", "carrier": 3013},  # passed, differs: 2
            {"number": "STOAA0000272952YQ", "carrier": 190008},  # passed: 2
            {"number": "STOAA0000272953YQ", "auto_detection": True},  # guessed: 3
        ],
    )
    got = {a["number"]: (a["origin"], a["carrier"]) for a in accepted}
    assert got["LZ123456789US"] == (1, 21051)
    assert got["RR123456789CN"] == (1, 3011)
    assert got["RR223456789CN"] == (2, 3013)
    assert got["STOAA0000272952YQ"] == (2, 190008)
    origin, guessed = got["STOAA0000272953YQ"]
    assert origin == 3 and guessed in (190008, 190271, 190094, 190012, 3013)
    assert await api.rejected("register", [{"number": "STOAA0000272954YQ"}]) == [-18019903]
    assert await api.rejected(
        "register", [{"number": "STOAA0000272955YQ", "auto_detection": False}]
    ) == [-18019903]


async def test_register_rejections(api: Api) -> None:
    await api.register("RR123456789CN")
    answer = await api.call(
        "register",
        [
            {"number": "RR123456789CN"},
            {"number": "RR223456789CN", "tag": "t" * 101},
            {"number": "RR323456789CN", "carrier": 999999},
            {"number": "RR423456789CN", "carrier": "x"},
            {"number": "1Z999AA10123456784", "final_carrier": 21051},  # UPS is not postal
            {"tag": "no number"},
        ],
    )
    errors = [
        (r["number"], r["error"]["code"], r["error"]["message"]) for r in answer["data"]["rejected"]
    ]
    long_tag = "t" * 101
    assert errors == [
        ("RR123456789CN", -18019901, wire.error_message(-18019901, "RR123456789CN")),
        ("RR223456789CN", -18010015, f"The value '{long_tag}' of field tag is invalid."),
        ("RR323456789CN", -18019910, wire.error_message(-18019910, 999999)),
        ("RR423456789CN", -18010011, "The value of carrier is invalid."),
        ("1Z999AA10123456784", -18010016, wire.error_message(-18010016)),
        (None, -18010010, "The field of number is required."),
    ]
    assert answer["data"]["accepted"] == []


async def test_tag_of_100_characters_is_fine(api: Api) -> None:
    (accepted,) = await api.register("RR123456789CN", tag="t" * 100)
    assert accepted["number"] == "RR123456789CN"


@pytest.mark.parametrize(
    ("carrier", "code", "param"),
    [
        (14041, -18010018, "FR-75001"),  # PostNL: DestCountry
        (100842, -18010018, "ID"),  # DHL Supply Chain APAC: DestCountry
        (100005, -18010019, "3078CM"),  # GLS: PostalCode
        (100304, -18010019, "75001"),  # Mondial Relay: PostalCode
        (100074, -18010020, "8888"),  # J&T Express (ID): PhoneNumber
        (190766, -18010020, "1234"),  # SF Express(CN): PhoneNumber
        (100438, -18010020, "28001"),  # Seur: phone number or postal code
    ],
)
async def test_required_extra_params(api: Api, carrier: int, code: int, param: str) -> None:
    number = "ABC123456789"
    assert await api.rejected("register", [{"number": number, "carrier": carrier}]) == [code]
    blank = [{"number": number, "carrier": carrier, "extra_param": "  "}]
    assert await api.rejected("register", blank) == [code]
    (accepted,) = await api.register(number, carrier=carrier, extra_param=param)
    assert accepted == {"origin": 2, "number": number, "carrier": carrier}
    assert api.sandbox.state.tracked(number).param == param  # type: ignore[union-attr]


async def test_optional_params_are_not_required(api: Api) -> None:
    # Bpost, DHL Paket and FedEx are FALSE in the reference's table
    for carrier, number in [(2061, "ABC1234567"), (7041, "ABC2234567"), (100003, "ABC3234567")]:
        await api.register(number, carrier=carrier)


async def test_ship_date_kind_maps_to_its_code(api: Api) -> None:
    # No TRUE row of the table asks for a ship date today; the kind still has its code.
    api.sandbox.state.required_params[100003] = ("ShipDate",)
    assert await api.rejected("register", [{"number": "123456789012"}]) == [-18010022]
    (accepted,) = await api.register("123456789012", extra_param="2024-01-01")
    assert accepted["carrier"] == 100003


@pytest.mark.parametrize(
    "endpoint",
    ["register", "gettrackinfo", "stoptrack", "Retrack", "deleteTrack", "push", "changecarrier"],
)
async def test_more_than_40_items_is_an_envelope_error(api: Api, endpoint: str) -> None:
    items = [{"number": n, "carrier": 3011, "carrier_new": 3013} for n in upu(41)]
    answer = await api.call(endpoint, items)
    assert answer["code"] == -18010014
    assert answer["data"]["errors"] == [
        {"code": -18010014, "message": "Request parameter number exceeds 40."}
    ]
    assert api.sandbox.state.numbers() == []
    assert len(await api.register(*upu(40))) == 40


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("register", b"[{"),
        ("register", b"not json"),
        ("register", b'{"number": "RR123456789CN"}'),
        ("register", b'["RR123456789CN"]'),
        ("gettrackinfo", b""),
        ("changeinfo", b'[{"number": "RR123456789CN"}]'),
        ("gettracklist", b"[1, 2]"),
    ],
)
async def test_invalid_body_is_an_envelope_error(api: Api, endpoint: str, body: bytes) -> None:
    status, raw = await api.raw(endpoint, body)
    assert status == 200
    assert json.loads(raw) == {
        "code": -18010013,
        "data": {"errors": [{"code": -18010013, "message": "Submitted data is invalid."}]},
    }


# --------------------------------------------------------------------------- numbers' lifecycle


NOT_REGISTERED = [
    ("gettrackinfo", [{"number": "RR999999999CN"}]),
    ("stoptrack", [{"number": "RR999999999CN"}]),
    ("retrack", [{"number": "RR999999999CN"}]),
    ("deleteTrack", [{"number": "RR999999999CN", "carrier": 3011}]),
    ("push", [{"number": "RR999999999CN"}]),
    ("changecarrier", [{"number": "RR999999999CN", "carrier_new": 3013}]),
]


@pytest.mark.parametrize(("endpoint", "body"), NOT_REGISTERED)
async def test_not_registered(api: Api, endpoint: str, body: Any) -> None:
    answer = await api.call(endpoint, body)
    (rejected,) = answer["data"]["rejected"]
    assert rejected["number"] == "RR999999999CN"
    assert rejected["error"] == {
        "code": -18019902,
        "message": "The tracking number RR999999999CN does not register, please register first",
    }


async def test_not_registered_changeinfo(api: Api) -> None:
    body = {"number": "RR999999999CN", "items": {"tag": "x"}}
    assert await api.rejected("changeinfo", body) == [-18019902]


async def test_wrong_carrier_is_not_registered(api: Api) -> None:
    await api.register("RR123456789CN")
    body = [{"number": "RR123456789CN", "carrier": 3013}]
    assert await api.rejected("gettrackinfo", body) == [-18019902]
    assert await api.rejected("stoptrack", body) == [-18019902]


async def test_stop_and_retrack_rules(api: Api) -> None:
    number = [{"number": "RR123456789CN"}]
    await api.register("RR123456789CN")
    assert await api.rejected("Retrack", number) == [-18019904]  # still tracked
    assert await api.accepted("stoptrack", number) == [{"number": "RR123456789CN", "carrier": 3011}]
    assert await api.rejected("stoptrack", number) == [-18019906]  # already stopped
    (row,) = await api.listing()
    assert (row["ts"], row["sr"], row["ir"]) == (False, 2, True)
    assert row["st"] == START.strftime("%Y-%m-%d %H:%M:%S")
    assert await api.accepted("retrack", number) == [{"number": "RR123456789CN", "carrier": 3011}]
    (row,) = await api.listing()
    assert (row["ts"], row["sr"], row["ir"], row["st"]) == (True, 0, False, None)
    await api.accepted("stoptrack", number)
    assert await api.rejected("Retrack", number) == [-18019905]  # only once
    assert await api.rejected("retrack", number) == [-18019905]


async def test_change_carrier_rules(api: Api) -> None:
    await api.register("RR123456789CN", final_carrier=21051)
    await api.register("RR223456789CN")

    async def change(**item: Any) -> list[int]:
        return await api.rejected("changecarrier", [{"number": "RR123456789CN", **item}])

    assert await change() == [-18019804]
    assert await change(carrier_new=3011) == [-18019803]
    assert await change(carrier_old=3013, carrier_new=3011) == [-18019805]
    assert await change(carrier_new=999999) == [-18019802]
    assert await change(final_carrier_new=21051) == [-18019803]
    assert await change(carrier_new=100002, final_carrier_new=21051) == [-18010016]

    moved = await api.accepted(
        "changecarrier", [{"number": "RR123456789CN", "carrier_old": 3011, "carrier_new": 3013}]
    )
    assert moved == [{"number": "RR123456789CN", "carrier": 3013}]
    (row,) = await api.listing(number="RR123456789CN")
    assert (row["w1"], row["mc"]) == (3013, 1)

    await api.accepted("stoptrack", [{"number": "RR223456789CN"}])
    stopped = [{"number": "RR223456789CN", "carrier_new": 3013}]
    assert await api.rejected("changecarrier", stopped) == [-18019806]


async def test_change_info_updates_the_tag(api: Api) -> None:
    await api.register("RR123456789CN", tag="before")
    body = {"number": "RR123456789CN", "carrier": 3011, "items": {"tag": "order-42"}}
    assert await api.accepted("changeinfo", body) == [{"number": "RR123456789CN", "carrier": 3011}]
    (row,) = await api.listing()
    assert row["tag"] == "order-42"
    api.sandbox.state.advance(2 * DAY)
    assert (await api.info("RR123456789CN"))["tag"] == "order-42"

    too_long = {"number": "RR123456789CN", "items": {"tag": "t" * 101}}
    assert await api.rejected("changeinfo", too_long) == [-18010015]
    nothing = {"number": "RR123456789CN", "items": {"colour": "red"}}
    assert await api.rejected("changeinfo", nothing) == [-18019811]
    assert await api.rejected("changeinfo", {"number": "1234", "items": {"tag": "x"}}) == [
        -18010012
    ]


async def test_delete_requires_the_carrier(api: Api) -> None:
    await api.register("RR123456789CN")
    answer = await api.call("deleteTrack", [{"number": "RR123456789CN"}])
    assert answer["data"]["rejected"] == [
        {
            "number": "RR123456789CN",
            "error": {"code": -18010010, "message": "The field of carrier is required."},
        }
    ]
    wrong = [{"number": "RR123456789CN", "carrier": 3013}]
    assert await api.rejected("deleteTrack", wrong) == [-18019902]
    deleted = await api.accepted("deleteTrack", [{"number": "RR123456789CN", "carrier": "3011"}])
    assert deleted == [{"number": "RR123456789CN", "carrier": 3011}]
    assert await api.rejected("gettrackinfo", [{"number": "RR123456789CN"}]) == [-18019902]
    assert await api.register("RR123456789CN")  # may be registered again


# --------------------------------------------------------------------------- HTTP rules


async def test_bad_or_missing_key_is_401(api: Api) -> None:
    body = b'[{"number": "RR123456789CN"}]'
    for key in (None, "WRONG-KEY", ""):
        status, raw = await api.raw("register", body, key=key)
        assert status == 401
        assert json.loads(raw)["code"] == -18010002
    assert api.sandbox.state.numbers() == []
    assert [s for _, _, s in api.sandbox.state.requests] == [401, 401, 401]


async def test_unknown_path_is_404_and_get_is_405(api: Api) -> None:
    status, _ = await api.raw("registr", b"[]")
    assert status == 404
    status, _ = await api.raw("register", b"", method="GET")
    assert status == 405
    async with api.session.post(api.sandbox.root_url + "/track/v2/register") as response:
        assert response.status == 404
    assert [(p, s) for _, p, s in api.sandbox.state.requests] == [
        ("/track/v1/registr", 404),
        ("/track/v1/register", 405),
    ]


async def test_retrack_is_spelled_both_ways(api: Api) -> None:
    await api.register("RR123456789CN", "RR223456789CN")
    await api.accepted("stoptrack", [{"number": "RR123456789CN"}, {"number": "RR223456789CN"}])
    assert await api.accepted("Retrack", [{"number": "RR123456789CN"}])
    assert await api.accepted("retrack", [{"number": "RR223456789CN"}])


async def test_more_than_rate_limit_per_second_is_429(http: aiohttp.ClientSession) -> None:
    async with running_sandbox(config(rate_limit=3.0)) as running:
        api = Api(running, http)
        results = await asyncio.gather(*(api.raw("gettracklist", b"{}") for _ in range(10)))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] * 3 + [429] * 7
        assert sorted(s for _, _, s in running.state.requests) == statuses


def test_rate_window_slides_over_one_second() -> None:
    clock = [100.0]
    state = SandboxState(config(rate_limit=3.0), monotonic=lambda: clock[0])

    def gate() -> int:
        early = state.gate("register", "POST", KEY)
        return 200 if early is None else early[0]

    statuses = []
    for now in (100.0, 100.25, 100.5, 100.75, 100.999):
        clock[0] = now
        statuses.append(gate())
    assert statuses == [200, 200, 200, 429, 429]
    clock[0] = 101.0  # strict: a window's both ends count, so 100.0 is still in it
    assert gate() == 429
    clock[0] = 101.001  # the first request has left the window
    assert [gate(), gate()] == [200, 429]
    clock[0] = 101.501  # 100.25 and 100.5 have left the window
    assert [gate(), gate(), gate()] == [200, 200, 429]


async def test_fail_next(api: Api) -> None:
    api.sandbox.state.fail_next(503, count=2)
    api.sandbox.state.fail_next(200, code=-18010003)
    body = b"{}"
    assert [(await api.raw("gettracklist", body))[0] for _ in range(2)] == [503, 503]
    status, raw = await api.raw("gettracklist", body)
    assert (status, json.loads(raw)["code"]) == (200, -18010003)
    status, raw = await api.raw("gettracklist", body)
    assert (status, json.loads(raw)["code"]) == (200, 0)
    with pytest.raises(ValueError, match="envelope code"):
        api.sandbox.state.fail_next(200)


async def test_carrier_lists_are_served(api: Api) -> None:
    base = api.sandbox.root_url + "/asset/carrier/info/"
    async with api.session.get(base + "apicarrier.all.json") as response:
        carriers = await response.json()
    assert len(carriers) == 3017
    assert {"key": 3011, "name": "China Post"}.items() <= next(
        c for c in carriers if c["key"] == 3011
    ).items()
    async with api.session.get(base + "country.all.json") as response:
        countries = await response.json()
    assert {"code": 301, "name": "China", "iso2": "CN"} in countries
    async with api.session.get(base + "nothing.json") as response:
        assert response.status == 404


# --------------------------------------------------------------------------- tracking information


async def test_no_information_before_the_first_event(api: Api) -> None:
    api.sandbox.state.script("RR123456789CN", DELIVERED_SCRIPT)
    await api.register("RR123456789CN")
    answer = await api.call("gettrackinfo", [{"number": "RR123456789CN"}])
    assert answer["data"] == {
        "accepted": [],
        "rejected": [
            {
                "number": "RR123456789CN",
                "error": {"code": -18019909, "message": "No tracking information at this time."},
            }
        ],
    }
    assert await api.rejected("push", [{"number": "RR123456789CN"}]) == [-18019909]
    api.sandbox.state.advance(599)
    assert await api.rejected("gettrackinfo", [{"number": "RR123456789CN"}]) == [-18019909]
    api.sandbox.state.advance(1)
    assert (await api.info("RR123456789CN"))["track"]["e"] == 10


async def test_advance_moves_the_status(api: Api) -> None:
    api.sandbox.state.script(
        "RR123456789CN", DELIVERED_SCRIPT, destination_country=605, second_carrier=6051
    )
    await api.register("RR123456789CN", tag="order-7")
    state = api.sandbox.state
    state.advance(HOUR)
    first = (await api.info("RR123456789CN"))["track"]
    assert first["e"] == 10
    assert [e["z"] for e in first["z1"]] == ["电子信息已收到"]
    assert first["z2"] == []
    assert first["z0"] == {
        "a": "2026-03-02 08:10",
        "b": None,
        "c": "深圳市",
        "d": "",
        "z": "电子信息已收到",
    }
    assert (first["b"], first["c"], first["w1"]) == (301, 605, 3011)

    state.advance(4 * HOUR)
    second = (await api.info("RR123456789CN"))["track"]
    assert second["e"] == 10
    assert second["hs"] != first["hs"]
    assert second["z0"]["z"] == "Arrivé au centre de tri"

    state.advance(4 * HOUR)
    item = await api.info("RR123456789CN")
    last = item["track"]
    assert item["tag"] == "order-7"
    assert last["e"] == 40
    assert last["f"] == 0  # delivered the same day
    assert last["z0"] == {
        "a": "2026-03-02 17:00",
        "b": None,
        "c": "Paris",
        "d": "",
        "z": "Distribué",
    }
    assert [e["a"] for e in last["z2"]] == ["2026-03-02 17:00", "2026-03-02 12:00"]  # newest first
    assert last["ylt1"] == "2026-03-02 17:00:00"
    assert last["ylt9"] == wire.NO_TIME
    decoded = wire.decode_track_info(json.dumps(last))
    assert decoded.package_status is PackageStatus.DELIVERED
    assert decoded.latest_event is not None and decoded.latest_event.time == datetime(
        2026, 3, 2, 17, 0
    )


async def test_track_info_shape(api: Api) -> None:
    await api.register("RR123456789CN", "1Z999AA10123456784", "LZ123456789US")
    api.sandbox.state.advance(6 * DAY)
    for number in ("RR123456789CN", "1Z999AA10123456784", "LZ123456789US"):
        track = (await api.info(number))["track"]
        assert list(track) == [
            "b", "c", "e", "f", "w1", "w2", "z1", "z2", "z9", "ygt1", "ygt2", "ygt9", "is1",
            "is2", "ln1", "ln2", "ln9", "hs", "z0", "ylt1", "ylt2", "ylt9", "yt", "zex",
        ]  # fmt: skip
        assert track["z9"] == [] and track["zex"] == {"trN": "", "trC": 0}
        for event in track["z1"] + track["z2"]:
            assert EVENT_TIME.fullmatch(event["a"]) and event["b"] is None
        assert FULL_TIME.fullmatch(track["ylt1"])
        if track["w2"] == 0:
            assert track["ylt2"] == wire.NO_TIME and track["is2"] == 0 and track["z2"] == []
        times = [e["a"] for e in track["z1"]]
        assert times == sorted(times, reverse=True)
        assert isinstance(track["hs"], int) and track["hs"] >= 0
        assert track["f"] == -1 or track["e"] == 40


async def test_histories_are_deterministic_for_a_seed(http: aiohttp.ClientSession) -> None:
    numbers = [{"number": n} for n in [*upu(20), "1Z999AA10123456784", "9400111899223100001234"]]

    async def snapshot(seed: int) -> bytes:
        async with running_sandbox(config(seed=seed)) as running:
            api = Api(running, http)
            await api.accepted("register", numbers)
            running.state.advance(3 * DAY)
            status, raw = await api.raw("gettrackinfo", json.dumps(numbers).encode())
            assert status == 200
            return raw

    first, again, other = await snapshot(1), await snapshot(1), await snapshot(2)
    assert first == again
    assert first != other
    assert len(json.loads(first)["data"]["accepted"]) >= 15  # most have information by then


async def test_every_status_appears_and_ends_within_two_minutes_at_3600(api: Api) -> None:
    numbers = upu(60)
    await api.register(*numbers[:40])
    await api.register(*numbers[40:])
    state = api.sandbox.state
    histories = [state.tracked(n).history for n in numbers]  # type: ignore[union-attr]
    horizons = [h.events[-1].after for h in histories]
    assert max(horizons) <= 120 * HOUR  # 120 real seconds at speed 3600
    # Known within seconds: 17TRACK looks a number up 2-8 s after its registration, and every
    # parcel the carrier has already has events from before the registration by then.
    assert all(2 <= h.lookup_after <= 8 for h in histories)
    found = [h for h in histories if h.final_status is not PackageStatus.NOT_FOUND]
    assert found and all(h.events[0].after < 0 for h in found)
    state.advance(max(horizons))
    answer = await api.call("gettrackinfo", [{"number": n} for n in numbers[:40]])
    answer2 = await api.call("gettrackinfo", [{"number": n} for n in numbers[40:]])
    tracks = [a["track"] for a in answer["data"]["accepted"] + answer2["data"]["accepted"]]
    assert len(tracks) == 60
    assert {t["e"] for t in tracks} == {int(s) for s in PackageStatus}
    not_found = [t for t in tracks if t["e"] == 0]
    assert all(t["z0"] is None and t["is1"] == 2 for t in not_found)
    texts = {e["z"] for t in tracks for e in t["z1"] + t["z2"]}
    assert "电子信息已收到" in texts and any(not t.isascii() for t in texts)
    for status in PackageStatus:
        assert await api.listing(package_state=int(status))


def test_every_status_in_generated_histories_across_seeds() -> None:
    for seed in range(3):
        finals = {generate_history(n, seed, 3011).final_status for n in upu(60, prefix="LW")}
        assert finals == set(PackageStatus), seed


async def test_expired_is_a_status_without_a_new_event(api: Api) -> None:
    api.sandbox.state.script(
        "RR123456789CN",
        [
            {"after": 60, "status": 10, "description": "Item accepted", "location": "Shenzhen"},
            {"after": 3 * DAY, "status": 20, "leg": 0},
        ],
    )
    await api.register("RR123456789CN")
    api.sandbox.state.advance(HOUR)
    before = (await api.info("RR123456789CN"))["track"]
    api.sandbox.state.advance(3 * DAY)
    after = (await api.info("RR123456789CN"))["track"]
    assert (before["e"], after["e"]) == (10, 20)
    assert after["z0"] == before["z0"]
    # hs is the hash of the latest event: a status-only change keeps it, as 17TRACK's does.
    assert after["hs"] == before["hs"]
    assert after["ylt1"] > before["ylt1"]


async def test_script_can_set_raw_times_and_legs(api: Api) -> None:
    await api.register("RR123456789CN")
    api.sandbox.state.script(
        "RR123456789CN",
        [ScriptedEvent(0, 50, "Held by customs", "JFK", time="sometime in May")],
        second_carrier=0,
    )
    track = (await api.info("RR123456789CN"))["track"]
    assert track["e"] == 50
    assert track["z0"]["a"] == "sometime in May"
    assert track["w2"] == 0


async def test_stopped_number_keeps_its_information_until_retracked(api: Api) -> None:
    api.sandbox.state.script("RR123456789CN", DELIVERED_SCRIPT)
    await api.register("RR123456789CN")
    api.sandbox.state.advance(HOUR)
    await api.accepted("stoptrack", [{"number": "RR123456789CN"}])
    api.sandbox.state.advance(DAY)
    assert (await api.info("RR123456789CN"))["track"]["e"] == 10  # frozen at the stop
    await api.accepted("retrack", [{"number": "RR123456789CN"}])
    assert (await api.info("RR123456789CN"))["track"]["e"] == 40


# --------------------------------------------------------------------------- gettracklist


async def test_track_list_pages_and_filters(api: Api) -> None:
    numbers = upu(45)
    await api.register(*numbers[:40])
    await api.register(*numbers[40:], tag="late")
    await api.register("1Z999AA10123456784")
    state = api.sandbox.state

    page1, page2 = await api.listing(), await api.listing(page_no=2)
    assert [r["number"] for r in page1 + page2] == [*numbers, "1Z999AA10123456784"]
    assert len(page1) == 40
    assert await api.listing(page_no=3) == []
    assert list(page1[0]) == LIST_KEYS
    assert page1[0]["tag"] is None and page2[0]["tag"] == "late"
    assert (page1[0]["e"], page1[0]["ts"], page1[0]["pt"], page1[0]["ps"]) == (0, True, None, 0)

    assert [r["number"] for r in await api.listing(number=numbers[3])] == [numbers[3]]
    assert [r["number"] for r in await api.listing(carrier=100002)] == ["1Z999AA10123456784"]
    await api.accepted("stoptrack", [{"number": numbers[5]}])
    assert [r["number"] for r in await api.listing(tracking_state=0)] == [numbers[5]]
    assert len(await api.listing(tracking_state=1)) == 40
    stop_day = START.strftime("%Y-%m-%d")
    assert [r["number"] for r in await api.listing(stop_time_from=stop_day)] == [numbers[5]]
    assert len(await api.listing(register_time_to=stop_day)) == 40  # a date: the whole day
    assert await api.listing(register_time_from="2026-03-03") == []
    assert await api.listing(push_state=1) == []

    state.advance(6 * DAY)
    now = state.now()
    delivered = {n for n in state.numbers() if state.tracked(n).status(now) == 40}  # type: ignore[union-attr]
    listed = await api.listing(package_state=40) + await api.listing(package_state=40, page_no=2)
    assert {r["number"] for r in listed} == delivered


async def test_track_list_filter_errors(api: Api) -> None:
    answer = await api.call(
        "gettracklist", {"register_time_from": "yesterday", "page_no": 0, "package_state": 11}
    )
    assert answer["code"] == 0
    assert answer["data"]["accepted"] == []
    assert sorted(e["code"] for e in answer["data"]["errors"]) == [-18010012, -18010011, -18010011]


# --------------------------------------------------------------------------- pushes


def split_push(body: bytes) -> tuple[str, str, bytes]:
    """sign, event and the exact bytes of data, from a body built as 17TRACK builds it."""
    envelope = wire.decode_push(body)
    return envelope.sign or "", envelope.event, bytes(envelope.data)


async def test_pushes_are_signed_and_follow_the_events() -> None:
    async with pushing_sandbox() as (api, rcv):
        state = api.sandbox.state
        state.script("RR123456789CN", DELIVERED_SCRIPT, second_carrier=6051)
        await api.register("RR123456789CN", tag="order-7")
        state.advance(600)

        _, body = await rcv.next()
        sign, event, data = split_push(body)
        assert event == "TRACKING_UPDATED"
        assert sign == wire.push_signature(event, data, KEY)
        assert wire.verify_push_signature(wire.decode_push(body), KEY)
        assert not wire.verify_push_signature(wire.decode_push(body), "another-key")
        assert "电子信息已收到".encode() in data  # raw UTF-8, signed as sent
        assert body.startswith(b'{"sign":"') and body.endswith(b"}")
        update = wire.decode_push_data(event, data)
        assert isinstance(update, TrackingUpdated)
        assert (update.number, update.tag) == ("RR123456789CN", "order-7")
        assert update.track.package_status is PackageStatus.IN_TRANSIT

        state.advance(9 * HOUR)  # two events at once: one push with the latest information
        update = wire.decode_push_data("TRACKING_UPDATED", bytes((await rcv.next_push()).data))
        assert isinstance(update, TrackingUpdated)
        assert update.track.package_status is PackageStatus.DELIVERED
        assert len(update.track.second_carrier_events) == 2

        await api.accepted("push", [{"number": "RR123456789CN"}])
        again = await rcv.next_push()
        assert again.event == "TRACKING_UPDATED"
        assert wire.verify_push_signature(again, KEY)

        await api.accepted("stoptrack", [{"number": "RR123456789CN"}])
        stopped = await rcv.next_push()
        assert stopped.event == "TRACKING_STOPPED"
        assert wire.verify_push_signature(stopped, KEY)
        assert wire.decode_push_data(stopped.event, bytes(stopped.data)) == TrackingStopped(
            number="RR123456789CN", carrier=3011, tag="order-7"
        )
        assert msgspec.json.decode(bytes(stopped.data)) == {
            "number": "RR123456789CN",
            "carrier": 3011,
            "tag": "order-7",
        }
        await state.wait_for_pushes(4)
        (row,) = await api.listing()
        assert (row["ps"], row["pt"] is not None) == (200, True)
        assert await api.listing(push_state=1)
        assert [p.ok for p in state.pushes] == [True] * 4


async def test_pushes_follow_the_real_clock() -> None:
    async with pushing_sandbox(speed=3600.0) as (api, rcv):
        api.sandbox.state.script(
            "RR123456789CN", [ScriptedEvent(HOUR / 2, 10, "Item accepted", "Shenzhen")]
        )
        started = time.monotonic()
        await api.register("RR123456789CN")
        arrived, body = await rcv.next(seconds=5.0)
        assert arrived - started >= 0.45  # half a simulated hour is half a real second
        assert split_push(body)[1] == "TRACKING_UPDATED"


async def test_auto_stop_after_delivery() -> None:
    async with pushing_sandbox() as (api, rcv):
        state = api.sandbox.state
        state.script("RR123456789CN", [ScriptedEvent(HOUR, 40, "Delivered", "Paris")])
        state.script("RR223456789CN", [ScriptedEvent(HOUR, 10, "Item accepted", "Paris")])
        await api.register("RR123456789CN", "RR223456789CN")
        state.advance(HOUR)
        pushed = {(await rcv.next_push()).event for _ in range(2)}
        assert pushed == {"TRACKING_UPDATED"}

        state.advance(15 * DAY)
        stopped = await rcv.next_push()
        assert stopped.event == "TRACKING_STOPPED"
        assert msgspec.json.decode(bytes(stopped.data))["number"] == "RR123456789CN"
        rows = {r["number"]: r for r in await api.listing()}
        assert (rows["RR123456789CN"]["ts"], rows["RR123456789CN"]["sr"]) == (False, 1)
        assert rows["RR123456789CN"]["st"] == (START + timedelta(days=15, hours=1)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        assert rows["RR223456789CN"]["ts"] is True  # in transit: 30 days

        state.advance(15 * DAY)
        stopped = await rcv.next_push()
        assert msgspec.json.decode(bytes(stopped.data))["number"] == "RR223456789CN"
        assert await api.accepted("retrack", [{"number": "RR123456789CN"}])


async def test_failed_push_is_retried_after_scaled_delays_then_abandoned() -> None:
    # speed 7200: 600, 1800 and 3600 simulated seconds are 1/12, 1/4 and 1/2 real second
    async with pushing_sandbox(500, 503, 500, 500, speed=7200.0) as (api, rcv):
        state = api.sandbox.state
        state.script("RR123456789CN", [ScriptedEvent(0, 10, "Item accepted", "Shenzhen")])
        await api.register("RR123456789CN")
        attempts = [await rcv.next() for _ in range(4)]
        await state.wait_for_pushes(4)
        assert len({body for _, body in attempts}) == 1  # the same notification each time
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(attempts)]
        for gap, delay in zip(gaps, (600, 1800, 3600), strict=True):
            assert delay / 7200 * 0.9 <= gap < delay / 7200 + 1.0, gaps
        assert [(p.attempt, p.status, p.gave_up) for p in state.pushes] == [
            (0, 500, False),
            (1, 503, False),
            (2, 500, False),
            (3, 500, True),
        ]
        assert (await api.listing(push_state=2))[0]["ps"] == 500


async def test_retry_waits_for_simulated_time() -> None:
    async with pushing_sandbox(500) as (api, rcv):
        state = api.sandbox.state
        state.script("RR123456789CN", [ScriptedEvent(0, 10, "Item accepted", "Shenzhen")])
        await api.register("RR123456789CN")
        _, body = await rcv.next()
        (failed,) = await state.wait_for_pushes(1)
        assert failed.status == 500
        assert state.next_due() == state.now() + timedelta(seconds=600)  # the clock is frozen
        state.advance(600)
        _, again = await rcv.next()
        assert again == body
        await state.wait_for_pushes(2)
        assert [p.ok for p in state.pushes] == [False, True]


async def test_unreachable_receiver_is_retried() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    async with running_sandbox(config(webhook_url=url)) as running:
        state = running.state
        state.script("RR123456789CN", [ScriptedEvent(0, 10, "Item accepted")])
        state.register([{"number": "RR123456789CN"}])
        state.advance(0)  # wakes the clock, as a request would
        for count, wait in ((1, 600), (2, 1800), (3, 3600), (4, 0)):
            await state.wait_for_pushes(count)
            state.advance(wait)
        assert [(p.status, p.gave_up) for p in state.pushes] == [(None, False)] * 3 + [(None, True)]
        assert all(p.error for p in state.pushes)


async def test_no_webhook_no_push(api: Api) -> None:
    await api.register("RR123456789CN")
    api.sandbox.state.advance(5 * DAY)
    assert await api.accepted("push", [{"number": "RR123456789CN"}])
    assert api.sandbox.state.next_due() is not None  # only the auto-stop remains
    assert api.sandbox.state.pushes == []


# --------------------------------------------------------------------------- lifecycle


def clock_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "trackops-sandbox-clock"]


async def test_background_clock_stops_on_shutdown() -> None:
    async with running_sandbox(config(speed=60.0)) as running:
        assert running.base_url == f"http://127.0.0.1:{running.port}/track/v1"
        assert len(clock_tasks()) == 1
    assert clock_tasks() == []


async def test_serve_sandbox_runs_until_cancelled(http: aiohttp.ClientSession) -> None:
    port = free_port()
    task = asyncio.create_task(serve_sandbox(config(), "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}/track/v1/register"
    headers = {"17token": KEY}
    try:
        deadline = time.monotonic() + 5
        while True:  # wait for the port to open
            try:
                async with http.post(
                    url, data=b'[{"number":"RR123456789CN"}]', headers=headers
                ) as r:
                    assert r.status == 200
                    break
            except aiohttp.ClientConnectionError:
                assert time.monotonic() < deadline, "sandbox did not start"
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert clock_tasks() == []


def test_config_is_checked() -> None:
    for bad in ({"speed": -1}, {"rate_limit": 0}, {"key": ""}, {"push_retry_delays": (-1,)}):
        with pytest.raises(ValueError):
            SandboxState(config(**bad))


# --------------------------------------------------------------------------- field behaviour
# Issue 11: the sandbox behaves like the real service, so every test and the demo exercise it.


async def test_a_newly_registered_number_has_data_within_seconds_at_default_speed(
    http: aiohttp.ClientSession,
) -> None:
    """Failed before: at speed 1 a new number stayed "no tracking information" for hours."""
    async with running_sandbox(config(speed=1.0, start_time=None)) as running:
        api = Api(running, http)
        numbers = [n for n in upu(40) if _final(running, n) is not PackageStatus.NOT_FOUND][:3]
        await api.register(*numbers)
        deadline = time.monotonic() + 15.0
        while True:
            answer = await api.call("gettrackinfo", [{"number": n} for n in numbers])
            if len(answer["data"]["accepted"]) == len(numbers):
                break
            assert time.monotonic() < deadline, "no tracking data 15 s after registration"
            await asyncio.sleep(0.2)
        tracks = [a["track"] for a in answer["data"]["accepted"]]
        assert all(t["e"] == 10 and t["z1"] for t in tracks)
        registered = min(running.state.tracked(n).registered_at for n in numbers)  # type: ignore[union-attr]
        # The carrier had them first: events from before the registration.
        assert any(running.state.tracked(n).history.events[0].after < 0 for n in numbers)  # type: ignore[union-attr]
        assert all(parse_ylt(t["ylt1"]) >= registered for t in tracks)


def _final(running: RunningSandbox, number: str) -> PackageStatus:
    from trackops.core.sandbox import detect_carrier

    return generate_history(
        number, running.state.config.seed, detect_carrier(number) or 0
    ).final_status


def parse_ylt(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


async def test_the_first_lookup_finds_events_from_before_registration(api: Api) -> None:
    state = api.sandbox.state
    await api.register(*upu(30))
    found = [
        n for n in upu(30) if state.tracked(n).history.final_status is not PackageStatus.NOT_FOUND
    ]  # type: ignore[union-attr]
    assert await api.rejected("gettrackinfo", [{"number": found[0]}]) == [-18019909]
    state.advance(8)  # the first lookup, seconds later
    tracks = {
        a["number"]: a["track"]
        for a in await api.accepted("gettrackinfo", [{"number": n} for n in found])
    }
    assert set(tracks) == set(found)
    for number, track in tracks.items():
        reg = state.tracked(number)
        assert reg is not None
        early = [e for e in reg.history.events if e.after < 0]
        assert 1 <= len(early) <= 3 and len(track["z1"]) + len(track["z2"]) == len(early)


def test_some_parcels_expire_without_a_new_event() -> None:
    expired = [
        h
        for h in (generate_history(n, 7, 3011) for n in upu(80, prefix="EX"))
        if h.final_status is PackageStatus.EXPIRED
    ]
    assert len(expired) >= 3
    for history in expired:
        verdict, last_event = history.events[-1], history.events[-2]
        assert verdict.leg == 0 and verdict.description == ""
        assert verdict.after - last_event.after >= 36 * HOUR


async def test_expired_keeps_the_latest_event_and_its_hs(api: Api) -> None:
    state = api.sandbox.state
    numbers = upu(80, prefix="EX")
    await api.register(*numbers[:40])
    await api.register(*numbers[40:])
    number = next(
        n for n in numbers if state.tracked(n).history.final_status is PackageStatus.EXPIRED
    )  # type: ignore[union-attr]
    events = state.tracked(number).history.events  # type: ignore[union-attr]
    state.advance(events[-2].after + HOUR)
    before = (await api.info(number))["track"]
    state.advance(events[-1].after - events[-2].after)
    after = (await api.info(number))["track"]
    assert (before["e"], after["e"]) == (10, 20)
    assert (after["z0"], after["hs"], after["z1"]) == (before["z0"], before["hs"], before["z1"])


def _hours(track: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["a"], e["c"]) for e in track["z1"] + track["z2"]]


async def test_events_carry_each_carriers_local_time(api: Api) -> None:
    """China Post in Shanghai (UTC+8), then USPS in Los Angeles (UTC-8): local clocks."""
    from trackops.core.sandbox import _HUBS, _TOWNS

    zones = {
        p.local_name or p.name: p.zone for ps in (*_TOWNS.values(), *_HUBS.values()) for p in ps
    }
    zones |= {p.name: p.zone for ps in (*_TOWNS.values(), *_HUBS.values()) for p in ps}
    state = api.sandbox.state
    numbers = upu(40, prefix="LT")
    await api.register(*numbers)
    state.advance(5 * DAY)
    answer = await api.call("gettrackinfo", [{"number": n} for n in numbers])
    backwards = 0
    for item in answer["data"]["accepted"]:
        reg = state.tracked(item["number"])
        assert reg is not None
        carrier_events = [e for e in reg.visible(state.now()) if e.leg]
        rendered = {(e["z"], e["c"]): e["a"] for e in item["track"]["z1"] + item["track"]["z2"]}
        for event in carrier_events:
            local = reg.time_of(event) + timedelta(hours=zones[event.location])
            assert rendered[(event.description, event.location)] == local.strftime("%Y-%m-%d %H:%M")
        times = [rendered[(e.description, e.location)] for e in carrier_events]
        backwards += any(b < a for a, b in itertools.pairwise(times))
        # 17TRACK's own clock (ylt1) is one clock: UTC.
        assert parse_ylt(item["track"]["ylt1"]) == reg.due_of(reg.visible(state.now())[-1])
    # Eastward and westward flights: some later events read earlier than the one before.
    assert backwards >= 3


def test_routes_hang_together() -> None:
    """Failed before: an Australian parcel could be picked up in Chilly-Mazarin (a last-mile
    carrier's events were placed in another country than the carrier's)."""
    from trackops.core.sandbox import _book, place_country

    book = _book()
    iso_of = {code: iso for iso, code in book.country_by_iso.items()}
    checked = 0
    for seed in range(3):
        for suffix in ("AU", "CN", "FR", "US", "GB", "DE", "JP"):
            post = book.post_by_iso[suffix]
            for number in upu(15, suffix=suffix, prefix="RT"):
                for final in (None, book.post_by_iso["FR"], book.post_by_iso["AU"]):
                    history = generate_history(number, seed, post, final)
                    origin, dest = (
                        iso_of[history.origin_country],
                        iso_of[history.destination_country],
                    )
                    assert origin == suffix
                    if final is not None:
                        assert dest == iso_of[book.carriers[final]["country"]]
                    for event in history.events:
                        if event.leg == 0:
                            continue
                        where = place_country(event.location)
                        assert where is not None, event.location
                        first_leg = event.leg == 1 and (
                            history.second_carrier or event.description in _ORIGIN_TEXTS
                        )
                        assert where == (origin if first_leg else dest), (number, event)
                        checked += 1
    assert checked > 1000


_ORIGIN_TEXTS = {
    text
    for phase in ("info", "accepted", "origin_sort", "departed", "export")
    for text in __import__("trackops.core.sandbox", fromlist=["_PHASES"])._PHASES[phase][1].values()
}


async def test_undocumented_codes_on_request(http: aiohttp.ClientSession) -> None:
    async with running_sandbox(config(undocumented_codes=True)) as running:
        api = Api(running, http)
        numbers = upu(40, prefix="UC")
        await api.register(*numbers)
        state = running.state
        odd = [
            n
            for n in numbers
            if any(int(e.status) == 60 for e in state.tracked(n).history.events)  # type: ignore[union-attr]
        ]
        assert odd, "some parcels pass through code 60"
        events = state.tracked(odd[0]).history.events  # type: ignore[union-attr]
        at = next(e.after for e in events if int(e.status) == 60)
        state.advance(at + 1)
        track = (await api.info(odd[0]))["track"]
        assert track["e"] == 60 and track["z0"]["z"] == "Import clearance in progress"
        assert track["zex"] == {} and track["yt"] is None
    async with running_sandbox(config()) as plain:
        api = Api(plain, http)
        await api.register(*numbers)
        assert not any(
            int(e.status) == 60
            for n in numbers
            for e in plain.state.tracked(n).history.events  # type: ignore[union-attr]
        )


def test_the_cli_option_asks_for_undocumented_codes() -> None:
    from trackops.core.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["sandbox", "--undocumented-codes"]).undocumented_codes is True
    assert parser.parse_args(["sandbox"]).undocumented_codes is False
