"""Golden tests for ``trackops.core.wire``: every JSON example of the API reference, decoded.

The samples in ``tests/samples/`` are the reference's examples copied byte for byte
(``17track-api-v1.txt``); no socket is involved.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from factories import api_reference
from trackops.core import wire
from trackops.core.wire import (
    CarrierResult,
    ChangeCarrierItem,
    ChangeInfoRequest,
    NumberItem,
    PackageStatus,
    RegisterItem,
    RegisterResult,
    TrackApiError,
    TrackInfoResult,
    TrackingStatus,
    TrackingStopped,
    TrackingUpdated,
    TrackListEntry,
    TrackListQuery,
    WireError,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def same_json(encoded: bytes, name: str) -> bool:
    return json.loads(encoded) == json.loads(sample(name))


# --------------------------------------------------------------------------- envelope


def test_envelope_sample_is_empty_success() -> None:
    envelope = wire.decode_envelope(sample("envelope.json"), RegisterResult)
    assert envelope.code == 0
    assert envelope.data is not None
    assert envelope.data.accepted == []
    assert envelope.data.rejected == []


# --------------------------------------------------------------------------- register


def test_register_request_round_trips() -> None:
    items = msgspec.json.decode(sample("register_request.json"), type=list[RegisterItem])
    first, second = items
    assert first.number == "RR123456789CN"
    assert first.carrier == 3011
    assert first.final_carrier == 21051
    assert first.auto_detection is False
    assert first.tag == "MyId"
    assert first.extra_param == ""
    assert second == RegisterItem(number="1234")
    assert same_json(wire.encode(items), "register_request.json")


def test_register_request_sample_second_number_fails_local_validation() -> None:
    items = msgspec.json.decode(sample("register_request.json"), type=list[RegisterItem])
    wire.validate_number(items[0].number)
    with pytest.raises(TrackApiError) as caught:
        wire.validate_number(items[1].number)
    # exactly what the reference's response example says for that number
    rejected = wire.decode_envelope(sample("register_response.json"), RegisterResult)
    assert rejected.data is not None
    expected = rejected.data.rejected[0].error
    assert caught.value.code == expected.code == -18010012
    assert caught.value.message == expected.message == "The format of '1234' is invalid."
    assert caught.value.number == "1234"


def test_register_response() -> None:
    envelope = wire.decode_envelope(sample("register_response.json"), RegisterResult)
    assert envelope.code == 0
    assert envelope.data is not None
    assert envelope.data.accepted == [
        RegisterResult(number="RR123456789CN", carrier=3011, origin=1)
    ]
    (rejected,) = envelope.data.rejected
    assert rejected.number == "1234"
    assert rejected.error.code == -18010012
    assert rejected.error.message == "The format of '1234' is invalid."


# --------------------------------------------------------------------------- other endpoints


def test_changecarrier_request_round_trips() -> None:
    (item,) = msgspec.json.decode(
        sample("changecarrier_request.json"), type=list[ChangeCarrierItem]
    )
    assert item == ChangeCarrierItem(
        number="RR123456789CN",
        carrier_old=3011,
        carrier_new=3013,
        final_carrier_old=0,
        final_carrier_new=0,
    )
    assert same_json(wire.encode([item]), "changecarrier_request.json")


def test_changecarrier_response() -> None:
    envelope = wire.decode_envelope(sample("changecarrier_response.json"), CarrierResult)
    assert envelope.data is not None
    assert envelope.data.accepted == [CarrierResult(number="RR123456789CN", carrier=3013)]
    assert envelope.data.rejected == []


def test_changeinfo_request_round_trips() -> None:
    request = msgspec.json.decode(sample("changeinfo_request.json"), type=ChangeInfoRequest)
    assert request.number == "RR123456789CN"
    assert request.carrier == 3011
    assert request.items.tag == "This is my order id."
    assert request.items.param == "1234"
    assert same_json(wire.encode(request), "changeinfo_request.json")


def test_changeinfo_response() -> None:
    envelope = wire.decode_envelope(sample("changeinfo_response.json"), CarrierResult)
    assert envelope.data is not None
    assert envelope.data.accepted == [CarrierResult(number="LW503511611CN", carrier=3011)]


@pytest.mark.parametrize("endpoint", ["stoptrack", "retrack", "gettrackinfo", "deletetrack"])
def test_number_item_requests_round_trip(endpoint: str) -> None:
    name = f"{endpoint}_request.json"
    items = msgspec.json.decode(sample(name), type=list[NumberItem])
    assert items == [NumberItem(number="RR123456789CN", carrier=3011)]
    assert same_json(wire.encode(items), name)


def test_push_request_round_trips() -> None:
    # the body of the reference's curl example
    items = msgspec.json.decode(sample("push_request.json"), type=list[NumberItem])
    assert items == [NumberItem(number="RR123456789CN", carrier=3011)]
    assert same_json(wire.encode(items), "push_request.json")


@pytest.mark.parametrize(
    ("name", "number", "carrier"),
    [
        ("stoptrack_response.json", "RR123456789CN", 3011),
        ("retrack_response.json", "RR123456789CN", 3011),
        ("deletetrack_response.json", "621366941543", 100271),
        ("push_response.json", "RR123456789CN", 3011),
    ],
)
def test_carrier_result_responses(name: str, number: str, carrier: int) -> None:
    envelope = wire.decode_envelope(sample(name), CarrierResult)
    assert envelope.code == 0
    assert envelope.data is not None
    assert envelope.data.accepted == [CarrierResult(number=number, carrier=carrier)]
    assert envelope.data.rejected == []  # absent in most samples: defaults to empty


def test_gettracklist_request_round_trips() -> None:
    query = msgspec.json.decode(sample("gettracklist_request.json"), type=TrackListQuery)
    assert query.number == "RR123456789CN"
    assert query.register_time_from == "2019-01-01 12:24:00"
    assert query.package_state == 10
    assert query.push_state == 0
    assert query.tracking_state == 0
    assert query.page_no == 1
    assert same_json(wire.encode(query), "gettracklist_request.json")


def test_gettracklist_response() -> None:
    envelope = wire.decode_envelope(sample("gettracklist_response.json"), TrackListEntry)
    assert envelope.data is not None
    (entry,) = envelope.data.accepted
    assert entry.number == "RV929123748CN"
    assert (entry.first_carrier, entry.second_carrier) == (3011, 10011)
    assert (entry.origin_country, entry.destination_country) == (301, 1001)
    assert entry.package_status == PackageStatus.EXPIRED
    assert entry.register_time == "2019-08-26 09:48:16"
    assert entry.tracked_time == "2020-01-16 02:52:11"
    assert entry.pushed_time == "2019-11-08 06:16:25"
    assert entry.push_http_status == 200
    assert entry.stopped_time == "2020-02-28 02:36:59"
    assert entry.stop_reason == 1
    assert entry.retrack_enabled is True
    assert entry.tracking is False
    assert entry.carrier_changes == 0
    assert entry.tag is None


def test_gettrackinfo_response() -> None:
    envelope = wire.decode_envelope(sample("gettrackinfo_response.json"), TrackInfoResult)
    assert envelope.data is not None
    (result,) = envelope.data.accepted
    assert result.number == "RM101474005CN"
    assert result.tag == ""
    track = result.track
    assert track is not None
    assert track.first_carrier == 3011
    assert track.second_carrier == 18031
    assert (track.origin_country, track.destination_country) == (301, 1803)
    assert track.package_status is PackageStatus.IN_TRANSIT
    assert track.delivery_time == -1
    assert track.first_tracking_status == TrackingStatus.NORMAL_TRACKING
    assert track.first_language == "zh-CHS"
    assert track.second_language is None
    assert track.hash == 627236210
    assert track.first_tracking_ms == 370

    latest = track.latest_event
    assert latest is not None
    assert latest.description == "移交海关"
    assert latest.location == "BLAGOVESCH 1"
    assert latest.place == "BLAGOVESCH 1"
    assert latest.time_raw == "2015-05-29 09:00"
    assert latest.time == datetime(2015, 5, 29, 9, 0)

    assert [e.description for e in track.first_carrier_events] == ["电子信息已收到"]
    assert [e.description for e in track.second_carrier_events] == [
        "Distribué ANDORRE LA VIEILLE (09)."
    ]
    assert track.ecommerce_events == []
    assert track.first_carrier_events[0].location_mapping is None

    # ylt: the 2079 sentinel means "no time"
    assert track.first_last_tracked_raw == "2015-06-01 20:44:52"
    assert track.first_last_tracked == datetime(2015, 6, 1, 20, 44, 52)
    assert track.second_last_tracked_raw == wire.NO_TIME
    assert track.second_last_tracked is None
    assert track.ecommerce_last_tracked is None
    assert track.last_tracked == datetime(2015, 6, 1, 20, 44, 52)

    assert track.extension is not None
    assert track.extension.original_number == ""
    assert track.extension.original_carrier == 0
    # newest first across carriers
    assert [e.time_raw for e in track.all_events] == ["2015-05-31 00:00", "2015-05-13 14:47"]


# --------------------------------------------------------------------------- webhook pushes


def test_webhook_tracking_stopped() -> None:
    envelope = wire.decode_push(sample("webhook_tracking_stopped.json"))
    assert envelope.event == "TRACKING_STOPPED"
    assert envelope.sign == "a829f039332706b9b888eba84b77bd01f425ed327d2c4a92b50bba5beb0a0260"
    data = wire.decode_push_data(envelope.event, bytes(envelope.data))
    assert data == TrackingStopped(number="RM101474005CN", carrier=3011, tag="")


def test_webhook_sign_example_envelope() -> None:
    envelope = wire.decode_push(sample("webhook_sign_example.json"))
    data = wire.decode_push_data(envelope.event, bytes(envelope.data))
    assert data == TrackingStopped(number="RM101474005CN", carrier=3011, tag="")


def test_webhook_tracking_updated() -> None:
    envelope = wire.decode_push(sample("webhook_tracking_updated.json"))
    assert envelope.event == "TRACKING_UPDATED"
    assert envelope.sign == "34f40c8fc37f9a7100c65215b0df85c58cc4880cf2e832fe91c86de1bc00b181"
    data = wire.decode_push_data(envelope.event, bytes(envelope.data))
    assert isinstance(data, TrackingUpdated)
    assert data.number == "STOAA0000272952YQ"
    assert data.tag == ""
    track = data.track
    assert track.first_carrier == 190316
    assert track.second_carrier == 0
    assert track.package_status is PackageStatus.IN_TRANSIT
    assert track.ecommerce_language == "en"
    latest = track.latest_event
    assert latest is not None
    assert latest.time_raw == "2020-05-07 10:19"
    assert latest.time == datetime(2020, 5, 7, 10, 19)
    assert latest.location == ""
    assert latest.location_detail == "BLOOMINGTON, CA 92316"
    assert latest.place == "BLOOMINGTON, CA 92316"
    assert latest.description is not None
    assert latest.description.startswith("Departed Shipping Partner Facility, USPS Awaiting Item")
    assert len(track.first_carrier_events) == 3
    assert track.second_carrier_events == []
    assert [e.description for e in track.ecommerce_events] == [
        "Item inbound in sorting center.",
        "Item accepted.",
    ]
    assert track.second_last_tracked is None
    assert track.ecommerce_last_tracked == datetime(2020, 5, 11, 12, 5, 58)
    assert track.extension is not None
    assert track.extension.original_number == "92612927005099010009150135"
    assert track.extension.original_carrier == 21051
    times = [e.time_raw for e in track.all_events]
    assert times[0] == "2020-05-07 10:19"
    assert times[-1] == "2020-04-12 21:16"


def test_push_data_is_kept_as_the_exact_bytes_received() -> None:
    raw = sample("webhook_sign_raw.json")
    envelope = wire.decode_push(raw)
    assert bytes(envelope.data) == b'{"number":"RM101474005CN","carrier":3011}'


def test_push_signature_reference_example() -> None:
    data = b'{"number":"RM101474005CN","carrier":3011,"tag":""}'
    key = "6A8D7CFC3F7A41149E0A4EE8ABD0DD8A"
    expected = "a829f039332706b9b888eba84b77bd01f425ed327d2c4a92b50bba5beb0a0260"
    assert wire.push_signature("TRACKING_STOPPED", data, key) == expected
    body = b'{"sign":"%s","event":"TRACKING_STOPPED","data":%s}' % (expected.encode(), data)
    envelope = wire.decode_push(body)
    assert wire.verify_push_signature(envelope, key)
    assert not wire.verify_push_signature(envelope, key.lower())
    tampered = body.replace(b"3011", b"3012")
    assert not wire.verify_push_signature(wire.decode_push(tampered), key)
    unsigned = wire.decode_push(b'{"event":"TRACKING_STOPPED","data":%s}' % data)
    assert not wire.verify_push_signature(unsigned, key)


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"event":"TRACKING_STOPPED"}', b'{"event":"X","data":null}', b"not json"],
)
def test_push_bodies_that_are_not_envelopes(body: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode_push(body)


def test_unknown_push_event_decodes_to_none() -> None:
    assert wire.decode_push_data("TRACKING_TELEPORTED", b'{"number":"X"}') is None


# --------------------------------------------------------------------------- error table


@pytest.mark.parametrize(
    ("code", "args", "expected"),
    [
        (0, (), "Success"),
        (-18010012, ("'1234'",), "The format of '1234' is invalid."),
        (-18010010, ("number",), "The field of number is required."),
        (
            -18010015,
            ("'x'", "tag"),
            "The value 'x' of field tag is invalid.",
        ),
        (
            -18019901,
            ("RR123456789CN",),
            "The tracking number RR123456789CN has been registered, don't need to repeat "
            "registration",
        ),
        (
            -18019805,
            (3011, "RR123456789CN"),
            "The tracking number RR123456789CN for the specified carrier 3011 is not registered, "
            "or the existing carrier parameter [carrier_old] is incorrect.",
        ),
        (-18010012, (), "The format of ? is invalid."),
        (-18010014, (), "Request parameter number exceeds 40."),
        (-1, (), "Unknown error code -1."),
    ],
)
def test_error_message_filling(code: int, args: tuple[Any, ...], expected: str) -> None:
    assert wire.error_message(code, *args) == expected


def test_error_table_matches_reference() -> None:
    reference = api_reference()
    if reference is None:
        pytest.skip(
            "the API reference (shared/reference/17track-api-v1.txt) is not beside the repo"
        )
    rows: dict[int, str] = {}
    for line in reference.read_text(encoding="utf-8").splitlines():
        head, _, rest = line.partition(" ")
        if head.lstrip("-").isdigit() and head.startswith("-1801") and rest:
            rows[int(head)] = rest.strip()
    assert rows, "no error rows found in the reference"
    for code, message in rows.items():
        assert wire.ERROR_MESSAGES[code] == message, code


def test_track_api_error_carries_code_message_and_number() -> None:
    exc = TrackApiError(-18019902, number="RR123456789CN")
    assert exc.code == -18019902
    assert exc.message == "The tracking number ? does not register, please register first"
    assert str(exc) == f"{exc.message} (code -18019902)"
    assert exc.number == "RR123456789CN"


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in_transit", PackageStatus.IN_TRANSIT),
        ("In transit", PackageStatus.IN_TRANSIT),
        ("IN-TRANSIT", PackageStatus.IN_TRANSIT),
        ("10", PackageStatus.IN_TRANSIT),
        (10, PackageStatus.IN_TRANSIT),
        (" 40 ", PackageStatus.DELIVERED),
        ("delivered", PackageStatus.DELIVERED),
        ("Pick up", PackageStatus.PICK_UP),
        ("not_found", PackageStatus.NOT_FOUND),
        (0, PackageStatus.NOT_FOUND),
        ("undelivered", PackageStatus.UNDELIVERED),
        ("35", PackageStatus.UNDELIVERED),
        ("alert", PackageStatus.ALERT),
        ("expired", PackageStatus.EXPIRED),
    ],
)
def test_package_status_parse(text: str | int, expected: PackageStatus) -> None:
    assert PackageStatus.parse(text) is expected


@pytest.mark.parametrize("text", ["lost", "11", 11, "", "-10", "60"])
def test_package_status_parse_rejects_with_the_accepted_values(text: str | int) -> None:
    """Only documented codes are accepted on the command line (60 is shown, not typed)."""
    with pytest.raises(ValueError, match=r"in_transit \(10\)"):
        PackageStatus.parse(text)


def test_package_status_names() -> None:
    assert [s.slug for s in PackageStatus] == [
        "not_found",
        "in_transit",
        "expired",
        "pick_up",
        "undelivered",
        "delivered",
        "alert",
    ]
    assert PackageStatus.PICK_UP.display == "Pick up"
    assert TrackingStatus.WEB_ERROR_CACHE.display == "Web Error [Cache]"


# --------------------------------------------------------------------------- tolerance and errors


def test_unknown_fields_are_tolerated() -> None:
    body = json.loads(sample("gettrackinfo_response.json"))
    body["brand_new"] = {"x": 1}
    body["data"]["hint"] = "new"
    body["data"]["accepted"][0]["track"]["zz"] = [1, 2]
    body["data"]["accepted"][0]["track"]["z0"]["q"] = "new event field"
    envelope = wire.decode_envelope(json.dumps(body), TrackInfoResult)
    assert envelope.data is not None
    track = envelope.data.accepted[0].track
    assert track is not None
    assert track.first_carrier == 3011
    assert track.latest_event is not None
    assert track.latest_event.description == "移交海关"


def test_wrong_type_is_left_out_and_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    body = sample("register_response.json").replace(b'"carrier": 3011', b'"carrier": "DHL"')
    with caplog.at_level("WARNING", logger="trackops.wire"):
        envelope = wire.decode_envelope(body, RegisterResult)
    assert envelope.data is not None
    assert envelope.data.accepted[0] == RegisterResult(number="RR123456789CN", origin=1)
    assert "$.data.accepted[0].carrier = 'DHL'" in caplog.text


def test_digits_in_strings_are_read_as_numbers() -> None:
    body = sample("register_response.json").replace(b'"carrier": 3011', b'"carrier": "3011"')
    envelope = wire.decode_envelope(body, RegisterResult)
    assert envelope.data is not None and envelope.data.accepted[0].carrier == 3011


def test_wrong_type_in_track_info_keeps_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="trackops.wire"):
        info = wire.decode_track_info(b'{"w1": "DHL", "e": 10, "z0": {"a": 17, "z": "x"}}')
    assert (info.first_carrier, info.package_status) == (0, PackageStatus.IN_TRANSIT)
    assert info.latest_event == wire.Event(time_raw="17", description="x")
    assert "$.w1 = 'DHL'" in caplog.text


def test_unknown_package_status_code_is_kept_with_its_events() -> None:
    """Failed before: ``decode_track_info(b'{"e":60,"w1":21051}')`` raised."""
    info = wire.decode_track_info(b'{"e":60,"w1":21051}')
    assert int(info.package_status) == 60 and info.first_carrier == 21051
    body = sample("gettrackinfo_response.json").replace(b'"e": 10', b'"e": 60')
    envelope = wire.decode_envelope(body, TrackInfoResult)
    assert envelope.data is not None
    track = envelope.data.accepted[0].track
    assert track is not None
    status = track.package_status
    assert (int(status), status.is_known, status.slug, status.display) == (
        60,
        False,
        "unknown",
        "Unknown (60)",
    )
    assert status is PackageStatus(60)
    assert track.latest_event is not None and track.latest_event.description == "移交海关"
    assert len(track.all_events) == 2
    assert wire.decode_track_info(wire.encode(track)) == track  # stored and read back as 60
    assert PackageStatus(60) not in list(PackageStatus)


EMPTY_SHAPES = [None, "", {}]


@pytest.mark.parametrize("empty", EMPTY_SHAPES, ids=["null", "empty-string", "empty-object"])
@pytest.mark.parametrize(
    "field",
    ["e", "w1", "w2", "b", "c", "z0", "z1", "z2", "z9", "hs", "f", "ylt1", "is1", "ln1", "zex"],
)
def test_null_empty_string_and_empty_object_anywhere_in_track(field: str, empty: Any) -> None:
    body = json.loads(sample("gettrackinfo_response.json"))
    body["data"]["accepted"][0]["track"][field] = empty
    envelope = wire.decode_envelope(json.dumps(body), TrackInfoResult)
    assert envelope.data is not None
    track = envelope.data.accepted[0].track
    assert track is not None
    assert track.origin_country == (301 if field != "b" else None)
    info = wire.decode_track_info(json.dumps(body["data"]["accepted"][0]["track"]))
    assert info == track


@pytest.mark.parametrize("empty", EMPTY_SHAPES, ids=["null", "empty-string", "empty-object"])
@pytest.mark.parametrize("field", ["a", "b", "c", "d", "z"])
def test_null_empty_string_and_empty_object_in_events(field: str, empty: Any) -> None:
    body = json.loads(sample("webhook_tracking_updated.json"))
    body["data"]["track"]["z0"][field] = empty
    body["data"]["track"]["z1"][1][field] = empty
    data = wire.decode_push_data("TRACKING_UPDATED", json.dumps(body["data"]).encode())
    assert isinstance(data, TrackingUpdated)
    assert len(data.track.first_carrier_events) == 3
    assert data.track.package_status is PackageStatus.IN_TRANSIT


@pytest.mark.parametrize("empty", EMPTY_SHAPES, ids=["null", "empty-string", "empty-object"])
def test_push_with_empty_track_reads_as_empty_information(empty: Any) -> None:
    raw = json.dumps({"number": "RR123456789CN", "tag": empty, "track": empty}).encode()
    data = wire.decode_push_data("TRACKING_UPDATED", raw)
    assert isinstance(data, TrackingUpdated)
    assert data.number == "RR123456789CN" and data.track == wire.TrackInfo()


def test_push_without_a_number_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="no tracking number"):
        wire.decode_push_data("TRACKING_UPDATED", b'{"number": null, "track": {}}')


def test_an_odd_item_never_costs_the_rest_of_a_batch() -> None:
    body = {
        "code": 0,
        "data": {
            "accepted": [
                {"number": "RR000000001CN", "track": {"e": 60, "z0": {}, "z1": None}},
                {"number": "RR000000002CN", "track": ""},
                {"track": {"e": 10}},
                {"number": "RR000000003CN", "tag": {}, "track": {"e": "40", "hs": ""}},
            ],
            "rejected": None,
        },
    }
    envelope = wire.decode_envelope(json.dumps(body), TrackInfoResult)
    assert envelope.data is not None
    got = [(a.number, a.track.package_status if a.track else None) for a in envelope.data.accepted]
    assert got == [
        ("RR000000001CN", PackageStatus(60)),
        ("RR000000002CN", None),
        ("RR000000003CN", PackageStatus.DELIVERED),
    ]
    assert envelope.data.rejected == []


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        pytest.param(
            {"code": 401, "data": {"errors": [{"code": -18010002, "message": "Token invalid."}]}},
            -18010002,
            "Token invalid.",
            id="real-code-under-http-like-code",
        ),
        pytest.param(
            {"code": -1, "data": {"errors": {"code": "-18010005", "message": ""}}},
            -18010005,
            "Unauthorized access.",
            id="one-object-with-digits",
        ),
        pytest.param(
            {"code": -18010004, "data": {"errors": [{"code": -18010004, "message": "off"}]}},
            -18010004,
            "off",
            id="same-code",
        ),
        pytest.param({"code": 7, "data": None}, 7, "Unknown error code 7.", id="no-errors"),
    ],
)
def test_error_answer_reports_the_real_code(body: dict[str, Any], code: int, message: str) -> None:
    """Failed before: the first case was reported as "Unknown error code 401"."""
    error = wire.decode_envelope(json.dumps(body), CarrierResult).api_error()
    assert error is not None
    assert (error.code, error.message) == (code, message)
    assert wire.decode_envelope(b'{"code": 0, "data": {}}', CarrierResult).api_error() is None


def test_track_list_keeps_its_page_object() -> None:
    body = json.loads(sample("gettracklist_response.json"))
    body["data"]["page"] = {"data_total": 81, "page_total": 3, "page_no": 2, "page_size": 40}
    envelope = wire.decode_track_list(json.dumps(body))
    assert envelope.data is not None
    assert envelope.data.page == wire.TrackListPage(
        data_total=81, page_total=3, page_no=2, page_size=40
    )
    assert [e.number for e in envelope.data.accepted] == ["RV929123748CN"]
    assert envelope.api_error() is None


def test_not_json_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        wire.decode_envelope(b"<html>502 Bad Gateway</html>", CarrierResult)


def test_stored_track_info_round_trips() -> None:
    envelope = wire.decode_envelope(sample("gettrackinfo_response.json"), TrackInfoResult)
    assert envelope.data is not None
    track = envelope.data.accepted[0].track
    assert track is not None
    assert wire.decode_track_info(wire.encode(track)) == track


# --------------------------------------------------------------------------- validation and times


@pytest.mark.parametrize(
    "number", ["RR123456789CN", "12345", "a" * 50, "621366941543", "STOAA0000272952YQ"]
)
def test_valid_numbers(number: str) -> None:
    wire.validate_number(number)


@pytest.mark.parametrize(
    "number", ["1234", "a" * 51, "RR 123456789CN", "RR-123456789", "", "RR12345678é"]
)
def test_invalid_numbers_give_17tracks_error(number: str) -> None:
    with pytest.raises(TrackApiError) as caught:
        wire.validate_number(number)
    assert caught.value.code == -18010012
    assert caught.value.message == f"The format of '{number}' is invalid."


def test_tag_length_limit() -> None:
    wire.validate_tag(None)
    wire.validate_tag("x" * 100)
    with pytest.raises(TrackApiError) as caught:
        wire.validate_tag("x" * 101, "RR123456789CN")
    assert caught.value.code == -18010015
    assert caught.value.message.endswith("of field tag is invalid.")
    assert caught.value.number == "RR123456789CN"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2015-05-13 14:47", datetime(2015, 5, 13, 14, 47)),
        ("2015-06-01 20:44:52", datetime(2015, 6, 1, 20, 44, 52)),
        ("2015-06-01", datetime(2015, 6, 1)),
        ("2024/1/1", datetime(2024, 1, 1)),
        ("2024/01/02 03:04", datetime(2024, 1, 2, 3, 4)),
        ("2020-05-07T10:19:00+02:00", datetime(2020, 5, 7, 8, 19)),
        ("2079-01-01 00:00:00", None),
        ("2079-01-01", None),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_time(raw: str | None, expected: datetime | None) -> None:
    assert wire.parse_time(raw) == expected


def test_batch_limit() -> None:
    assert wire.MAX_BATCH == 40
