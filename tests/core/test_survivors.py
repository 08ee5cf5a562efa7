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
from trackops.core.status import StoredState, Transition, decide, next_state
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
