"""Plain-language wording shared by the built-in channels (email, Slack, Discord).

Not a plugin itself: the channel plugins import it so that a buyer reads the same sentence
whichever channel carries it. Everything here is pure (no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from trackops.core.carriers import country_name
from trackops.core.channels import Message
from trackops.core.wire import PackageStatus

__all__ = [
    "EventView",
    "customer_headline",
    "event_view",
    "headline",
    "order_label",
    "route",
    "seller_headline",
    "status_name",
]

_CUSTOMER: Final[dict[PackageStatus, str]] = {
    PackageStatus.NOT_FOUND: "Your {what} is waiting for its first tracking update",
    PackageStatus.IN_TRANSIT: "Your {what} is on its way",
    PackageStatus.EXPIRED: "We have had no news of your {what} for a while",
    PackageStatus.PICK_UP: "Your {what} is out for delivery",
    PackageStatus.UNDELIVERED: "Your {what} could not be delivered",
    PackageStatus.DELIVERED: "Your {what} has been delivered",
    PackageStatus.ALERT: "There is a problem with the delivery of your {what}",
}

_SELLER: Final[dict[PackageStatus, str]] = {
    PackageStatus.NOT_FOUND: "has no tracking information yet",
    PackageStatus.IN_TRANSIT: "is in transit",
    PackageStatus.EXPIRED: "has had no tracking update for a long time",
    PackageStatus.PICK_UP: "is out for delivery",
    PackageStatus.UNDELIVERED: "could not be delivered",
    PackageStatus.DELIVERED: "has been delivered",
    PackageStatus.ALERT: "needs attention",
}


@dataclass(frozen=True)
class EventView:
    """The latest event ready to show: ``time`` formatted, ``place``, ``description``."""

    time: str
    place: str
    description: str

    def __str__(self) -> str:
        parts = [p for p in (self.time, self.place, self.description) if p]
        return " · ".join(parts)


def order_label(message: Message) -> str:
    """``order 1001`` when the order number is known, else ``parcel RR123456789CN``."""
    if message.order:
        return f"order {message.order}"
    return f"parcel {message.number}" if message.number else "parcel"


def status_name(status: PackageStatus | None) -> str:
    """The status as people read it ("In transit"); ``""`` for none."""
    return status.display if status is not None else ""


def customer_headline(message: Message) -> str:
    """The buyer's subject: "Your order 1001 is out for delivery", "... has been delivered"."""
    template = _CUSTOMER.get(message.to_status) if message.to_status is not None else None
    return (template or "News about your {what}").format(what=order_label(message))


def seller_headline(message: Message) -> str:
    """The seller's subject: "Alert: shipment RR123456789CN (order 1001) needs attention"."""
    status = message.to_status
    prefix = status_name(status) or "Update"
    shipment = f"shipment {message.number}" if message.number else "a shipment"
    if message.order:
        shipment += f" (order {message.order})"
    phrase = _SELLER.get(status, "changed status") if status is not None else "changed status"
    return f"{prefix}: {shipment} {phrase}"


def headline(message: Message) -> str:
    """The one-line summary for ``message``'s audience (a report's own subject for reports)."""
    if message.audience == "report":
        return message.subject or "trackops report"
    if message.audience == "customer":
        return customer_headline(message)
    return seller_headline(message)


def event_view(message: Message) -> EventView | None:
    """The latest event of ``message`` for display, or ``None`` when there is none."""
    event = message.latest_event
    if event is None:
        return None
    parsed = event.time
    when = parsed.strftime("%Y-%m-%d %H:%M") if parsed is not None else (event.time_raw or "")
    return EventView(time=when, place=event.place, description=(event.description or "").strip())


def route(message: Message) -> str:
    """ "China → United States" from the 17TRACK country codes ("" when neither is known)."""
    origin = country_name(message.origin_country)
    destination = country_name(message.destination_country)
    if not origin and not destination:
        return ""
    return f"{origin or 'unknown'} → {destination or 'unknown'}"
