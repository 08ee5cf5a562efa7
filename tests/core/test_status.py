"""The state machine (``trackops.core.status``), one table row per sentence of the rules.

``reference/17track-notification-rules.txt``: a notification only when the main status changes;
not when the latest event is more than 7 days old; not when the first sync already shows
Delivered. DESIGN.md adds: a first sync showing anything but Not found is a change from Not
found; a push applied twice notifies once; an older push never moves a shipment back.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
from trackops.core import wire
from trackops.core.status import StoredState, Transition, decide, event_time_of, next_state
from trackops.core.wire import NO_TIME, Event, PackageStatus, TrackInfo

S = PackageStatus
NOW = datetime(2026, 3, 10, 12, 0, 0)
WEEK = timedelta(days=7)
MINUTE = timedelta(minutes=1)
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def stamp(when: datetime) -> str:
    """17TRACK's event time format (minutes only, as in the reference's samples)."""
    return when.strftime("%Y-%m-%d %H:%M")


HONEST: Final = -1
"""``hs`` computed as 17TRACK does: from the latest event only, never from the status."""


def raw(value: datetime | str | None) -> str | None:
    return stamp(value) if isinstance(value, datetime) else value


def event_hash(time_raw: str | None, description: str = "event") -> int:
    """A stand-in for 17TRACK's ``hs``: a hash of the latest event (time and text)."""
    return zlib.crc32(f"{time_raw}|{description}".encode()) & 0x7FFFFFFF


def track(
    status: PackageStatus,
    at: datetime | str | None = NOW - timedelta(hours=1),
    *,
    hs: int | None = HONEST,
    ylt1: datetime | str | None = None,
    ylt2: datetime | str | None = None,
    description: str = "event",
    earlier: Sequence[Event] = (),
) -> TrackInfo:
    """A TrackInfo whose latest event (``z0``) is at ``at`` (a raw string is kept as sent),
    listed in ``z1`` before the ``earlier`` events (newest first, as 17TRACK lists them)."""
    latest = None if at is None else Event(time_raw=raw(at), description=description)
    return TrackInfo(
        package_status=status,
        latest_event=latest,
        first_carrier_events=[latest, *earlier] if latest is not None else list(earlier),
        hash=(None if at is None else event_hash(raw(at), description)) if hs == HONEST else hs,
        first_last_tracked_raw=raw(ylt1),
        second_last_tracked_raw=raw(ylt2),
    )


def synced(
    status: PackageStatus,
    at: datetime | None = NOW - timedelta(days=1),
    hs: int | None = HONEST,
    *,
    description: str = "event",
    last_tracked: datetime | None = None,
    events: int | None = None,
) -> StoredState:
    """A synced shipment whose latest event was at ``at`` (``events`` events in all)."""
    key = None if at is None else (stamp(at), description)
    if hs == HONEST:
        hs = None if key is None else event_hash(*key)
    return StoredState(
        package_status=status,
        latest_event_time=at,
        hash=hs,
        synced=True,
        latest_event=key,
        last_tracked=last_tracked,
        event_count=events,
    )


REGISTERED = StoredState(S.NOT_FOUND, None, None, synced=False)
"""A shipment trackops registered, before its first tracking data."""


@dataclass
class Case:
    id: str
    stored: StoredState | None
    info: TrackInfo
    expect: dict[str, Any]
    now: datetime = NOW
    stale_after: timedelta = WEEK


CASES = [
    # -- "Email notifications are triggered only when the main logistics status ... changes."
    Case(
        "change-in-transit-to-delivered-notifies",
        synced(S.IN_TRANSIT),
        track(S.DELIVERED),
        dict(old_status=S.IN_TRANSIT, status_changed=True, applies=True, notifies=True),
    ),
    Case(
        "same-status-new-event-applies-without-notifying",
        synced(S.IN_TRANSIT, hs=1),
        track(S.IN_TRANSIT, hs=2),
        dict(status_changed=False, applies=True, notifies=False),
    ),
    Case(
        "change-back-from-alert-to-in-transit-notifies",
        synced(S.ALERT),
        track(S.IN_TRANSIT),
        dict(old_status=S.ALERT, new_status=S.IN_TRANSIT, notifies=True),
    ),
    Case(
        "change-to-not-found-is-a-change",
        synced(S.IN_TRANSIT),
        track(S.NOT_FOUND),
        dict(status_changed=True, notifies=True),
    ),
    # -- "more than 7 days from the current time" -> no email (strictly more).
    Case(
        "event-exactly-7-days-old-is-not-stale",
        synced(S.IN_TRANSIT, at=NOW - WEEK - timedelta(days=1)),
        track(S.DELIVERED, NOW - WEEK),
        dict(stale=False, notifies=True, event_time=NOW - WEEK),
    ),
    Case(
        "event-7-days-and-1-minute-old-is-stale",
        synced(S.IN_TRANSIT, at=NOW - WEEK - timedelta(days=1)),
        track(S.DELIVERED, NOW - WEEK - MINUTE),
        dict(stale=True, status_changed=True, applies=True, notifies=False),
    ),
    Case(
        "event-7-days-less-1-minute-old-is-not-stale",
        synced(S.IN_TRANSIT, at=NOW - WEEK - timedelta(days=1)),
        track(S.DELIVERED, NOW - WEEK + MINUTE),
        dict(stale=False, notifies=True),
    ),
    Case(
        "stale-after-is-configurable",
        synced(S.IN_TRANSIT, at=NOW - timedelta(days=9)),
        track(S.ALERT, NOW - timedelta(days=3) - MINUTE),
        dict(stale=True, notifies=False),
        stale_after=timedelta(days=3),
    ),
    Case(
        "event-in-the-future-is-not-stale",
        synced(S.IN_TRANSIT),
        track(S.ALERT, NOW + timedelta(hours=5)),
        dict(stale=False, notifies=True),
    ),
    Case(
        "stale-first-sync-in-transit-is-silent",
        None,
        track(S.IN_TRANSIT, NOW - timedelta(days=30)),
        dict(first_sync=True, status_changed=True, stale=True, applies=True, notifies=False),
    ),
    # -- "its first captured status is Delivered" -> no email.
    Case(
        "first-sync-delivered-is-silent",
        REGISTERED,
        track(S.DELIVERED),
        dict(
            first_sync=True,
            old_status=S.NOT_FOUND,
            status_changed=True,
            applies=True,
            notifies=False,
        ),
    ),
    Case(
        "first-sync-delivered-unknown-shipment-is-silent",
        None,
        track(S.DELIVERED),
        dict(first_sync=True, applies=True, notifies=False),
    ),
    Case(
        "first-sync-in-transit-is-a-change-from-not-found",
        REGISTERED,
        track(S.IN_TRANSIT),
        dict(first_sync=True, old_status=S.NOT_FOUND, status_changed=True, notifies=True),
    ),
    Case(
        "first-sync-alert-notifies",
        None,
        track(S.ALERT),
        dict(first_sync=True, old_status=S.NOT_FOUND, notifies=True),
    ),
    Case(
        "first-sync-not-found-is-no-change",
        REGISTERED,
        track(S.NOT_FOUND, at=None),
        dict(first_sync=True, status_changed=False, applies=True, notifies=False),
    ),
    Case(
        "unsynced-stored-status-is-ignored-first-sync-is-from-not-found",
        StoredState(S.IN_TRANSIT, NOW, 1, synced=False),
        track(S.IN_TRANSIT, hs=1),
        dict(first_sync=True, old_status=S.NOT_FOUND, duplicate=False, notifies=True),
    ),
    Case(
        "second-sync-delivered-after-not-found-notifies",
        synced(S.NOT_FOUND, at=None, hs=None),
        track(S.DELIVERED),
        dict(first_sync=False, old_status=S.NOT_FOUND, notifies=True),
    ),
    # -- pushes arrive twice: the same latest event and status again is a duplicate.
    Case(
        "same-hash-same-status-is-a-duplicate",
        synced(S.IN_TRANSIT, hs=42),
        track(S.IN_TRANSIT, hs=42),
        dict(duplicate=True, applies=False, notifies=False),
    ),
    Case(
        "same-event-same-status-without-hash-is-a-duplicate",
        synced(S.IN_TRANSIT, at=NOW - timedelta(hours=1), hs=None),
        track(S.IN_TRANSIT, NOW - timedelta(hours=1), hs=None),
        dict(duplicate=True, applies=False),
    ),
    # -- hs hashes the latest EVENT: 17TRACK sets Expired (and other verdicts) without a new
    # event, so the same hs with another status is a change. Failed before: a duplicate.
    Case(
        "same-hash-other-status-is-a-status-change",
        synced(S.IN_TRANSIT, at=NOW - timedelta(hours=2)),
        track(S.EXPIRED, NOW - timedelta(hours=2)),
        dict(duplicate=False, status_changed=True, applies=True, notifies=True),
    ),
    Case(
        "same-hash-other-status-older-last-tracked-is-an-old-copy",
        synced(S.EXPIRED, at=NOW - timedelta(hours=2), last_tracked=NOW - timedelta(hours=1)),
        track(S.IN_TRANSIT, NOW - timedelta(hours=2), ylt1=NOW - timedelta(hours=2)),
        dict(duplicate=False, out_of_order=True, applies=False, notifies=False),
    ),
    Case(
        # 17TRACK looked again and found nothing new: stored for its clock, nothing to tell.
        "same-event-same-status-tracked-later-is-a-refresh",
        synced(S.IN_TRANSIT, at=NOW - timedelta(hours=2), last_tracked=NOW - timedelta(hours=2)),
        track(S.IN_TRANSIT, NOW - timedelta(hours=2), ylt1=NOW - timedelta(hours=1)),
        dict(duplicate=False, refresh=True, applies=True, status_changed=False, notifies=False),
    ),
    # -- undocumented codes are kept and applied, but nobody is told of a code nobody can read.
    Case(
        "unknown-status-code-applies-without-notifying",
        synced(S.IN_TRANSIT),
        track(PackageStatus(60)),
        dict(status_changed=True, applies=True, notifies=False),
    ),
    Case(
        "from-unknown-status-code-to-delivered-notifies",
        synced(PackageStatus(60)),
        track(S.DELIVERED),
        dict(old_status=PackageStatus(60), status_changed=True, notifies=True),
    ),
    Case(
        "no-hash-is-never-a-duplicate",
        synced(S.IN_TRANSIT, hs=None),
        track(S.DELIVERED, hs=None),
        dict(duplicate=False, applies=True, notifies=True),
    ),
    Case(
        "different-hash-is-not-a-duplicate",
        synced(S.IN_TRANSIT, hs=42),
        track(S.DELIVERED, hs=43),
        dict(duplicate=False, notifies=True),
    ),
    # -- pushes arrive out of order: an older one never moves the shipment back. Older and
    # newer are read from the events and 17TRACK's own clock (ylt), never from event times.
    Case(
        "older-last-tracked-time-is-out-of-order",
        synced(S.DELIVERED, at=NOW - timedelta(hours=1), last_tracked=NOW - timedelta(hours=1)),
        track(S.IN_TRANSIT, NOW - timedelta(hours=2), ylt1=NOW - timedelta(hours=2)),
        dict(out_of_order=True, applies=False, notifies=False),
    ),
    Case(
        "fewer-events-without-last-tracked-is-out-of-order",
        synced(S.DELIVERED, at=NOW - timedelta(hours=1), events=3),
        track(
            S.IN_TRANSIT,
            NOW - timedelta(hours=2),
            earlier=[Event(time_raw="2026-03-08 09:00", description="a")],
        ),
        dict(out_of_order=True, applies=False),
    ),
    Case(
        # Failed before: Los Angeles 00:00 read as older than Shanghai 10:00 the same day.
        "later-zone-earlier-clock-holding-the-stored-event-is-newer",
        synced(S.IN_TRANSIT, at=datetime(2026, 3, 9, 10, 0), description="Departed Shanghai"),
        track(
            S.PICK_UP,
            datetime(2026, 3, 9, 0, 0),
            description="Out for delivery, LOS ANGELES",
            earlier=[Event(time_raw="2026-03-09 10:00", description="Departed Shanghai")],
        ),
        dict(out_of_order=False, applies=True, notifies=True, old_status=S.IN_TRANSIT),
    ),
    Case(
        "event-time-alone-never-makes-an-update-older",
        synced(S.ALERT, at=NOW - timedelta(hours=1), events=1),
        track(S.IN_TRANSIT, NOW - timedelta(hours=1) - MINUTE),
        dict(out_of_order=False, applies=True),
    ),
    Case(
        "newer-last-tracked-time-wins-over-fewer-events",
        synced(S.IN_TRANSIT, last_tracked=NOW - timedelta(hours=5), events=4),
        track(S.ALERT, NOW - timedelta(hours=2), ylt1=NOW - timedelta(hours=1)),
        dict(out_of_order=False, applies=True, notifies=True),
    ),
    Case(
        "equal-event-time-different-hash-applies",
        synced(S.IN_TRANSIT, at=NOW - timedelta(hours=1), hs=1),
        track(S.ALERT, NOW - timedelta(hours=1), hs=2),
        dict(out_of_order=False, duplicate=False, applies=True, notifies=True),
    ),
    Case(
        "unknown-stored-event-time-cannot-be-out-of-order",
        synced(S.IN_TRANSIT, at=None),
        track(S.ALERT, NOW - timedelta(days=2)),
        dict(out_of_order=False, applies=True, notifies=True),
    ),
    Case(
        "unparseable-new-event-time-cannot-be-out-of-order",
        synced(S.IN_TRANSIT, at=NOW),
        track(S.ALERT, "soon", ylt1=NOW - timedelta(days=2)),
        dict(out_of_order=False, applies=True, notifies=True),
    ),
    Case(
        "last-tracked-fallback-is-not-used-for-ordering",
        synced(S.IN_TRANSIT, at=NOW - timedelta(hours=1)),
        track(S.ALERT, at=None, ylt1=NOW - timedelta(days=2)),
        dict(out_of_order=False, applies=True, event_time=NOW - timedelta(days=2)),
    ),
    # -- which time the stale check reads: z0, else last tracked (ylt), else none.
    Case(
        "z0-time-wins-over-a-recent-last-tracked-time",
        synced(S.IN_TRANSIT, at=NOW - timedelta(days=20)),
        track(S.DELIVERED, NOW - timedelta(days=10), ylt1=NOW - timedelta(hours=1)),
        dict(stale=True, event_time=NOW - timedelta(days=10), notifies=False),
    ),
    Case(
        "unparseable-z0-falls-back-to-recent-ylt1",
        synced(S.IN_TRANSIT),
        track(S.DELIVERED, "yesterday-ish", ylt1=NOW - timedelta(hours=3)),
        dict(stale=False, event_time=NOW - timedelta(hours=3), notifies=True),
    ),
    Case(
        "unparseable-z0-falls-back-to-old-ylt1",
        synced(S.IN_TRANSIT, at=None),
        track(S.DELIVERED, "32/13/2026", ylt1=NOW - WEEK - MINUTE),
        dict(stale=True, event_time=NOW - WEEK - MINUTE, notifies=False),
    ),
    Case(
        "missing-z0-falls-back-to-ylt1",
        synced(S.IN_TRANSIT, at=None),
        track(S.ALERT, at=None, ylt1=NOW - WEEK),
        dict(stale=False, event_time=NOW - WEEK, notifies=True),
    ),
    Case(
        "empty-z0-time-falls-back-to-ylt1",
        synced(S.IN_TRANSIT, at=None),
        track(S.ALERT, "", ylt1=NOW - timedelta(days=8)),
        dict(stale=True, event_time=NOW - timedelta(days=8)),
    ),
    Case(
        "fallback-reads-the-latest-last-tracked-time",
        synced(S.IN_TRANSIT, at=None),
        track(S.ALERT, at=None, ylt1=NOW - timedelta(days=9), ylt2=NOW - timedelta(days=1)),
        dict(stale=False, event_time=NOW - timedelta(days=1), notifies=True),
    ),
    Case(
        "ylt1-2079-sentinel-is-no-time-and-ylt2-is-used",
        synced(S.IN_TRANSIT, at=None),
        track(S.ALERT, at=None, ylt1=NO_TIME, ylt2=NOW - timedelta(days=8)),
        dict(stale=True, event_time=NOW - timedelta(days=8)),
    ),
    Case(
        "2079-sentinel-and-unparseable-z0-means-unknown-age-not-stale",
        synced(S.IN_TRANSIT, at=None),
        track(S.DELIVERED, "n/a", ylt1=NO_TIME, ylt2=NO_TIME),
        dict(stale=False, event_time=None, notifies=True),
    ),
    Case(
        "no-time-at-all-is-not-stale",
        None,
        track(S.IN_TRANSIT, at=None),
        dict(stale=False, event_time=None, first_sync=True, notifies=True),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    transition = decide(
        case.stored, "RR123456789CN", case.info, now=case.now, stale_after=case.stale_after
    )
    assert transition.number == "RR123456789CN"
    assert transition.new_status == case.info.package_status
    found = {name: getattr(transition, name) for name in case.expect}
    assert found == case.expect


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- Transition flags

BASE = Transition(
    number="N1",
    old_status=S.IN_TRANSIT,
    new_status=S.ALERT,
    first_sync=False,
    status_changed=True,
    stale=False,
    duplicate=False,
    out_of_order=False,
    event_time=NOW,
)


@pytest.mark.parametrize(
    ("changes", "applies", "notifies"),
    [
        pytest.param({}, True, True, id="plain-change"),
        pytest.param({"status_changed": False}, True, False, id="no-change"),
        pytest.param({"stale": True}, True, False, id="stale"),
        pytest.param({"duplicate": True}, False, False, id="duplicate"),
        pytest.param({"out_of_order": True}, False, False, id="out-of-order"),
        pytest.param({"first_sync": True}, True, True, id="first-sync-alert"),
        pytest.param(
            {"first_sync": True, "new_status": S.DELIVERED}, True, False, id="first-sync-delivered"
        ),
        pytest.param({"new_status": S.DELIVERED}, True, True, id="later-delivered"),
    ],
)
def test_transition_flags(changes: dict[str, Any], applies: bool, notifies: bool) -> None:
    transition = replace(BASE, **changes)
    assert (transition.applies, transition.notifies) == (applies, notifies)


def test_transition_is_frozen() -> None:
    with pytest.raises(AttributeError):
        BASE.stale = True  # type: ignore[misc]


# --------------------------------------------------------------------------- event_time_of


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        pytest.param(track(S.IN_TRANSIT, NOW), NOW, id="z0"),
        pytest.param(track(S.IN_TRANSIT, "bad", ylt1=NOW), NOW, id="bad-z0-ylt1"),
        pytest.param(track(S.IN_TRANSIT, None, ylt1=NO_TIME), None, id="sentinel-only"),
        pytest.param(track(S.IN_TRANSIT, None), None, id="nothing"),
    ],
)
def test_event_time_of(info: TrackInfo, expected: datetime | None) -> None:
    assert event_time_of(info) == expected
    assert decide(None, "N1", info, now=NOW, stale_after=WEEK).event_time == expected


# --------------------------------------------------------------------------- next_state


def test_next_state_after_an_applied_update() -> None:
    info = track(S.ALERT, NOW - timedelta(hours=2), hs=7, ylt1=NOW - timedelta(hours=1))
    transition = decide(synced(S.IN_TRANSIT), "N1", info, now=NOW, stale_after=WEEK)
    assert next_state(synced(S.IN_TRANSIT), transition, info) == StoredState(
        S.ALERT,
        NOW - timedelta(hours=2),
        7,
        synced=True,
        latest_event=(stamp(NOW - timedelta(hours=2)), "event"),
        last_tracked=NOW - timedelta(hours=1),
        event_count=1,
    )


def test_next_state_of_a_first_sync_not_found_is_synced() -> None:
    info = track(S.NOT_FOUND, at=None, hs=None)
    transition = decide(REGISTERED, "N1", info, now=NOW, stale_after=WEEK)
    assert next_state(REGISTERED, transition, info) == StoredState(
        S.NOT_FOUND, None, None, True, event_count=0
    )


@pytest.mark.parametrize(
    "info",
    [
        pytest.param(
            track(S.IN_TRANSIT, NOW - timedelta(days=3), ylt1=NOW - timedelta(days=3)),
            id="out-of-order",
        ),
        pytest.param(track(S.DELIVERED, NOW - timedelta(days=1)), id="duplicate"),
    ],
)
def test_next_state_keeps_the_stored_state_when_nothing_applies(info: TrackInfo) -> None:
    stored = synced(S.DELIVERED, at=NOW - timedelta(days=1), last_tracked=NOW - timedelta(days=1))
    transition = decide(stored, "N1", info, now=NOW, stale_after=WEEK)
    assert not transition.applies
    assert next_state(stored, transition, info) is stored


def test_next_state_keeps_the_event_time_when_the_new_one_is_unknown() -> None:
    stored = synced(S.IN_TRANSIT, at=NOW - timedelta(days=1), events=1)
    info = track(S.ALERT, "not a time", earlier=[Event(time_raw=stamp(NOW - timedelta(days=1)))])
    state = next_state(stored, decide(stored, "N1", info, now=NOW, stale_after=WEEK), info)
    assert (state.package_status, state.latest_event_time, state.event_count) == (
        S.ALERT,
        NOW - timedelta(days=1),
        2,
    )
    # ... and an update holding fewer events than that is still refused.
    older = track(S.IN_TRANSIT, NOW - timedelta(days=2))
    assert decide(state, "N1", older, now=NOW, stale_after=WEEK).out_of_order


# --------------------------------------------------------------------------- stories


def fold(
    stored: StoredState | None, infos: list[TrackInfo], now: datetime = NOW
) -> tuple[StoredState | None, list[Transition]]:
    transitions = []
    for info in infos:
        transition = decide(stored, "N1", info, now=now, stale_after=WEEK)
        transitions.append(transition)
        stored = next_state(stored, transition, info)
    return stored, transitions


def test_push_retried_by_17track_notifies_once() -> None:
    delivered = track(S.DELIVERED, NOW - timedelta(hours=1), hs=2)
    state, transitions = fold(synced(S.IN_TRANSIT, hs=1), [delivered] * 4)
    assert [t.notifies for t in transitions] == [True, False, False, False]
    assert [t.duplicate for t in transitions] == [False, True, True, True]
    assert state is not None and state.package_status == S.DELIVERED


def test_older_push_after_newer_never_moves_back() -> None:
    in_transit = track(S.IN_TRANSIT, NOW - timedelta(hours=5))
    delivered = track(S.DELIVERED, NOW - timedelta(hours=1), earlier=in_transit.all_events)
    state, transitions = fold(REGISTERED, [delivered, in_transit, in_transit])
    assert state is not None and state.package_status == S.DELIVERED
    assert [t.applies for t in transitions] == [True, False, False]
    # The first sync showed Delivered, so nothing at all was sent.
    assert not any(t.notifies for t in transitions)


# A parcel from Shanghai to Los Angeles as 17TRACK reports it: each event in its carrier's
# local clock (China UTC+8, California UTC-8), ``ylt1`` in 17TRACK's clock (UTC). The Los
# Angeles events read EARLIER than the last Shanghai one although they happened later.
def _event(a: str, where: str, what: str) -> Event:
    return Event(time_raw=a, location=where, description=what)


SHANGHAI_LA: Final = [
    (S.IN_TRANSIT, _event("2026-03-08 09:30", "Shanghai", "Item accepted"), "2026-03-08 01:40"),
    (S.IN_TRANSIT, _event("2026-03-09 10:00", "Shanghai", "Departed"), "2026-03-09 02:10"),
    (S.IN_TRANSIT, _event("2026-03-09 00:00", "LOS ANGELES, CA", "Arrived"), "2026-03-09 08:05"),
    (S.PICK_UP, _event("2026-03-09 06:10", "LOS ANGELES", "Out for delivery"), "2026-03-09 14:20"),
    (S.DELIVERED, _event("2026-03-09 15:45", "LOS ANGELES, CA", "Delivered"), "2026-03-09 23:50"),
]  # fmt: skip


def shanghai_la_pushes(*, with_ylt: bool = True) -> list[TrackInfo]:
    """One push per step, each carrying the whole history so far, newest first."""
    pushes = []
    for i, (status, latest, ylt) in enumerate(SHANGHAI_LA):
        events = [e for _, e, _ in SHANGHAI_LA[: i + 1]][::-1]
        assert events[0] is latest
        pushes.append(
            TrackInfo(
                package_status=status,
                latest_event=latest,
                first_carrier_events=events,
                hash=event_hash(latest.time_raw, latest.description or ""),
                first_last_tracked_raw=f"{ylt}:00" if with_ylt else None,
            )
        )
    return pushes


@pytest.mark.parametrize("with_ylt", [True, False], ids=["with-ylt", "without-ylt"])
def test_shanghai_then_los_angeles_in_order_notifies_each_change_once(with_ylt: bool) -> None:
    pushes = shanghai_la_pushes(with_ylt=with_ylt)
    now = datetime(2026, 3, 10, 0, 0)
    # 17TRACK retries each push (10, 30, 60 minutes) when the receiver was slow.
    doubled = [p for push in pushes for p in (push, push)]
    state, transitions = fold(REGISTERED, doubled, now=now)
    assert state is not None and state.package_status == S.DELIVERED
    assert [t.duplicate for t in transitions] == [False, True] * len(pushes)
    notified = [(t.old_status, t.new_status) for t in transitions if t.notifies]
    assert notified == [
        (S.NOT_FOUND, S.IN_TRANSIT),
        (S.IN_TRANSIT, S.PICK_UP),
        (S.PICK_UP, S.DELIVERED),
    ]
    # Failed before: the first Los Angeles push was judged older than Shanghai 10:00.
    assert transitions[4].applies and not transitions[4].out_of_order


@pytest.mark.parametrize("with_ylt", [True, False], ids=["with-ylt", "without-ylt"])
def test_shanghai_then_los_angeles_late_pushes_never_move_back(with_ylt: bool) -> None:
    pushes = shanghai_la_pushes(with_ylt=with_ylt)
    now = datetime(2026, 3, 10, 0, 0)
    # Delivered arrives first (the listener was down), then the older ones, then Delivered
    # again, as 17TRACK's retries would bring them.
    order = [pushes[0], pushes[4], pushes[1], pushes[3], pushes[2], pushes[4]]
    state, transitions = fold(REGISTERED, order, now=now)
    assert state is not None and state.package_status == S.DELIVERED
    assert [t.applies for t in transitions] == [True, True, False, False, False, False]
    assert [t.out_of_order for t in transitions] == [False, False, True, True, True, False]
    assert transitions[-1].duplicate
    notified = [(t.old_status, t.new_status) for t in transitions if t.notifies]
    assert notified == [(S.NOT_FOUND, S.IN_TRANSIT), (S.IN_TRANSIT, S.DELIVERED)]


def test_expired_without_new_event_is_kept_and_its_late_copy_is_refused() -> None:
    """17TRACK sets Expired with the same latest event and hs; failed before (a duplicate)."""
    last = _event("2026-02-20 18:00", "Paris", "Arrived at delivery office")
    in_transit = TrackInfo(
        package_status=S.IN_TRANSIT,
        latest_event=last,
        first_carrier_events=[last],
        hash=event_hash(last.time_raw, last.description or ""),
        first_last_tracked_raw="2026-02-20 17:30:00",
    )
    expired = msgspec.structs.replace(
        in_transit, package_status=S.EXPIRED, first_last_tracked_raw="2026-03-09 17:30:00"
    )
    state, transitions = fold(REGISTERED, [in_transit, expired, in_transit], now=NOW)
    assert state is not None and state.package_status == S.EXPIRED
    assert [t.applies for t in transitions] == [True, True, False]
    assert transitions[1].status_changed and not transitions[1].duplicate
    assert transitions[2].out_of_order


def test_registered_then_found_then_delivered() -> None:
    steps = [
        track(S.NOT_FOUND, at=None, hs=None),
        track(S.IN_TRANSIT, NOW - timedelta(days=2), hs=1),
        track(S.IN_TRANSIT, NOW - timedelta(days=1), hs=2),
        track(S.DELIVERED, NOW - timedelta(hours=1), hs=3),
    ]
    _, transitions = fold(REGISTERED, steps)
    notified = [(t.old_status, t.new_status) for t in transitions if t.notifies]
    assert notified == [(S.NOT_FOUND, S.IN_TRANSIT), (S.IN_TRANSIT, S.DELIVERED)]


# --------------------------------------------------------------------------- recorded samples


def push_track(name: str) -> tuple[str, TrackInfo]:
    envelope = wire.decode_push((SAMPLES / name).read_bytes())
    data = wire.decode_push_data(envelope.event, bytes(envelope.data))
    assert isinstance(data, wire.TrackingUpdated)
    return data.number, data.track


def test_recorded_push_is_a_first_sync_then_a_duplicate() -> None:
    number, info = push_track("webhook_tracking_updated.json")
    assert info.latest_event is not None
    event_time = info.latest_event.time
    assert event_time == datetime(2020, 5, 7, 10, 19)
    now = event_time + timedelta(days=1)
    first = decide(None, number, info, now=now, stale_after=WEEK)
    assert (first.first_sync, first.old_status, first.new_status) == (
        True,
        S.NOT_FOUND,
        S.IN_TRANSIT,
    )
    assert first.notifies
    again = decide(next_state(None, first, info), number, info, now=now, stale_after=WEEK)
    assert again.duplicate and not again.notifies


@pytest.mark.parametrize(
    ("age", "stale"),
    [pytest.param(WEEK, False, id="7-days"), pytest.param(WEEK + MINUTE, True, id="7-days-1-min")],
)
def test_recorded_answer_stale_boundary(age: timedelta, stale: bool) -> None:
    envelope = wire.decode_envelope(
        (SAMPLES / "gettrackinfo_response.json").read_bytes(), wire.TrackInfoResult
    )
    accepted = envelope.data.accepted[0]
    info = accepted.track
    assert info is not None
    # z0 "2015-05-29 09:00"; ylt1 is later (2015-06-01) but z0 is what counts.
    transition = decide(
        None, accepted.number, info, now=datetime(2015, 5, 29, 9, 0) + age, stale_after=WEEK
    )
    assert transition.event_time == datetime(2015, 5, 29, 9, 0)
    assert transition.stale is stale
    assert transition.notifies is not stale
