"""Built-in plugin ``carriers``: which carriers need an extra parameter, and how to write it.

The table below is the reference's "Additional parameters for tracking" table, row by row
(``tests/plugins/test_carriers.py`` checks it against the reference text). It is registered
through ``trackops_register_carrier_params``, so a third-party plugin can add carriers.

The functions answer the engine's and the front-ends' questions; each takes an optional
``params`` (e.g. ``PluginHost.carrier_params``, built-ins plus third-party rows) and defaults
to this table:

* ``params_for(carrier)``: the rows of one carrier.
* ``format_extra_param(carrier, values)``: the ``extra_param`` string 17TRACK expects, from
  a dict of values by kind or from a string (PostNL country + postal code -> ``FR-12345``,
  FedEx ship date -> ``2024/1/1``, a phone number -> its last 4 digits).
* ``missing_required(carrier, extra_param)``: the required row that is missing, so the engine
  asks for it before spending a registration.
* ``explain_error(code, carrier)``: what to add, in plain words, for -18010018/-19/-20/-22.

Where a carrier has two required rows of different kinds that are not PostNL's country +
postal code pair (Seur: phone number or postal code), either one satisfies 17TRACK; when a
dict gives both, the first in table order is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Final

from trackops.core.carriers import CarrierParam, ParamKind, carrier_name, country_code, country_iso
from trackops.core.hookspecs import RegisterCarrierParam, hookimpl

__all__ = [
    "EXTRA_PARAMS",
    "PARAM_ERROR_CODES",
    "explain_error",
    "format_extra_param",
    "missing_required",
    "params_for",
    "trackops_register_carrier_params",
]


def _row(
    carrier: int, name: str, kind: ParamKind, sample: str, required: bool, note: str = ""
) -> CarrierParam:
    return CarrierParam(carrier, name, kind, sample, required, note)


# fmt: off
EXTRA_PARAMS: Final[tuple[CarrierParam, ...]] = (
    _row(2061, "Bpost", "postal_code", "1000", False),
    _row(7041, "DHL Paket", "postal_code", "1000 AA", False),
    _row(14041, "PostNL", "dest_country", "FR", True),
    _row(14041, "PostNL", "postal_code", "1000 AA", False),
    _row(100003, "FedEx", "ship_date", "2024/1/1", False),
    _row(100005, "GLS", "postal_code", "", True),
    _row(100024, "GLS (IT)", "postal_code", "", False),
    _row(100026, "BRT Bartolini(DPD)", "postal_code", "1000 AA", False),
    _row(100027, "Colis Prive(Colis Privé)", "postal_code", "12345", False),
    _row(100074, "J&T Express (ID)", "phone_number", "8888", True),
    _row(100078, "Caribou", "postal_code", "1000", False),
    _row(100155, "Commonline", "postal_code", "1000", False),
    _row(100167, "XDP EXPRESS", "postal_code", "LS27 0BN", True),
    _row(100189, "GLS Spain (National)", "postal_code", "123456", True),
    _row(100207, "GLS (Croatia)", "postal_code", "", True),
    _row(100271, "J&T Express (TH)", "phone_number", "8888", True),
    _row(100280, "GLS (HU)", "postal_code", "", True),
    _row(100281, "GLS (CZ)", "postal_code", "", True),
    _row(100282, "GLS (SK)", "postal_code", "", True),
    _row(100283, "GLS (SI)", "postal_code", "", True),
    _row(100284, "GLS (RO)", "postal_code", "", True),
    _row(100304, "Mondial Relay", "postal_code", "123456", True),
    _row(100316, "GLS (PT)", "postal_code", "", True),
    _row(100321, "DPD (BE)", "postal_code", "1000 AA", False),
    _row(100356, "GEODIS", "postal_code", "1000 AA", False),
    _row(100364, "Paack", "postal_code", "12345", True),
    _row(100384, "GLS (NL)", "postal_code", "12345", True),
    _row(100388, "J&T Express (MX)", "phone_number", "8888", True),
    _row(100394, "Pall-Ex (UK)", "postal_code", "CO14 8LF", True),
    _row(100396, "GEL Express Logistik", "postal_code", "1000 AA", False),
    _row(100431, "Gebrüder Weiss (GW)", "other", "", True,
         "Postal Code/City/Country/shipper/consignee."),
    _row(100436, "Nacex", "postal_code", "1234", True),
    _row(100438, "Seur", "phone_number", "8888", True),
    _row(100438, "Seur", "postal_code", "28001", True),
    _row(100456, "J&T Express (VN)", "phone_number", "8888", True),
    _row(100466, "Cycloon (Fietskoeriers)", "postal_code", "1000 AA", True),
    _row(100483, "DPD (CZ)", "postal_code", "1000 AA", False),
    _row(100484, "DX", "postal_code", "12345", True),
    _row(100522, "Ryder", "postal_code", "88888", True),
    _row(100524, "Tuffnells", "postal_code", "S27 1BZ", True),
    _row(100552, "Postmedia Parcel Services (BNI Parcel Tracking)", "postal_code", "H4E 5R4", True),
    _row(100556, "DPD (AT)", "postal_code", "1000 AA", False),
    _row(100580, "Walkers Transport", "postal_code", "LS27 0BN", True),
    _row(100584, "DPD (HU)", "postal_code", "1000 AA", False),
    _row(100594, "InPost (ES)", "postal_code", "51900", True),
    _row(100598, "InPost (PT)", "postal_code", "51900", True),
    _row(100619, "J&T Express (EG)", "phone_number", "8888", True),
    _row(100623, "Allied Express Transport", "postal_code", "1000", True),
    _row(100646, "GLS Portugal (National)", "postal_code", "1000-205", True),
    _row(100688, "A TU HORA EXPRESS", "postal_code", "1000", False),
    _row(100797, "J&T Express (BR)", "postal_code", "CPF/CNPJ", True),
    _row(100807, "DPD (HR)", "postal_code", "1000 AA", False),
    _row(100808, "DPD (EE)", "postal_code", "1000 AA", False),
    _row(100809, "DPD (LV)", "postal_code", "1000 AA", False),
    _row(100810, "DPD (LT)", "postal_code", "1000 AA", False),
    _row(100811, "DPD (NL)", "postal_code", "1000 AA", False),
    _row(100812, "DPD (SK)", "postal_code", "1000 AA", False),
    _row(100813, "DPD (SI)", "postal_code", "1000 AA", False),
    _row(100815, "DPD (CH)", "postal_code", "1000 AA", False),
    _row(100842, "DHL Supply Chain APAC", "dest_country", "ID", True),
    _row(100862, "The United Pallet Network", "postal_code", "LS27 0BN", True),
    _row(100881, "Furdeco", "postal_code", "LS27 0BN", True),
    _row(100900, "Palletways", "postal_code", "1000 AA", False),
    _row(100932, "Instabox", "postal_code", "51900", True),
    _row(100936, "France Express", "postal_code", "1000 AA", False),
    _row(100959, "Transaher", "postal_code", "12345", False),
    _row(101003, "BJS Home Delivery", "phone_number", "8888888888", True),
    _row(101010, "Palletforce", "postal_code", "S27 1BZ", True),
    _row(101035, "FleetOptics", "postal_code", "1000", True),
    _row(101038, "Hofmann", "postal_code", "10000", True),
    _row(101039, "Emons", "postal_code", "10000", True),
    _row(101040, "Sislógica", "postal_code", "1000000", True),
    _row(101065, "APC Overnight", "postal_code", "1000 AA", True),
    _row(101076, "Arrow XL", "postal_code", "1000 AA", False),
    _row(190415, "UC Express", "phone_number", "8888", True),
    _row(190766, "SF Express(CN)", "phone_number", "8888", True),
    _row(190845, "KYE (CN)", "phone_number", "8888", True),
)
# fmt: on
"""The reference's table: carrier code, name, kind, sample, required (and the raw wording
of the one row whose parameter is not a single kind)."""

PARAM_ERROR_CODES: Final[dict[int, tuple[ParamKind, ...]]] = {
    -18010018: ("dest_country", "postal_code"),
    -18010019: ("postal_code",),
    -18010020: ("phone_number",),
    -18010022: ("ship_date", "other"),
}
"""17TRACK's "param is required" errors and the parameter kinds each one asks for."""

# 17TRACK's own examples in those error messages, used when a carrier's row has no sample.
_ERROR_EXAMPLES: Final[dict[int, str]] = {
    -18010018: "FR-12345",
    -18010019: "3078CM",
    -18010020: "8888",
    -18010022: "2024-01-01",
}

_ALIASES: Final[dict[str, ParamKind]] = {
    "postal_code": "postal_code",
    "postalcode": "postal_code",
    "postcode": "postal_code",
    "zip": "postal_code",
    "phone_number": "phone_number",
    "phone": "phone_number",
    "dest_country": "dest_country",
    "destination_country": "dest_country",
    "country": "dest_country",
    "ship_date": "ship_date",
    "date": "ship_date",
    "other": "other",
}

_KIND_WORDS: Final[dict[str, str]] = {
    "postal_code": "a postal code",
    "phone_number": "a phone number",
    "dest_country": "a country",
    "ship_date": "a ship date",
    "other": "other information",
}

_COUNTRY_PREFIX = re.compile(r"^\s*([A-Za-z]{2})(?:\s*-\s*|\s+|$)(.*)$")


@hookimpl
def trackops_register_carrier_params(register: RegisterCarrierParam) -> None:
    """Register the reference's extra-parameter table."""
    for param in EXTRA_PARAMS:
        register(param)


def _table(params: Iterable[CarrierParam] | None) -> Iterable[CarrierParam]:
    return EXTRA_PARAMS if params is None else params


def params_for(
    carrier: int | None, params: Iterable[CarrierParam] | None = None
) -> list[CarrierParam]:
    """The extra-parameter rows of ``carrier`` (empty when it needs none or is ``None``)."""
    if carrier is None:
        return []
    code = int(carrier)
    return [p for p in _table(params) if p.carrier == code]


def _label(carrier: int | None, rows: list[CarrierParam]) -> str:
    if carrier is None:
        return "This carrier"
    name = carrier_name(carrier)
    if name == str(carrier) and rows:
        name = rows[0].carrier_name
    return f"{name} ({carrier})"


# --------------------------------------------------------------------------- formatting


def _format_postal(value: str) -> str:
    text = " ".join(value.split()).upper()
    if not text:
        raise ValueError("the postal code is empty")
    return text


def _format_phone(value: str, param: CarrierParam | None) -> str:
    digits = re.sub(r"\D", "", value)
    sample_digits = len(re.sub(r"\D", "", param.sample)) if param and param.sample else 4
    # The reference's sample "8888" means the last four digits; a longer sample the full number.
    if sample_digits <= 4:
        if len(digits) < 4:
            raise ValueError(f"a phone number needs at least 4 digits, got {value!r}")
        return digits[-4:]
    if len(digits) < 4:
        raise ValueError(f"{value!r} is not a phone number")
    return digits


def _format_country(value: str | int) -> str:
    if isinstance(value, int) or str(value).strip().isdigit():
        iso = country_iso(int(value))
        if iso:
            return iso
    else:
        text = str(value).strip()
        code = country_code(text)
        if code is not None and country_iso(code):
            return country_iso(code)
    raise ValueError(f"{value!r} is not a country; use its two-letter ISO code (FR, NL, US ...)")


def _parse_date(value: str | date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-01-01"
        ) from None


def _format_date(value: str | date, param: CarrierParam | None) -> str:
    day = _parse_date(value)
    sample = param.sample if param else ""
    if "/" in sample:
        # FedEx's sample "2024/1/1": slashes, no zero padding.
        return f"{day.year}/{day.month}/{day.day}"
    return day.isoformat()


def _format_one(kind: ParamKind, value: object, param: CarrierParam | None) -> str:
    if kind == "ship_date":
        if not isinstance(value, str | date):
            raise ValueError(f"a ship date must be a date or text, got {value!r}")
        return _format_date(value, param)
    if kind == "dest_country":
        if not isinstance(value, str | int):
            raise ValueError(f"a country must be text, got {value!r}")
        return _format_country(value)
    text = str(value).strip()
    if kind == "postal_code":
        return _format_postal(text)
    if kind == "phone_number":
        return _format_phone(text, param)
    if not text:
        raise ValueError("the extra parameter is empty")
    return text


def _combined(country: str, postal: str | None) -> str:
    return f"{country}-{postal}" if postal else country


def format_extra_param(
    carrier: int | None,
    values: Mapping[str, object] | str,
    params: Iterable[CarrierParam] | None = None,
) -> str:
    """The ``extra_param`` string 17TRACK expects for ``carrier``.

    ``values`` is either a dict by kind (``postal_code``, ``phone_number``, ``dest_country``,
    ``ship_date``, ``other``; also ``postcode``, ``zip``, ``phone``, ``country``, ``date``) or
    a string in whatever form the user typed. Examples::

        format_extra_param(14041, {"dest_country": "FR", "postal_code": "12345"})  # "FR-12345"
        format_extra_param(14041, "fr 12345")                                       # "FR-12345"
        format_extra_param(100003, date(2024, 1, 1))  # via {"ship_date": ...}: "2024/1/1"
        format_extra_param(100074, "+62 812-3456-8888")                             # "8888"

    Raises ``ValueError`` with a readable message for a value that cannot be right (a
    country that does not exist, a date that is not a date, an unknown key).
    """
    rows = params_for(carrier, params)
    by_kind: dict[str, CarrierParam] = {}
    for row in rows:
        by_kind.setdefault(row.kind, row)
    if isinstance(values, str):
        text = values.strip()
        if not rows or not text:
            return text
        kinds = list(by_kind)
        if "dest_country" in by_kind:
            match = _COUNTRY_PREFIX.match(text)
            if match is None:
                if country_code(text) is not None:  # a country name alone ("France")
                    return _format_country(text)
                raise ValueError(
                    f"{_label(carrier, rows)} needs the destination country first, e.g. "
                    f"{_combined(by_kind['dest_country'].sample or 'FR', '12345')}"
                )
            country = _format_country(match.group(1))
            rest = match.group(2).strip()
            postal = _format_postal(rest) if rest else None
            return _combined(country, postal)
        if len(kinds) == 1:
            return _format_one(by_kind[kinds[0]].kind, text, by_kind[kinds[0]])
        return text  # several alternative kinds (Seur): the text is taken as typed
    given: dict[ParamKind, object] = {}
    for key, value in values.items():
        kind = _ALIASES.get(key.strip().lower().replace("-", "_").replace(" ", "_"))
        if kind is None:
            accepted = ", ".join(sorted(set(_ALIASES.values())))
            raise ValueError(f"unknown extra parameter {key!r}; expected one of: {accepted}")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        given[kind] = value
    if not given:
        return ""
    if "dest_country" in by_kind or (not rows and "dest_country" in given):
        country_value = given.get("dest_country")
        if country_value is None:
            raise ValueError(f"{_label(carrier, rows)} needs the destination country")
        country = _format_one("dest_country", country_value, by_kind.get("dest_country"))
        postal_value = given.get("postal_code")
        postal_code = _format_postal(str(postal_value)) if postal_value is not None else None
        return _combined(country, postal_code)
    if rows:
        for row in rows:  # table order decides between alternatives
            if row.kind in given:
                return _format_one(row.kind, given[row.kind], row)
        wanted = " or ".join(_what(r, r.kind) for r in rows)
        got = ", ".join(_KIND_WORDS[k] for k in given)
        raise ValueError(f"{_label(carrier, rows)} takes {wanted}, not {got}")
    if len(given) > 1:
        raise ValueError(
            f"{_label(carrier, rows)} has no known extra parameter; give one value, not "
            f"{', '.join(given)}"
        )
    kind, value = next(iter(given.items()))
    return _format_one(kind, value, None)


# --------------------------------------------------------------------------- checking


def missing_required(
    carrier: int | None,
    extra_param: str | None,
    params: Iterable[CarrierParam] | None = None,
) -> CarrierParam | None:
    """The required parameter ``carrier`` lacks, or ``None`` when nothing is missing.

    An empty ``extra_param`` lacks the first required row; for a carrier that needs the
    destination country (PostNL, DHL Supply Chain APAC) a value that does not start with a
    two-letter country code lacks that row. The row's ``error_code`` is what 17TRACK would
    answer, so ``explain_error(row.error_code, carrier)`` says what to add.
    """
    required = [p for p in params_for(carrier, params) if p.required]
    if not required:
        return None
    value = (extra_param or "").strip()
    if not value:
        return required[0]
    for row in required:
        if row.kind == "dest_country" and _COUNTRY_PREFIX.match(value) is None:
            return row
    return None


def _what(row: CarrierParam | None, kind: ParamKind) -> str:
    if kind == "phone_number":
        digits = len(re.sub(r"\D", "", row.sample)) if row and row.sample else 4
        if digits <= 4:
            return "the last 4 digits of the recipient's phone number"
        return "the recipient's full phone number (digits only)"
    if kind == "postal_code":
        if row is not None and row.sample and not _is_example(row.sample):
            return f"the recipient's postal code ({row.sample})"
        return "the recipient's postal code"
    if kind == "ship_date":
        return "the date the parcel was shipped"
    if kind == "other":
        return (
            f"more information ({row.note.rstrip('.')})"
            if row and row.note
            else ("more information")
        )
    return "the destination country"


def explain_error(
    code: int, carrier: int | None, params: Iterable[CarrierParam] | None = None
) -> str:
    """What the user must add when 17TRACK answers ``code`` for ``carrier``.

    For -18010018, -18010019, -18010020 and -18010022 a sentence naming the carrier, the
    parameter and an example ``--param`` value in the form 17TRACK expects; ``""`` for any
    other code (the caller keeps 17TRACK's own message).
    """
    kinds = PARAM_ERROR_CODES.get(code)
    if kinds is None:
        return ""
    rows = params_for(carrier, params)
    who = _label(carrier, rows)
    row = next((r for r in rows if r.kind in kinds), None)
    example: str | None
    if code == -18010018:
        country = next((r for r in rows if r.kind == "dest_country"), None)
        postal = next((r for r in rows if r.kind == "postal_code"), None)
        if country is not None and postal is None:
            example = country.sample or "FR"
            what = "the destination country's two-letter code"
        else:
            example = _ERROR_EXAMPLES[code]
            what = (
                "the destination country's two-letter code, a dash and the recipient's postal code"
            )
    else:
        what = _what(row, row.kind if row is not None else kinds[0])
        if row is None or (not row.sample and row.kind != "other"):
            example = _ERROR_EXAMPLES[code]
        elif _is_example(row.sample):
            example = row.sample
        else:  # the sample names the value ("CPF/CNPJ") or there is none: no example
            example = None
    hint = f", e.g. --param {_quote(example)}" if example else ""
    return (
        f"{who} needs {what} to track this parcel: give it as the extra parameter{hint}"
        f" (17TRACK error {code})"
    )


def _is_example(sample: str) -> bool:
    # "CPF/CNPJ" (J&T Express BR) names the value instead of showing one.
    return any(ch.isdigit() for ch in sample)


def _quote(value: str) -> str:
    return f'"{value}"' if " " in value else value
