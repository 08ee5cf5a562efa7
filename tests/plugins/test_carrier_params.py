"""Carrier knowledge: the extra-parameter table (checked against the reference), formatting,
the error explanations, and the carrier/country lists with their update."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from factories import api_reference
from trackops.core import carriers
from trackops.core.carriers import CarrierListError, CarrierParam
from trackops.core.config import Settings
from trackops.core.plugins import PluginHost
from trackops.core.wire import ERROR_MESSAGES
from trackops.plugins import carriers as carrier_plugin
from trackops.plugins.carriers import (
    EXTRA_PARAMS,
    explain_error,
    format_extra_param,
    missing_required,
    params_for,
)

Serve = Callable[[web.Application], Awaitable[TestServer]]
REFERENCE = api_reference() or Path("shared/reference/17track-api-v1.txt")
KINDS = {
    "PostalCode": "postal_code",
    "PhoneNumber": "phone_number",
    "DestCountry": "dest_country",
    "ShipDate": "ship_date",
}


def reference_rows() -> list[tuple[int, str, str, str, bool, str]]:
    """The reference's "Additional parameters for tracking" table, parsed from its text."""
    if not REFERENCE.exists():
        pytest.skip(f"the API reference is not at {REFERENCE}; the table cannot be compared")
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()
    start = lines.index("Carrier Name Carrier Code Param Sample Require") + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        match = re.match(r"^(.+?) (\d{4,6}) (.*?) ?(TRUE|FALSE)$", line)
        assert match, f"unexpected table line: {line!r}"
        name, code, rest, required = match.groups()
        token, _, sample = rest.partition(" ")
        if token in KINDS:
            rows.append((int(code), name, KINDS[token], sample, required == "TRUE", ""))
        else:
            rows.append((int(code), name, "other", "", required == "TRUE", rest))
    return rows


def test_table_matches_the_reference_row_by_row() -> None:
    expected = reference_rows()
    actual = [
        (p.carrier, p.carrier_name, p.kind, p.sample, p.required, p.note) for p in EXTRA_PARAMS
    ]
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        assert got == want, f"row {i + 1}"
    assert len(actual) == len(expected) == 77


def test_error_codes_of_the_kinds_match_the_reference() -> None:
    assert "Alpha-2 country code and postal code" in ERROR_MESSAGES[-18010018]
    by_kind = {p.kind: p.error_code for p in EXTRA_PARAMS}
    assert by_kind == {
        "dest_country": -18010018,
        "postal_code": -18010019,
        "phone_number": -18010020,
        "ship_date": -18010022,
        "other": -18010022,
    }


def test_the_plugin_registers_the_whole_table_through_the_hook() -> None:
    registered: list[CarrierParam] = []
    carrier_plugin.trackops_register_carrier_params(registered.append)
    assert registered == list(EXTRA_PARAMS)
    host = PluginHost(
        Settings(), load_entrypoints=False, extra_plugins=[("carriers", carrier_plugin)]
    )
    assert host.carrier_params == list(EXTRA_PARAMS)
    assert host.provider_of("carrier param", (14041, "dest_country")) == "carriers"


def test_params_for() -> None:
    assert [p.kind for p in params_for(14041)] == ["dest_country", "postal_code"]
    assert [p.kind for p in params_for(100438)] == ["phone_number", "postal_code"]
    assert params_for(3011) == []
    assert params_for(None) == []


@pytest.mark.parametrize(
    ("carrier", "values", "expected"),
    [
        (14041, {"dest_country": "FR", "postal_code": "12345"}, "FR-12345"),
        (14041, {"country": "fr", "postcode": " 12345 "}, "FR-12345"),
        (14041, {"dest_country": "France"}, "FR"),
        (14041, {"dest_country": 301, "postal_code": "518000"}, "CN-518000"),
        (14041, "fr 12345", "FR-12345"),
        (14041, "NL-1000 aa", "NL-1000 AA"),
        (14041, "FR", "FR"),
        (100003, {"ship_date": date(2024, 1, 1)}, "2024/1/1"),
        (100003, {"ship_date": datetime(2024, 11, 5, 9, 30)}, "2024/11/5"),
        (100003, {"ship_date": "2024-01-01"}, "2024/1/1"),
        (100003, "2024-01-01", "2024/1/1"),
        (100074, "+62 812-3456-8888", "8888"),
        (100074, {"phone": "8888"}, "8888"),
        (101003, "(888) 888-8888", "8888888888"),
        (100167, "ls27  0bn", "LS27 0BN"),
        (100438, {"phone_number": "600 123 456"}, "3456"),
        (100438, {"postal_code": "28001"}, "28001"),
        (100438, {"postal_code": "28001", "phone_number": "600123456"}, "3456"),
        (100842, "id", "ID"),
        (3011, "anything", "anything"),
        (3011, {"postal_code": "1000 aa"}, "1000 AA"),
        (None, {"ship_date": "2024/1/1"}, "2024-01-01"),
    ],
)
def test_format_extra_param(carrier: int | None, values: Any, expected: str) -> None:
    assert format_extra_param(carrier, values) == expected


@pytest.mark.parametrize(
    ("carrier", "values", "message"),
    [
        (14041, {"dest_country": "Atlantis"}, "not a country"),
        (14041, {"postal_code": "12345"}, "needs the destination country"),
        (14041, "12345", "needs the destination country first"),
        (100003, {"ship_date": "next tuesday"}, "not a date"),
        (100074, "12", "at least 4 digits"),
        (100074, {"favourite_colour": "red"}, "unknown extra parameter"),
        (100074, {"postal_code": "1000"}, "takes the last 4 digits of .* not a postal code"),
    ],
)
def test_format_extra_param_rejects_wrong_values(carrier: int, values: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_extra_param(carrier, values)


def test_missing_required() -> None:
    postnl = missing_required(14041, "")
    assert postnl is not None and postnl.kind == "dest_country"
    assert postnl.error_code == -18010018
    assert missing_required(14041, "12345") == postnl  # no country in front
    assert missing_required(14041, "FR-12345") is None
    gls = missing_required(100005, None)
    assert gls is not None and gls.kind == "postal_code" and gls.error_code == -18010019
    assert missing_required(100005, "12345") is None
    phone = missing_required(100074, " ")
    assert phone is not None and phone.error_code == -18010020
    assert missing_required(100003, "") is None  # FedEx's ship date is optional
    assert missing_required(3011, "") is None
    assert missing_required(None, "") is None


def test_explain_error_says_exactly_what_to_add() -> None:
    assert explain_error(-18010018, 14041) == (
        "PostNL (14041) needs the destination country's two-letter code, a dash and the"
        " recipient's postal code to track this parcel: give it as the extra parameter,"
        " e.g. --param FR-12345 (17TRACK error -18010018)"
    )
    assert explain_error(-18010019, 100005) == (
        "GLS (100005) needs the recipient's postal code to track this parcel: give it as the"
        " extra parameter, e.g. --param 3078CM (17TRACK error -18010019)"
    )
    assert explain_error(-18010020, 100074) == (
        "J&T Express (ID) (100074) needs the last 4 digits of the recipient's phone number to"
        " track this parcel: give it as the extra parameter, e.g. --param 8888"
        " (17TRACK error -18010020)"
    )
    assert "full phone number" in explain_error(-18010020, 101003)
    assert explain_error(-18010022, 100003) == (
        "FedEx (100003) needs the date the parcel was shipped to track this parcel: give it as"
        " the extra parameter, e.g. --param 2024/1/1 (17TRACK error -18010022)"
    )
    assert "Postal Code/City/Country/shipper/consignee" in explain_error(-18010022, 100431)
    assert '--param "1000 AA"' in explain_error(-18010019, 7041)
    assert explain_error(-18010019, None).startswith("This carrier needs the recipient's postal")
    assert explain_error(-18019903, 3011) == ""
    missing = missing_required(14041, "")
    assert missing is not None
    assert "FR-12345" in explain_error(missing.error_code, 14041)


def test_third_party_params_are_used_when_given() -> None:
    extra = [*EXTRA_PARAMS, CarrierParam(999001, "Test Post", "postal_code", "1234", True)]
    assert missing_required(999001, "", params=extra) == extra[-1]
    assert missing_required(999001, "") is None
    assert format_extra_param(999001, {"zip": "ab 12"}, params=extra) == "AB 12"


# --------------------------------------------------------------------------- lists


def test_names_and_countries() -> None:
    assert carriers.carrier_name(3011) == "China Post"
    assert carriers.carrier_name(14041) == "PostNL"
    assert carriers.carrier_name(987654321) == "987654321"
    assert carriers.carrier_name(None) == ""
    assert carriers.country_name(301) == "China"
    assert carriers.country_iso(301) == "CN"
    assert carriers.country_iso(2105) == "US"
    assert carriers.country_iso(999999) == ""
    assert carriers.country_code("US") == 2105
    assert carriers.country_code("netherlands") == 1404


def test_search_carriers() -> None:
    gls = carriers.search_carriers("gls")
    assert gls[0].name == "GLS"
    assert all("gls" in c.name.lower() for c in gls[:5])
    assert carriers.search_carriers("3011")[0].name == "China Post"
    assert carriers.search_carriers("colis prive")[0].key == 100027  # accents ignored
    assert carriers.search_carriers("no such carrier xyz") == []
    assert len(carriers.search_carriers("")) == len(carriers.all_carriers()) > 3000


def _app(carrier_rows: Any, country_rows: Any) -> web.Application:
    app = web.Application()

    async def carriers_json(request: web.Request) -> web.Response:
        return web.json_response(carrier_rows)

    async def countries_json(request: web.Request) -> web.Response:
        return web.json_response(country_rows)

    app.router.add_get("/asset/carrier/info/apicarrier.all.json", carriers_json)
    app.router.add_get("/asset/carrier/info/country.all.json", countries_json)
    return app


async def test_update_downloads_validates_and_is_preferred(serve: Serve, tmp_path: Path) -> None:
    # 17TRACK's own files use underscored keys; the update reads both forms.
    server = await serve(
        _app(
            [
                {"key": 3011, "_name": "China Post (new name)", "_country": 301, "_url": "x"},
                {"key": 999002, "_name": "Brand New Express", "_country_iso": "NL"},
            ],
            [{"key": 301, "_name": "China", "_country_code": "CN"}],
        )
    )
    result = await carriers.update_carrier_lists(str(server.make_url("/")))
    assert (result.carriers, result.countries) == (2, 1)
    assert result.directory == carriers.user_data_dir()
    saved = json.loads((result.directory / carriers.CARRIERS_FILE).read_text("utf-8"))
    assert saved[1] == {
        "key": 999002,
        "name": "Brand New Express",
        "country": None,
        "iso2": "NL",
        "url": "",
    }
    assert carriers.carrier_name(3011) == "China Post (new name)"
    assert carriers.carrier_name(999002) == "Brand New Express"
    assert carriers.country_iso(301) == "CN"
    assert "2 carriers and 1 countries saved in" in str(result)


async def test_update_rejects_a_wrong_shape_and_writes_nothing(serve: Serve) -> None:
    server = await serve(_app({"not": "a list"}, [{"key": 301, "_name": "China"}]))
    with pytest.raises(CarrierListError, match=r"apicarrier\.all\.json"):
        await carriers.update_carrier_lists(str(server.make_url("/")))
    assert not (carriers.user_data_dir() / carriers.CARRIERS_FILE).exists()
    assert carriers.carrier_name(3011) == "China Post"


def test_a_damaged_user_copy_falls_back_to_the_packaged_list() -> None:
    directory = carriers.user_data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / carriers.CARRIERS_FILE).write_text("{broken", encoding="utf-8")
    assert carriers.carrier_name(3011) == "China Post"
