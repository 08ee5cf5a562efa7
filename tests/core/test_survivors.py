"""Blind spots a mutation run found in the pure core (issue 15), one test per surviving change.

A mutant is the code with one deliberate bug (``continue`` made ``break``, a format string
broken, ``UTC`` made local time ...). Each test here fails for the mutant it names and passes
for the real code. ``benchmarks/mutation.sh`` measures the score; docs/testing.md lists the
mutants that no test can kill because they change nothing.

Data is shaped like 17TRACK's: ``hs`` is a hash of the latest event only, event times are the
carrier's local clock without a zone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from factories import api_reference, hash_of
from trackops.core import wire
from trackops.core.config import (
    ConditionSettings,
    ConfigError,
    CustomerSettings,
    NotificationSettings,
    SellerSettings,
)
from trackops.core.rules import Rules, ShipmentFacts
from trackops.core.status import (
    StoredState,
    Transition,
    decide,
    event_count,
    event_key,
    next_state,
)
from trackops.core.webhook import signature_problem
from trackops.core.wire import (
    Event,
    PackageStatus,
    RegisterResult,
    TrackApiError,
    TrackInfo,
    TrackingStatus,
    WireError,
)

S = PackageStatus
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NOW = datetime(2026, 3, 10, 12, 0, 0)
WEEK = timedelta(days=7)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def hs(event: dict[str, Any] | Event) -> int:
    """17TRACK's ``hs`` stand-in: a hash of the latest event (time, place, text), nothing else."""
    if isinstance(event, Event):
        parts = (event.time_raw, event.location, event.location_detail, event.description)
    else:
        parts = (event.get("a"), event.get("c"), event.get("d"), event.get("z"))
    return hash_of(*parts)


@pytest.fixture
def tokyo_local_time() -> Iterator[None]:
    """The process's local zone is UTC+9 for the test (POSIX TZ form: needs no tz database)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    try:
        assert datetime(2020, 1, 1, tzinfo=UTC).astimezone().utcoffset() == timedelta(hours=9)
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


# --------------------------------------------------------------------------- wire: times


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024/01/02 03:04:05", datetime(2024, 1, 2, 3, 4, 5)),
        ("2020/5/7 10:19:33", datetime(2020, 5, 7, 10, 19, 33)),
        ("2024/12/31 23:59:59", datetime(2024, 12, 31, 23, 59, 59)),
    ],
)
def test_slash_dates_with_seconds_are_times(raw: str, expected: datetime) -> None:
    # Mutant: the "%Y/%m/%d %H:%M:%S" format broken. Such times read as unknown.
    assert wire.parse_time(raw) == expected
    assert Event(time_raw=raw, description="Arrived at sort facility").time == expected


def test_a_slash_date_with_seconds_keeps_the_stale_rule_on() -> None:
    # An unknown event time switches the stale check off; this one is 8 days old: stale.
    event = Event(time_raw="2026/03/02 11:59:30", location="SHENZHEN", description="Departed")
    info = TrackInfo(package_status=S.DELIVERED, latest_event=event, hash=hs(event))
    stored = StoredState(S.IN_TRANSIT, datetime(2026, 2, 28, 9, 0), 12345, synced=True)
    transition = decide(stored, "RR123456789CN", info, now=NOW, stale_after=WEEK)
    assert transition.event_time == datetime(2026, 3, 2, 11, 59, 30)
    assert transition.stale
    assert not transition.notifies


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-05-07T10:19:00+02:00", datetime(2020, 5, 7, 8, 19)),
        ("2020-05-07T10:19:00-07:00", datetime(2020, 5, 7, 17, 19)),
        ("2020-05-07T10:19:00+00:00", datetime(2020, 5, 7, 10, 19)),
        # No zone: the carrier's local clock, kept as it reads (never shifted to local time).
        ("2020-05-07 10:19", datetime(2020, 5, 7, 10, 19)),
        ("2020/05/07 10:19:00", datetime(2020, 5, 7, 10, 19)),
    ],
)
def test_times_with_an_offset_become_utc_whatever_the_local_zone(
    tokyo_local_time: None, raw: str, expected: datetime
) -> None:
    # Mutant: astimezone(UTC) made astimezone() (local time). It passed while tests ran in UTC.
    parsed = wire.parse_time(raw)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is None


# --------------------------------------------------------------------------- wire: statuses


PACKAGE_TABLE = [
    (0, "Not found", "not_found"),
    (10, "In transit", "in_transit"),
    (20, "Expired", "expired"),
    (30, "Pick up", "pick_up"),
    (35, "Undelivered", "undelivered"),
    (40, "Delivered", "delivered"),
    (50, "Alert", "alert"),
]
"""The reference's "Package status" table, with the contract's slugs."""

TRACKING_TABLE = [
    (0, "Unable To Track"),
    (1, "Normal Tracking"),
    (2, "Not Found"),
    (10, "Web Error"),
    (11, "Process Error"),
    (12, "Service Error"),
    (20, "Web Error [Cache]"),
    (21, "Process Error [Cache]"),
    (22, "Service Error [Cache]"),
]
"""The reference's "Tracking status" table."""


def test_the_status_tables_are_the_references() -> None:
    reference = api_reference()
    if reference is None:
        pytest.skip(
            "the API reference (shared/reference/17track-api-v1.txt) is not beside the repo"
        )
    lines = reference.read_text(encoding="utf-8").splitlines()
    for code, name, *_ in PACKAGE_TABLE + TRACKING_TABLE:
        assert f"{code} {name}" in lines


@pytest.mark.parametrize(("code", "display", "slug"), PACKAGE_TABLE)
def test_package_status_codes_and_names(code: int, display: str, slug: str) -> None:
    # Mutants: a display name ("Delivered" ...) or a code (30) changed.
    status = PackageStatus(code)
    assert int(status) == code
    assert status.display == display
    assert status.slug == slug
    assert PackageStatus.parse(slug) is status
    assert PackageStatus.parse(display) is status
    assert PackageStatus.parse(str(code)) is status
    assert wire.decode_track_info(b'{"e": %d}' % code).package_status is status


def test_package_statuses_are_exactly_the_seven_of_the_reference() -> None:
    assert [(int(s), s.display, s.slug) for s in PackageStatus] == PACKAGE_TABLE


@pytest.mark.parametrize(("code", "display"), TRACKING_TABLE)
def test_tracking_status_codes_and_names(code: int, display: str) -> None:
    # Mutants: most tracking-status codes and their names.
    assert TrackingStatus(code).display == display


def test_tracking_statuses_are_exactly_the_nine_of_the_reference() -> None:
    assert [(int(s), s.display) for s in TrackingStatus] == TRACKING_TABLE


def test_an_unknown_package_status_is_refused_naming_every_accepted_value() -> None:
    # Mutant: the ", " between the accepted values changed.
    with pytest.raises(ValueError) as caught:
        PackageStatus.parse("lost")
    assert str(caught.value) == (
        "unknown package status 'lost'; expected one of: not_found (0), in_transit (10), "
        "expired (20), pick_up (30), undelivered (35), delivered (40), alert (50)"
    )


# --------------------------------------------------------------------------- wire: fields


def test_a_track_without_e_is_not_found() -> None:
    # Mutant: the default for a missing ``e`` changed from Not found to In transit.
    body = json.loads(sample("gettrackinfo_response.json"))
    track = body["data"]["accepted"][0]["track"]
    del track["e"]
    info = wire.decode_track_info(json.dumps(track))
    assert info.package_status is S.NOT_FOUND
    assert info.first_carrier == 3011  # the rest is read as usual
    assert TrackInfo().package_status is S.NOT_FOUND
    push = json.dumps({"number": "RM101474005CN", "carrier": 3011, "tag": "", "track": track})
    data = wire.decode_push_data("TRACKING_UPDATED", push.encode())
    assert isinstance(data, wire.TrackingUpdated)
    assert data.track.package_status is S.NOT_FOUND


SECOND_CARRIER_LATEST = {
    "a": "2015-05-31 09:12",
    "b": "FR",
    "c": "ANDORRE LA VIEILLE",
    "d": "",
    "z": "Distribué ANDORRE LA VIEILLE (09).",
}
SECOND_CARRIER_TRACK: dict[str, Any] = {
    "b": 301,
    "c": 1803,
    "e": 40,
    "f": 18,
    "w1": 3011,
    "w2": 6051,
    "z0": SECOND_CARRIER_LATEST,
    "z1": [{"a": "2015-05-13 14:47", "b": None, "c": "", "d": "", "z": "电子信息已收到"}],
    "z2": [SECOND_CARRIER_LATEST],
    "z9": [],
    "ygt1": 370,
    "ygt2": 1207,
    "ygt9": 0,
    "is1": 1,
    "is2": 20,
    "ln1": "zh-CHS",
    "ln2": "fr",
    "ln9": None,
    "hs": hs(SECOND_CARRIER_LATEST),
    "ylt1": "2015-06-01 20:44:52",
    "ylt2": "2015-06-01 20:45:03",
    "ylt9": "2079-01-01 00:00:00",
    "yt": "The second carrier's website answered from its cache.",
    "zex": {"trN": "", "trC": 0},
}
"""A parcel handed from China Post (3011) to La Poste (6051), delivered, the second carrier's
tracking status "Web Error [Cache]"; an event's ``b`` ("mapping of the location", null in the
reference's samples) carries a value, as a future 17TRACK may send."""


def test_the_second_carriers_fields_are_read_under_their_17track_names() -> None:
    # Mutants: ygt2, is2, ln2, yt and an event's b renamed.
    info = wire.decode_track_info(json.dumps(SECOND_CARRIER_TRACK))
    assert info.second_carrier == 6051
    assert info.second_tracking_ms == 1207
    assert info.second_tracking_status == 20
    assert TrackingStatus(info.second_tracking_status).display == "Web Error [Cache]"
    assert info.second_language == "fr"
    assert info.prompt == "The second carrier's website answered from its cache."
    assert info.second_last_tracked == datetime(2015, 6, 1, 20, 45, 3)
    assert info.last_tracked == datetime(2015, 6, 1, 20, 45, 3)
    assert info.latest_event is not None
    assert info.latest_event.location_mapping == "FR"
    assert [e.location_mapping for e in info.second_carrier_events] == ["FR"]
    assert info.first_carrier_events[0].location_mapping is None
    assert info.hash == hs(info.latest_event)


def test_the_second_carriers_fields_are_written_under_their_17track_names() -> None:
    # Stored tracking info is encoded by wire.encode: a renamed field would be lost there.
    info = wire.decode_track_info(json.dumps(SECOND_CARRIER_TRACK))
    encoded = json.loads(wire.encode(info))
    for key in ("ygt2", "is2", "ln2", "yt", "ylt2", "w2", "z2"):
        assert encoded[key] == SECOND_CARRIER_TRACK[key], key
    assert encoded["z0"]["b"] == "FR"


# --------------------------------------------------------------------------- wire: messages


def test_a_tag_over_100_characters_names_the_tag() -> None:
    # Mutant: the tag left out of the message ("The value None of field tag ...").
    tag = "order-" + "7" * 95
    with pytest.raises(TrackApiError) as caught:
        wire.validate_tag(tag, "RR123456789CN")
    assert caught.value.message == f"The value '{tag}' of field tag is invalid."


def test_a_push_whose_data_is_null_says_so() -> None:
    with pytest.raises(WireError) as caught:
        wire.decode_push(b'{"sign":"ab12","event":"TRACKING_UPDATED","data":null}')
    assert str(caught.value) == "push body is not a 17TRACK push envelope: `data` is null"


def test_a_body_that_is_no_envelope_says_what_was_wrong() -> None:
    with pytest.raises(WireError) as caught:
        wire.decode_push(b'{"event":"TRACKING_UPDATED"}')
    message = str(caught.value)
    assert message.startswith("push body is not a 17TRACK push envelope: ")
    assert "data" in message


def test_unreadable_push_data_names_the_event_and_the_field() -> None:
    with pytest.raises(WireError) as caught:
        wire.decode_push_data("TRACKING_STOPPED", b'{"carrier":3011}')
    message = str(caught.value)
    assert message.startswith("TRACKING_STOPPED push data could not be read: ")
    assert "number" in message


def test_an_answer_decoder_is_built_for_each_item_type_and_kept() -> None:
    # Mutants: the decoder cache read or filled wrongly. The item type is made here, so no
    # earlier decode (another test, or mutmut's warm-up run of the suite) has cached it.
    class Accepted(msgspec.Struct):
        number: str

    body = b'{"code":0,"data":{"accepted":[{"number":"RR123456789CN"}],"rejected":[]}}'
    assert Accepted not in wire._decoders
    envelope = wire.decode_envelope(body, Accepted)
    assert envelope.data is not None
    assert envelope.data.accepted == [Accepted(number="RR123456789CN")]
    decoder = wire._decoders[Accepted]
    # A well-formed answer takes the strict decoder only, never the tolerant pass.
    assert wire.Envelope[Accepted] not in wire._type_infos
    again = wire.decode_envelope(body, Accepted)
    assert again == envelope
    assert wire._decoders[Accepted] is decoder
    other = wire.decode_envelope(sample("register_response.json"), RegisterResult)
    assert other.data is not None and other.data.accepted[0].carrier == 3011


# --------------------------------------------------------------------------- status: next_state


def _in_transit(at: str) -> tuple[TrackInfo, Event]:
    event = Event(time_raw=at, location="GUANGZHOU", description="Departed from sorting center")
    info = TrackInfo(
        package_status=S.IN_TRANSIT,
        first_carrier=3011,
        latest_event=event,
        first_carrier_events=[event],
        hash=hs(event),
    )
    return info, event


def test_decide_hands_next_state_the_latest_event_time() -> None:
    info, _ = _in_transit("2026-03-09 18:40")
    transition = decide(None, "RR123456789CN", info, now=NOW, stale_after=WEEK)
    assert transition.latest_event_time == datetime(2026, 3, 9, 18, 40)
    state = next_state(None, transition, info)
    assert state.latest_event_time == datetime(2026, 3, 9, 18, 40)


def test_next_state_falls_back_to_the_new_event_time() -> None:
    # Mutant: next_state's fallback removed. A Transition built without latest_event_time
    # (as by a caller of the public type) still stores the update's own z0 time.
    info, _ = _in_transit("2026-03-09 18:40")
    transition = Transition(
        number="RR123456789CN",
        old_status=S.NOT_FOUND,
        new_status=S.IN_TRANSIT,
        first_sync=False,
        status_changed=True,
        stale=False,
        duplicate=False,
        out_of_order=False,
        event_time=None,
    )
    stored = StoredState(S.NOT_FOUND, datetime(2026, 3, 1, 8, 0), 1234, synced=True)
    state = next_state(stored, transition, info)
    assert state.latest_event_time == datetime(2026, 3, 9, 18, 40)
    assert state.package_status is S.IN_TRANSIT
    assert state.hash == info.hash


def test_next_state_takes_the_time_decide_read() -> None:
    # The time the transition carries wins over parsing z0 again (decide already did).
    info, _ = _in_transit("2026-03-09 18:40")
    transition = decide(None, "RR123456789CN", info, now=NOW, stale_after=WEEK)
    earlier = transition.__class__(
        **{**transition.__dict__, "latest_event_time": datetime(2026, 3, 9, 18, 0)}
    )
    assert next_state(None, earlier, info).latest_event_time == datetime(2026, 3, 9, 18, 0)
    unknown, _ = _in_transit("pending")  # z0's time unparseable: the transition's time stands
    assert next_state(None, earlier, unknown).latest_event_time == datetime(2026, 3, 9, 18, 0)


def test_next_state_of_a_rejected_first_sync_is_an_error() -> None:
    info, _ = _in_transit("2026-03-09 18:40")
    rejected = decide(None, "RR123456789CN", info, now=NOW, stale_after=WEEK)
    rejected = rejected.__class__(**{**rejected.__dict__, "duplicate": True})
    with pytest.raises(ValueError) as caught:
        next_state(None, rejected, info)
    assert str(caught.value) == "a first sync always applies"


# --------------------------------------------------------------------------- rules


FACTS = ShipmentFacts(
    number="RR123456789CN",
    carrier=3011,
    tag="vip-7",
    order="A-1001",
    email="buyer@example.com",
    origin_country=301,
    destination_country=1803,
)
TO_ALERT = Transition(
    number=FACTS.number,
    old_status=S.IN_TRANSIT,
    new_status=S.ALERT,
    first_sync=False,
    status_changed=True,
    stale=False,
    duplicate=False,
    out_of_order=False,
    event_time=None,
)


BUYER_WATCH = ConditionSettings(name="buyer-watch", audience="customer")
SELLER_WATCH = ConditionSettings(name="seller-watch", audience="seller")


@pytest.mark.parametrize(
    ("customer_enabled", "seller_enabled", "conditions", "sends"),
    [
        (False, True, (BUYER_WATCH, SELLER_WATCH), ["seller-watch"]),
        (True, False, (SELLER_WATCH, BUYER_WATCH), ["buyer-watch"]),
    ],
    ids=["customer-off-listed-first", "seller-off-listed-first"],
)
def test_a_switched_off_audience_skips_only_its_own_conditions(
    customer_enabled: bool,
    seller_enabled: bool,
    conditions: tuple[ConditionSettings, ...],
    sends: list[str],
) -> None:
    # Mutant: ``continue`` made ``break`` for a switched-off audience. A custom condition of
    # that audience listed first then silently dropped the other audience's conditions.
    settings = NotificationSettings(
        customer=CustomerSettings(enabled=customer_enabled),
        seller=SellerSettings(enabled=seller_enabled, email="seller@shop.example"),
        conditions=conditions,
    )
    intents = Rules(settings).intents(TO_ALERT, FACTS)
    assert [i.condition for i in intents if i.condition_kind == "custom"] == sends


@pytest.mark.parametrize(
    ("settings", "kwargs", "message"),
    [
        pytest.param(
            NotificationSettings(customer=CustomerSettings(channels=("email", "sms"))),
            {"known_channels": ("email", "slack")},
            "[notifications.customer] condition 'customer': channel 'sms' is not configured "
            "(fill in [channels.sms], or use a configured channel: email, slack)",
            id="customer",
        ),
        pytest.param(
            NotificationSettings(seller=SellerSettings(channels=("telegram",))),
            {"known_channels": ("email", "slack")},
            "[notifications.seller] condition 'seller': channel 'telegram' is not "
            "configured (fill in [channels.telegram], or use a configured channel: email, slack)",
            id="seller",
        ),
        pytest.param(
            NotificationSettings(
                conditions=(ConditionSettings(name="late-eu", channels=("pager",)),)
            ),
            {"known_channels": ("email", "slack")},
            "[[notifications.conditions]] condition 'late-eu': channel 'pager' is not "
            "configured (fill in [channels.pager], or use a configured channel: email, slack)",
            id="custom",
        ),
        pytest.param(
            NotificationSettings(),
            {"known_channels": ()},
            "[notifications.customer] condition 'customer': channel 'email' is not "
            "configured (fill in [channels.email], or use a configured channel: none (no channel "
            "plugin is loaded))",
            id="no-channel-plugin",
        ),
        pytest.param(
            NotificationSettings(
                conditions=(ConditionSettings(name="heavy", predicate="is_heavy"),)
            ),
            {},
            "[[notifications.conditions]] condition 'heavy': unknown predicate 'is_heavy'; "
            "known predicates: none (plugins register them with trackops_register_predicates)",
            id="no-predicate",
        ),
        pytest.param(
            NotificationSettings(conditions=(ConditionSettings(name="vip", tag_pattern="(vip"),)),
            {},
            "[[notifications.conditions]] condition 'vip': tag_pattern: expected a valid "
            "regular expression (missing ), unterminated subpattern at position 0), "
            "found '(vip'",
            id="bad-pattern",
        ),
    ],
)
def test_config_errors_name_the_section_they_are_about(
    settings: NotificationSettings, kwargs: dict[str, Any], message: str
) -> None:
    # Mutants: the section in the message changed ("XX[notifications.seller]XX", None ...).
    with pytest.raises(ConfigError) as caught:
        Rules(settings, **kwargs)
    assert str(caught.value) == message


# --------------------------------------------------------------------------- webhook signature

REFERENCE_DATA = b'{"number":"RM101474005CN","carrier":3011,"tag":""}'
REFERENCE_KEY = "6A8D7CFC3F7A41149E0A4EE8ABD0DD8A"
REFERENCE_SIGN = "a829f039332706b9b888eba84b77bd01f425ed327d2c4a92b50bba5beb0a0260"


def _push(sign: str | None) -> wire.PushEnvelope:
    head = b"{" if sign is None else b'{"sign":"%s",' % sign.encode()
    return wire.decode_push(head + b'"event":"TRACKING_STOPPED","data":' + REFERENCE_DATA + b"}")


@pytest.mark.parametrize(
    ("sign", "key", "problem"),
    [
        (REFERENCE_SIGN, REFERENCE_KEY, None),
        (REFERENCE_SIGN.upper(), REFERENCE_KEY, None),
        (f" {REFERENCE_SIGN} ", REFERENCE_KEY, None),
        (REFERENCE_SIGN, REFERENCE_KEY.lower(), "wrong sign"),
        (REFERENCE_SIGN[:-1] + "1", REFERENCE_KEY, "wrong sign"),
        ("0" * 64, REFERENCE_KEY, "wrong sign"),
        (None, REFERENCE_KEY, "missing sign"),
        ("", REFERENCE_KEY, "missing sign"),
    ],
    ids=["signed", "upper-hex", "spaces", "other-key", "one-digit", "zeros", "missing", "empty"],
)
def test_signature_problem(sign: str | None, key: str, problem: str | None) -> None:
    assert signature_problem(_push(sign), key) == problem


def test_the_signature_covers_event_data_and_key_in_that_order() -> None:
    sign = wire.push_signature("TRACKING_STOPPED", REFERENCE_DATA, REFERENCE_KEY)
    assert sign == REFERENCE_SIGN
    assert wire.push_signature("TRACKING_UPDATED", REFERENCE_DATA, REFERENCE_KEY) != sign
    joined = b"TRACKING_STOPPED/" + REFERENCE_DATA + b"/" + REFERENCE_KEY.encode()
    assert hashlib.sha256(joined).hexdigest() == sign


# --------------------------------------------------------------------------- status: event order
# Issue 11 made the order of updates come from the events themselves. Each case is a sentence
# of status.py's theory of operation; the stored state is what next_state kept of a real update.


def ev(at: str, text: str, place: str = "SHENZHEN") -> Event:
    return Event(time_raw=at, location=place, description=text)


ACCEPTED = ev("2026-03-01 09:12", "Item accepted")
DEPARTED = ev("2026-03-02 18:40", "Departed from sorting center")
EXPORTED = ev("2026-03-03 07:05", "Handed over to airline")
ARRIVED = ev("2026-03-05 02:30", "Arrived at destination country", "LOS ANGELES, CA")
MERCHANT = ev("2026-02-28 21:00", "Order packed by the seller", "Shenzhen warehouse")


def shipment_info(
    status: PackageStatus,
    z1: list[Event],
    *,
    z9: tuple[Event, ...] = (),
    latest: Event | None = None,
    ylt1: str | None = None,
    hs_of: Event | None = None,
) -> TrackInfo:
    """A track whose latest event is ``latest`` (else z1's first), ``hs`` a hash of that event."""
    z0 = latest if latest is not None else (z1[0] if z1 else None)
    hashed = hs_of if hs_of is not None else z0
    return TrackInfo(
        package_status=status,
        first_carrier=3011,
        latest_event=z0,
        first_carrier_events=list(z1),
        ecommerce_events=list(z9),
        first_last_tracked_raw=ylt1,
        hash=None if hashed is None else hs(hashed),
    )


def stored_after(info: TrackInfo) -> StoredState:
    transition = decide(None, "RR123456789CN", info, now=NOW, stale_after=WEEK)
    return next_state(None, transition, info)


def judge(stored: StoredState, info: TrackInfo) -> Transition:
    return decide(stored, "RR123456789CN", info, now=NOW, stale_after=WEEK)


def test_an_event_is_known_by_its_time_or_its_text() -> None:
    assert event_key(Event(time_raw="2026-03-02 18:40", description="")) == (
        "2026-03-02 18:40",
        None,
    )
    assert event_key(Event(time_raw="", description="Item accepted")) == (None, "Item accepted")
    assert event_key(Event(time_raw="", description="", location="SHENZHEN")) is None
    assert event_key(None) is None


def test_events_are_counted_over_every_carrier() -> None:
    info = TrackInfo(
        first_carrier_events=[EXPORTED, DEPARTED],
        second_carrier_events=[ARRIVED],
        ecommerce_events=[ACCEPTED, MERCHANT, ev("2026-02-28 20:00", "Order paid")],
    )
    assert event_count(info) == 6


def test_a_row_stored_without_hs_still_knows_its_latest_event() -> None:
    # Same latest event, same status: a duplicate, judged by the event when only the update
    # has an hs (rows stored before hs was kept).
    info = shipment_info(S.IN_TRANSIT, [DEPARTED, ACCEPTED])
    stored = replace_state(stored_after(info), hash=None)
    transition = judge(stored, info)
    assert transition.duplicate and not transition.applies


def replace_state(state: StoredState, **changes: Any) -> StoredState:
    return replace(state, **changes)


def test_a_status_change_without_a_new_event_applies_even_with_a_shorter_history() -> None:
    # 17TRACK sets Expired without a new event; tracked at the same time, it is not older.
    before = shipment_info(S.IN_TRANSIT, [EXPORTED, DEPARTED, ACCEPTED], ylt1="2026-03-04 10:00:00")
    expired = shipment_info(S.EXPIRED, [EXPORTED, DEPARTED], ylt1="2026-03-04 10:00:00")
    transition = judge(stored_after(before), expired)
    assert not transition.out_of_order and not transition.duplicate
    assert transition.applies and transition.status_changed


def test_a_history_holding_the_stored_latest_event_is_newer_even_when_shorter() -> None:
    before = shipment_info(S.IN_TRANSIT, [EXPORTED, DEPARTED, ACCEPTED])
    newer = shipment_info(S.IN_TRANSIT, [ARRIVED, EXPORTED])  # 17TRACK cut the older events
    transition = judge(stored_after(before), newer)
    assert transition.applies and not transition.out_of_order


def test_the_stored_latest_event_is_looked_for_in_the_merchants_events_too() -> None:
    # The stored latest event came from the e-commerce carrier (z9); the newer update's first
    # carrier has a new event and z9 still holds the old one.
    before = shipment_info(
        S.IN_TRANSIT,
        [ACCEPTED, ev("2026-02-28 23:10", "Shipment information received")],
        z9=(MERCHANT, ev("2026-02-28 20:00", "Order paid")),
        latest=MERCHANT,
    )
    newer = shipment_info(S.IN_TRANSIT, [DEPARTED], z9=(MERCHANT,))
    transition = judge(stored_after(before), newer)
    assert transition.applies and not transition.out_of_order


def test_a_shorter_history_without_the_stored_latest_event_is_older() -> None:
    before = shipment_info(S.IN_TRANSIT, [EXPORTED, DEPARTED, ACCEPTED], z9=(MERCHANT,))
    late_copy = shipment_info(S.IN_TRANSIT, [DEPARTED], z9=(MERCHANT,))
    transition = judge(stored_after(before), late_copy)
    assert transition.out_of_order and not transition.applies


def test_a_revised_latest_event_tracked_earlier_is_an_old_copy() -> None:
    # The same time and text with another place: another hs, not "another latest event".
    # Its last-tracked time is older than the stored one: out of order.
    before = shipment_info(S.IN_TRANSIT, [DEPARTED, ACCEPTED], ylt1="2026-03-03 12:00:00")
    revised = replace_event_place(DEPARTED, "SHENZHEN HUB 2")
    late_copy = shipment_info(
        S.IN_TRANSIT, [revised, ACCEPTED], ylt1="2026-03-02 19:00:00", hs_of=revised
    )
    assert late_copy.hash != before.hash
    transition = judge(stored_after(before), late_copy)
    assert transition.out_of_order and not transition.applies


def replace_event_place(event: Event, place: str) -> Event:
    return Event(time_raw=event.time_raw, location=place, description=event.description)


# --------------------------------------------------------------------------- wire: unknown codes


def unseen_code(start: int, step: int) -> int:
    """A status code no earlier decode in this process has met (so its member is made now)."""
    code = start
    while code in wire._UNKNOWN_STATUSES:
        code += step
    return code


@pytest.mark.parametrize(("start", "step", "name"), [(900, 1, "UNKNOWN_{}"), (-900, -1, None)])
def test_an_undocumented_code_is_kept_as_a_status_of_its_own(
    start: int, step: int, name: str | None
) -> None:
    code = unseen_code(start, step)
    status = PackageStatus(code)
    assert isinstance(status, PackageStatus)
    assert int(status) == code and status.value == code
    assert status.name == (name.format(code) if name else f"UNKNOWN_MINUS_{-code}")
    assert status.slug == "unknown"
    assert status.display == f"Unknown ({code})"
    assert not status.is_known
    assert PackageStatus(code) is status
    assert wire.decode_track_info(b'{"e": %d}' % code).package_status is status


@pytest.mark.parametrize("value", ["60", True, 60.0])
def test_only_an_integer_can_be_a_status_code(value: object) -> None:
    with pytest.raises(ValueError):
        PackageStatus(value)


# --------------------------------------------------------------------------- wire: API errors


def track_list(body: dict[str, Any]) -> wire.TrackListEnvelope:
    return wire.decode_track_list(json.dumps(body))


PAGE = {"data_total": 0, "page_total": 0, "page_no": 1, "page_size": 40}


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        pytest.param(
            {"code": 0, "data": {"accepted": [], "page": PAGE, "errors": []}},
            None,
            None,
            id="success",
        ),
        pytest.param(
            {
                "code": 0,
                "data": {
                    "accepted": [],
                    "errors": [
                        {
                            "code": -18010012,
                            "message": "The format of register_time_from is invalid.",
                        },
                        {"code": -18010011, "message": "The value of page_no is invalid."},
                    ],
                },
            },
            -18010012,
            "The format of register_time_from is invalid.",
            id="filter-errors-under-code-0",
        ),
        pytest.param(
            {
                "code": 0,
                "data": {
                    "accepted": [],
                    "errors": [
                        {"code": -18010011, "message": ""},
                        {
                            "code": -18010012,
                            "message": "The format of register_time_from is invalid.",
                        },
                    ],
                },
            },
            -18010011,
            "The value of ? is invalid.",
            id="empty-message-takes-the-table's",
        ),
        pytest.param(
            {
                "code": 401,
                "data": {"errors": [{"code": -18010002, "message": "Access token is invalid."}]},
            },
            -18010002,
            "Access token is invalid.",
            id="real-code-under-401",
        ),
        pytest.param(
            {
                "code": -18010002,
                "data": {
                    "errors": [{"code": -18010011, "message": "The value of page_no is invalid."}]
                },
            },
            -18010002,
            "Access token is invalid.",
            id="a-known-top-code-wins",
        ),
        pytest.param({"code": 401, "data": None}, 401, "Unknown error code 401.", id="bare-401"),
    ],
)
def test_a_track_list_answer_names_its_error(
    body: dict[str, Any], code: int | None, message: str | None
) -> None:
    error = track_list(body).api_error()
    if code is None:
        assert error is None
        return
    assert error is not None
    assert (error.code, error.message) == (code, message)


def test_an_answer_with_a_known_code_keeps_the_tables_message() -> None:
    body = {
        "code": -18010002,
        "data": {"errors": [{"code": -18010011, "message": "The value of page_no is invalid."}]},
    }
    error = wire.decode_envelope(json.dumps(body), RegisterResult).api_error()
    assert error is not None
    assert (error.code, error.message) == (-18010002, "Access token is invalid.")


@pytest.mark.parametrize(
    ("errors", "pairs"),
    [
        (
            ["oops", {"code": "-18010013", "message": "Submitted data is invalid."}],
            [(-18010013, "Submitted data is invalid.")],
        ),
        (
            [{"message": "no code"}, {"code": -18010014.0, "message": None}],
            [(-18010014, "")],
        ),
        ({"code": -18010003, "message": 5}, [(-18010003, "")]),
        (None, []),
    ],
)
def test_errors_of_reads_every_shape(errors: Any, pairs: list[tuple[int, str]]) -> None:
    assert wire.errors_of(errors) == pairs


# --------------------------------------------------------------------------- wire: tolerance


LOGGER = "trackops.wire"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_odd_fields_of_a_track_are_fitted_and_the_unusable_ones_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    accepted = {"a": "2026-03-02 18:40", "b": None, "c": "SHENZHEN", "d": "", "z": "Departed"}
    body = {
        "e": "10",
        "w1": 3011.0,
        "w2": "",
        "b": 301,
        "c": "2105",
        "z0": accepted,
        "z1": [accepted, "", 7],
        "z2": None,
        "ygt1": "370",
        "is1": 1,
        "ln1": {"lang": "en"},
        "ln2": 3011,
        "hs": hs(accepted),
        "ylt1": "2026-03-02 19:00:05",
        "f": "-1",
        "yt": 0,
        "zex": "",
    }
    with caplog.at_level("WARNING", logger=LOGGER):
        info = wire.decode_track_info(json.dumps(body))
    assert info.package_status is S.IN_TRANSIT
    assert (info.first_carrier, info.second_carrier, info.destination_country) == (3011, 0, 2105)
    assert info.first_carrier_events == [info.latest_event]
    assert info.second_carrier_events == []
    assert info.first_tracking_ms == 370
    assert info.first_language is None
    assert info.second_language == "3011"
    assert info.delivery_time == -1
    assert info.prompt == "0"
    assert info.extension is None
    assert warnings_of(caplog) == [
        "tracking information: unusable values left out (defaults kept): "
        "$.z1[2] = 7; $.ln1 = {'lang': 'en'}"
    ]


def test_a_track_list_with_odd_rows_keeps_every_row(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        {"number": f"RR1234567{i:02d}CN", "w1": "China Post", "e": "10", "ir": 1, "ts": 0}
        for i in range(25)
    ]
    rows[-1]["ir"] = 2
    body = {"code": 0, "data": {"accepted": rows, "page": {**PAGE, "data_total": 25}}}
    with caplog.at_level("WARNING", logger=LOGGER):
        answer = track_list(body)
    assert answer.data is not None
    assert [r.number for r in answer.data.accepted] == [r["number"] for r in rows]
    first = answer.data.accepted[0]
    assert first.first_carrier is None and first.package_status == 10
    assert first.retrack_enabled is True and first.tracking is False
    last = answer.data.accepted[-1]
    assert last.retrack_enabled == 2 and last.retrack_enabled is not False  # no flag: kept
    assert answer.data.page is not None and answer.data.page.data_total == 25
    (warning,) = warnings_of(caplog)
    head = "17TRACK track list: unusable values left out (defaults kept): "
    assert warning.startswith(head)
    named = warning[len(head) :].split("; ")
    assert len(named) == 20  # the first 20 are enough to see what went wrong
    assert named[0] == "$.data.accepted[0].w1 = 'China Post'"


def test_an_answer_decoded_leniently_names_what_it_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Accepted(msgspec.Struct):  # made here: no earlier run has cached its type
        number: str
        carrier: int | None = None

    body = b'{"code":0,"data":{"accepted":[{"number":"RR123456789CN","carrier":"DHL"}]}}'
    with caplog.at_level("WARNING", logger=LOGGER):
        envelope = wire.decode_envelope(body, Accepted)
    assert envelope.data is not None
    assert envelope.data.accepted == [Accepted(number="RR123456789CN")]
    assert warnings_of(caplog) == [
        "17TRACK answer: unusable values left out (defaults kept): "
        "$.data.accepted[0].carrier = 'DHL'"
    ]
    kind = wire._type_infos[wire.Envelope[Accepted]]
    wire.decode_envelope(body, Accepted)
    assert wire._type_infos[wire.Envelope[Accepted]] is kind


@pytest.mark.parametrize(
    ("decode", "body", "message"),
    [
        (
            lambda b: wire.decode_envelope(b, RegisterResult),
            b"<html>502 Bad Gateway</html>",
            "17TRACK answer could not be read: ",
        ),
        (
            wire.decode_track_list,
            b"<html>502 Bad Gateway</html>",
            "17TRACK track list could not be read: ",
        ),
        (wire.decode_track_info, b"{", "tracking information could not be read: "),
        (
            wire.decode_track_info,
            b"[1, 2]",
            "tracking information could not be read: expected a JSON object",
        ),
        (
            lambda b: wire.decode_push_data("TRACKING_UPDATED", b),
            b"{not json",
            "TRACKING_UPDATED push data could not be read: ",
        ),
        (
            lambda b: wire.decode_push_data("TRACKING_STOPPED", b),
            b"[]",
            "TRACKING_STOPPED push data could not be read: expected a JSON object",
        ),
    ],
)
def test_unreadable_answers_say_what_could_not_be_read(
    decode: Any, body: bytes, message: str
) -> None:
    with pytest.raises(WireError) as caught:
        decode(body)
    assert str(caught.value).startswith(message)
    if not message.endswith(": "):
        assert str(caught.value) == message


def test_pushes_with_odd_fields_keep_number_carrier_and_tag() -> None:
    stopped = wire.decode_push_data(
        "TRACKING_STOPPED", b'{"number":"RM101474005CN","carrier":"3011","tag":"order-7"}'
    )
    assert stopped == wire.TrackingStopped(number="RM101474005CN", carrier=3011, tag="order-7")
    updated = wire.decode_push_data(
        "TRACKING_UPDATED",
        b'{"number":"RM101474005CN","carrier":"3011","tag":"order-7","track":{"e":"40"}}',
    )
    assert isinstance(updated, wire.TrackingUpdated)
    assert (updated.number, updated.carrier, updated.tag) == ("RM101474005CN", 3011, "order-7")
    assert updated.track.package_status is S.DELIVERED


def test_a_sign_that_is_no_text_is_wrong_not_an_error() -> None:
    # A lone surrogate cannot come through JSON, but the check takes any str without raising.
    envelope = wire.PushEnvelope(
        event="TRACKING_STOPPED", data=msgspec.Raw(REFERENCE_DATA), sign="\ud800" + "0" * 63
    )
    assert wire.verify_push_signature(envelope, REFERENCE_KEY) is False
    assert signature_problem(envelope, REFERENCE_KEY) == "wrong sign"
