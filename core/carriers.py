"""Carrier and country knowledge: 17TRACK's published lists and the extra-parameter type.

17TRACK names carriers and countries by numbers (carrier 3011 is China Post, country 301 is
China). The two lists that map those numbers to names ship as package data
(``trackops/core/data/17track-carriers.json`` and ``17track-countries.json``, copies of
``apicarrier.all.json`` and ``country.all.json``). ``update_carrier_lists`` downloads fresh
copies into the user data directory, which the loader then prefers over the packaged ones:

* ``$TRACKOPS_DATA_DIR`` when set, else
* ``$XDG_DATA_HOME/trackops`` or ``~/.local/share/trackops`` (Linux and other Unixes),
  ``~/Library/Application Support/trackops`` (macOS), ``%LOCALAPPDATA%\\trackops`` (Windows).

Lookups never fail: an unknown carrier is shown as its number, an unknown country as ``""``.

``CarrierParam`` describes one row of the reference's "Additional parameters for tracking"
table; the rows themselves come from plugins (the built-in ``trackops.plugins.carriers``)
through ``trackops_register_carrier_params``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
from trackops.core.errors import TrackopsError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "CARRIERS_FILE",
    "COUNTRIES_FILE",
    "Carrier",
    "CarrierListError",
    "CarrierNameError",
    "CarrierParam",
    "Country",
    "ParamKind",
    "UpdateResult",
    "all_carriers",
    "all_countries",
    "carrier_name",
    "country_code",
    "country_iso",
    "country_name",
    "get_carrier",
    "resolve_carrier",
    "search_carriers",
    "update_carrier_lists",
    "user_data_dir",
]

CARRIERS_FILE: Final = "17track-carriers.json"
COUNTRIES_FILE: Final = "17track-countries.json"
CARRIERS_PATH: Final = "/asset/carrier/info/apicarrier.all.json"
COUNTRIES_PATH: Final = "/asset/carrier/info/country.all.json"
DEFAULT_LIST_BASE_URL: Final = "https://res.17track.net"

ParamKind = Literal["postal_code", "phone_number", "dest_country", "ship_date", "other"]
"""What a carrier's extra parameter holds (the reference's Param column, in our words)."""

# The error 17TRACK answers when a parameter of that kind is missing (reference error table).
_ERROR_BY_KIND: Final[dict[str, int]] = {
    "dest_country": -18010018,
    "postal_code": -18010019,
    "phone_number": -18010020,
    "ship_date": -18010022,
    "other": -18010022,
}

_KIND_LABELS: Final[dict[str, str]] = {
    "postal_code": "postal code",
    "phone_number": "phone number",
    "dest_country": "destination country (ISO alpha-2 code)",
    "ship_date": "ship date",
    "other": "additional information",
}


@dataclass(frozen=True)
class CarrierParam:
    """One extra parameter a carrier needs (or accepts) besides the tracking number.

    ``carrier``: 17TRACK's carrier code; ``carrier_name`` as the reference writes it;
    ``kind``: what the value is; ``sample``: the reference's sample value (may be "");
    ``required``: 17TRACK refuses to track without it; ``note``: the reference's wording when
    ``kind`` is ``other`` (or a remark).
    """

    carrier: int
    carrier_name: str
    kind: ParamKind
    sample: str = ""
    required: bool = False
    note: str = ""

    @property
    def error_code(self) -> int:
        """The 17TRACK error code that a missing value of this kind produces."""
        return _ERROR_BY_KIND[self.kind]

    @property
    def label(self) -> str:
        """The parameter in plain words ("postal code", "phone number" ...)."""
        if self.kind == "other" and self.note:
            return self.note
        return _KIND_LABELS[self.kind]


@dataclass(frozen=True)
class Carrier:
    """One carrier of 17TRACK's list: code (``key``), name, home country and website."""

    key: int
    name: str
    country: int | None = None
    country_iso: str = ""
    url: str = ""


@dataclass(frozen=True)
class Country:
    """One country of 17TRACK's list: numeric code, name and ISO 3166 alpha-2 code."""

    code: int
    name: str
    iso2: str = ""


class CarrierListError(TrackopsError, ValueError):
    """A downloaded carrier or country list does not have the expected shape."""


class CarrierNameError(TrackopsError, ValueError):
    """A carrier given by name matched no carrier, or several (``resolve_carrier``).

    ``text`` is what was given; ``candidates`` the carriers it could mean (empty when nothing
    matched), best first. ``str()`` is the one line a person reads, naming up to
    ``SHOWN_CANDIDATES`` of them with their codes.
    """

    SHOWN_CANDIDATES: Final = 8

    def __init__(self, text: str, candidates: Iterable[Carrier] = ()) -> None:
        self.text = text
        self.candidates: tuple[Carrier, ...] = tuple(candidates)
        super().__init__(self._message())

    def _message(self) -> str:
        if not self.candidates:
            return (
                f"no carrier matches {self.text!r}; give 17TRACK's numeric carrier code, or see"
                " `trackops carriers NAME`"
            )
        shown = ", ".join(f"{c.name} ({c.key})" for c in self.candidates[: self.SHOWN_CANDIDATES])
        more = len(self.candidates) - self.SHOWN_CANDIDATES
        rest = f" and {more} more" if more > 0 else ""
        return (
            f"carrier {self.text!r} is ambiguous: it could be {shown}{rest};"
            " give the full name or the code"
        )


@dataclass(frozen=True)
class UpdateResult:
    """What ``update_carrier_lists`` wrote."""

    carriers: int
    countries: int
    directory: Path

    def __str__(self) -> str:
        return f"{self.carriers} carriers and {self.countries} countries saved in {self.directory}"


# --------------------------------------------------------------------------- locations


def user_data_dir() -> Path:
    """Where downloaded lists are kept (see the module docstring for the order)."""
    explicit = os.environ.get("TRACKOPS_DATA_DIR")
    if explicit:
        return Path(explicit)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "trackops"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "trackops"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "trackops"


# --------------------------------------------------------------------------- parsing

# 17TRACK's own files use underscored keys (``_name``, ``_country_iso``); the packaged copies use
# plain ones. Both are read so a refreshed list works whichever form the server sends.
_CARRIER_KEYS: Final = {
    "key": ("key", "code"),
    "name": ("name", "_name"),
    "country": ("country", "_country"),
    "country_iso": ("iso2", "_country_iso", "country_iso"),
    "url": ("url", "_url"),
}
_COUNTRY_KEYS: Final = {
    "code": ("code", "key"),
    "name": ("name", "_name"),
    "iso2": ("iso2", "_country_code", "_iso2", "_country_iso", "country_iso"),
}


def _pick(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _parse_carriers(data: Any, source: str) -> list[Carrier]:
    if not isinstance(data, list) or not data:
        raise CarrierListError(f"{source}: expected a non-empty JSON array of carriers")
    out: list[Carrier] = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise CarrierListError(f"{source}: item {i} is not an object")
        key = _as_int(_pick(row, _CARRIER_KEYS["key"]))
        name = _pick(row, _CARRIER_KEYS["name"])
        if key is None or not isinstance(name, str):
            raise CarrierListError(f"{source}: item {i} has no numeric key and name: {row!r:.120}")
        country = _as_int(_pick(row, _CARRIER_KEYS["country"]))
        iso = _pick(row, _CARRIER_KEYS["country_iso"])
        url = _pick(row, _CARRIER_KEYS["url"])
        out.append(
            Carrier(
                key=key,
                name=name.strip(),
                country=country,
                country_iso=iso.strip().upper() if isinstance(iso, str) else "",
                url=url.strip() if isinstance(url, str) else "",
            )
        )
    return out


def _parse_countries(data: Any, source: str) -> list[Country]:
    if not isinstance(data, list) or not data:
        raise CarrierListError(f"{source}: expected a non-empty JSON array of countries")
    out: list[Country] = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise CarrierListError(f"{source}: item {i} is not an object")
        code = _as_int(_pick(row, _COUNTRY_KEYS["code"]))
        name = _pick(row, _COUNTRY_KEYS["name"])
        if code is None or not isinstance(name, str):
            raise CarrierListError(f"{source}: item {i} has no numeric code and name: {row!r:.120}")
        iso = _pick(row, _COUNTRY_KEYS["iso2"])
        out.append(
            Country(
                code=code,
                name=name.strip(),
                iso2=iso.strip().upper() if isinstance(iso, str) else "",
            )
        )
    return out


def _carrier_json(carriers: Iterable[Carrier]) -> list[dict[str, Any]]:
    return [
        {"key": c.key, "name": c.name, "country": c.country, "iso2": c.country_iso, "url": c.url}
        for c in carriers
    ]


def _country_json(countries: Iterable[Country]) -> list[dict[str, Any]]:
    return [{"code": c.code, "name": c.name, "iso2": c.iso2} for c in countries]


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Tables:
    carriers: Mapping[int, Carrier]
    countries: dict[int, Country]
    by_iso: dict[str, Country]


class _PackagedCarriers(Mapping[int, Carrier]):
    """The packaged carrier list by code, each ``Carrier`` made when first asked for: most
    commands look up a carrier or two, and making all 3,000 cost a one-shot command more than
    its query. Its rows are in the list's own clean form (``tests/core/test_carriers.py``)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = {row["key"]: row for row in rows}
        self._made: dict[int, Carrier] = {}

    def __getitem__(self, key: int) -> Carrier:
        made = self._made.get(key)
        if made is None:
            row = self._rows[key]
            made = self._made[key] = Carrier(
                row["key"],
                row["name"].strip(),
                row["country"],
                row["iso2"].strip().upper(),
                row["url"].strip(),
            )
        return made

    def __iter__(self) -> Iterator[int]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _read_packaged(name: str) -> Any:
    return msgspec.json.decode(resources.files("trackops.core").joinpath("data", name).read_bytes())


def _read_user(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _file_stamp(path: Path) -> tuple[str, float] | None:
    try:
        return (str(path), path.stat().st_mtime)
    except OSError:
        return None


@lru_cache(maxsize=4)
def _load(
    carriers_stamp: tuple[str, float] | None, countries_stamp: tuple[str, float] | None
) -> _Tables:
    carriers: Mapping[int, Carrier] | None = None
    countries: list[Country] | None = None
    # A damaged user copy must never break a lookup: fall back to the packaged list.
    if carriers_stamp is not None:
        data = _read_user(Path(carriers_stamp[0]))
        try:
            carriers = {c.key: c for c in _parse_carriers(data, carriers_stamp[0])}
        except CarrierListError:
            carriers = None
    if countries_stamp is not None:
        data = _read_user(Path(countries_stamp[0]))
        try:
            countries = _parse_countries(data, countries_stamp[0])
        except CarrierListError:
            countries = None
    if carriers is None:
        carriers = _PackagedCarriers(_read_packaged(CARRIERS_FILE))
    if countries is None:
        countries = _parse_countries(_read_packaged(COUNTRIES_FILE), COUNTRIES_FILE)
    by_iso: dict[str, Country] = {}
    for country in countries:
        if country.iso2:
            by_iso.setdefault(country.iso2, country)
    return _Tables(
        carriers=carriers,
        countries={c.code: c for c in countries},
        by_iso=by_iso,
    )


_RECHECK_SECONDS: Final = 2.0
_checked: list[Any] = [None, 0.0, None]  # [data dir settings, time of the check, tables]


def _tables() -> _Tables:
    # Keyed on the user files' path and mtime, so an update (or another $TRACKOPS_DATA_DIR)
    # is picked up without a restart. The files are looked at again at most every couple of
    # seconds: a table of 100,000 rows names its carriers 100,000 times, and two stat calls
    # per lookup were most of the time it took.
    where = (os.environ.get("TRACKOPS_DATA_DIR"), os.environ.get("XDG_DATA_HOME"))
    now = time.monotonic()
    if _checked[0] == where and now - _checked[1] < _RECHECK_SECONDS:
        return _checked[2]
    directory = user_data_dir()
    tables = _load(_file_stamp(directory / CARRIERS_FILE), _file_stamp(directory / COUNTRIES_FILE))
    _checked[:] = [where, now, tables]
    return tables


# --------------------------------------------------------------------------- lookups


def all_carriers() -> list[Carrier]:
    """Every carrier, in the list's order."""
    return list(_tables().carriers.values())


def all_countries() -> list[Country]:
    """Every country, in the list's order."""
    return list(_tables().countries.values())


def get_carrier(code: int | None) -> Carrier | None:
    """The carrier with 17TRACK code ``code``, or ``None``."""
    if code is None:
        return None
    return _tables().carriers.get(int(code))


def carrier_name(code: int | None) -> str:
    """17TRACK's display name for a carrier code: ``3011`` -> "China Post".

    ``None`` or 0 gives ``""``; an unknown code gives the number as text.
    """
    if not code:
        return ""
    carrier = get_carrier(code)
    return carrier.name if carrier else str(code)


def country_name(code: int | None) -> str:
    """The name of a 17TRACK numeric country code: ``301`` -> "China" (``""`` if unknown)."""
    if code is None:
        return ""
    country = _tables().countries.get(int(code))
    return country.name if country else ""


def country_iso(code: int | None) -> str:
    """ISO 3166 alpha-2 for a 17TRACK numeric country code: ``301`` -> "CN", ``2105`` -> "US".

    ``""`` when unknown.
    """
    if code is None:
        return ""
    country = _tables().countries.get(int(code))
    return country.iso2 if country else ""


def _fold(text: str) -> str:
    """Lower case without accents, so "colis prive" finds "Colis Privé"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().strip()


def country_code(text: str | int) -> int | None:
    """17TRACK's numeric code for an ISO alpha-2 code, a country name or a numeric code.

    ``"CN"`` -> 301, ``"united states"`` -> 2105, ``"2105"`` -> 2105; ``None`` when unknown.
    """
    tables = _tables()
    number = _as_int(text)
    if number is not None:
        return number if number in tables.countries else None
    value = str(text).strip()
    if len(value) == 2 and value.upper() in tables.by_iso:
        return tables.by_iso[value.upper()].code
    folded = _fold(value)
    for country in tables.countries.values():
        if _fold(country.name) == folded:
            return country.code
    return None


def search_carriers(text: str) -> list[Carrier]:
    """Carriers whose name or code matches ``text`` (case- and accent-insensitive).

    Best matches first: exact code, exact name, name starting with the text, word starting
    with it, then the name merely containing it; a two-letter text also matches the carrier's
    country ISO code ("fr" lists French carriers after the name matches). An empty text lists
    every carrier, sorted by name.
    """
    carriers = _tables().carriers.values()
    query = _fold(text)
    if not query:
        return sorted(carriers, key=lambda c: _fold(c.name))
    ranked: list[tuple[int, str, Carrier]] = []
    for carrier in carriers:
        name = _fold(carrier.name)
        if query == str(carrier.key):
            rank = 0
        elif name == query:
            rank = 1
        elif name.startswith(query):
            rank = 2
        elif any(word.startswith(query) for word in name.replace("(", " ").split()):
            rank = 3
        elif query in name:
            rank = 4
        elif query.isdigit() and str(carrier.key).startswith(query):
            rank = 5
        elif len(query) == 2 and carrier.country_iso.casefold() == query:
            rank = 6
        else:
            continue
        ranked.append((rank, name, carrier))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [carrier for _, _, carrier in ranked]


def resolve_carrier(text: str | int) -> int:
    """17TRACK's carrier code for a code or a carrier name (DESIGN.md "Carriers").

    ``"3011"`` or ``3011`` -> 3011 (a code is taken as given, even one the list does not know
    yet); a name resolves to the carrier whose name equals it (case- and accent-insensitive),
    else to the one carrier whose name contains it: ``"ups"`` -> 100002 (UPS), ``"DHL Paket"``
    -> 7041. Raises ``CarrierNameError`` carrying the candidates when no carrier or several
    match.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise CarrierNameError(str(text))
        return text
    value = str(text).strip()
    if value.isdigit():
        if int(value) > 0:
            return int(value)
        raise CarrierNameError(value)
    query = _fold(value)
    if not query:
        raise CarrierNameError(value)
    carriers = _tables().carriers.values()
    exact = [c for c in carriers if _fold(c.name) == query]
    if len(exact) == 1:
        return exact[0].key
    if exact:
        raise CarrierNameError(value, exact)
    containing = [c for c in carriers if query in _fold(c.name)]
    if len(containing) == 1:
        return containing[0].key
    # Best first (name starting with the text before a mere substring), as `carriers` shows.
    ranked = [c for c in search_carriers(value) if query in _fold(c.name)]
    raise CarrierNameError(value, ranked)


# --------------------------------------------------------------------------- refreshing


async def _fetch_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        if response.status != 200:
            raise CarrierListError(f"{url}: HTTP {response.status}")
        try:
            return await response.json(content_type=None)
        except ValueError as exc:
            raise CarrierListError(f"{url}: not JSON ({exc})") from None


def _write_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=0), encoding="utf-8")
    tmp.replace(path)


async def update_carrier_lists(
    base_url: str = DEFAULT_LIST_BASE_URL,
    session: aiohttp.ClientSession | None = None,
    *,
    directory: Path | None = None,
    http_timeout: float = 60.0,
) -> UpdateResult:
    """Download 17TRACK's carrier and country lists and save them for the loader.

    Fetches ``{base_url}/asset/carrier/info/apicarrier.all.json`` and ``country.all.json``,
    checks their shape (``CarrierListError`` if either is wrong, in which case nothing is
    written), and writes both into ``directory`` (default ``user_data_dir()``). Network
    failures raise ``aiohttp.ClientError`` / ``TimeoutError``.
    """
    base = base_url.rstrip("/")
    own = session is None
    if session is None:
        import aiohttp  # only `carriers update` needs an HTTP client

        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=http_timeout))
    try:
        carriers_data = await _fetch_json(session, base + CARRIERS_PATH)
        countries_data = await _fetch_json(session, base + COUNTRIES_PATH)
    finally:
        if own:
            await session.close()
    carriers = _parse_carriers(carriers_data, base + CARRIERS_PATH)
    countries = _parse_countries(countries_data, base + COUNTRIES_PATH)
    target = directory or user_data_dir()
    target.mkdir(parents=True, exist_ok=True)
    _write_atomic(target / CARRIERS_FILE, _carrier_json(carriers))
    _write_atomic(target / COUNTRIES_FILE, _country_json(countries))
    _load.cache_clear()
    return UpdateResult(carriers=len(carriers), countries=len(countries), directory=target)
