"""The state machine (``trackops.core.status``), one table row per sentence of the rules.

``reference/17track-notification-rules.txt``: a notification only when the main status changes;
not when the latest event is more than 7 days old; not when the first sync already shows
Delivered. DESIGN.md adds: a first sync showing anything but Not found is a change from Not
found; a push applied twice notifies once; an older push never moves a shipment back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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


def track(
    status: PackageStatus,
    at: datetime | str | None = NOW - timedelta(hours=1),
    *,
    hs: int | None = 1,
    ylt1: datetime | str | None = None,
    ylt2: datetime | str | None = None,
) -> TrackInfo:
    """A TrackInfo whose latest event (``z0``) is at ``at`` (a raw string is kept as sent)."""

    def raw(value: datetime | str | None) -> str | None:
        return stamp(value) if isinstance(value, datetime) else value

    return TrackInfo(
        package_status=status,
        latest_event=None if at is None else Event(time_raw=raw(at), description="event"),
        hash=hs,
        first_last_tracked_raw=raw(ylt1),
        second_last_tracked_raw=raw(ylt2),
    )


def synced(
    status: PackageStatus, at: datetime | None = NOW - timedelta(days=1), hs: int | None = 99
) -> StoredState:
    return StoredState(package_status=status, latest_event_time=at, hash=hs, synced=True)


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
    # -- pushes arrive twice: the same hs again is a duplicate.
    Case(
        "duplicate-hash-neither-applies-nor-notifies",
        synced(S.IN_TRANSIT, hs=42),
        track(S.DELIVERED, hs=42),
        dict(duplicate=True, applies=False, notifies=False),
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
    # -- pushes arrive out of order: an older one never moves the shipment back.
    Case(
        "older-event-is-out-of-order",
        synced(S.DELIVERED, at=NOW - timedelta(hours=1), hs=2),
        track(S.IN_TRANSIT, NOW - timedelta(hours=2), hs=1),
        dict(out_of_order=True, applies=False, notifies=False),
    ),
    Case(
        "older-by-one-minute-is-out-of-order",
        synced(S.ALERT, at=NOW - timedelta(hours=1), hs=2),
        track(S.IN_TRANSIT, NOW - timedelta(hours=1) - MINUTE, hs=1),
        dict(out_of_order=True, applies=False),
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
    info = track(S.ALERT, NOW - timedelta(hours=2), hs=7)
    transition = decide(synced(S.IN_TRANSIT), "N1", info, now=NOW, stale_after=WEEK)
    assert next_state(synced(S.IN_TRANSIT), transition, info) == StoredState(
        S.ALERT, NOW - timedelta(hours=2), 7, synced=True
    )


def test_next_state_of_a_first_sync_not_found_is_synced() -> None:
    info = track(S.NOT_FOUND, at=None, hs=None)
    transition = decide(REGISTERED, "N1", info, now=NOW, stale_after=WEEK)
    assert next_state(REGISTERED, transition, info) == StoredState(S.NOT_FOUND, None, None, True)


@pytest.mark.parametrize(
    "info",
    [
        pytest.param(track(S.IN_TRANSIT, NOW - timedelta(days=3), hs=1), id="out-of-order"),
        pytest.param(track(S.IN_TRANSIT, NOW, hs=99), id="duplicate"),
    ],
)
def test_next_state_keeps_the_stored_state_when_nothing_applies(info: TrackInfo) -> None:
    stored = synced(S.DELIVERED, at=NOW - timedelta(days=1), hs=99)
    transition = decide(stored, "N1", info, now=NOW, stale_after=WEEK)
    assert not transition.applies
    assert next_state(stored, transition, info) is stored


def test_next_state_keeps_the_event_time_when_the_new_one_is_unknown() -> None:
    stored = synced(S.IN_TRANSIT, at=NOW - timedelta(days=1), hs=1)
    info = track(S.ALERT, "not a time", hs=2)
    state = next_state(stored, decide(stored, "N1", info, now=NOW, stale_after=WEEK), info)
    assert state == StoredState(S.ALERT, NOW - timedelta(days=1), 2, True)
    # ... so an update older than the last known event is still refused.
    older = track(S.IN_TRANSIT, NOW - timedelta(days=2), hs=3)
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
    in_transit = track(S.IN_TRANSIT, NOW - timedelta(hours=5), hs=1)
    delivered = track(S.DELIVERED, NOW - timedelta(hours=1), hs=2)
    state, transitions = fold(REGISTERED, [delivered, in_transit, in_transit])
    assert state is not None and state.package_status == S.DELIVERED
    assert [t.applies for t in transitions] == [True, False, False]
    # The first sync showed Delivered, so nothing at all was sent.
    assert not any(t.notifies for t in transitions)


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
