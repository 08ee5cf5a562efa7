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
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

from trackops.core.carriers import carrier_name
from trackops.core.errors import InvalidInputError, NotFoundError, TrackopsError
from trackops.core.records import (
    KEY_TYPES,
    SCHEMA_VERSION,
    SLIM_COLUMNS,
    SORT_COLUMNS,
    SORT_DESCENDING,
    CursorError,
    Page,
    ShipmentDetail,
    ShipmentQuery,
    ShipmentRow,
    check_page_size,
    check_sort,
    decode_cursor,
    encode_cursor,
    notification_record,
    shipment_detail,
    shipment_row,
    slim_shipment,
    sort_keys,
)
from trackops.core.redact import mask_url
from trackops.core.wire import decode_track_info

__all__ = ["QuickReader", "Reading"]

_DETAIL: Final = (
    "final_carrier", "extra_param", "buyer_name", "stopped_at", "last_push_at", "info"
)  # fmt: skip
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
            found = await driver.fetch("SELECT max(version) AS version FROM schema_version", ())
            version = found[0]["version"]
        except Exception:
            version = None
        if version != SCHEMA_VERSION:
            await driver.close()
            return None
        return cls(driver, url)

    async def close(self) -> None:
        """Close the connection."""
        await self._driver.close()

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
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
            f"SELECT {', '.join(SLIM_COLUMNS + _DETAIL)} FROM shipments WHERE number = {d.mark(1)}",
            (number,),
        )
        if not found:
            raise NotFoundError(f"{number} is not registered here")
        values = found[0]
        history = await self._fetch(
            f"SELECT * FROM notifications WHERE number = {d.mark(1)} "
            f"ORDER BY created_at DESC, id DESC LIMIT {d.mark(2)}",
            (number, 200),
        )
        return shipment_detail(
            slim_shipment(values),
            final_carrier=values["final_carrier"],
            extra_param=values["extra_param"],
            buyer_name=values["buyer_name"],
            stopped_at=values["stopped_at"],
            last_push_at=values["last_push_at"],
            info=decode_track_info(values["info"]) if values["info"] else None,
            notifications=[notification_record(row) for row in history],
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
        check_sort(query.sort)
        check_page_size(limit)
        d = self._driver
        columns = SORT_COLUMNS[query.sort]
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
            f"SELECT {', '.join(SLIM_COLUMNS)} FROM shipments"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {', '.join(c + direction for c in columns)} LIMIT {bind(limit + 1)}"
        )
        slim = [slim_shipment(row) for row in await self._fetch(sql, params)]
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


def _sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///PATH`` (relative) or ``sqlite:////PATH`` (absolute), as
    SQLAlchemy reads such a URL; ``ValueError`` for an in-memory database."""
    _, _, rest = url.partition(":///")
    path = urllib.parse.unquote(rest)
    if not path or path == ":memory:" or path.startswith("file:"):
        raise ValueError("not a file")
    return Path(path)


class _Driver(Protocol):
    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows as dicts by column name, times and flags as Python values."""
        ...

    def mark(self, n: int) -> str: ...
    def param(self, value: Any) -> Any: ...
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

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, tuple(params))
        names = [c[0] for c in cursor.description]
        times = [i for i, name in enumerate(names) if name in _TIMES]
        flags = [i for i, name in enumerate(names) if name in _FLAGS]
        rows = []
        for row in cursor:
            values = list(row)
            for i in times:
                if values[i] is not None:
                    values[i] = datetime.fromisoformat(values[i])
            for i in flags:
                values[i] = bool(values[i])
            rows.append(dict(zip(names, values, strict=True)))
        return rows

    def mark(self, n: int) -> str:
        return "?"

    def param(self, value: Any) -> Any:
        # As SQLAlchemy stores them: times as text with six fraction digits, flags as 0/1.
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return int(value) if isinstance(value, bool) else value

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

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return [dict(row.items()) for row in await self._conn.fetch(sql, *params)]

    def mark(self, n: int) -> str:
        return f"${n}"

    def param(self, value: Any) -> Any:
        return value

    async def close(self) -> None:
        await self._conn.close()
