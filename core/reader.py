"""The quick reader: the service's shipment queries for one-shot commands, without SQLAlchemy.

``trackops status NUMBER`` and ``trackops list`` are whole processes that run one or two
indexed queries. Through the service they spend two thirds of their time importing
SQLAlchemy (200-290 ms on this project's 2-core machines), which one query does not need.
``QuickReader`` answers the same two questions the same way (``Service.shipment`` and
``Service.shipments``, the same rows, the same keyset cursors) straight through the driver:
the standard library's ``sqlite3``, or asyncpg for PostgreSQL.

It reads only:

* an existing SQLite file or a PostgreSQL database, at this trackops's schema version (a
  new or older store, another driver, or a URL with options opens through the service, which
  creates or upgrades the store and says what is wrong when it cannot);
* shipment pages without a text search (the search chooses between the store's search
  indexes: it stays with ``trackops.core.queries``).

Its SQL is the service's for those shapes (``trackops.core.queries``: keyset pages ordered by
the sort's columns, the shipment's notifications newest first); ``tests/core/test_reader.py``
holds the two to the same answers on both databases. Opened on SQLite, its connection is
``query_only``: it cannot write.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

from trackops.core.carriers import carrier_name
from trackops.core.errors import InvalidInputError, NotFoundError, TrackopsError
from trackops.core.records import (
    KEY_TYPES,
    SCHEMA_VERSION,
    SORT_DESCENDING,
    SORT_KEYS,
    CursorError,
    Page,
    ShipmentDetail,
    ShipmentQuery,
    ShipmentRow,
    SlimShipment,
    decode_cursor,
    encode_cursor,
    notification_record,
    shipment_detail,
    shipment_row,
    sort_keys,
)
from trackops.core.redact import mask_url
from trackops.core.wire import decode_track_info

__all__ = ["QuickReader", "Reading"]

MAX_PAGE: Final = 1000
"""The service's largest page."""

_SLIM: Final = tuple(
    "package_status" if f.name == "status_code" else f.name for f in fields(SlimShipment)
)
_DETAIL: Final = (
    "final_carrier", "extra_param", "buyer_name", "stopped_at", "last_push_at", "info"
)  # fmt: skip
_SORT_COLUMNS: Final = {
    "updated": ("updated_at", "number"),
    "status": ("package_status", "updated_at", "number"),
    "number": ("number",),
}
# Columns that SQLite holds as text (times) or 0/1 (flags): what SQLAlchemy's types make of them.
_TIMES: Final = frozenset(
    {"updated_at", "registered_at", "latest_event_time", "unknown_since", "stopped_at",
     "last_push_at", "created_at", "sent_at", "next_attempt_at"}
)  # fmt: skip
_FLAGS: Final = frozenset({"active"})


class Reading(Protocol):
    """What a one-shot reading command asks: the service, or the quick reader."""

    async def shipment(self, number: str) -> ShipmentDetail:
        """One shipment with its timeline and notifications; ``NotFoundError`` if unknown."""
        ...

    async def shipments(
        self, query: ShipmentQuery | None = None, *, limit: int = 50, after: str | None = None
    ) -> Page[ShipmentRow]:
        """One page of shipments (``after``: the page following that cursor)."""
        ...


class QuickReader:
    """``Service.shipment`` and ``Service.shipments`` (without a text search) over one
    connection of the store's own driver. ``open`` gives None where it cannot read the store;
    ``supports`` says which queries it answers."""

    def __init__(self, driver: _Driver, url: str) -> None:
        """Use ``open``."""
        self._driver = driver
        self.url = mask_url(url)

    @classmethod
    async def open(cls, url: str) -> QuickReader | None:
        """A reader over the store at ``url``; None for a store it cannot read (see the
        module's notes), including one it cannot reach: the service then says why."""
        parsed = urllib.parse.urlsplit(url.strip())
        backend, _, driver_name = parsed.scheme.partition("+")
        if parsed.query or parsed.fragment:
            return None  # driver options: the service passes them as it should
        driver: _Driver | None = None
        try:
            if backend == "sqlite" and driver_name in ("", "aiosqlite", "pysqlite"):
                driver = _Sqlite.open(_sqlite_path(url.strip()))
            elif backend in ("postgresql", "postgres") and driver_name in ("", "asyncpg"):
                driver = await _Postgres.open(parsed._replace(scheme="postgresql").geturl())
        except Exception:  # unreachable, locked, not a database...: the service says what
            return None
        if driver is None:
            return None
        try:
            version = (await driver.fetch("SELECT max(version) FROM schema_version", ()))[0][0]
        except Exception:
            version = None
        if version != SCHEMA_VERSION:
            await driver.close()
            return None
        return cls(driver, url)

    async def close(self) -> None:
        """Close the connection."""
        await self._driver.close()

    async def _fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        try:
            return await self._driver.fetch(sql, params)
        except Exception as exc:  # the store went away, or is locked beyond the timeout
            raise TrackopsError(f"store {self.url}: {exc}") from exc

    @staticmethod
    def supports(query: ShipmentQuery | None) -> bool:
        """Whether ``shipments`` answers ``query`` (a text search is the service's)."""
        return query is None or not (query.search or "").strip()

    @staticmethod
    def carrier_name(code: int | None) -> str:
        """17TRACK's display name of a carrier code ("" for none)."""
        return carrier_name(code) if code else ""

    async def shipment(self, number: str) -> ShipmentDetail:
        """One shipment with its timeline and notifications; ``NotFoundError`` if unknown."""
        number = number.strip()
        d = self._driver
        found = await self._fetch(
            f"SELECT {', '.join(_SLIM + _DETAIL)} FROM shipments WHERE number = {d.mark(1)}",
            (number,),
        )
        if not found:
            raise NotFoundError(f"{number} is not registered here")
        values = d.values(_SLIM + _DETAIL, found[0])
        history = await self._fetch(
            f"SELECT * FROM notifications WHERE number = {d.mark(1)} "
            f"ORDER BY created_at DESC, id DESC LIMIT {d.mark(2)}",
            (number, 200),
        )
        return shipment_detail(
            _slim(values),
            final_carrier=values["final_carrier"],
            extra_param=values["extra_param"],
            buyer_name=values["buyer_name"],
            stopped_at=values["stopped_at"],
            last_push_at=values["last_push_at"],
            info=decode_track_info(values["info"]) if values["info"] else None,
            notifications=[notification_record(d.mapping(row)) for row in history],
            carrier_name=self.carrier_name,
        )

    async def shipments(
        self, query: ShipmentQuery | None = None, *, limit: int = 50, after: str | None = None
    ) -> Page[ShipmentRow]:
        """One page of shipments, as ``Service.shipments`` gives it (``ValueError`` for a
        query with a text search: see ``supports``)."""
        query = query or ShipmentQuery()
        if not self.supports(query):
            raise ValueError("a text search is the service's")
        if query.sort not in SORT_KEYS:
            raise InvalidInputError(
                f"unknown sort {query.sort!r}; expected one of {', '.join(SORT_KEYS)}"
            )
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"page size must be 1 to {MAX_PAGE}, not {limit}")
        d = self._driver
        columns = _SORT_COLUMNS[query.sort]
        descending = SORT_DESCENDING[query.sort] if query.descending is None else query.descending
        kind = f"s:{query.sort}:{'d' if descending else 'a'}"
        where: list[str] = []
        params: list[Any] = []

        def bind(value: Any) -> str:
            params.append(d.param(value))
            return d.mark(len(params))

        if query.statuses:
            marks = ", ".join(bind(int(s)) for s in sorted(int(s) for s in query.statuses))
            where.append(f"package_status IN ({marks})")
        for column, value in (("carrier", query.carrier), ("tag", query.tag)):
            if value is not None:
                where.append(f"{column} = {bind(value)}")
        if query.active is not None:
            where.append(f"active = {bind(query.active)}")
        if query.updated_since is not None:
            where.append(f"updated_at >= {bind(query.updated_since)}")
        if after is not None:
            try:
                keys = decode_cursor(kind, after, KEY_TYPES[query.sort])
            except CursorError as exc:
                raise InvalidInputError(str(exc)) from None
            marks = ", ".join(bind(k) for k in keys)
            where.append(f"({', '.join(columns)}) {'<' if descending else '>'} ({marks})")
        direction = " DESC" if descending else ""
        sql = (
            f"SELECT {', '.join(_SLIM)} FROM shipments"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {', '.join(c + direction for c in columns)} LIMIT {bind(limit + 1)}"
        )
        slim = [_slim(d.values(_SLIM, row)) for row in await self._fetch(sql, params)]
        more = len(slim) > limit
        slim = slim[:limit]
        if not slim:
            return Page([], None, None)
        first = encode_cursor(kind, sort_keys(slim[0], query.sort))
        last = encode_cursor(kind, sort_keys(slim[-1], query.sort))
        return Page(
            [shipment_row(s, self.carrier_name) for s in slim],
            last if more else None,
            first if after else None,
        )


def _slim(values: Mapping[str, Any]) -> SlimShipment:
    return SlimShipment(
        **{("status_code" if name == "package_status" else name): values[name] for name in _SLIM}
    )


def _sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///PATH`` (relative) or ``sqlite:////PATH`` (absolute), as
    SQLAlchemy reads such a URL; ``ValueError`` for an in-memory database."""
    _, _, rest = url.partition(":///")
    path = urllib.parse.unquote(rest)
    if not path or path == ":memory:" or path.startswith("file:"):
        raise ValueError("not a file")
    return Path(path)


class _Driver(Protocol):
    async def fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...
    def mark(self, n: int) -> str: ...
    def param(self, value: Any) -> Any: ...
    def values(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]: ...
    def mapping(self, row: Any) -> Mapping[str, Any]: ...
    async def close(self) -> None: ...


class _Sqlite:
    """The standard library's driver, on the loop's thread: each statement is an indexed
    read of a few milliseconds, and a one-shot command has nothing else to do meanwhile."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> _Sqlite | None:
        if not path.is_file():
            return None  # a new store: the service creates it
        conn = sqlite3.connect(path, timeout=30.0)
        conn.execute("PRAGMA query_only = ON")
        return cls(conn)

    async def fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        cursor = self._conn.execute(sql, tuple(params))
        self._names = [c[0] for c in cursor.description]
        return cursor.fetchall()

    def mark(self, n: int) -> str:
        return "?"

    def param(self, value: Any) -> Any:
        # As SQLAlchemy stores them: times as text with six fraction digits, flags as 0/1.
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return int(value) if isinstance(value, bool) else value

    def values(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        out = dict(zip(names, row, strict=True))
        for name in _TIMES.intersection(out):
            if out[name] is not None:
                out[name] = datetime.fromisoformat(out[name])
        for name in _FLAGS.intersection(out):
            out[name] = bool(out[name])
        return out

    def mapping(self, row: Any) -> Mapping[str, Any]:
        return self.values(self._names, row)

    async def close(self) -> None:
        self._conn.close()


class _Postgres:
    """asyncpg, which gives times and flags as Python values already."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, dsn: str) -> _Postgres:
        import asyncpg  # type: ignore[import-untyped]  # no type information shipped

        return cls(await asyncpg.connect(dsn))

    async def fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return list(await self._conn.fetch(sql, *params))

    def mark(self, n: int) -> str:
        return f"${n}"

    def param(self, value: Any) -> Any:
        return value

    def values(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(names, row, strict=True))

    def mapping(self, row: Any) -> Mapping[str, Any]:
        return dict(row.items())

    async def close(self) -> None:
        await self._conn.close()
