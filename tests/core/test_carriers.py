"""``resolve_carrier``: a carrier given by code or by name (DESIGN.md "Carriers")."""

from __future__ import annotations

import pytest
from trackops.core.carriers import CarrierNameError, get_carrier, resolve_carrier


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("3011", 3011),  # a code is taken as given
        (" 100002 ", 100002),
        (3011, 3011),
        ("987654321", 987654321),  # a code the shipped list does not know yet
        ("UPS", 100002),  # exact name, though "UPS Mail Innovations" contains it too
        ("ups", 100002),  # case-insensitive
        ("DHL Paket", 7041),
        ("china post", 3011),
        ("colis prive(colis privé)", 100027),
        ("Colis Prive(Colis Prive)", 100027),  # accents ignored
        ("Mail Innovations", 100398),  # the one carrier whose name contains it
    ],
)
def test_a_code_or_a_name_resolves_to_one_carrier(text: str | int, code: int) -> None:
    assert resolve_carrier(text) == code


def test_ambiguous_names_carry_their_candidates_best_first() -> None:
    with pytest.raises(CarrierNameError) as caught:
        resolve_carrier("fedex®")
    error = caught.value
    names = [c.name for c in error.candidates]
    assert len(names) >= 3 and all("FedEx®" in n for n in names)
    assert error.text == "fedex®"
    message = str(error)
    assert message.startswith("carrier 'fedex®' is ambiguous: it could be ")
    assert "FedEx® Poland (100261)" in message
    assert "give the full name or the code" in message


def test_many_candidates_are_shown_up_to_a_limit() -> None:
    with pytest.raises(CarrierNameError) as caught:
        resolve_carrier("express")
    error = caught.value
    assert len(error.candidates) > CarrierNameError.SHOWN_CANDIDATES
    more = len(error.candidates) - CarrierNameError.SHOWN_CANDIDATES
    for shown in error.candidates[: CarrierNameError.SHOWN_CANDIDATES]:
        assert f"{shown.name} ({shown.key})" in str(error)
    hidden = error.candidates[-1]
    assert f"({hidden.key})" not in str(error)
    assert f"and {more} more" in str(error)


def test_two_carriers_with_the_same_exact_name_are_ambiguous() -> None:
    with pytest.raises(CarrierNameError) as caught:
        resolve_carrier("unknown")
    keys = {c.key for c in caught.value.candidates}
    assert len(keys) >= 2
    assert all((get_carrier(k) or get_carrier(0)).name.lower() == "unknown" for k in keys)


@pytest.mark.parametrize("text", ["no such carrier", "", "   ", "0", 0, -5])
def test_nothing_matches(text: str | int) -> None:
    with pytest.raises(CarrierNameError) as caught:
        resolve_carrier(text)
    assert caught.value.candidates == ()
    assert "no carrier matches" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_the_packaged_list_is_in_its_clean_form_and_read_alike_either_way() -> None:
    """The packaged list is read a carrier at a time, trusting its form: every row has an int
    key, an int country or none, and string name, ISO code and URL, and reads as the strict
    parser reads it."""
    from trackops.core import carriers

    rows = carriers._read_packaged(carriers.CARRIERS_FILE)
    assert all(
        type(r["key"]) is int and (r["country"] is None or type(r["country"]) is int)
        and r["name"].strip()
        and all(type(r[k]) is str for k in ("name", "iso2", "url"))
        for r in rows
    )  # fmt: skip
    lazy = carriers._PackagedCarriers(rows)
    strict = carriers._parse_carriers(rows, carriers.CARRIERS_FILE)
    assert list(lazy.values()) == strict and len(lazy) == len({c.key for c in strict})
    assert lazy.get(3011) == get_carrier(3011) and lazy.get(-1) is None
