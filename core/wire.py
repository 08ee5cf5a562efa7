"""17TRACK API v1 on the wire: typed models for every request and answer.

17TRACK speaks a terse JSON (``w1``, ``z0``, ``e``, ``ylt1`` ...). This module decodes it into
structs with readable names and encodes our requests, and nothing else: no I/O, no clock.

* ``PackageStatus`` and ``TrackingStatus`` are the reference's two status tables.
* ``ERROR_MESSAGES`` is the whole error-code table; ``error_message`` fills ``{0}``/``{1}``.
* Times: event times (``a``) are kept as the raw string, because the reference warns they may
  not be valid times, plus a best-effort parsed ``datetime`` (naive, read as UTC). The
  last-tracked sentinel ``2079-01-01 00:00:00`` means "no time" and reads as ``None``.
* Webhook pushes: ``PushEnvelope.data`` is ``msgspec.Raw``, the exact bytes received, because
  the signature is computed over those bytes and not over re-serialised JSON.

Unknown fields are ignored everywhere (17TRACK adds fields); a wrong type raises ``WireError``
naming the field's path, e.g. ``Expected `int`, got `str` - at `$.data.accepted[0].carrier```.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Final, Generic, TypeVar

import msgspec
import msgspec.inspect as mi
from trackops.core.errors import TrackopsError

__all__ = [
    "ERROR_MESSAGES",
    "MAX_BATCH",
    "NO_REASON",
    "NO_TIME",
    "ApiErrorBody",
    "CarrierResult",
    "ChangeCarrierItem",
    "ChangeInfoItems",
    "ChangeInfoRequest",
    "Envelope",
    "Event",
    "NumberItem",
    "PackageStatus",
    "PushEnvelope",
    "RegisterItem",
    "RegisterResult",
    "Rejected",
    "TrackApiError",
    "TrackExtension",
    "TrackInfo",
    "TrackInfoResult",
    "TrackListData",
    "TrackListEntry",
    "TrackListEnvelope",
    "TrackListPage",
    "TrackListQuery",
    "TrackingStatus",
    "TrackingStopped",
    "TrackingUpdated",
    "WireError",
    "decode_envelope",
    "decode_push",
    "decode_push_data",
    "decode_track_info",
    "decode_track_list",
    "encode",
    "error_message",
    "errors_of",
    "parse_time",
    "push_signature",
    "validate_number",
    "validate_tag",
    "verify_push_signature",
]

MAX_BATCH: Final = 40
"""Most items one request may carry (register, gettrackinfo, stoptrack, ...)."""

NO_TIME: Final = "2079-01-01 00:00:00"
"""17TRACK's "this time is invalid" sentinel for the last-tracked times."""

log = logging.getLogger("trackops.wire")

_NUMBER_RE = re.compile(r"[A-Za-z0-9]{5,50}")


class PackageStatus(IntEnum):
    """Main package status (``e``). ``slug`` is the name used on the command line and in JSON.

    17TRACK has sent codes outside the reference's table. Such a code is kept, not refused:
    ``PackageStatus(60)`` is an *unknown* status (``is_known`` false) that compares, stores and
    encodes as 60, shows as "Unknown (60)" and has the slug ``unknown``. Iterating the class
    gives the seven documented statuses only.
    """

    NOT_FOUND = 0
    IN_TRANSIT = 10
    EXPIRED = 20
    PICK_UP = 30
    UNDELIVERED = 35
    DELIVERED = 40
    ALERT = 50

    @classmethod
    def _missing_(cls, value: object) -> PackageStatus | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = _UNKNOWN_STATUSES.get(value)
        if member is None:
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}".replace("-", "MINUS_")
            member._value_ = value
            _UNKNOWN_STATUSES[value] = member
        return member

    @property
    def is_known(self) -> bool:
        """True for the reference's seven codes, false for an undocumented one."""
        return self in _PACKAGE_DISPLAY

    @property
    def slug(self) -> str:
        """``not_found``, ``in_transit``, ... as in the contract; ``unknown`` for other codes."""
        return self.name.lower() if self in _PACKAGE_DISPLAY else "unknown"

    @property
    def display(self) -> str:
        """The reference's display name: "Not found", "In transit", ...; "Unknown (60)"."""
        return _PACKAGE_DISPLAY.get(self) or f"Unknown ({int(self)})"

    @classmethod
    def parse(cls, text: str | int) -> PackageStatus:
        """Accept a slug (``in_transit``), a display name, or a code (``10``).

        Raises ``ValueError`` naming the accepted values.
        """
        # A negative number is no code of the table: it ends in the error below either way.
        if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
            status = cls._value2member_map_.get(int(text))
            if status is not None:
                return status  # type: ignore[return-value]
        else:
            key = text.strip().lower().replace(" ", "_").replace("-", "_")
            for status in cls:
                if key == status.slug:
                    return status
        names = ", ".join(f"{s.slug} ({s.value})" for s in cls)
        raise ValueError(f"unknown package status {text!r}; expected one of: {names}")


_UNKNOWN_STATUSES: dict[int, PackageStatus] = {}
"""Undocumented codes seen so far, one member each: ``PackageStatus(60) is PackageStatus(60)``."""

_PACKAGE_DISPLAY: Final = {
    PackageStatus.NOT_FOUND: "Not found",
    PackageStatus.IN_TRANSIT: "In transit",
    PackageStatus.EXPIRED: "Expired",
    PackageStatus.PICK_UP: "Pick up",
    PackageStatus.UNDELIVERED: "Undelivered",
    PackageStatus.DELIVERED: "Delivered",
    PackageStatus.ALERT: "Alert",
}


class TrackingStatus(IntEnum):
    """A carrier's tracking status (``is1``/``is2``)."""

    UNABLE_TO_TRACK = 0
    NORMAL_TRACKING = 1
    NOT_FOUND = 2
    WEB_ERROR = 10
    PROCESS_ERROR = 11
    SERVICE_ERROR = 12
    WEB_ERROR_CACHE = 20
    PROCESS_ERROR_CACHE = 21
    SERVICE_ERROR_CACHE = 22

    @property
    def display(self) -> str:
        """The reference's display name: "Normal Tracking", "Web Error [Cache]", ..."""
        return _TRACKING_DISPLAY[self]


_TRACKING_DISPLAY: Final = {
    TrackingStatus.UNABLE_TO_TRACK: "Unable To Track",
    TrackingStatus.NORMAL_TRACKING: "Normal Tracking",
    TrackingStatus.NOT_FOUND: "Not Found",
    TrackingStatus.WEB_ERROR: "Web Error",
    TrackingStatus.PROCESS_ERROR: "Process Error",
    TrackingStatus.SERVICE_ERROR: "Service Error",
    TrackingStatus.WEB_ERROR_CACHE: "Web Error [Cache]",
    TrackingStatus.PROCESS_ERROR_CACHE: "Process Error [Cache]",
    TrackingStatus.SERVICE_ERROR_CACHE: "Service Error [Cache]",
}

ERROR_MESSAGES: Final[dict[int, str]] = {
    0: "Success",
    -18010001: "IP address is not in whitelist.",
    -18010002: "Access token is invalid.",
    -18010003: "Internal service error, please retry later.",
    -18010004: "Account is disabled.",
    -18010005: "Unauthorized access.",
    -18010010: "The field of {0} is required.",
    -18010011: "The value of {0} is invalid.",
    -18010012: "The format of {0} is invalid.",
    -18010013: "Submitted data is invalid.",
    -18010014: "Request parameter number exceeds 40.",
    -18010015: "The value {0} of field {1} is invalid.",
    -18010016: "Only postal logictics can set up the last-mile shipping methods.",
    -18010018: "The 'param' field is required for this tracking. Please provide Alpha-2 country "
    "code and postal code. Example: 'FR-12345'.",
    -18010019: "The 'param' field is required for this tracking. Please provide postal code. "
    "Example: '3078CM'.",
    -18010020: "The 'param' field is required for this tracking. Please provide phone number. "
    "Example: '8888'.",
    -18010022: "Additional information is needed to continue tracking your package. "
    "Example: '2024-01-01'.",
    -18010201: "Webhook URL is required.",
    -18010202: "Incorrect URL format of 'Webhook'.",
    -18010203: "WebHook test failed, Http status code: {0}.",
    -18010204: "Webhook URL not set, can't push data.",
    -18010205: "Incorrect IP format.",
    -18010206: "Push failed.",
    -18019901: "The tracking number {0} has been registered, don't need to repeat registration",
    -18019902: "The tracking number {0} does not register, please register first",
    -18019903: "Carrier cannot be detected.",
    -18019904: "Retrack is not allowed. You can only retrack stopped number.",
    -18019905: "Retrack is not allowed. You can only retrack each number once.",
    -18019906: "Stop tracking is not allowed. You can only stop numbers that are being tracked.",
    -18019907: "Exceeded daily request limit.",
    -18019908: "Quota is not enough for use.",
    -18019909: "No tracking information at this time.",
    -18019910: "The carrier is value {0} is not correct.",
    -18019801: "The registration information of multiple carriers with the same tracking number "
    "exists, please specify the existing carrier parameters [carrier_old].",
    -18019802: "Submitted new carrier parameter [carrier_new] {0} may be incorrect.",
    -18019803: "The parameter of the carrier requesting for change cannot be the same.",
    -18019804: "New carrier parameter [carrier_new] or [final_carrier_new] requesting for change "
    "must be specified.",
    -18019805: "The tracking number {1} for the specified carrier {0} is not registered, or the "
    "existing carrier parameter [carrier_old] is incorrect.",
    -18019806: "Change carrier for stopped tracking number is not allowed. Please activate it "
    "first before submitting a change of carrier request.",
    -18019807: "Exceeded the maximum number of carrier revisions.",
    -18019808: "The tracking result has not been returned after the latest registration or "
    "modification.Please wait for the tracking result to be returned before changing it.",
    -18019809: "The registration information of the carrier with tracking number {0} already "
    "exists and cannot be changed to a duplicate registration information.",
    -18019810: "Data that meet the update condition are not unique.",
    -18019811: "No valid data modification item.",
}

RETRYABLE_CODES: Final = frozenset({-18010003})
"""Error codes worth retrying: the service itself asks to "retry later"."""


def error_message(code: int, *args: object) -> str:
    """The reference's message for ``code`` with ``{0}``/``{1}`` filled from ``args``.

    Missing arguments leave the placeholder's neighbours readable ("The format of  is
    invalid." never happens: an absent argument is shown as ``?``). An unknown code gives
    "Unknown error code N.".
    """
    template = ERROR_MESSAGES.get(code)
    if template is None:
        return f"Unknown error code {code}."
    filled = [str(a) for a in args] + ["?"] * 2
    return template.format(*filled)


class WireError(TrackopsError, ValueError):
    """17TRACK's JSON (or a push) could not be decoded; the message names the field."""


class TrackApiError(TrackopsError):
    """An error code from 17TRACK (or the same check made locally before sending).

    ``number`` is the tracking number concerned, when there is one.
    """

    def __init__(self, code: int, message: str | None = None, number: str | None = None) -> None:
        self.code = code
        self.message = message or error_message(code)
        self.number = number
        super().__init__(f"{self.message} (code {code})")


def validate_number(number: str) -> None:
    """Raise ``TrackApiError(-18010012)`` unless ``number`` is 5-50 letters and digits."""
    if not isinstance(number, str) or not _NUMBER_RE.fullmatch(number):
        raise TrackApiError(-18010012, error_message(-18010012, f"'{number}'"), number=number)


def validate_tag(tag: str | None, number: str | None = None) -> None:
    """Raise ``TrackApiError(-18010015)`` for a tag over 100 characters."""
    if tag is not None and len(tag) > 100:
        raise TrackApiError(-18010015, error_message(-18010015, f"'{tag}'", "tag"), number=number)


def parse_time(raw: str | None) -> datetime | None:
    """Best-effort parse of a 17TRACK time string into a naive UTC ``datetime``.

    Accepts ``YYYY-MM-DD HH:MM:SS``, ``YYYY-MM-DD HH:MM``, ``YYYY-MM-DD`` and ISO forms with
    ``T``. Returns ``None`` for empty strings, the 2079 sentinel and anything unparseable.
    """
    if not raw:
        return None
    text = raw.strip()
    if text.startswith("2079-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d"):
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            return None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00:00+01:00: before datetime.min in UTC
            return None
    return parsed


# --------------------------------------------------------------------------- tracking info


class Event(msgspec.Struct, omit_defaults=True):
    """One tracking event. ``time_raw`` is exactly what 17TRACK sent; ``time`` is parsed."""

    time_raw: str | None = msgspec.field(default=None, name="a")
    location_mapping: Any = msgspec.field(default=None, name="b")
    location: str | None = msgspec.field(default=None, name="c")
    location_detail: str | None = msgspec.field(default=None, name="d")
    description: str | None = msgspec.field(default=None, name="z")

    @property
    def time(self) -> datetime | None:
        """The event time as a naive UTC datetime, or ``None`` when it is not a valid time."""
        return parse_time(self.time_raw)

    @property
    def place(self) -> str:
        """Location and its extension joined for display ("" when neither is given)."""
        return ", ".join(p for p in (self.location, self.location_detail) if p)


class TrackExtension(msgspec.Struct, omit_defaults=True):
    """``zex``: original shipping channel and number (not enabled yet at 17TRACK)."""

    original_carrier: int | None = msgspec.field(default=None, name="trC")
    original_number: str | None = msgspec.field(default=None, name="trN")


class TrackInfo(msgspec.Struct, omit_defaults=True):
    """Tracking information (``track``) with readable names for 17TRACK's terse keys."""

    package_status: PackageStatus = msgspec.field(default=PackageStatus.NOT_FOUND, name="e")
    first_carrier: int = msgspec.field(default=0, name="w1")
    second_carrier: int = msgspec.field(default=0, name="w2")
    origin_country: int | None = msgspec.field(default=None, name="b")
    destination_country: int | None = msgspec.field(default=None, name="c")
    latest_event: Event | None = msgspec.field(default=None, name="z0")
    first_carrier_events: list[Event] = msgspec.field(default_factory=list, name="z1")
    second_carrier_events: list[Event] = msgspec.field(default_factory=list, name="z2")
    ecommerce_events: list[Event] = msgspec.field(default_factory=list, name="z9")
    first_tracking_ms: int | None = msgspec.field(default=None, name="ygt1")
    second_tracking_ms: int | None = msgspec.field(default=None, name="ygt2")
    ecommerce_tracking_ms: int | None = msgspec.field(default=None, name="ygt9")
    first_last_tracked_raw: str | None = msgspec.field(default=None, name="ylt1")
    second_last_tracked_raw: str | None = msgspec.field(default=None, name="ylt2")
    ecommerce_last_tracked_raw: str | None = msgspec.field(default=None, name="ylt9")
    first_tracking_status: int | None = msgspec.field(default=None, name="is1")
    second_tracking_status: int | None = msgspec.field(default=None, name="is2")
    first_language: str | None = msgspec.field(default=None, name="ln1")
    second_language: str | None = msgspec.field(default=None, name="ln2")
    ecommerce_language: str | None = msgspec.field(default=None, name="ln9")
    hash: int | None = msgspec.field(default=None, name="hs")
    delivery_time: int | str | None = msgspec.field(default=None, name="f")
    prompt: str | None = msgspec.field(default=None, name="yt")
    extension: TrackExtension | None = msgspec.field(default=None, name="zex")

    @property
    def first_last_tracked(self) -> datetime | None:
        """``ylt1`` parsed; ``None`` for the 2079 sentinel."""
        return parse_time(self.first_last_tracked_raw)

    @property
    def second_last_tracked(self) -> datetime | None:
        """``ylt2`` parsed; ``None`` for the 2079 sentinel."""
        return parse_time(self.second_last_tracked_raw)

    @property
    def ecommerce_last_tracked(self) -> datetime | None:
        """``ylt9`` parsed; ``None`` for the 2079 sentinel."""
        return parse_time(self.ecommerce_last_tracked_raw)

    @property
    def last_tracked(self) -> datetime | None:
        """The most recent valid last-tracked time of any carrier, or ``None``."""
        times = [
            t
            for t in (
                self.first_last_tracked,
                self.second_last_tracked,
                self.ecommerce_last_tracked,
            )
            if t is not None
        ]
        return max(times) if times else None

    @property
    def all_events(self) -> list[Event]:
        """Every event of every carrier, newest first (unparseable times last)."""
        events = [*self.first_carrier_events, *self.second_carrier_events, *self.ecommerce_events]
        return sorted(events, key=lambda e: e.time or datetime.min, reverse=True)


# --------------------------------------------------------------------------- requests


class RegisterItem(msgspec.Struct, omit_defaults=True):
    """One item of ``/register``."""

    number: str
    carrier: int | None = None
    final_carrier: int | None = None
    auto_detection: bool | None = None
    tag: str | None = None
    extra_param: str | None = None


class NumberItem(msgspec.Struct, omit_defaults=True):
    """One item of ``/stoptrack``, ``/retrack``, ``/gettrackinfo``, ``/push``, ``/deleteTrack``."""

    number: str
    carrier: int | None = None


class ChangeCarrierItem(msgspec.Struct, omit_defaults=True):
    """One item of ``/changecarrier``."""

    number: str
    carrier_new: int | None = None
    carrier_old: int | None = None
    final_carrier_old: int | None = None
    final_carrier_new: int | None = None


class ChangeInfoItems(msgspec.Struct, omit_defaults=True):
    """``items`` of ``/changeinfo``: only ``tag`` is applied by 17TRACK today."""

    tag: str | None = None
    param: str | None = None


class ChangeInfoRequest(msgspec.Struct, omit_defaults=True):
    """The body of ``/changeinfo`` (one object, not a list)."""

    number: str
    items: ChangeInfoItems
    carrier: int | None = None


class TrackListQuery(msgspec.Struct, omit_defaults=True):
    """The body of ``/gettracklist``: every filter optional; times are UTC strings."""

    number: str | None = None
    carrier: int | None = None
    register_time_from: str | None = None
    register_time_to: str | None = None
    tracking_time_from: str | None = None
    tracking_time_to: str | None = None
    push_time_from: str | None = None
    push_time_to: str | None = None
    push_state: int | None = None
    stop_time_from: str | None = None
    stop_time_to: str | None = None
    package_state: int | None = None
    tracking_state: int | None = None
    page_no: int | None = None


# --------------------------------------------------------------------------- answers


class ApiErrorBody(msgspec.Struct):
    """``error`` of a rejected item."""

    code: int
    message: str = ""


NO_REASON: Final = "rejected by 17TRACK without an error code"
"""The message of a rejected item whose ``error`` came as ``null``, ``{}`` or without a code."""


def _no_reason() -> ApiErrorBody:
    return ApiErrorBody(code=0, message=NO_REASON)


class Rejected(msgspec.Struct, omit_defaults=True):
    """A rejected item: the number (and carrier, when echoed) with 17TRACK's error.

    An item whose ``error`` is missing or unusable is still a refusal of its number: it is
    kept, with code 0 and ``NO_REASON``, so the number is reported instead of vanishing."""

    error: ApiErrorBody = msgspec.field(default_factory=_no_reason)
    number: str | None = None
    carrier: int | None = None


class RegisterResult(msgspec.Struct, omit_defaults=True):
    """An accepted ``/register`` item: the carrier 17TRACK chose and how it chose it.

    ``origin``: 1 accurate detection, 2 carrier passed by the user, 3 automatic detection.
    """

    number: str
    carrier: int | None = None
    origin: int | None = None


class CarrierResult(msgspec.Struct, omit_defaults=True):
    """An accepted item of changecarrier, changeinfo, stoptrack, retrack, deleteTrack, push."""

    number: str
    carrier: int | None = None


class TrackInfoResult(msgspec.Struct, omit_defaults=True):
    """An accepted ``/gettrackinfo`` item."""

    number: str
    track: TrackInfo | None = None
    tag: str | None = None
    carrier: int | None = None


class TrackListEntry(msgspec.Struct, omit_defaults=True):
    """One ``/gettracklist`` row."""

    number: str
    first_carrier: int | None = msgspec.field(default=None, name="w1")
    second_carrier: int | None = msgspec.field(default=None, name="w2")
    origin_country: int | None = msgspec.field(default=None, name="b")
    destination_country: int | None = msgspec.field(default=None, name="c")
    package_status: int | None = msgspec.field(default=None, name="e")
    register_time: str | None = msgspec.field(default=None, name="rt")
    tracked_time: str | None = msgspec.field(default=None, name="tt")
    pushed_time: str | None = msgspec.field(default=None, name="pt")
    push_http_status: int | None = msgspec.field(default=None, name="ps")
    stopped_time: str | None = msgspec.field(default=None, name="st")
    stop_reason: int | None = msgspec.field(default=None, name="sr")
    retrack_enabled: bool | int | None = msgspec.field(default=None, name="ir")
    tracking: bool | int | None = msgspec.field(default=None, name="ts")
    carrier_changes: int | None = msgspec.field(default=None, name="mc")
    tag: str | None = None


T = TypeVar("T")


class BatchData(msgspec.Struct, Generic[T], omit_defaults=True):
    """``data``: what was accepted and what was rejected."""

    accepted: list[T] = msgspec.field(default_factory=list)
    rejected: list[Rejected] = msgspec.field(default_factory=list)
    errors: Any = None


class Envelope(msgspec.Struct, Generic[T], omit_defaults=True):
    """Every answer: ``code`` (0 = no error) and ``data``."""

    code: int = 0
    data: BatchData[T] | None = None

    def api_error(self) -> TrackApiError | None:
        """The error this answer reports, or ``None`` for code 0.

        17TRACK sometimes puts the real code inside ``data.errors`` under another top-level
        code (``{"code": 401, "data": {"errors": [{"code": -18010002, ...}]}}``): a top-level
        code that is not in the reference's table then yields to the first code found there.
        """
        if self.code == 0:
            return None
        errors = errors_of(self.data.errors if self.data is not None else None)
        code = self.code
        if code not in ERROR_MESSAGES and errors:
            code = errors[0][0]
        message = next((m for c, m in errors if c == code and m), None)
        return TrackApiError(code, message or error_message(code))


def errors_of(errors: Any) -> list[tuple[int, str]]:
    """``data.errors`` as (code, message) pairs, whatever shape 17TRACK used.

    A list of ``{"code", "message"}`` objects or one such object; a code sent as a string of
    digits is read as the number it spells; anything else is skipped.
    """
    if not errors:
        return []
    items = errors if isinstance(errors, list) else [errors]
    out: list[tuple[int, str]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        code = _as_int(item.get("code"))
        if code is None:
            continue
        message = item.get("message")
        out.append((code, message if isinstance(message, str) else ""))
    return out


class TrackListPage(msgspec.Struct, omit_defaults=True):
    """``data.page`` of ``/gettracklist``: where this page sits among all matching rows."""

    data_total: int | None = None
    page_total: int | None = None
    page_no: int | None = None
    page_size: int | None = None


class TrackListData(msgspec.Struct, omit_defaults=True):
    """``data`` of ``/gettracklist``: one page of rows, the page object and filter errors."""

    accepted: list[TrackListEntry] = msgspec.field(default_factory=list)
    page: TrackListPage | None = None
    errors: Any = None


class TrackListEnvelope(msgspec.Struct, omit_defaults=True):
    """The whole ``/gettracklist`` answer."""

    code: int = 0
    data: TrackListData | None = None

    def api_error(self) -> TrackApiError | None:
        """As ``Envelope.api_error``, filter errors in ``data.errors`` included."""
        errors = errors_of(self.data.errors if self.data is not None else None)
        if self.code == 0 and not errors:
            return None
        code = self.code if self.code in ERROR_MESSAGES and self.code != 0 else None
        if code is None:
            code = errors[0][0] if errors else self.code
        message = next((m for c, m in errors if c == code and m), None)
        return TrackApiError(code, message or error_message(code))


# --------------------------------------------------------------------------- tolerant decoding
#
# 17TRACK sends ``null``, ``""`` and ``{}`` where the reference promises a number, a list or an
# object, digits in strings, and codes outside its tables. Decoding is strict and fast first;
# only an answer that fails the strict pass is read again leniently, field by field against
# the declared types: an empty value takes the field's default, digits become numbers, numbers
# become strings, an item missing a required field (an accepted row without ``number``) is left
# out, and every value that could not be used is named (``$.w1 = 'DHL'``) in one WARNING log
# line. One odd field therefore never costs the rest of an answer, a push or a batch of 40.

_DROP: Final = object()
_INT_TEXT = re.compile(r"\s*-?\d+\s*")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    return None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | dict | list) and not value)


def _lenient(value: Any, kind: mi.Type, path: str, dropped: list[str]) -> Any:
    """``value`` made to fit ``kind`` as far as sensible, else ``_DROP`` (noted in ``dropped``)."""
    if isinstance(kind, mi.AnyType | mi.RawType):
        return value
    if isinstance(kind, mi.UnionType):
        allows_none = any(isinstance(t, mi.NoneType) for t in kind.types)
        if value is None and allows_none:
            return None
        scratch: list[str] = []
        for sub in kind.types:
            if isinstance(sub, mi.NoneType):
                continue
            fitted = _lenient(value, sub, path, scratch)
            if fitted is not _DROP:
                dropped.extend(scratch)
                return fitted
        if allows_none:
            if not _empty(value):
                dropped.append(f"{path} = {value!r:.40}")
            return None
        dropped.extend(scratch)
        return _DROP
    fitted = _fit(value, kind, path, dropped)
    if fitted is _DROP and not _empty(value) and not isinstance(kind, mi.StructType):
        dropped.append(f"{path} = {value!r:.40}")
    return fitted


def _fit(value: Any, kind: mi.Type, path: str, dropped: list[str]) -> Any:
    if isinstance(kind, mi.StrType):
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return _DROP
    if isinstance(kind, mi.IntType | mi.EnumType):
        number = _as_int(value)
        return _DROP if number is None else number
    if isinstance(kind, mi.FloatType):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        return _DROP
    if isinstance(kind, mi.BoolType):
        if isinstance(value, bool):
            return value
        return value == 1 if value in (0, 1) else _DROP
    if isinstance(kind, mi.NoneType):
        return None if value is None else _DROP
    if isinstance(kind, mi.ListType):
        if not isinstance(value, list):
            return _DROP
        items = (_lenient(v, kind.item_type, f"{path}[{i}]", dropped) for i, v in enumerate(value))
        return [item for item in items if item is not _DROP]
    if isinstance(kind, mi.DictType):
        return value if isinstance(value, dict) else _DROP
    if isinstance(kind, mi.StructType):
        if not isinstance(value, dict):
            if not _empty(value):
                dropped.append(f"{path} = {value!r:.40}")
            return _DROP
        out: dict[str, Any] = {}
        for field in kind.fields:
            if field.encode_name not in value:
                if field.required:
                    dropped.append(f"{path} (no {field.encode_name!r})")
                    return _DROP
                continue
            fitted = _lenient(
                value[field.encode_name], field.type, f"{path}.{field.encode_name}", dropped
            )
            if fitted is not _DROP:
                out[field.encode_name] = fitted
            elif field.required:
                return _DROP
        return out
    return _DROP


def _decode_leniently(body: bytes | str, target: Any, what: str) -> Any:
    """Read ``body`` into ``target`` field by field (see above); ``WireError`` if not JSON."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"{what} could not be read: {exc}") from None
    kind = _type_infos.get(target)
    if kind is None:
        kind = _type_infos[target] = mi.type_info(target)
    dropped: list[str] = []
    try:
        fitted = _lenient(raw, kind, "$", dropped)
    except RecursionError:
        raise WireError(f"{what} could not be read: nested too deeply") from None
    if fitted is _DROP:
        raise WireError(f"{what} could not be read: expected a JSON object")
    if dropped:
        log.warning(
            "%s: unusable values left out (defaults kept): %s", what, "; ".join(dropped[:20])
        )
    try:
        return msgspec.convert(fitted, target)
    except msgspec.ValidationError as exc:  # pragma: no cover - _lenient fits every type
        raise WireError(f"{what} could not be read: {exc}") from None


_type_infos: dict[Any, mi.Type] = {}
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode_envelope(body: bytes | str, item: type[T]) -> Envelope[T]:
    """Decode an API answer whose accepted items are ``item``.

    ``WireError`` only when the body is not a JSON object; odd fields are tolerated (see
    "tolerant decoding").
    """
    decoder = _decoders.get(item)
    if decoder is None:
        decoder = _decoders[item] = msgspec.json.Decoder(Envelope[item])  # type: ignore[valid-type]
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        return _decode_leniently(body, Envelope[item], "17TRACK answer")  # type: ignore[valid-type]
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"17TRACK answer could not be read: {exc}") from None


_track_list_decoder = msgspec.json.Decoder(TrackListEnvelope)


def decode_track_list(body: bytes | str) -> TrackListEnvelope:
    """Decode a ``/gettracklist`` answer (rows, ``page`` and ``errors``), tolerantly."""
    try:
        return _track_list_decoder.decode(body)
    except msgspec.ValidationError:
        return _decode_leniently(body, TrackListEnvelope, "17TRACK track list")
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"17TRACK track list could not be read: {exc}") from None


_track_info_decoder = msgspec.json.Decoder(TrackInfo)


def decode_track_info(body: bytes | str) -> TrackInfo:
    """Decode a bare ``track`` object (as stored), tolerating odd fields.

    ``WireError`` only when the body is not a JSON object.
    """
    try:
        return _track_info_decoder.decode(body)
    except msgspec.ValidationError:
        return _decode_leniently(body, TrackInfo, "tracking information")
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"tracking information could not be read: {exc}") from None


_encoder = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    """Encode a request (or any model) as compact JSON with 17TRACK's field names."""
    return _encoder.encode(obj)


# --------------------------------------------------------------------------- webhook pushes

EVENT_TRACKING_UPDATED: Final = "TRACKING_UPDATED"
EVENT_TRACKING_STOPPED: Final = "TRACKING_STOPPED"


class PushEnvelope(msgspec.Struct):
    """A webhook push as received. ``data`` holds the exact bytes of the ``data`` value."""

    event: str
    data: msgspec.Raw
    sign: str | None = None


class TrackingUpdated(msgspec.Struct, omit_defaults=True):
    """``data`` of TRACKING_UPDATED: the number with its latest tracking information."""

    number: str
    track: TrackInfo
    tag: str | None = None
    carrier: int | None = None


class TrackingStopped(msgspec.Struct, omit_defaults=True):
    """``data`` of TRACKING_STOPPED: the number 17TRACK no longer tracks."""

    number: str
    carrier: int | None = None
    tag: str | None = None


_push_decoder = msgspec.json.Decoder(PushEnvelope)
_updated_decoder = msgspec.json.Decoder(TrackingUpdated)
_stopped_decoder = msgspec.json.Decoder(TrackingStopped)


def decode_push(body: bytes) -> PushEnvelope:
    """Decode the push envelope; ``WireError`` unless it is a JSON object with event and data."""
    try:
        envelope = _push_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"push body is not a 17TRACK push envelope: {exc}") from None
    # ``data`` is required (msgspec refuses a body without it) and Raw holds exactly the value's
    # bytes, never padded: ``null`` is the one empty value to refuse here.
    if bytes(envelope.data) == b"null":
        raise WireError("push body is not a 17TRACK push envelope: `data` is null")
    return envelope


def decode_push_data(event: str, data: bytes) -> TrackingUpdated | TrackingStopped | None:
    """Decode ``data`` of a push by its event; ``None`` for an event type we do not know.

    Odd fields are tolerated (see "tolerant decoding"); ``WireError`` when ``data`` is not a
    JSON object or has no usable ``number``. A ``track`` that is ``null``, ``""`` or ``{}``
    reads as empty tracking information.
    """
    if event == EVENT_TRACKING_UPDATED:
        decoder: msgspec.json.Decoder[Any] = _updated_decoder
    elif event == EVENT_TRACKING_STOPPED:
        decoder = _stopped_decoder
    else:
        return None
    try:
        return decoder.decode(data)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"{event} push data could not be read: {exc}") from None
    decoded = _decode_leniently(data, _LenientPush, f"{event} push data")
    if not decoded.number:
        raise WireError(f"{event} push data could not be read: no tracking number")
    if event == EVENT_TRACKING_STOPPED:
        return TrackingStopped(number=decoded.number, carrier=decoded.carrier, tag=decoded.tag)
    return TrackingUpdated(
        number=decoded.number, track=decoded.track or TrackInfo(), tag=decoded.tag,
        carrier=decoded.carrier,
    )  # fmt: skip


class _LenientPush(msgspec.Struct):
    """Either push's ``data`` with every field optional, for the tolerant pass."""

    number: str = ""
    track: TrackInfo | None = None
    tag: str | None = None
    carrier: int | None = None


def push_signature(event: str, data: bytes, key: str) -> str:
    """``sha256(event + "/" + data + "/" + key)`` in lowercase hex, ``data`` as raw bytes."""
    digest = hashlib.sha256()
    digest.update(event.encode())
    digest.update(b"/")
    digest.update(bytes(data))
    digest.update(b"/")
    digest.update(key.encode())
    return digest.hexdigest()


def verify_push_signature(envelope: PushEnvelope, key: str) -> bool:
    """True when ``envelope.sign`` matches; compared in constant time."""
    if not envelope.sign:
        return False
    expected = push_signature(envelope.event, bytes(envelope.data), key)
    # As bytes: compare_digest refuses a str with non-ASCII characters (TypeError).
    given = envelope.sign.strip().lower().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode(), given)
