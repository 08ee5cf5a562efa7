"""The store's records and the service's rows as plain data, without SQLAlchemy.

The store, the queries and the service build on these, and so does ``trackops.core.reader``,
which answers one-shot reading commands (``trackops status``, ``trackops list``) without
importing SQLAlchemy at all: its import is two thirds of such a command's time. Nothing here
reads a database; every function turns column values into rows, rows into the contract's JSON.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final, Generic, Literal, TypeVar

from trackops.core.errors import InvalidInputError
from trackops.core.wire import Event, PackageStatus, TrackInfo

__all__ = [
    "SCHEMA_VERSION",
    "CursorError",
    "HistoryRow",
    "NotificationRecord",
    "Page",
    "ShipmentDetail",
    "ShipmentQuery",
    "ShipmentRow",
    "SlimShipment",
    "SortKey",
    "TimelineEvent",
    "decode_cursor",
    "encode_cursor",
    "history_json",
    "history_row",
    "notification_record",
    "shipment_detail",
    "shipment_json",
    "shipment_row",
]

T = TypeVar("T")

SCHEMA_VERSION: Final = 10
"""The store's schema version (``trackops.core.store.MIGRATIONS`` ends with it)."""

SortKey = Literal["updated", "status", "number"]
SORT_KEYS: Final = ("updated", "status", "number")
# The natural direction of each sort: newest update first; status in code order; number A-Z.
SORT_DESCENDING: Final = {"updated": True, "status": False, "number": False}
SORT_COLUMNS: Final = {
    "updated": ("updated_at", "number"),
    "status": ("package_status", "updated_at", "number"),
    "number": ("number",),
}
"""The columns each sort orders by (and its keyset cursors hold)."""
MAX_PAGE: Final = 1000
"""The largest page a query gives."""


# --------------------------------------------------------------------------- statuses and times

STATUS_BY_CODE: Final = {int(status): status for status in PackageStatus}


def optional_status(value: int | None) -> PackageStatus | None:
    if value is None:
        return None
    status = STATUS_BY_CODE.get(value)
    return status if status is not None else PackageStatus(value)  # an undocumented code


def package_status(code: int) -> PackageStatus:
    """A status code as a ``PackageStatus``; an undocumented code kept as wire.py keeps it."""
    try:
        return PackageStatus(code)
    except ValueError:
        return PackageStatus.parse(code)  # wire.py decides how unknown codes are kept


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


# --------------------------------------------------------------------------- the contract's JSON


def shipment_json(
    row: Any, carrier_name: str, *, order: str | None, event_time: str | None
) -> dict[str, Any]:
    """The contract's shipment JSON object, from a stored shipment or the service's row (both
    carry the shipment's fields; the two name the order and the event time differently)."""
    return {
        "number": row.number,
        "carrier": row.carrier,
        "carrier_name": carrier_name,
        "status": row.status.slug,
        "status_code": int(row.status),
        "tracking": "active" if row.active else "stopped",
        "latest_event": {
            "time": event_time,
            "location": row.latest_event_location,
            "description": row.latest_event_description,
        },
        "order": order,
        "email": row.email,
        "tag": row.tag,
        "unknown_since": iso(row.unknown_since),
    }


def history_json(row: Any, *, order: str | None) -> dict[str, Any]:
    """The contract's history row JSON object, from a stored row or the service's row."""
    return {
        "id": row.id,
        "created_at": iso(row.created_at),
        "number": row.number,
        "order": order,
        "recipient": row.recipient,
        "channel": row.channel,
        "audience": row.audience,
        "condition": row.condition,
        "condition_kind": row.condition_kind,
        "from_status": row.from_status.slug if row.from_status is not None else None,
        "to_status": row.to_status.slug if row.to_status is not None else None,
        "send_status": row.send_status,
        "reason": row.reason,
    }


# --------------------------------------------------------------------------- store records


@dataclass(frozen=True)
class NotificationRecord:
    """One row of the notification history (and outbox while ``send_status`` is pending)."""

    id: int
    created_at: datetime
    number: str | None
    order_number: str | None
    audience: str
    channel: str
    recipient: str
    condition: str
    condition_kind: str
    from_status: PackageStatus | None
    to_status: PackageStatus | None
    send_status: str
    reason: str | None
    attempts: int
    sent_at: datetime | None
    next_attempt_at: datetime | None
    resend_of: int | None
    subject: str | None = None
    body: str | None = None
    event_time: str | None = None
    event_location: str | None = None
    event_description: str | None = None
    period: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The contract's history row JSON object."""
        return history_json(self, order=self.order_number)


def notification_record(values: Mapping[Any, Any]) -> NotificationRecord:
    # Mapping[Any, Any]: a row's RowMapping (keys may be columns too) or a plain dict
    return NotificationRecord(
        id=values["id"],
        created_at=values["created_at"],
        number=values["number"],
        order_number=values["order_number"],
        audience=values["audience"],
        channel=values["channel"],
        recipient=values["recipient"],
        condition=values["condition"],
        condition_kind=values["condition_kind"],
        from_status=optional_status(values["from_status"]),
        to_status=optional_status(values["to_status"]),
        send_status=values["send_status"],
        reason=values["reason"],
        attempts=values["attempts"],
        sent_at=values["sent_at"],
        next_attempt_at=values["next_attempt_at"],
        resend_of=values["resend_of"],
        subject=values.get("subject"),
        body=values.get("body"),
        event_time=values.get("event_time"),
        event_location=values.get("event_location"),
        event_description=values.get("event_description"),
        period=values.get("period"),
    )


@dataclass(frozen=True, slots=True)
class SlimShipment:
    """One shipment as a table row needs it: no tracking JSON."""

    number: str
    carrier: int | None
    status_code: int
    active: bool
    origin_country: int | None
    destination_country: int | None
    latest_event_raw: str | None
    latest_event_time: datetime | None
    latest_event_location: str | None
    latest_event_description: str | None
    updated_at: datetime
    registered_at: datetime
    tag: str | None
    order_number: str | None
    email: str | None
    unknown_since: datetime | None = None


SLIM_COLUMNS: Final = tuple(
    "package_status" if f.name == "status_code" else f.name for f in fields(SlimShipment)
)
"""The ``shipments`` columns a ``SlimShipment`` is made of, in its fields' order."""


def slim_shipment(values: Mapping[str, Any]) -> SlimShipment:
    """The slim row of ``SLIM_COLUMNS``' values (a row mapping or a dict)."""
    return SlimShipment(
        number=values["number"],
        carrier=values["carrier"],
        status_code=int(values["package_status"]),
        active=bool(values["active"]),
        origin_country=values["origin_country"],
        destination_country=values["destination_country"],
        latest_event_raw=values["latest_event_raw"],
        latest_event_time=values["latest_event_time"],
        latest_event_location=values["latest_event_location"],
        latest_event_description=values["latest_event_description"],
        updated_at=values["updated_at"],
        registered_at=values["registered_at"],
        tag=values["tag"],
        order_number=values["order_number"],
        email=values["email"],
        unknown_since=values["unknown_since"],
    )


def check_sort(sort: str) -> None:
    """``InvalidInputError`` for a sort that is not one of ``SORT_KEYS``."""
    if sort not in SORT_KEYS:
        raise InvalidInputError(f"unknown sort {sort!r}; expected one of {', '.join(SORT_KEYS)}")


def check_page_size(limit: int) -> int:
    """``limit``, or ``InvalidInputError`` when it is not 1 to ``MAX_PAGE``."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"page size must be 1 to {MAX_PAGE}, not {limit}")
    return limit


# --------------------------------------------------------------------------- cursors


class CursorError(ValueError):
    """A page cursor that this query cannot use (corrupt, or from another sort)."""


def encode_cursor(kind: str, values: Sequence[Any]) -> str:
    """An opaque cursor for a row's sort keys."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps([kind, plain], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, types: Sequence[type]) -> list[Any]:
    """The sort keys in ``cursor``; ``CursorError`` when it is not one of ``kind``'s."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_kind, values = json.loads(raw)
        if got_kind != kind or len(values) != len(types):
            raise ValueError(kind)
        out: list[Any] = []
        for value, type_ in zip(values, types, strict=True):
            if type_ is datetime:
                out.append(datetime.fromisoformat(value))
            elif not isinstance(value, type_):
                raise ValueError(value)
            else:
                out.append(value)
        return out
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CursorError(f"not a page cursor of this listing: {cursor[:40]!r}") from exc


KEY_TYPES: Final = {
    "updated": (datetime, str),
    "status": (int, datetime, str),
    "number": (str,),
}


def sort_keys(row: SlimShipment, sort: str) -> list[Any]:
    if sort == "updated":
        return [row.updated_at, row.number]
    if sort == "status":
        return [row.status_code, row.updated_at, row.number]
    return [row.number]


# --------------------------------------------------------------------------- the service's rows


@dataclass(frozen=True, slots=True)
class ShipmentRow:
    """One shipment as a table row or a list item shows it (no raw JSON)."""

    number: str
    carrier: int | None
    carrier_name: str
    status: PackageStatus
    status_code: int
    active: bool
    origin_country: str | None
    destination_country: str | None
    latest_event_time: str | None
    latest_event_location: str | None
    latest_event_description: str | None
    updated_at: datetime
    event_at: datetime | None
    registered_at: datetime
    tag: str | None
    order: str | None
    email: str | None
    unknown_since: datetime | None = None
    """When 17TRACK answered it does not know the number (-18019902); tracking then stopped."""

    @property
    def tracking(self) -> Literal["active", "stopped"]:
        """``active`` while 17TRACK tracks the number, else ``stopped``."""
        return "active" if self.active else "stopped"

    @property
    def route(self) -> str:
        """``CN -> US``; ``?`` for a country not known yet; "" when neither is."""
        if not self.origin_country and not self.destination_country:
            return ""
        return f"{self.origin_country or '?'} -> {self.destination_country or '?'}"

    def to_json(self) -> dict[str, Any]:
        """The contract's shipment JSON object."""
        return shipment_json(
            self,
            self.carrier_name,
            order=self.order,
            event_time=self.latest_event_time or iso(self.event_at),
        )


@dataclass(frozen=True)
class ShipmentQuery:
    """Which shipments, in which order. Empty fields mean "any"."""

    statuses: frozenset[int] = frozenset()
    search: str | None = None
    carrier: int | None = None
    tag: str | None = None
    active: bool | None = None
    updated_since: datetime | None = None
    sort: SortKey = "updated"
    descending: bool | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page: ``next_cursor`` is ``after=`` for the next page, ``prev_cursor`` is
    ``before=`` for the previous one; None at either end."""

    items: list[T]
    next_cursor: str | None = None
    prev_cursor: str | None = None


@dataclass(frozen=True)
class TimelineEvent:
    """One tracking event, its time as the carrier gave it (local clock, no zone)."""

    time: str | None
    at: datetime | None
    location: str | None
    description: str | None
    carrier: int | None
    carrier_name: str
    leg: Literal[1, 2]


@dataclass(frozen=True)
class HistoryRow:
    """One notification of the history."""

    id: int
    created_at: datetime
    number: str | None
    order: str | None
    recipient: str
    channel: str
    audience: str
    condition: str
    condition_kind: str
    from_status: PackageStatus | None
    to_status: PackageStatus | None
    send_status: str
    reason: str | None
    attempts: int
    sent_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The contract's history row JSON object."""
        return history_json(self, order=self.order)


@dataclass(frozen=True)
class ShipmentDetail:
    """One shipment with its whole timeline (both carriers) and its notifications."""

    shipment: ShipmentRow
    final_carrier: int | None
    final_carrier_name: str
    extra_param: str | None
    buyer_name: str | None
    registered_at: datetime
    stopped_at: datetime | None
    last_push_at: datetime | None
    events: list[TimelineEvent]
    notifications: list[HistoryRow]
    raw_status_code: int


# --------------------------------------------------------------------------- building rows

CarrierName = Callable[[int | None], str]
"""A carrier code's display name ("" for none)."""


def _country(code: int | None) -> str | None:
    from trackops.core import carriers  # the packaged list: read when a row needs it

    return (carriers.country_iso(code) or None) if code else None


def shipment_row(s: SlimShipment, carrier_name: CarrierName) -> ShipmentRow:
    """The service's row of a stored shipment."""
    return ShipmentRow(
        number=s.number,
        carrier=s.carrier,
        carrier_name=carrier_name(s.carrier),
        status=package_status(s.status_code),
        status_code=s.status_code,
        active=s.active,
        origin_country=_country(s.origin_country),
        destination_country=_country(s.destination_country),
        latest_event_time=s.latest_event_raw,
        latest_event_location=s.latest_event_location,
        latest_event_description=s.latest_event_description,
        updated_at=s.updated_at,
        event_at=s.latest_event_time,
        registered_at=s.registered_at,
        tag=s.tag,
        order=s.order_number,
        email=s.email,
        unknown_since=s.unknown_since,
    )


def history_row(r: NotificationRecord) -> HistoryRow:
    """The service's row of a stored notification."""
    return HistoryRow(
        id=r.id,
        created_at=r.created_at,
        number=r.number,
        order=r.order_number,
        recipient=r.recipient,
        channel=r.channel,
        audience=r.audience,
        condition=r.condition,
        condition_kind=r.condition_kind,
        from_status=r.from_status,
        to_status=r.to_status,
        send_status=r.send_status,
        reason=r.reason,
        attempts=r.attempts,
        sent_at=r.sent_at,
    )


def timeline(info: TrackInfo | None, carrier_name: CarrierName) -> list[TimelineEvent]:
    """Both carriers' events, newest first: the last-mile leg, then the first carrier's."""
    if info is None:
        return []

    def leg(events: Sequence[Event], carrier: int | None, n: Literal[1, 2]) -> list[Any]:
        name = carrier_name(carrier)
        return [
            TimelineEvent(
                time=e.time_raw,
                at=e.time,
                location=e.place or None,
                description=e.description,
                carrier=carrier,
                carrier_name=name,
                leg=n,
            )
            for e in events
        ]

    first = leg(info.first_carrier_events, info.first_carrier or None, 1)
    second = leg(info.second_carrier_events, info.second_carrier or None, 2)
    # Each leg is in the carrier's own order (newest first); the last-mile leg is newer.
    return second + first


def shipment_detail(
    s: SlimShipment,
    *,
    final_carrier: int | None,
    extra_param: str | None,
    buyer_name: str | None,
    stopped_at: datetime | None,
    last_push_at: datetime | None,
    info: TrackInfo | None,
    notifications: Iterable[NotificationRecord],
    carrier_name: CarrierName,
) -> ShipmentDetail:
    """The service's detail of a stored shipment: its row, timeline and notifications."""
    return ShipmentDetail(
        shipment=shipment_row(s, carrier_name),
        final_carrier=final_carrier,
        final_carrier_name=carrier_name(final_carrier),
        extra_param=extra_param,
        buyer_name=buyer_name,
        registered_at=s.registered_at,
        stopped_at=stopped_at,
        last_push_at=last_push_at,
        events=timeline(info, carrier_name),
        notifications=[history_row(n) for n in notifications],
        raw_status_code=s.status_code,
    )
