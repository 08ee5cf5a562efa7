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
# A shipment's state is its main package status (17TRACK's ``e``), its latest event (``z0``:
# its time, and its identity, the raw time string and description), 17TRACK's ``hs``, the
# latest last-tracked time (``ylt1``/``ylt2``/``ylt9``), how many events it had, and whether
# tracking data was ever applied (``synced``). A newly registered shipment is Not found and
# unsynced.
#
# What real 17TRACK data does, and so what this machine may not assume:
#
# * ``hs`` is the hash of the latest EVENT, not of the status: 17TRACK changes ``e`` without a
#   new event (Expired is set that way), so the same ``hs`` with another ``e`` is a change.
# * Event times are each carrier's local clock with no zone: a Los Angeles event at 00:00 can
#   follow a Shanghai event at 10:00 the same day. Event times are never compared with each
#   other to order updates. The last-tracked times (``ylt*``) are 17TRACK's own clock, one
#   clock for every parcel, so they may be compared.
# * Undocumented status codes appear: they are kept and stored like any status, but nobody is
#   notified of a code nobody can explain (the next documented status notifies as usual).
#
# For one update:
#
# * First sync: nothing was ever applied (no stored state, or ``synced`` is false). The old
#   status is Not found whatever was stored, so a first sync showing In transit is a change
#   from Not found, and a first sync showing Not found is no change.
# * Same latest event: equal ``hs`` (when both have one), else an equal identity (raw time
#   and description) of ``z0``.
#   - with the same status, a duplicate: 17TRACK retries pushes after 10, 30 and 60 minutes,
#     and a sync finds what a push brought. Neither applied nor notified. Except when its
#     last-tracked time is later than the stored one: then it applies without a change (so
#     nothing is notified), because the stored last-tracked time is what tells a later
#     status-only change from an old copy of an earlier one.
#   - with another status, a status change without a new event (Expired), which applies;
#     unless its last-tracked time is older than the stored one: then it is an old copy that
#     arrived late, out of order.
# * Another latest event: the update is newer when its event lists (``z1``, ``z2``, ``z9``)
#   contain the stored latest event as an older entry: carriers only add events, so a newer
#   history holds the older one. Otherwise the two histories are compared by what is
#   comparable: an older last-tracked time means older (out of order), a newer one means
#   newer; without those, an update with fewer events than stored is older. Anything still
#   undecided applies (17TRACK revised the history; it is the latest word we have).
# * An update with no latest event at all is judged by the same comparable facts: it is
#   older when its last-tracked time or its smaller event count says so.
# * Applies = not a duplicate and not out of order: the new state replaces the stored one.
# * Notifies = applies, the main status changed to a documented status, not stale, and not a
#   first sync that is already Delivered. These are the notification rules of 17TRACK, to the
#   letter: "triggered only when the main logistics status of a package changes", "not ...
#   [when] the latest logistics tracking time is more than 7 days from the current time",
#   "not ... [when] its first captured status is Delivered". They hold for every condition,
#   default or custom.
# * Stale: ``now - event_time > stale_after`` (strictly more: exactly 7 days is not stale).
#   ``event_time`` is the latest event's time (``z0``) read as UTC (the contract's rule; a
#   few hours of zone make no difference at 7 days); when ``z0`` is missing or its time cannot
#   be parsed (the reference warns event times may be invalid) it falls back to the most
#   recent last-tracked time (the 2079-01-01 sentinel means no time). With neither, the
#   update is not stale: we cannot show the information is old, and the rules' purpose is to
#   stop old news, not to drop news whose age is unknown.
#
# TRACKING_STOPPED pushes change only the tracking state (active/stopped), never the package
# status: they do not go through ``decide`` and never cause a status notification.

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from trackops.core.wire import Event, PackageStatus, TrackInfo

__all__ = [
    "EventKey",
    "StoredState",
    "Transition",
    "decide",
    "event_count",
    "event_key",
    "event_time_of",
    "next_state",
]

_NOT_FOUND = PackageStatus.NOT_FOUND
_DELIVERED = PackageStatus.DELIVERED


EventKey = tuple[str | None, str | None]
"""An event's identity: its raw time string (``a``) and description (``z``)."""


def event_key(event: Event | None) -> EventKey | None:
    """``event``'s identity, or ``None`` for no event (``null`` or ``{}``)."""
    if event is None or not (event.time_raw or event.description):
        return None
    return (event.time_raw or None, event.description or None)


def event_count(info: TrackInfo) -> int:
    """How many events ``info`` holds over all carriers."""
    return (
        len(info.first_carrier_events)
        + len(info.second_carrier_events)
        + len(info.ecommerce_events)
    )


@dataclass(frozen=True)
class StoredState:
    """What the store remembers of a shipment between updates.

    ``latest_event_time`` is the time of the latest event (``z0``) as naive UTC and
    ``latest_event`` its identity (raw time, description); ``last_tracked`` is the latest
    ``ylt*`` time (17TRACK's clock); ``event_count`` the number of events of the stored
    history; ``synced`` is false until the first tracking data was applied. ``None`` means
    unknown (rows stored before these were kept).
    """

    package_status: PackageStatus
    latest_event_time: datetime | None
    hash: int | None
    synced: bool
    latest_event: EventKey | None = None
    last_tracked: datetime | None = None
    event_count: int | None = None


@dataclass(frozen=True)
class Transition:
    """The decision for one update of one shipment (see the theory of operation above).

    ``event_time`` is the time the stale check used (``z0``, else last tracked, else ``None``);
    ``latest_event_time`` is ``z0``'s own time (``None`` when missing or unparseable), kept so
    that ``next_state`` need not parse it again. ``refresh``: the same latest event and status,
    applied only to keep 17TRACK's later last-tracked time (nothing new to show or tell).
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
    refresh: bool = False

    @property
    def applies(self) -> bool:
        """Store the new state: neither a duplicate nor out of order."""
        return not (self.duplicate or self.out_of_order)

    @property
    def notifies(self) -> bool:
        """Applies, the main status changed to a documented one, not stale, and not a first
        sync showing Delivered."""
        return (
            self.status_changed
            and not (self.duplicate or self.out_of_order or self.stale)
            and not (self.first_sync and self.new_status is _DELIVERED)
            and self.new_status.is_known
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


def _same_latest_event(stored: StoredState, info: TrackInfo, key: EventKey | None) -> bool:
    if stored.hash is not None and info.hash is not None:
        return stored.hash == info.hash
    return key is not None and key == stored.latest_event


def _tracked_later(stored: StoredState, info: TrackInfo) -> bool:
    """True when ``info`` was tracked by 17TRACK after the stored update (its own clock)."""
    new_tracked = info.last_tracked
    return (
        new_tracked is not None
        and stored.last_tracked is not None
        and new_tracked > stored.last_tracked
    )


def _older(stored: StoredState, info: TrackInfo, key: EventKey | None, same: bool) -> bool:
    """True when ``info`` is older than what is stored (see the theory of operation)."""
    new_tracked = info.last_tracked
    if same:
        return (
            new_tracked is not None
            and stored.last_tracked is not None
            and new_tracked < stored.last_tracked
        )
    stored_key = stored.latest_event
    if stored_key is not None and stored_key != key:
        for events in (info.first_carrier_events, info.second_carrier_events):
            for event in events:
                if event_key(event) == stored_key:
                    return False
        for event in info.ecommerce_events:
            if event_key(event) == stored_key:
                return False
    if new_tracked is not None and stored.last_tracked is not None:
        if new_tracked != stored.last_tracked:
            return new_tracked < stored.last_tracked
    return stored.event_count is not None and event_count(info) < stored.event_count


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
    registered outside trackops). ``now`` is naive UTC.
    """
    new_status = info.package_status
    latest = info.latest_event
    new_latest_time = latest.time if latest is not None else None
    event_time = new_latest_time if new_latest_time is not None else info.last_tracked

    if stored is None or not stored.synced:
        first_sync = True
        old_status = _NOT_FOUND
        duplicate = out_of_order = refresh = False
    else:
        first_sync = False
        old_status = stored.package_status
        key = event_key(latest)
        same = _same_latest_event(stored, info, key)
        unchanged = same and new_status == old_status
        refresh = unchanged and _tracked_later(stored, info)
        duplicate = unchanged and not refresh
        out_of_order = not duplicate and _older(stored, info, key, same)
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
        refresh=refresh,
    )


def next_state(stored: StoredState | None, transition: Transition, info: TrackInfo) -> StoredState:
    """The state a shipment is in after ``transition`` (decided for ``info``).

    ``stored`` unchanged when the transition does not apply. When it applies and ``info`` has
    no usable ``z0`` time, the stored event time is kept (it is what the stale check of the
    shipment's news showed last).
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
        latest_event=event_key(info.latest_event),
        last_tracked=info.last_tracked,
        event_count=event_count(info),
    )
