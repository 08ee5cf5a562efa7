"""Property tests of the state machine: late, repeated and reordered pushes.

17TRACK retries a push after 10, 30 and 60 minutes and gives no ordering guarantee. DESIGN.md:
"the same push applied twice notifies once, and an older push never moves a shipment back".
One shipment's updates are generated as 17TRACK sends them: each carries the whole history so
far (newest first), ``hs`` is the hash of the latest event (or absent), event times are the
local clocks of carriers in different zones (so a later event can read earlier: Shanghai
UTC+8, then Los Angeles UTC-8), and ``ylt1`` is 17TRACK's own clock (in some stories only).
With ``ylt1``, some steps change only the status (an Expired verdict: same event, same ``hs``).
Every update is delivered at least once, some several times, in any order, and folded through
``decide`` (keeping ``next_state`` whenever the transition applies), then compared with the
ordered delivery.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from trackops.core.status import StoredState, Transition, decide, next_state
from trackops.core.wire import Event, PackageStatus, TrackInfo

S = PackageStatus
WEEK = timedelta(days=7)
WEEK_MINUTES = 7 * 24 * 60
START = datetime(2026, 1, 5, 8, 30)
REGISTERED = StoredState(S.NOT_FOUND, None, None, synced=False)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@dataclass(frozen=True)
class Story:
    """One shipment's updates in event order, a delivery order of them, and the clock."""

    updates: list[TrackInfo]
    delivery: list[int]  # indices into updates: each at least once, in any order
    start: StoredState | None  # a registered shipment, or one a push creates
    now: datetime

    @property
    def times(self) -> list[datetime]:
        """Each update's latest event time as the carrier wrote it (read as UTC)."""
        return [u.latest_event.time for u in self.updates]  # type: ignore[union-attr,misc]


ZONES = (8, 8, 9, 1, 0, -5, -8)
"""Carrier clocks, hours from UTC: Shanghai, Tokyo, Paris, London, New York, Los Angeles."""


def honest_hash(event: Event) -> int:
    return zlib.crc32(f"{event.time_raw}|{event.description}".encode()) & 0x7FFFFFFF


@st.composite
def stories(
    draw: st.DrawFn, *, monotone: bool, max_gap_minutes: int, now_after: tuple[int, int]
) -> Story:
    """Updates with strictly increasing times; ``monotone`` makes the statuses increase too.

    ``now`` is the last event time plus between ``now_after`` minutes.
    """
    if monotone:
        statuses = sorted(draw(st.sets(st.sampled_from(list(S)), min_size=1)))
    else:
        statuses = draw(st.lists(st.sampled_from(list(S)), min_size=1, max_size=10))
    gaps = draw(
        st.lists(st.integers(1, max_gap_minutes), min_size=len(statuses), max_size=len(statuses))
    )
    size = len(statuses)
    # Most updates carry 17TRACK's hash; some do not (then the events themselves tell).
    hashed = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    zones = draw(st.lists(st.sampled_from(ZONES), min_size=size, max_size=size))
    with_ylt = draw(st.booleans())
    # A verdict changes the status with no new event; only 17TRACK's clock can order those.
    verdicts = draw(st.lists(st.booleans(), min_size=size, max_size=size)) if with_ylt else []
    when = START
    updates: list[TrackInfo] = []
    events: list[Event] = []
    latest_hash: int | None = None
    for index, (status, gap, has_hash, zone) in enumerate(
        zip(statuses, gaps, hashed, zones, strict=True)
    ):
        when += timedelta(minutes=gap)
        if not (events and verdicts and verdicts[index]):
            local = when + timedelta(hours=zone)
            events.insert(
                0, Event(time_raw=local.strftime("%Y-%m-%d %H:%M"), description=f"event {index}")
            )
            latest_hash = honest_hash(events[0]) if has_hash else None
        updates.append(
            TrackInfo(
                package_status=status,
                latest_event=events[0],
                first_carrier_events=list(events),
                hash=latest_hash,
                first_last_tracked_raw=when.strftime("%Y-%m-%d %H:%M:%S") if with_ylt else None,
            )
        )
    count = len(updates)
    repeats = draw(st.lists(st.integers(0, count - 1), max_size=2 * count))
    delivery = draw(st.permutations([*range(count), *repeats]))
    start = draw(st.sampled_from([REGISTERED, None]))
    latest_local = max(u.latest_event.time for u in updates)  # type: ignore[union-attr,type-var]
    now = latest_local + timedelta(minutes=draw(st.integers(*now_after)))
    return Story(updates, list(delivery), start, now)


def fold(story: Story, order: list[int]) -> tuple[StoredState | None, list[tuple[int, Transition]]]:
    """Apply the updates in ``order``; (final state, [(update index, transition)])."""
    state = story.start
    seen = []
    for index in order:
        info = story.updates[index]
        transition = decide(state, "RR123456789CN", info, now=story.now, stale_after=WEEK)
        seen.append((index, transition))
        state = next_state(state, transition, info)
    return state, seen


def status_changes(story: Story) -> int:
    """Main status changes along the ordered updates, counting the first from Not found."""
    statuses = [S.NOT_FOUND, *(u.package_status for u in story.updates)]
    return sum(a != b for a, b in pairwise(statuses))


def check_common(story: Story) -> tuple[list[Transition], list[tuple[int, Transition]]]:
    """The invariants every story keeps, fresh or stale; returns both folds' notifications."""
    ordered_state, ordered = fold(story, list(range(len(story.updates))))
    shuffled_state, shuffled = fold(story, story.delivery)
    last = story.updates[-1]

    # The same final state, whatever the order: the newest update's.
    assert ordered_state == shuffled_state
    assert shuffled_state is not None
    assert shuffled_state.package_status == last.package_status
    assert shuffled_state.latest_event_time == story.times[-1]
    assert shuffled_state.hash == last.hash

    notified = [(i, t) for i, t in shuffled if t.notifies]
    # One update notifies at most once, however often it is delivered.
    indices = [i for i, _ in notified]
    assert len(indices) == len(set(indices))
    # No notification moves the shipment back: each is about a newer update than the last.
    assert indices == sorted(indices)
    # A shipment never moves back at all: applied updates are never older than the state
    # (order is the updates' real order, which their local event times do not show).
    newest = None
    for index, transition in shuffled:
        if transition.applies:
            assert newest is None or index >= newest
            newest = index
        elif not transition.duplicate:
            assert transition.out_of_order and index < newest  # type: ignore[operator]
    # Reordering and repeating never adds notifications beyond the status changes.
    assert len(notified) <= status_changes(story)
    # Each notification is a real change; old status is where the shipment really was.
    for index, transition in notified:
        assert transition.old_status != transition.new_status
        assert transition.new_status == story.updates[index].package_status
    return [t for _, t in ordered if t.notifies], notified


def expected_ordered_notifications(story: Story) -> list[tuple[PackageStatus, PackageStatus]]:
    """The rules applied by hand to the ordered, fresh updates."""
    out = []
    previous, first = S.NOT_FOUND, True
    for info in story.updates:
        status = info.package_status
        if status != previous and not (first and status == S.DELIVERED):
            out.append((previous, status))
        previous, first = status, False
    return out


FRESH = dict(max_gap_minutes=(6 * 24 * 60) // 10, now_after=(0, 24 * 60 - 1))
"""Ten updates span at most 6 days and ``now`` is less than a day later: nothing is stale."""


@PROPERTY_SETTINGS
@given(stories(monotone=False, **FRESH))
def test_any_delivery_order_ends_in_the_same_state(story: Story) -> None:
    ordered, notified = check_common(story)
    pairs = [(t.old_status, t.new_status) for t in ordered]
    assert pairs == expected_ordered_notifications(story)
    # Fresh news: reordering can only drop notifications (skipped steps), never add any.
    assert len(notified) <= len(ordered)


@PROPERTY_SETTINGS
@given(stories(monotone=True, **FRESH))
def test_each_status_change_is_notified_at_most_once(story: Story) -> None:
    ordered, notified = check_common(story)
    pairs = [(t.old_status, t.new_status) for _, t in notified]
    assert len(pairs) == len(set(pairs))
    # Statuses rise with time here, so "never back" is visible in the statuses themselves.
    assert all(old < new for old, new in pairs)
    # The in-order delivery notifies every change exactly once.
    assert [(t.old_status, t.new_status) for t in ordered] == expected_ordered_notifications(story)


@PROPERTY_SETTINGS
@given(stories(monotone=True, **FRESH))
def test_repeating_every_push_notifies_like_delivering_it_once(story: Story) -> None:
    once = [(i, t) for i, t in fold(story, list(range(len(story.updates))))[1] if t.notifies]
    thrice = [i for i in range(len(story.updates)) for _ in range(3)]
    again = [(i, t) for i, t in fold(story, thrice)[1] if t.notifies]
    assert again == once


STALE = dict(max_gap_minutes=3 * 24 * 60, now_after=(0, 20 * 24 * 60))
"""Updates spread over up to 30 days, ``now`` up to 20 days after the last: some are stale."""


@PROPERTY_SETTINGS
@given(stories(monotone=False, **STALE))
def test_stale_updates_never_notify_but_still_apply(story: Story) -> None:
    _, notified = check_common(story)
    for _, transition in notified:
        assert transition.event_time is not None
        assert story.now - transition.event_time <= WEEK
    # An update is stale by its own time, whatever order it comes in.
    for index, transition in fold(story, story.delivery)[1]:
        assert transition.stale == (story.now - story.times[index] > WEEK)


@PROPERTY_SETTINGS
@given(
    stories(monotone=False, max_gap_minutes=3 * 24 * 60, now_after=(WEEK_MINUTES + 1, 60 * 24 * 60))
)
def test_all_stale_story_notifies_nothing(story: Story) -> None:
    assert story.now - story.times[-1] > WEEK
    check_common(story)
    assert not any(t.notifies for _, t in fold(story, story.delivery)[1])
