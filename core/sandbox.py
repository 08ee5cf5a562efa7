"""A 17TRACK-compatible API server for demos, tests and plugin authors.

``trackops sandbox`` (and ``trackops demo``, and the test suite) run this instead of
api.17track.net: the same ``/track/v1`` endpoints, envelope, error codes, rate limit and signed
webhook pushes, with simulated parcels that travel on a simulated clock. No key, no internet.

Public API::

    create_sandbox_app(config) -> web.Application     # the aiohttp application
    running_sandbox(config, host, port=0)              # async context manager -> RunningSandbox
    serve_sandbox(config, host, port)                  # runs until cancelled (the CLI)
    SANDBOX                                            # AppKey of the app's SandboxState
    SandboxState.advance / script / tracked / track_info / fail_next / wait_for_pushes

Generated parcels behave as real ones do (DESIGN.md, "What real 17TRACK data does"): a
parcel's history starts before its registration (the sender handed it over first), so 17TRACK's
first lookup, seconds after registration, already finds events; routes hang together (sender's
town, the origin country's exchange office, the destination's, the recipient's town, each leg
in its carrier's country); every event time is its carrier's local clock with no zone (a Los
Angeles event can read earlier than the Shanghai one before it); ``hs`` is the hash of the
latest event only, so an Expired verdict (a status with no new event) keeps it; and with
``undocumented_codes`` some parcels pass through a status code the reference does not list
(60) and some fields come as ``null``, ``""`` or ``{}``.

One liberty with 17TRACK: a passed carrier is never "corrected" (it is refused with -18019910
when it is not in the carrier list).
"""

# Theory of operation
# -------------------
# All rules live in ``SandboxState`` and are plain synchronous methods over decoded JSON: each
# endpoint method (``register``, ``stop_track``, ...) takes the request body and returns the
# whole answer envelope. The aiohttp handler is thin: it checks path, method, ``17token``, the
# injected failures (``fail_next``) and the rate limit (a sliding one-second window over real
# monotonic time), then hands the body to ``SandboxState.answer``.
#
# Simulated time: ``now() = start_time + real elapsed * speed + advanced``. Every registered
# number gets a scripted history (``History``): events at fixed offsets from its registration
# (negative: before it), generated deterministically from ``(seed, number, carrier)`` or set by
# ``script()``; nothing is visible before 17TRACK's first lookup (``lookup_after`` seconds after
# registration, a few seconds for generated parcels, 0 for scripted ones). Nothing is
# stored as "current status": the tracking information answered is rendered from the events
# whose time has come (frozen at the stop time while a number is stopped), so ``advance()``
# moves every parcel at once and two sandboxes with the same seed and start time answer the
# same JSON.
#
# ``tick()`` turns time into effects: a tracked number whose visible events grew gets one
# TRACKING_UPDATED push, and a finished number is auto-stopped 15 days after delivery or 30
# days after its last event (TRACKING_STOPPED push), as the reference says. Every API call runs
# ``tick()`` first, so answers never lag the clock. Pushes wait in an outbox with a due time in
# simulated time; a failed push (not HTTP 200, or no connection) is retried after
# ``push_retry_delays`` simulated seconds (10, 30, 60 minutes by default, i.e. divided by speed
# in real time, and brought forward by ``advance()``), then abandoned.
#
# One background task per app (a ``cleanup_ctx``) runs ``tick()``, sends due pushes (bodies
# built here so that the signed ``data`` bytes are exactly the bytes sent) and sleeps until the
# next thing is due or until a request or ``advance()`` wakes it. It stops on app shutdown.

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import re
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from importlib import resources
from typing import Any, Final

import aiohttp
import msgspec
from aiohttp import web
from trackops.core.wire import (
    EVENT_TRACKING_STOPPED,
    EVENT_TRACKING_UPDATED,
    MAX_BATCH,
    NO_TIME,
    PackageStatus,
    TrackApiError,
    TrackingStatus,
    error_message,
    parse_time,
    push_signature,
    validate_number,
    validate_tag,
)

__all__ = [
    "AUTO_DETECT_CARRIERS",
    "PARAM_ERROR_CODES",
    "REQUIRED_PARAMS",
    "SANDBOX",
    "History",
    "PushAttempt",
    "Registration",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxState",
    "ScriptedEvent",
    "create_sandbox_app",
    "detect_carrier",
    "error_envelope",
    "generate_history",
    "render_track",
    "running_sandbox",
    "serve_sandbox",
    "signed_push",
]

logger = logging.getLogger(__name__)

LIST_PAGE_SIZE: Final = 40
"""Rows per ``/gettracklist`` page."""

DELIVERED_IDLE: Final = timedelta(days=15)
"""A delivered parcel is auto-stopped this long after its last event."""

IDLE: Final = timedelta(days=30)
"""Any other parcel is auto-stopped this long without a new event."""

PUSH_TIMEOUT: Final = 10.0
"""Seconds a webhook receiver has to answer one push."""

_MAX_IDLE_WAIT: Final = 1.0
_MIN_TICK: Final = 0.02
_EVENT_FMT: Final = "%Y-%m-%d %H:%M"
_TIME_FMT: Final = "%Y-%m-%d %H:%M:%S"

_UPU_RE = re.compile(r"[A-Z]{2}\d{9}([A-Z]{2})")
_UPS_RE = re.compile(r"1Z[0-9A-Z]{16}")
_USPS_RE = re.compile(r"9\d{19,21}")
_FEDEX_RE = re.compile(r"\d{12}|\d{15}")
_DHL_RE = re.compile(r"\d{10}")

DHL_EXPRESS: Final = 100001
UPS: Final = 100002
FEDEX: Final = 100003
USPS: Final = 21051

AUTO_DETECT_CARRIERS: Final = (190008, 190271, 190094, 190012, 3013)
"""Guesses for ``auto_detection`` (YunExpress, Cainiao, 4PX, Yanwen, China EMS): origin 3."""

PARAM_ERROR_CODES: Final[dict[str, int]] = {
    "DestCountry": -18010018,
    "PostalCode": -18010019,
    "PhoneNumber": -18010020,
    "ShipDate": -18010022,
}
"""The error code 17TRACK answers when a required extra param of that kind is missing."""

REQUIRED_PARAMS: Final[dict[int, tuple[str, ...]]] = {
    # The rows marked TRUE in the reference's "Additional parameters for tracking" table.
    14041: ("DestCountry",),  # PostNL
    100005: ("PostalCode",),  # GLS
    100074: ("PhoneNumber",),  # J&T Express (ID)
    100167: ("PostalCode",),  # XDP EXPRESS
    100189: ("PostalCode",),  # GLS Spain (National)
    100207: ("PostalCode",),  # GLS (Croatia)
    100271: ("PhoneNumber",),  # J&T Express (TH)
    100280: ("PostalCode",),  # GLS (HU)
    100281: ("PostalCode",),  # GLS (CZ)
    100282: ("PostalCode",),  # GLS (SK)
    100283: ("PostalCode",),  # GLS (SI)
    100284: ("PostalCode",),  # GLS (RO)
    100304: ("PostalCode",),  # Mondial Relay
    100316: ("PostalCode",),  # GLS (PT)
    100364: ("PostalCode",),  # Paack
    100384: ("PostalCode",),  # GLS (NL)
    100388: ("PhoneNumber",),  # J&T Express (MX)
    100394: ("PostalCode",),  # Pall-Ex (UK)
    100431: ("PostalCode",),  # Gebrüder Weiss (GW): postal code/city/country/shipper/consignee
    100436: ("PostalCode",),  # Nacex
    100438: ("PhoneNumber", "PostalCode"),  # Seur: either
    100456: ("PhoneNumber",),  # J&T Express (VN)
    100466: ("PostalCode",),  # Cycloon (Fietskoeriers)
    100484: ("PostalCode",),  # DX
    100522: ("PostalCode",),  # Ryder
    100524: ("PostalCode",),  # Tuffnells
    100552: ("PostalCode",),  # Postmedia Parcel Services
    100580: ("PostalCode",),  # Walkers Transport
    100594: ("PostalCode",),  # InPost (ES)
    100598: ("PostalCode",),  # InPost (PT)
    100619: ("PhoneNumber",),  # J&T Express (EG)
    100623: ("PostalCode",),  # Allied Express Transport
    100646: ("PostalCode",),  # GLS Portugal (National)
    100797: ("PostalCode",),  # J&T Express (BR): CPF/CNPJ
    100842: ("DestCountry",),  # DHL Supply Chain APAC
    100862: ("PostalCode",),  # The United Pallet Network
    100881: ("PostalCode",),  # Furdeco
    100932: ("PostalCode",),  # Instabox
    101003: ("PhoneNumber",),  # BJS Home Delivery
    101010: ("PostalCode",),  # Palletforce
    101035: ("PostalCode",),  # FleetOptics
    101038: ("PostalCode",),  # Hofmann
    101039: ("PostalCode",),  # Emons
    101040: ("PostalCode",),  # Sislógica
    101065: ("PostalCode",),  # APC Overnight
    190415: ("PhoneNumber",),  # UC Express
    190766: ("PhoneNumber",),  # SF Express(CN)
    190845: ("PhoneNumber",),  # KYE (CN)
}
"""Carriers whose ``extra_param`` is required, with the kinds of param each accepts."""

_PARAM_FORMATS: Final = {
    "DestCountry": re.compile(r"[A-Za-z]{2}(\b.*)?"),
    "PostalCode": re.compile(r"\S.*"),
    "PhoneNumber": re.compile(r"\+?[\d ]{4,}"),
    "ShipDate": re.compile(r"\d{4}[-/]\d{1,2}[-/]\d{1,2}"),
}


# --------------------------------------------------------------------------- configuration


@dataclass
class SandboxConfig:
    """How a sandbox behaves.

    ``speed`` is simulated seconds per real second (60 = one simulated minute per second; 0
    freezes the clock so that only ``advance()`` moves it). ``start_time`` is the simulated
    clock's start (naive UTC; default: now). ``push_retry_delays`` are simulated seconds, so
    in real time they are divided by ``speed``.
    """

    key: str
    webhook_url: str | None = None
    speed: float = 1.0
    seed: int = 0
    rate_limit: float = 3.0
    push_retry_delays: tuple[float, ...] = (600, 1800, 3600)
    start_time: datetime | None = None
    undocumented_codes: bool = False
    """Some generated parcels pass through status code 60 (not in the reference) and some
    fields come as ``null``, ``""`` or ``{}``, as 17TRACK has sent them."""

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        if not self.key:
            raise ValueError("sandbox key must not be empty")
        if self.speed < 0:
            raise ValueError(f"sandbox speed must be >= 0, got {self.speed!r}")
        if self.rate_limit <= 0:
            raise ValueError(f"sandbox rate_limit must be > 0, got {self.rate_limit!r}")
        if any(d < 0 for d in self.push_retry_delays):
            raise ValueError("sandbox push_retry_delays must be >= 0")


# --------------------------------------------------------------------------- carrier lists


@dataclass(frozen=True)
class _Book:
    carriers: dict[int, dict[str, Any]]
    country_by_iso: dict[str, int]
    country_names: dict[int, str]
    post_by_iso: dict[str, int]
    iso_by_country: dict[int, str]


_CARRIERS_FILE: Final = "17track-carriers.json"
_COUNTRIES_FILE: Final = "17track-countries.json"
_ASSETS: Final = {"apicarrier.all.json": _CARRIERS_FILE, "country.all.json": _COUNTRIES_FILE}


@functools.cache
def _data_bytes(name: str) -> bytes:
    return (resources.files("trackops.core") / "data" / name).read_bytes()


@functools.cache
def _book() -> _Book:
    carriers = {int(c["key"]): c for c in json.loads(_data_bytes(_CARRIERS_FILE))}
    countries = json.loads(_data_bytes(_COUNTRIES_FILE))
    by_iso = {c["iso2"]: int(c["code"]) for c in countries if c.get("iso2")}
    posts = {}
    for iso, code in by_iso.items():
        # 17TRACK numbers each national post as its country code followed by 1.
        post = carriers.get(code * 10 + 1)
        if post is not None and post.get("country") == code:
            posts[iso] = code * 10 + 1
    return _Book(
        carriers=carriers,
        country_by_iso=by_iso,
        country_names={int(c["code"]): c["name"] for c in countries},
        post_by_iso=posts,
        iso_by_country={code: iso for iso, code in by_iso.items()},
    )


def _is_postal(carrier: int) -> bool:
    """Postal operators have keys below 100000 (express and local couriers above)."""
    return 0 < carrier < 100000


def detect_carrier(number: str) -> int | None:
    """The carrier 17TRACK recognises ``number`` as belonging to ("accurate detection").

    UPU S10 numbers (``RR123456789CN``) go to the national post of the country suffix; ``1Z``
    numbers to UPS; 20-22 digits starting with 9 to USPS; 12 or 15 digits to FedEx; 10 digits to
    DHL Express. ``None`` when the format says nothing.
    """
    text = number.upper()
    upu = _UPU_RE.fullmatch(text)
    if upu:
        return _book().post_by_iso.get(upu.group(1))
    if _UPS_RE.fullmatch(text):
        return UPS
    if _USPS_RE.fullmatch(text):
        return USPS
    if _FEDEX_RE.fullmatch(text):
        return FEDEX
    if _DHL_RE.fullmatch(text):
        return DHL_EXPRESS
    return None


# --------------------------------------------------------------------------- histories


@dataclass(frozen=True)
class ScriptedEvent:
    """One step of a parcel's history, ``after`` simulated seconds from its registration.

    A negative ``after`` happened before the registration (the carrier had the parcel first).

    ``leg`` 1 is the first carrier's event set (``z1``), 2 the last-mile carrier's (``z2``; shown
    in ``z1`` when there is no last-mile carrier), 0 a change of ``status`` with no carrier
    event (17TRACK's own verdicts: Not found after the first lookup, Expired). ``time`` replaces
    the event time string (``a``), e.g. to test an unparseable time; otherwise the time is
    written in the carrier's local clock, ``zone`` hours from UTC (UTC when ``None``).
    """

    after: float
    status: PackageStatus | int
    description: str = ""
    location: str = ""
    detail: str = ""
    leg: int = 1
    time: str | None = None
    zone: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", PackageStatus(self.status))
        if self.leg not in (0, 1, 2):
            raise ValueError(f"leg must be 0, 1 or 2, got {self.leg!r}")


@dataclass(frozen=True)
class History:
    """What the carriers will report for one number: countries, languages and events."""

    origin_country: int
    destination_country: int
    second_carrier: int
    first_language: str
    second_language: str | None
    first_tracking_ms: int
    second_tracking_ms: int
    events: tuple[ScriptedEvent, ...]
    lookup_after: float = 0.0
    """Seconds after registration before 17TRACK's first lookup shows anything."""
    quirks: bool = False
    """Render some fields as ``null``, ``""`` or ``{}`` (``undocumented_codes``)."""

    @property
    def final_status(self) -> PackageStatus:
        """The status the parcel ends in (Not found for an empty history)."""
        return PackageStatus(self.events[-1].status) if self.events else PackageStatus.NOT_FOUND


_S = PackageStatus

# Phases of a parcel's journey: (status they leave the parcel in, text per language).
_PHASES: Final[dict[str, tuple[PackageStatus, dict[str, str]]]] = {
    "info": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "电子信息已收到",
            "en": "Shipping information received by the carrier",
            "fr": "Informations d'expédition reçues",
            "de": "Elektronische Sendungsdaten übermittelt",
        },
    ),
    "accepted": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "已收寄",
            "en": "Item accepted",
            "fr": "Pris en charge",
            "de": "Sendung eingeliefert",
        },
    ),
    "origin_sort": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "到达处理中心",
            "en": "Arrived at sorting center",
            "fr": "Arrivé au centre de tri",
            "de": "Im Sortierzentrum angekommen",
        },
    ),
    "departed": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "离开处理中心",
            "en": "Departed from sorting center",
            "fr": "Départ du centre de tri",
            "de": "Sortierzentrum verlassen",
        },
    ),
    "export": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "已交航空公司运输",
            "en": "Dispatched to the destination country",
            "fr": "Expédié vers le pays de destination",
            "de": "Ins Zielland versandt",
        },
    ),
    "arrived": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "到达寄达地",
            "en": "Arrived in the destination country",
            "fr": "Arrivé dans le pays de destination",
            "de": "Im Zielland angekommen",
        },
    ),
    "customs": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "海关已放行",
            "en": "Customs clearance completed",
            "fr": "Dédouané",
            "de": "Verzollung abgeschlossen",
        },
    ),
    "delivery_office": (
        _S.IN_TRANSIT,
        {
            "zh-CHS": "到达投递局",
            "en": "Arrived at delivery office",
            "fr": "Arrivé sur le site de distribution",
            "de": "In der Zustellbasis angekommen",
        },
    ),
    "out_for_delivery": (
        _S.PICK_UP,
        {
            "zh-CHS": "安排投递",
            "en": "Out for delivery",
            "fr": "En cours de livraison",
            "de": "Die Sendung wird zugestellt",
        },
    ),
    "delivered": (
        _S.DELIVERED,
        {
            "zh-CHS": "已妥投",
            "en": "Delivered",
            "fr": "Distribué",
            "de": "Zugestellt",
        },
    ),
    "pickup_ready": (
        _S.PICK_UP,
        {
            "zh-CHS": "到达自提点，请及时领取",
            "en": "Available for collection at the pick-up point",
            "fr": "Disponible en point de retrait",
            "de": "Zur Abholung in der Filiale bereit",
        },
    ),
    "failed_attempt": (
        _S.UNDELIVERED,
        {
            "zh-CHS": "投递未成功，收件人不在",
            "en": "Delivery attempted - addressee not available",
            "fr": "Destinataire absent, avis de passage déposé",
            "de": "Zustellversuch erfolglos, Empfänger nicht angetroffen",
        },
    ),
    "customs_held": (
        _S.ALERT,
        {
            "zh-CHS": "海关扣留",
            "en": "Held by customs - documents required",
            "fr": "Retenu en douane",
            "de": "Vom Zoll zurückgehalten",
        },
    ),
    "returned": (
        _S.ALERT,
        {
            "zh-CHS": "退回寄件人",
            "en": "Returned to sender",
            "fr": "Retourné à l'expéditeur",
            "de": "An den Absender zurückgeschickt",
        },
    ),
}

UNDOCUMENTED_CODE: Final = 60
"""The status code ``undocumented_codes`` parcels pass through (not in the reference's table)."""

_UNDOCUMENTED_TEXT: Final = {
    "zh-CHS": "进口清关处理中",
    "en": "Import clearance in progress",
    "fr": "Dédouanement import en cours",
    "de": "Importverzollung in Bearbeitung",
}

_ORIGIN_PHASES: Final = ("info", "accepted", "origin_sort", "departed")
_SENDER_PHASES: Final = frozenset({"info", "accepted"})
_HUB_PHASES: Final = frozenset(
    {"origin_sort", "departed", "export", "arrived", "customs", "customs_held", "returned"}
)
_LANGUAGES: Final = {"CN": "zh-CHS", "FR": "fr", "DE": "de"}
_DESTINATIONS: Final = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "AU", "JP")


@dataclass(frozen=True)
class _Place:
    name: str
    zone: float  # hours from UTC (standard time)
    local_name: str | None = None  # in the country's own script, when the carrier writes it


def _places(zone: float, *names: str) -> tuple[_Place, ...]:
    return tuple(_Place(name, zone) for name in names)


# Towns where parcels are handed over and delivered, and the exchange offices (hubs) where
# they leave or enter a country, each with its clock. A country not listed uses its name and
# UTC.
_TOWNS: Final[dict[str, tuple[_Place, ...]]] = {
    "CN": (
        _Place("Shenzhen", 8, "深圳市"),
        _Place("Yiwu", 8, "义乌市"),
        _Place("Guangzhou", 8, "广州市"),
        _Place("Hangzhou", 8, "杭州市"),
    ),
    "US": (
        _Place("NEW YORK, NY 10001", -5),
        _Place("CHICAGO, IL 60607", -6),
        _Place("DENVER, CO 80202", -7),
        _Place("LOS ANGELES, CA 90012", -8),
        _Place("SEATTLE, WA 98101", -8),
    ),
    "GB": _places(0, "London", "Manchester", "Birmingham", "Leeds"),
    "DE": _places(1, "Berlin", "Köln", "München", "Hamburg"),
    "FR": _places(1, "Paris", "Lyon", "Marseille", "Toulouse"),
    "NL": _places(1, "Amsterdam", "Utrecht", "Rotterdam"),
    "ES": _places(1, "Madrid", "Barcelona", "Valencia"),
    "IT": _places(1, "Milano", "Roma", "Torino"),
    "CA": (_Place("Toronto", -5), _Place("Montréal", -5), _Place("Vancouver", -8)),
    "AU": (_Place("Sydney", 10), _Place("Melbourne", 10), _Place("Perth", 8)),
    "JP": _places(9, "Tokyo", "Osaka", "Nagoya"),
}
_HUBS: Final[dict[str, tuple[_Place, ...]]] = {
    "CN": (_Place("Shanghai", 8, "上海市"), _Place("Beijing", 8, "北京市")),
    "US": (
        _Place("JAMAICA, NY 11430", -5),
        _Place("CHICAGO, IL 60666", -6),
        _Place("LOS ANGELES, CA 90009", -8),
    ),
    "GB": _places(0, "Heathrow Worldwide DC"),
    "DE": _places(1, "Frankfurt", "Leipzig"),
    "FR": _places(1, "Roissy CDG", "Chilly-Mazarin"),
    "NL": _places(1, "Amsterdam Schiphol"),
    "ES": _places(1, "Madrid Barajas"),
    "IT": _places(1, "Milano Malpensa"),
    "CA": (_Place("Mississauga", -5), _Place("Richmond BC", -8)),
    "AU": (_Place("Sydney Gateway", 10), _Place("Melbourne Gateway", 10)),
    "JP": _places(9, "Kawasaki", "Tokyo International"),
}


def place_country(name: str) -> str | None:
    """The ISO code of the country a generated place name is in (``None``: not one of ours)."""
    for iso, places in (*_TOWNS.items(), *_HUBS.items()):
        if any(name in (p.name, p.local_name) for p in places):
            return iso
    return None


# Final outcomes and how often each happens (weights).
_OUTCOMES: Final = (
    (_S.DELIVERED, 40),
    (_S.IN_TRANSIT, 10),
    (_S.PICK_UP, 10),
    (_S.UNDELIVERED, 10),
    (_S.ALERT, 10),
    (_S.EXPIRED, 10),
    (_S.NOT_FOUND, 10),
)

_HOUR: Final = 3600.0


def _rng(seed: int, number: str) -> random.Random:
    return random.Random(seed * 0x1_0000_0000 + zlib.crc32(number.encode()))


def _country_of(carrier: int | None) -> str | None:
    book = _book()
    entry = book.carriers.get(carrier or 0, {})
    iso = entry.get("iso2")
    return iso if iso in book.country_by_iso else None


def _phases(outcome: PackageStatus, domestic: bool, rng: random.Random) -> list[str]:
    dest_phases = ["delivery_office", "out_for_delivery", "delivered"]
    origin_phases = list(_ORIGIN_PHASES)
    if not domestic:
        origin_phases.append("export")
        dest_phases[:0] = ["arrived", "customs"]
    full = origin_phases + dest_phases
    if outcome is _S.DELIVERED:
        return full
    if outcome is _S.PICK_UP:
        return [*full[:-2], "pickup_ready"]
    if outcome is _S.UNDELIVERED:
        return [*full[:-1], "failed_attempt"]
    if outcome is _S.ALERT:
        middle = ["arrived", "customs_held"] if not domestic else ["delivery_office"]
        return [*origin_phases, *middle, "returned"]
    if outcome is _S.EXPIRED:
        return origin_phases
    return full[: rng.randint(3, len(full) - 3)]  # in transit when the carrier stops reporting


def generate_history(
    number: str,
    seed: int,
    carrier: int,
    final_carrier: int | None = None,
    *,
    undocumented_codes: bool = False,
) -> History:
    """The deterministic history of ``number`` registered with ``carrier`` under ``seed``.

    The sender hands the parcel over an hour to a day before it is registered, so 17TRACK's
    first lookup (2 to 8 seconds after registration) already shows one to three events. Then
    steps come every few simulated hours (6 to 20 hours for the flight), so at speed 3600 a
    parcel reaches its final state within about two real minutes. The route hangs together:
    the sender's town and the origin country's exchange office in the first carrier's
    country, the destination's exchange office and the recipient's town in the last-mile
    carrier's, each event in its place's local clock. The outcome is one of the seven package
    statuses, weighted towards Delivered; an Expired parcel gets its verdict with no new
    event. With ``undocumented_codes``, about one parcel in three passes through code 60.
    """
    book = _book()
    rng = _rng(seed, number)
    outcome = rng.choices([o for o, _ in _OUTCOMES], weights=[w for _, w in _OUTCOMES])[0]
    origin_iso = _country_of(carrier) or "CN"
    final_iso = _country_of(final_carrier) if final_carrier else None
    domestic = final_iso == origin_iso if final_iso else rng.random() < 0.2
    if final_iso:
        dest_iso = final_iso
    elif domestic:
        dest_iso = origin_iso
    else:
        dest_iso = rng.choice([d for d in _DESTINATIONS if d != origin_iso])
    postal = _is_postal(carrier)
    if final_carrier:
        second = final_carrier
    elif postal and not domestic:
        second = book.post_by_iso.get(dest_iso, 0)
        second = 0 if second == carrier else second
    else:
        second = 0
    lang1 = _LANGUAGES.get(origin_iso, "en") if postal else "en"
    lang2 = _LANGUAGES.get(dest_iso, "en") if second else None
    lookup = float(rng.randint(2, 8))

    def pick(table: Mapping[str, tuple[_Place, ...]], iso: str) -> _Place:
        places = table.get(iso)
        if not places:
            return _Place(book.country_names.get(book.country_by_iso[iso], iso), 0)
        return rng.choice(places)

    sender, origin_hub = pick(_TOWNS, origin_iso), pick(_HUBS, origin_iso)
    dest_hub, recipient = pick(_HUBS, dest_iso), pick(_TOWNS, dest_iso)
    if domestic:
        origin_hub = dest_hub

    if outcome is _S.NOT_FOUND:
        events: list[ScriptedEvent] = [ScriptedEvent(lookup, _S.NOT_FOUND, leg=0)]
    else:
        phases = _phases(outcome, domestic, rng)
        if undocumented_codes and not domestic and "arrived" in phases and rng.random() < 0.35:
            phases.insert(phases.index("arrived") + 1, "undocumented")
        events = []
        after = 0.0
        for i, phase in enumerate(phases):
            if i and phases[i - 1] == "export":
                after += rng.uniform(6, 20) * _HOUR  # the flight, then the arrival scan
            elif i:
                after += rng.uniform(2, 8) * _HOUR
            at_origin = phase in _ORIGIN_PHASES or phase == "export"
            leg = 1 if at_origin or not second else 2
            lang = lang1 if leg == 1 else (lang2 or "en")
            if phase == "undocumented":
                status: PackageStatus = PackageStatus(UNDOCUMENTED_CODE)
                texts: Mapping[str, str] = _UNDOCUMENTED_TEXT
            else:
                status, texts = _PHASES[phase]
            if phase in _SENDER_PHASES:
                place = sender
            elif phase in _HUB_PHASES or phase == "undocumented":
                place = origin_hub if at_origin else dest_hub
            else:
                place = recipient
            name = place.local_name if lang == "zh-CHS" and place.local_name else place.name
            events.append(
                ScriptedEvent(
                    after=round(after),
                    status=status,
                    description=texts.get(lang, texts["en"]),
                    location=name,
                    leg=leg,
                    zone=place.zone,
                )
            )
        if outcome is _S.EXPIRED:
            after += rng.uniform(36, 60) * _HOUR
            events.append(ScriptedEvent(round(after), _S.EXPIRED, leg=0))
        # The carrier had the parcel before it was registered: the first one to three events
        # happened up to a day earlier, so the first lookup already finds them.
        before = min(rng.choice((1, 1, 2, 3)), len(events) - 1) or 1
        shift = events[before - 1].after + rng.uniform(0.1, 1.0) * _HOUR
        events = [replace(e, after=round(e.after - shift)) for e in events]
    return History(
        origin_country=book.country_by_iso[origin_iso],
        destination_country=book.country_by_iso[dest_iso],
        second_carrier=second,
        first_language=lang1,
        second_language=lang2,
        first_tracking_ms=rng.randint(150, 2500),
        second_tracking_ms=rng.randint(150, 2500) if second else 0,
        events=tuple(events),
        lookup_after=lookup,
        quirks=undocumented_codes,
    )


# --------------------------------------------------------------------------- registrations


@dataclass(eq=False)
class Registration:
    """One registered number as the sandbox holds it (read it in tests, do not change it).

    ``carrier``/``final_carrier`` are ``w1``/``w2``; ``origin`` is how the carrier was chosen
    (1 detected, 2 passed, 3 guessed); times are simulated, naive UTC; ``stop_reason`` is the
    list's ``sr`` (1 expiration rules, 2 API request); ``push_state`` 0 not pushed, 1 success,
    2 failure, with ``push_status`` the last HTTP status (0 for no answer).
    """

    number: str
    carrier: int
    final_carrier: int
    origin: int
    tag: str | None
    param: str | None
    registered_at: datetime
    history: History
    active: bool = True
    stopped_at: datetime | None = None
    stop_reason: int = 0
    retracked: bool = False
    resumed_at: datetime | None = None
    carrier_changes: int = 0
    announced: int = 0
    pushed_at: datetime | None = None
    push_status: int = 0
    push_state: int = 0

    def time_of(self, event: ScriptedEvent) -> datetime:
        """The simulated time ``event`` happens (before the registration when ``after`` < 0)."""
        return self.registered_at + timedelta(seconds=event.after)

    @property
    def first_lookup(self) -> datetime:
        """When 17TRACK first looks the number up: nothing is visible before."""
        return self.registered_at + timedelta(seconds=self.history.lookup_after)

    def due_of(self, event: ScriptedEvent) -> datetime:
        """When ``event`` becomes visible: its time, or the first lookup if that is later."""
        return max(self.time_of(event), self.first_lookup)

    def visible_count(self, now: datetime, start: int = 0) -> int:
        """How many events have happened (up to the stop time while stopped); counting
        resumes from ``start``, a count known to have happened already."""
        cutoff = now if self.active or self.stopped_at is None else min(now, self.stopped_at)
        if cutoff < self.first_lookup:
            return start
        events = self.history.events
        count = start
        while count < len(events) and self.time_of(events[count]) <= cutoff:
            count += 1
        return count

    def visible(self, now: datetime) -> tuple[ScriptedEvent, ...]:
        """Events whose time has come (up to the stop time while stopped)."""
        return self.history.events[: self.visible_count(now)]

    def status(self, now: datetime) -> PackageStatus:
        """The package status (``e``) at ``now``."""
        shown = self.visible(now)
        return PackageStatus(shown[-1].status) if shown else PackageStatus.NOT_FOUND

    def last_tracked(self, now: datetime) -> datetime | None:
        """When 17TRACK last tracked something new (``tt``/``ylt1``, its own clock: UTC), or
        ``None``: the visible time of the latest visible event."""
        shown = self.visible(now)
        return self.due_of(shown[-1]) if shown else None

    def auto_stop_at(self) -> datetime:
        """When 17TRACK's expiration rules stop tracking, once every event has happened."""
        events = self.history.events
        last = self.time_of(events[-1]) if events else self.registered_at
        last = max(last, self.resumed_at or self.registered_at)
        idle = DELIVERED_IDLE if self.history.final_status is _S.DELIVERED else IDLE
        return last + idle


def _event_json(reg: Registration, event: ScriptedEvent) -> dict[str, Any]:
    if event.time is not None:
        when = event.time
    else:
        local = reg.time_of(event) + timedelta(hours=event.zone or 0)
        when = local.strftime(_EVENT_FMT)  # the carrier's clock, with no zone, as 17TRACK sends
    return {
        "a": when,
        "b": None,
        "c": event.location,
        "d": event.detail,
        "z": event.description,
    }


def _stable_hash(event: dict[str, Any] | None) -> int:
    """``hs``: a hash of the latest event and nothing else (a status-only change keeps it),
    stable across runs; 0 when there is no event."""
    if event is None:
        return 0
    parts = [str(event[k] or "") for k in ("a", "c", "d", "z")]
    return zlib.crc32("|".join(parts).encode()) & 0x7FFFFFFF


def render_track(reg: Registration, now: datetime) -> dict[str, Any] | None:
    """The ``track`` object 17TRACK would answer for ``reg`` at ``now``; ``None`` before the
    first step (gettrackinfo then answers -18019909)."""
    shown = reg.visible(now)
    if not shown:
        return None
    hist = reg.history
    w1, w2 = reg.carrier, reg.final_carrier
    z1: list[dict[str, Any]] = []
    z2: list[dict[str, Any]] = []
    latest: dict[str, Any] | None = None
    first_time: datetime | None = None
    for event in shown:
        if event.leg == 0:
            continue
        item = _event_json(reg, event)
        (z2 if event.leg == 2 and w2 else z1).append(item)
        latest = item
        first_time = first_time or reg.time_of(event)
    z1.reverse()
    z2.reverse()
    status = PackageStatus(shown[-1].status)
    tracked = reg.due_of(shown[-1]).strftime(_TIME_FMT)
    delivered = -1
    if status is _S.DELIVERED and first_time is not None:
        delivered = round((reg.time_of(shown[-1]) - first_time).total_seconds() / 86400)
    normal, not_found = int(TrackingStatus.NORMAL_TRACKING), int(TrackingStatus.NOT_FOUND)
    track = {
        "b": hist.origin_country,
        "c": hist.destination_country,
        "e": int(status),
        "f": delivered,
        "w1": w1,
        "w2": w2,
        "z1": z1,
        "z2": z2,
        "z9": [],
        "ygt1": hist.first_tracking_ms,
        "ygt2": hist.second_tracking_ms if w2 else 0,
        "ygt9": 0,
        "is1": normal if z1 else not_found,
        "is2": (normal if z2 else not_found) if w2 else 0,
        "ln1": hist.first_language if z1 else None,
        "ln2": hist.second_language if z2 else None,
        "ln9": None,
        "hs": _stable_hash(latest),
        "z0": latest,
        "ylt1": tracked,
        "ylt2": tracked if w2 else NO_TIME,
        "ylt9": NO_TIME,
        "yt": "",
        "zex": {"trN": "", "trC": 0},
    }
    if hist.quirks:
        # Shapes 17TRACK has sent for "nothing": null, "" and {} (DESIGN.md).
        track.update(yt=None, zex={}, ln9="", f="" if delivered == -1 else delivered)
        if latest is None:
            track["z0"] = {}
    return track


# --------------------------------------------------------------------------- pushes


@dataclass(frozen=True)
class _Push:
    seq: int
    event: str
    number: str
    body: bytes
    due: datetime
    attempt: int = 0


@dataclass(frozen=True)
class PushAttempt:
    """One webhook delivery attempt: ``attempt`` 0 is the first try, 1.. the retries;
    ``status`` is the receiver's HTTP status (``None`` when it could not be reached);
    ``gave_up`` marks the last failed retry."""

    at: float
    number: str
    event: str
    attempt: int
    status: int | None
    error: str | None
    gave_up: bool = False

    @property
    def ok(self) -> bool:
        """The receiver answered 200."""
        return self.status == 200


def signed_push(event: str, data: Mapping[str, Any], key: str) -> bytes:
    """A push body ``{"sign":..,"event":..,"data":..}`` signed over the exact ``data`` bytes."""
    raw = msgspec.json.encode(data)
    sign = push_signature(event, raw, key)
    return b'{"sign":"%s","event":"%s","data":%s}' % (sign.encode(), event.encode(), raw)


# --------------------------------------------------------------------------- the state


class _Reject(Exception):
    """A per-item rejection (code and filled message)."""

    def __init__(self, code: int, *args: object, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message if message is not None else error_message(code, *args)


class _Invalid(Exception):
    """A whole-request error: the envelope's ``code``."""

    def __init__(self, code: int, *args: object) -> None:
        super().__init__(code)
        self.code = code
        self.message = error_message(code, *args)


_ENDPOINTS: Final = {
    "register": "register",
    "changecarrier": "change_carrier",
    "changeinfo": "change_info",
    "stoptrack": "stop_track",
    "retrack": "retrack",
    "deletetrack": "delete_track",
    "push": "push",
    "gettrackinfo": "get_track_info",
    "gettracklist": "get_track_list",
}


def _envelope(accepted: list[Any], rejected: list[Any]) -> dict[str, Any]:
    return {"code": 0, "data": {"accepted": accepted, "rejected": rejected}}


def error_envelope(code: int, message: str | None = None) -> dict[str, Any]:
    """A whole-request error answer: ``code`` with the same code and message in ``errors``."""
    text = message if message is not None else error_message(code)
    return {"code": code, "data": {"errors": [{"code": code, "message": text}]}}


def _rejected(number: Any, exc: _Reject, carrier: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"number": number}
    if carrier is not None:
        out["carrier"] = carrier
    out["error"] = {"code": exc.code, "message": exc.message}
    return out


def _items(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
        raise _Invalid(-18010013)
    if len(body) > MAX_BATCH:
        raise _Invalid(-18010014)
    return body


def _number(item: Mapping[str, Any]) -> str:
    number = item.get("number")
    if number is None or number == "":
        raise _Reject(-18010010, "number")
    try:
        validate_number(number)
    except TrackApiError as exc:
        raise _Reject(exc.code, message=exc.message) from None
    return number


def _int(item: Mapping[str, Any], name: str) -> int | None:
    """An optional integer field; 0 and absent mean "not given"; digit strings are accepted."""
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject(-18010011, name)
    return value or None


def _str(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise _Reject(-18010011, name)
    return value


def _tag(item: Mapping[str, Any], number: str | None) -> str | None:
    tag = item.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise _Reject(-18010015, f"'{tag}'", "tag")
    try:
        validate_tag(tag, number)
    except TrackApiError as exc:
        raise _Reject(exc.code, message=exc.message) from None
    return tag


def _param_error(carrier: int, param: str | None, required: Mapping[int, Sequence[str]]) -> int:
    """0 when ``param`` satisfies ``carrier``'s required extra param, else the error code."""
    kinds = required.get(carrier)
    if not kinds:
        return 0
    text = (param or "").strip()
    if text and any(
        _PARAM_FORMATS.get(k, _PARAM_FORMATS["PostalCode"]).fullmatch(text) for k in kinds
    ):
        return 0
    return PARAM_ERROR_CODES.get(kinds[0], -18010019)


class SandboxState:
    """Everything the sandbox knows: registrations, the simulated clock, pushes and the logs.

    The endpoint methods (``register``, ``change_carrier``, ``change_info``, ``stop_track``,
    ``retrack``, ``delete_track``, ``push``, ``get_track_info``, ``get_track_list``) take the
    decoded JSON body and return the whole answer envelope; ``answer`` decodes and dispatches.
    """

    def __init__(
        self, config: SandboxConfig, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        config.check()
        self.config = config
        self.requests: list[tuple[float, str, int]] = []
        """(monotonic time, path, HTTP status) of every API request."""
        self.pushes: list[PushAttempt] = []
        """Every webhook delivery attempt, in order."""
        self.required_params: dict[int, tuple[str, ...]] = dict(REQUIRED_PARAMS)
        """Carriers whose extra param is required (tests may add rows)."""
        self._monotonic = monotonic
        self._mono_start = monotonic()
        start = config.start_time or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self._start = start.astimezone(UTC).replace(tzinfo=None) if start.tzinfo else start
        self._advanced = 0.0
        self._registrations: dict[str, Registration] = {}
        self._scripts: dict[str, dict[str, Any]] = {}
        self._outbox: list[_Push] = []
        self._push_seq = 0
        self._failures: deque[tuple[int, int | None, int | None]] = deque()
        self._window: deque[float] = deque()
        self._wakeup: asyncio.Event | None = None
        self._pushed = asyncio.Event()

    # ------------------------------------------------------------------ clock and controls

    def now(self) -> datetime:
        """The simulated time (naive UTC)."""
        elapsed = (self._monotonic() - self._mono_start) * self.config.speed + self._advanced
        return self._start + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward: events happen, auto-stops and due pushes fire."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._advanced += seconds
        self.tick()
        self._wake()

    def fail_next(
        self, status: int, count: int = 1, code: int | None = None, *, top_code: int | None = None
    ) -> None:
        """The next ``count`` API requests answer HTTP ``status`` (e.g. 429, 503), or HTTP 200
        with envelope code ``code`` (e.g. -18010003) when ``code`` is given. ``top_code``
        puts ``code`` only in ``data.errors`` under that other top-level code, as 17TRACK
        sometimes does (``{"code": 401, "data": {"errors": [{"code": -18010002, ...}]}}``)."""
        if code is None and status == 200:
            raise ValueError("fail_next(200) needs an envelope code")
        self._failures.extend([(status, code, top_code)] * count)

    def script(
        self,
        number: str,
        events: Iterable[ScriptedEvent | Mapping[str, Any]],
        *,
        origin_country: int | None = None,
        destination_country: int | None = None,
        second_carrier: int | None = None,
    ) -> None:
        """Give ``number`` this history instead of the generated one.

        Event offsets (``after``) count from the number's registration. Before registration
        the script waits for it (and outlives a delete); for a registered number it replaces
        the history at once and the events already due are pushed afresh.
        """
        steps = tuple(e if isinstance(e, ScriptedEvent) else ScriptedEvent(**e) for e in events)
        overrides: dict[str, Any] = {
            "events": tuple(sorted(steps, key=lambda e: e.after)),
            "lookup_after": 0.0,
        }
        if origin_country is not None:
            overrides["origin_country"] = origin_country
        if destination_country is not None:
            overrides["destination_country"] = destination_country
        if second_carrier is not None:
            overrides["second_carrier"] = second_carrier
        self._scripts[number] = overrides
        reg = self._registrations.get(number)
        if reg is not None:
            reg.history = replace(reg.history, **overrides)
            if second_carrier is not None:
                reg.final_carrier = second_carrier
            reg.announced = 0
            self.tick()
            self._wake()

    async def wait_for_pushes(self, count: int, seconds: float = 5.0) -> list[PushAttempt]:
        """Wait until at least ``count`` webhook delivery attempts were made; ``TimeoutError``
        after ``seconds``. For tests that need to know a push was tried."""
        async with asyncio.timeout(seconds):
            while len(self.pushes) < count:
                self._pushed.clear()
                await self._pushed.wait()
        return list(self.pushes)

    def tracked(self, number: str) -> Registration | None:
        """The registration of ``number``, or ``None`` when it is not registered."""
        return self._registrations.get(number)

    def numbers(self) -> list[str]:
        """Registered numbers in registration order."""
        return list(self._registrations)

    def track_info(self, number: str) -> dict[str, Any] | None:
        """The ``track`` object gettrackinfo would answer now (``None``: no info yet)."""
        reg = self._registrations.get(number)
        return render_track(reg, self.now()) if reg else None

    # ------------------------------------------------------------------ HTTP gate

    def gate(self, endpoint: str, method: str, token: str | None) -> tuple[int, Any] | None:
        """The early answer (HTTP status, JSON body or ``None``) for a request that does not
        reach the endpoint: 404 unknown path, 405 not POST, 401 bad key, an injected failure,
        429 over ``rate_limit`` requests in the last second. ``None``: go ahead."""
        if endpoint.lower() not in _ENDPOINTS:
            return 404, None
        if method != "POST":
            return 405, None
        if token != self.config.key:
            return 401, error_envelope(-18010002)
        if self._failures:
            status, code, top_code = self._failures.popleft()
            if code is None:
                return status, None
            answer = error_envelope(code)
            if top_code is not None:
                answer["code"] = top_code
            return status, answer
        now = self._monotonic()
        while self._window and now - self._window[0] > 1.0:
            self._window.popleft()
        if len(self._window) >= self.config.rate_limit:
            return 429, None
        self._window.append(now)
        return None

    def log_request(self, at: float, path: str, status: int) -> None:
        """Record one API request for ``requests``."""
        self.requests.append((at, path, status))

    def answer(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        """Decode ``raw`` and answer it as ``endpoint`` (any case, e.g. ``Retrack``)."""
        try:
            body = msgspec.json.decode(raw) if raw.strip() else None
        except msgspec.DecodeError:
            return error_envelope(-18010013)
        self.tick()
        handler = getattr(self, _ENDPOINTS[endpoint.lower()])
        try:
            answer: dict[str, Any] = handler(body)
        except _Invalid as exc:
            return error_envelope(exc.code, exc.message)
        self._wake()
        return answer

    # ------------------------------------------------------------------ endpoints

    def register(self, body: Any) -> dict[str, Any]:
        """``/register``: detect or check the carrier, check the extra param, start tracking."""
        accepted: list[Any] = []
        rejected: list[Any] = []
        now = self.now()
        book = _book()
        for item in _items(body):
            carrier: int | None = None
            try:
                number = _number(item)
                tag = _tag(item, number)
                carrier = _int(item, "carrier")
                final = _int(item, "final_carrier")
                param = _str(item, "extra_param")
                auto = item.get("auto_detection")
                if auto is not None and not isinstance(auto, bool):
                    raise _Reject(-18010011, "auto_detection")
                if number in self._registrations:
                    raise _Reject(-18019901, number)
                detected = detect_carrier(number)
                if carrier is not None:
                    if carrier not in book.carriers:
                        raise _Reject(-18019910, carrier)
                    chosen, origin = carrier, 1 if carrier == detected else 2
                elif detected is not None:
                    chosen, origin = detected, 1
                elif auto:
                    guesses = AUTO_DETECT_CARRIERS
                    chosen, origin = guesses[zlib.crc32(number.encode()) % len(guesses)], 3
                else:
                    raise _Reject(-18019903)
                if final is not None:
                    if final not in book.carriers:
                        raise _Reject(-18019910, final)
                    if not _is_postal(chosen):
                        raise _Reject(-18010016)
                code = _param_error(chosen, param, self.required_params)
                if code:
                    raise _Reject(code)
            except _Reject as exc:
                rejected.append(_rejected(item.get("number"), exc, carrier))
                continue
            history = generate_history(
                number,
                self.config.seed,
                chosen,
                final,
                undocumented_codes=self.config.undocumented_codes,
            )
            script = self._scripts.get(number)
            if script:
                history = replace(history, **script)
            self._registrations[number] = Registration(
                number=number,
                carrier=chosen,
                final_carrier=final or history.second_carrier,
                origin=origin,
                tag=tag,
                param=param,
                registered_at=now,
                history=history,
            )
            accepted.append({"origin": origin, "number": number, "carrier": chosen})
        self.tick()
        return _envelope(accepted, rejected)

    def change_carrier(self, body: Any) -> dict[str, Any]:
        """``/changecarrier``: change the first and/or last-mile carrier of a tracked number."""
        accepted: list[Any] = []
        rejected: list[Any] = []
        book = _book()
        for item in _items(body):
            try:
                number = _number(item)
                new = _int(item, "carrier_new")
                final_new = _int(item, "final_carrier_new")
                old = _int(item, "carrier_old")
                _int(item, "final_carrier_old")
                if new is None and final_new is None:
                    raise _Reject(-18019804)
                reg = self._registrations.get(number)
                if reg is None:
                    raise _Reject(-18019902, number)
                if old is not None and old != reg.carrier:
                    raise _Reject(-18019805, old, number)
                if not reg.active:
                    raise _Reject(-18019806)
                w1 = new or reg.carrier
                w2 = final_new if final_new is not None else reg.final_carrier
                if (w1, w2) == (reg.carrier, reg.final_carrier):
                    raise _Reject(-18019803)
                for key in (new, final_new):
                    if key is not None and key not in book.carriers:
                        raise _Reject(-18019802, key)
                if final_new is not None and not _is_postal(w1):
                    raise _Reject(-18010016)
            except _Reject as exc:
                rejected.append(_rejected(item.get("number"), exc))
                continue
            reg.carrier, reg.final_carrier = w1, w2
            reg.carrier_changes += 1
            accepted.append({"number": number, "carrier": w1})
        return _envelope(accepted, rejected)

    def change_info(self, body: Any) -> dict[str, Any]:
        """``/changeinfo`` (one object, not a list): change the tag (and the extra param)."""
        if not isinstance(body, dict):
            raise _Invalid(-18010013)
        carrier: int | None = None
        try:
            number = _number(body)
            carrier = _int(body, "carrier")
            items = body.get("items")
            if not isinstance(items, dict):
                raise _Reject(-18010010, "items")
            tag = _tag(items, number)
            param = _str(items, "param")
            if "tag" not in items and "param" not in items:
                raise _Reject(-18019811)
            reg = self._find(number, carrier)
        except _Reject as exc:
            return _envelope([], [_rejected(body.get("number"), exc, carrier)])
        if "tag" in items:
            reg.tag = tag
        if "param" in items:
            reg.param = param
        return _envelope([{"number": number, "carrier": reg.carrier}], [])

    def stop_track(self, body: Any) -> dict[str, Any]:
        """``/stoptrack``: stop tracked numbers (TRACKING_STOPPED is pushed)."""

        def stop(reg: Registration) -> None:
            if not reg.active:
                raise _Reject(-18019906)
            self._stop(reg, self.now(), reason=2)

        return self._each_number(body, stop)

    def retrack(self, body: Any) -> dict[str, Any]:
        """``/Retrack``: track a stopped number again, once."""

        def resume(reg: Registration) -> None:
            if reg.active:
                raise _Reject(-18019904)
            if reg.retracked:
                raise _Reject(-18019905)
            reg.active, reg.retracked = True, True
            reg.resumed_at, reg.stopped_at, reg.stop_reason = self.now(), None, 0

        return self._each_number(body, resume)

    def delete_track(self, body: Any) -> dict[str, Any]:
        """``/deleteTrack``: forget numbers; the carrier is required."""

        def delete(reg: Registration) -> None:
            del self._registrations[reg.number]

        return self._each_number(body, delete, carrier_required=True)

    def push(self, body: Any) -> dict[str, Any]:
        """``/push``: queue an immediate TRACKING_UPDATED push of the current information."""

        def queue(reg: Registration) -> None:
            now = self.now()
            track = render_track(reg, now)
            if track is None:
                raise _Reject(-18019909)
            self._queue_update(reg, now, track)

        return self._each_number(body, queue)

    def get_track_info(self, body: Any) -> dict[str, Any]:
        """``/gettrackinfo``: the tracking information of each number (-18019909 before any)."""
        accepted: list[Any] = []
        rejected: list[Any] = []
        now = self.now()
        for item in _items(body):
            carrier: int | None = None
            try:
                number = _number(item)
                carrier = _int(item, "carrier")
                reg = self._find(number, carrier)
                track = render_track(reg, now)
                if track is None:
                    raise _Reject(-18019909)
            except _Reject as exc:
                rejected.append(_rejected(item.get("number"), exc, carrier))
                continue
            accepted.append({"number": number, "tag": reg.tag or "", "track": track})
        return _envelope(accepted, rejected)

    def get_track_list(self, body: Any) -> dict[str, Any]:
        """``/gettracklist``: one page (40 rows) of registrations matching the filters."""
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise _Invalid(-18010013)
        errors: list[dict[str, Any]] = []

        def fail(code: int, *args: object) -> None:
            errors.append({"code": code, "message": error_message(code, *args)})

        def integer(name: str, allowed: Iterable[int] | None = None) -> int | None:
            value = body.get(name)
            if isinstance(value, bool) and name == "tracking_state":
                return int(value)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                fail(-18010011, name)
                return None
            if allowed is not None and value not in allowed:
                fail(-18010011, name)
            return value

        def moment(name: str) -> datetime | None:
            value = body.get(name)
            if value is None or value == "":
                return None
            parsed = parse_time(value) if isinstance(value, str) else None
            if parsed is None:
                fail(-18010012, name)
                return None
            if name.endswith("_to") and len(value.strip()) <= 10:
                parsed += timedelta(days=1) - timedelta(microseconds=1)  # a date: the whole day
            return parsed

        number = body.get("number")
        if number is not None and not isinstance(number, str):
            fail(-18010012, "number")
        carrier = integer("carrier")
        package_state = integer("package_state", [int(s) for s in PackageStatus])
        tracking_state = integer("tracking_state", (0, 1))
        push_state = integer("push_state", (0, 1, 2))
        page = integer("page_no")
        if page is not None and page < 1:
            fail(-18010011, "page_no")
        ranges = {
            kind: (moment(f"{kind}_time_from"), moment(f"{kind}_time_to"))
            for kind in ("register", "tracking", "push", "stop")
        }
        if errors:
            return {"code": 0, "data": {"accepted": [], "errors": errors}}

        now = self.now()
        rows = []
        for reg in self._registrations.values():
            times = {
                "register": reg.registered_at,
                "tracking": reg.last_tracked(now),
                "push": reg.pushed_at,
                "stop": None if reg.active else reg.stopped_at,
            }
            if not _in_ranges(times, ranges):
                continue
            status = reg.status(now)
            if (
                (number is not None and reg.number != number)
                or (carrier is not None and reg.carrier != carrier)
                or (package_state is not None and int(status) != package_state)
                or (tracking_state is not None and int(reg.active) != tracking_state)
                or (push_state is not None and reg.push_state != push_state)
            ):
                continue
            rows.append(_list_row(reg, now, status))
        start = ((page or 1) - 1) * LIST_PAGE_SIZE
        page_info = {
            "data_total": len(rows),
            "page_total": -(-len(rows) // LIST_PAGE_SIZE),
            "page_no": page or 1,
            "page_size": LIST_PAGE_SIZE,
        }
        return {
            "code": 0,
            "data": {"accepted": rows[start : start + LIST_PAGE_SIZE], "page": page_info},
        }

    # ------------------------------------------------------------------ helpers

    def _find(self, number: str, carrier: int | None) -> Registration:
        reg = self._registrations.get(number)
        if reg is None or (carrier is not None and carrier != reg.carrier):
            raise _Reject(-18019902, number)
        return reg

    def _each_number(
        self,
        body: Any,
        action: Callable[[Registration], None],
        *,
        carrier_required: bool = False,
    ) -> dict[str, Any]:
        accepted: list[Any] = []
        rejected: list[Any] = []
        for item in _items(body):
            carrier: int | None = None
            try:
                number = _number(item)
                carrier = _int(item, "carrier")
                if carrier_required and carrier is None:
                    raise _Reject(-18010010, "carrier")
                reg = self._find(number, carrier)
                action(reg)
            except _Reject as exc:
                rejected.append(_rejected(item.get("number"), exc, carrier))
                continue
            accepted.append({"number": number, "carrier": reg.carrier})
        return _envelope(accepted, rejected)

    def _stop(self, reg: Registration, when: datetime, *, reason: int) -> None:
        reg.active, reg.stopped_at, reg.stop_reason = False, when, reason
        data = {"number": reg.number, "carrier": reg.carrier, "tag": reg.tag or ""}
        self._queue(EVENT_TRACKING_STOPPED, reg.number, data, when)

    def _queue_update(
        self, reg: Registration, now: datetime, track: dict[str, Any] | None = None
    ) -> None:
        track = track if track is not None else render_track(reg, now)
        data = {"number": reg.number, "tag": reg.tag or "", "track": track}
        self._queue(EVENT_TRACKING_UPDATED, reg.number, data, now)

    def _queue(self, event: str, number: str, data: Mapping[str, Any], due: datetime) -> None:
        if not self.config.webhook_url:
            return
        self._push_seq += 1
        body = signed_push(event, data, self.config.key)
        self._outbox.append(_Push(self._push_seq, event, number, body, due))

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    # ------------------------------------------------------------------ time passing

    def tick(self) -> None:
        """Apply the simulated time: push new information, auto-stop finished numbers."""
        now = self.now()
        for reg in list(self._registrations.values()):
            if not reg.active:
                continue
            # announced <= events shown while active, so counting can resume from it
            shown = reg.visible_count(now, reg.announced)
            if shown > reg.announced:
                reg.announced = shown
                self._queue_update(reg, now)
            if shown == len(reg.history.events):
                stop_at = reg.auto_stop_at()
                if now >= stop_at:
                    self._stop(reg, stop_at, reason=1)

    def next_due(self) -> datetime | None:
        """The simulated time of the next event, auto-stop or push, if any."""
        candidates = [p.due for p in self._outbox]
        now = self.now()
        for reg in self._registrations.values():
            if not reg.active:
                continue
            events = reg.history.events
            shown = reg.visible_count(now, reg.announced)
            candidates.append(
                reg.due_of(events[shown]) if shown < len(events) else reg.auto_stop_at()
            )
        return min(candidates, default=None)

    def seconds_until_due(self) -> float | None:
        """Real seconds until ``next_due`` (``None``: nothing until a request or advance)."""
        due = self.next_due()
        if due is None:
            return None
        delta = (due - self.now()).total_seconds()
        if delta <= 0:
            return 0.0
        return delta / self.config.speed if self.config.speed > 0 else None

    def take_due_pushes(self) -> list[_Push]:
        """Remove and return the pushes whose time has come, oldest first."""
        now = self.now()
        due = sorted((p for p in self._outbox if p.due <= now), key=lambda p: (p.due, p.seq))
        if due:
            taken = {p.seq for p in due}
            self._outbox = [p for p in self._outbox if p.seq not in taken]
        return due

    def record_push(self, push: _Push, status: int | None, error: str | None) -> None:
        """Note a delivery attempt; schedule the next retry or give up."""
        now = self.now()
        reg = self._registrations.get(push.number)
        delays = self.config.push_retry_delays
        gave_up = status != 200 and push.attempt >= len(delays)
        self.pushes.append(
            PushAttempt(
                self._monotonic(), push.number, push.event, push.attempt, status, error, gave_up
            )
        )
        self._pushed.set()
        if reg is not None:
            reg.pushed_at, reg.push_status = now, status or 0
            reg.push_state = 1 if status == 200 else 2
        if status == 200:
            return
        if gave_up:
            logger.info("push of %s abandoned after %d attempts", push.number, push.attempt + 1)
            return
        retry = replace(
            push, attempt=push.attempt + 1, due=now + timedelta(seconds=delays[push.attempt])
        )
        self._outbox.append(retry)


def _in_ranges(
    times: Mapping[str, datetime | None],
    ranges: Mapping[str, tuple[datetime | None, datetime | None]],
) -> bool:
    for kind, (low, high) in ranges.items():
        if low is None and high is None:
            continue
        value = times[kind]
        if (
            value is None
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            return False
    return True


def _fmt(moment: datetime | None) -> str | None:
    return moment.strftime(_TIME_FMT) if moment is not None else None


def _list_row(reg: Registration, now: datetime, status: PackageStatus) -> dict[str, Any]:
    known = bool(reg.visible(now))
    return {
        "number": reg.number,
        "w1": reg.carrier,
        "b": reg.history.origin_country if known else 0,
        "w2": reg.final_carrier,
        "c": reg.history.destination_country if known else 0,
        "e": int(status),
        "rt": _fmt(reg.registered_at),
        "tt": _fmt(reg.last_tracked(now)),
        "pt": _fmt(reg.pushed_at),
        "ps": reg.push_status,
        "st": None if reg.active else _fmt(reg.stopped_at),
        "sr": 0 if reg.active else reg.stop_reason,
        "ir": not reg.active and not reg.retracked,
        "ts": reg.active,
        "mc": reg.carrier_changes,
        "tag": reg.tag,
    }


# --------------------------------------------------------------------------- the aiohttp app

SANDBOX: Final = web.AppKey("trackops_sandbox", SandboxState)
"""The app's ``SandboxState`` (``app[SANDBOX]``)."""

_JSON: Final = "application/json"


async def _api(request: web.Request) -> web.StreamResponse:
    state = request.app[SANDBOX]
    arrived = time.monotonic()
    endpoint = request.match_info["endpoint"]
    early = state.gate(endpoint, request.method, request.headers.get("17token"))
    if early is not None:
        status, body = early
        state.log_request(arrived, request.path, status)
        if body is not None:
            return web.Response(status=status, body=msgspec.json.encode(body), content_type=_JSON)
        headers = {"Allow": "POST"} if status == 405 else None
        return web.Response(status=status, text=_reason(status), headers=headers)
    answer = state.answer(endpoint, await request.read())
    state.log_request(arrived, request.path, 200)
    return web.Response(body=msgspec.json.encode(answer), content_type=_JSON, charset="utf-8")


def _reason(status: int) -> str:
    try:
        return f"{status}: {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


async def _asset(request: web.Request) -> web.Response:
    name = _ASSETS.get(request.match_info["name"])
    if name is None:
        raise web.HTTPNotFound()
    return web.Response(body=_data_bytes(name), content_type=_JSON, charset="utf-8")


async def _deliver(
    session: aiohttp.ClientSession, url: str, push: _Push
) -> tuple[int | None, str | None]:
    try:
        async with session.post(
            url, data=push.body, headers={"Content-Type": "application/json"}
        ) as response:
            await response.read()
            return response.status, None
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, f"{type(exc).__name__}: {exc}".rstrip(": ")


async def _drive(state: SandboxState) -> None:
    """Run the clock: tick, send due pushes, sleep until the next thing is due."""
    wakeup = asyncio.Event()
    state._wakeup = wakeup
    url = state.config.webhook_url
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT)
        ) as session:
            while True:
                wakeup.clear()
                try:
                    state.tick()
                    due = state.take_due_pushes()
                    for push in due:
                        status, error = await _deliver(session, url or "", push)
                        state.record_push(push, status, error)
                    if due:
                        continue
                    wait = state.seconds_until_due()
                except Exception:  # the clock must keep running: log and carry on
                    logger.exception("sandbox clock failed; continuing")
                    wait = _MAX_IDLE_WAIT
                # at least _MIN_TICK between ticks: events due together are handled together
                wait = _MAX_IDLE_WAIT if wait is None else min(wait, _MAX_IDLE_WAIT)
                wait = max(wait + 0.002, _MIN_TICK)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation
                # that stops this task when the wake-up and the cancel come together.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await wakeup.wait()
    finally:
        state._wakeup = None


async def _clock_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_drive(app[SANDBOX]), name="trackops-sandbox-clock")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _routes(app: web.Application) -> None:
    app.router.add_route("*", "/track/v1/{endpoint}", _api)
    app.router.add_get("/asset/carrier/info/{name}", _asset)


def create_sandbox_app(config: SandboxConfig) -> web.Application:
    """The sandbox as an aiohttp application: ``/track/v1/*`` and the carrier lists at
    ``/asset/carrier/info/apicarrier.all.json`` and ``country.all.json``."""
    app = web.Application()
    app[SANDBOX] = SandboxState(config)
    _routes(app)
    app.cleanup_ctx.append(_clock_ctx)
    return app


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox serving on loopback: ``base_url`` is ``http://HOST:PORT/track/v1``."""

    base_url: str
    state: SandboxState
    port: int
    host: str
    app: web.Application = field(repr=False)

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (the carrier lists are under ``/asset/carrier/info/``)."""
        return self.base_url.removesuffix("/track/v1")


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """Serve a sandbox on ``host``:``port`` (0 picks a free port) for the ``async with`` body."""
    app = create_sandbox_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield RunningSandbox(f"http://{shown}:{bound}/track/v1", app[SANDBOX], bound, host, app)
    finally:
        await runner.cleanup()


async def serve_sandbox(config: SandboxConfig, host: str, port: int) -> None:
    """Serve a sandbox until cancelled (``trackops sandbox``); prints nothing."""
    async with running_sandbox(config, host, port):
        await asyncio.Event().wait()
