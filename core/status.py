"""The shipment state machine: a stored state plus a new ``TrackInfo`` give a ``Transition``.

Pure: no I/O and no clock (``now`` is an argument), so every rule is tested with exact times.
"""

# Theory of operation
# -------------------
# Everything that affects the state machine lives here (as in h11's ``_state.py``): no other
# module re-derives whether an update is a first sync, a change, stale, a duplicate or out of
# order. The engine calls ``decide`` for every update (sync or push), stores ``next_state`` when
# ``transition.applies``, and hands the transition to the rules, which send nothing unless
# ``transition.notifies``.
#
# A shipment's state is its main package status (17TRACK's ``e``), the time of its latest event
# (``z0``), 17TRACK's content hash (``hs``) and whether tracking data was ever applied
# (``synced``). A newly registered shipment is Not found and unsynced.
#
# For one update:
#
# * First sync: nothing was ever applied (no stored state, or ``synced`` is false). The old
#   status is Not found whatever was stored, so a first sync showing In transit is a change
#   from Not found, and a first sync showing Not found is no change.
# * Duplicate: the same content again (synced, and ``hs`` equal to the stored ``hs``). 17TRACK
#   retries pushes after 10, 30 and 60 minutes; a duplicate is neither applied nor notified.
# * Out of order: the update's latest event (``z0``) is strictly older than the stored one; it
#   would move the shipment back, so it is neither applied nor notified. Only real ``z0`` event
#   times are compared: when either time is unknown (missing or unparseable) the update is not
#   out of order. An equal time with a different hash applies (17TRACK revised the data).
# * Applies = not a duplicate and not out of order: the new state replaces the stored one.
# * Notifies = applies, the main status changed, not stale, and not a first sync that is
#   already Delivered. These are the notification rules of 17TRACK, to the letter:
#   "triggered only when the main logistics status of a package changes", "not ... [when] the
#   latest logistics tracking time is more than 7 days from the current time", "not ... [when]
#   its first captured status is Delivered". They hold for every condition, default or custom.
# * Stale: ``now - event_time > stale_after`` (strictly more: exactly 7 days is not stale).
#   ``event_time`` is the latest event's time (``z0``); when ``z0`` is missing or its time
#   cannot be parsed (the reference warns event times may be invalid) it falls back to the
#   most recent last-tracked time (``ylt1``/``ylt2``/``ylt9``; the 2079-01-01 sentinel means
#   no time). With neither, the update is not stale: we cannot show the information is old,
#   and the rules' purpose is to stop old news, not to drop news whose age is unknown. Times
#   are naive and read as UTC.
#
# TRACKING_STOPPED pushes change only the tracking state (active/stopped), never the package
# status: they do not go through ``decide`` and never cause a status notification.

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from trackops.core.wire import PackageStatus, TrackInfo

__all__ = ["StoredState", "Transition", "decide", "event_time_of", "next_state"]

_NOT_FOUND = PackageStatus.NOT_FOUND
_DELIVERED = PackageStatus.DELIVERED


@dataclass(frozen=True)
class StoredState:
    """What the store remembers of a shipment between updates.

    ``latest_event_time`` is the time of the latest event (``z0``) as naive UTC; ``synced`` is
    false until the first tracking data was applied.
    """

    package_status: PackageStatus
    latest_event_time: datetime | None
    hash: int | None
    synced: bool


@dataclass(frozen=True)
class Transition:
    """The decision for one update of one shipment (see the theory of operation above).

    ``event_time`` is the time the stale check used (``z0``, else last tracked, else ``None``);
    ``latest_event_time`` is ``z0``'s own time (``None`` when missing or unparseable), kept so
    that ``next_state`` need not parse it again.
    """

    number: str
    old_status: PackageStatus
    new_status: PackageStatus
    first_sync: bool
    status_changed: bool
    stale: bool
    duplicate: bool
    out_of_order: bool
    event_time: datetime | None
    latest_event_time: datetime | None = None

    @property
    def applies(self) -> bool:
        """Store the new state: neither a duplicate nor out of order."""
        return not (self.duplicate or self.out_of_order)

    @property
    def notifies(self) -> bool:
        """Applies, the main status changed, not stale, and not a first sync showing Delivered."""
        return (
            self.status_changed
            and not (self.duplicate or self.out_of_order or self.stale)
            and not (self.first_sync and self.new_status is _DELIVERED)
        )


def event_time_of(info: TrackInfo) -> datetime | None:
    """The time the stale check reads: ``z0``'s time, else the latest last-tracked time.

    ``None`` when ``z0`` is missing or unparseable and every last-tracked time is missing or
    the 2079 sentinel.
    """
    latest = info.latest_event
    if latest is not None:
        when = latest.time
        if when is not None:
            return when
    return info.last_tracked


def decide(
    stored: StoredState | None,
    number: str,
    info: TrackInfo,
    *,
    now: datetime,
    stale_after: timedelta,
) -> Transition:
    """Decide what the update ``info`` means for the shipment ``number`` in state ``stored``.

    ``stored`` is ``None`` for a shipment the store does not know yet (a push for a number
    registered outside trackops). ``now`` is naive UTC, like 17TRACK's event times.
    """
    new_status = info.package_status
    latest = info.latest_event
    new_latest_time = latest.time if latest is not None else None
    event_time = new_latest_time if new_latest_time is not None else info.last_tracked

    if stored is None or not stored.synced:
        first_sync = True
        old_status = _NOT_FOUND
        duplicate = out_of_order = False
    else:
        first_sync = False
        old_status = stored.package_status
        duplicate = info.hash is not None and info.hash == stored.hash
        stored_time = stored.latest_event_time
        out_of_order = (
            new_latest_time is not None
            and stored_time is not None
            and new_latest_time < stored_time
        )
    return Transition(
        number=number,
        old_status=old_status,
        new_status=new_status,
        first_sync=first_sync,
        status_changed=new_status != old_status,
        stale=event_time is not None and now - event_time > stale_after,
        duplicate=duplicate,
        out_of_order=out_of_order,
        event_time=event_time,
        latest_event_time=new_latest_time,
    )


def next_state(stored: StoredState | None, transition: Transition, info: TrackInfo) -> StoredState:
    """The state a shipment is in after ``transition`` (decided for ``info``).

    ``stored`` unchanged when the transition does not apply. When it applies and ``info`` has
    no usable ``z0`` time, the stored event time is kept, so that a later, older update is still
    recognised as out of order.
    """
    if not transition.applies:
        if stored is None:  # pragma: no cover - decide() never rejects a first sync
            raise ValueError("a first sync always applies")
        return stored
    latest_time = transition.latest_event_time
    if latest_time is None and info.latest_event is not None:
        latest_time = info.latest_event.time  # a Transition built without it
    if latest_time is None and stored is not None:
        latest_time = stored.latest_event_time
    return StoredState(
        package_status=transition.new_status,
        latest_event_time=latest_time,
        hash=info.hash,
        synced=True,
    )
