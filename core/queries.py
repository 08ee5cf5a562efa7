"""The read side of the store: paged, filtered queries in SQL, returning slim rows.

Everything here reads; nothing decides. Pages are keyset pages (``WHERE (sort keys) < (the
last row's keys) ORDER BY ... LIMIT n``), never ``OFFSET``: page 500 costs what page 1 costs.
A cursor is the sort keys of a page's first or last row, encoded as URL-safe base64 JSON, and
names the sort it belongs to, so a cursor from another sort is refused instead of misread.

Text search (shipments and history) first looks for rows whose number, order number, email,
recipient or tag *equals* the text (indexed, instant on any size of store); only when nothing
equals it does it fall back to a substring scan. A pasted order number or email answers at
once; a fragment still finds what contains it.

Functions take an open ``AsyncConnection`` (``Store.read()``) and the store's dialect name.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from trackops.core.records import (
    KEY_TYPES,
    SLIM_COLUMNS,
    SORT_COLUMNS,
    SORT_DESCENDING,
    SORT_KEYS,
    CursorError,
    SlimShipment,
    SortKey,
    decode_cursor,
    encode_cursor,
    slim_shipment,
    sort_keys,
)
from trackops.core.store import (
    CONDITION_KINDS,
    SEND_STATUSES,
    audit,
    change_seq,
    inbox,
    notifications,
    shipments,
    tombstones,
)
from trackops.core.wire import PackageStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "AuditFilter",
    "ChangeBatch",
    "CursorError",
    "HistoryFilter",
    "ReportFigures",
    "ShipmentFilter",
    "SlimShipment",
    "SortKey",
]


_SORT_COLUMNS: Final = {
    sort: tuple(shipments.c[name] for name in names) for sort, names in SORT_COLUMNS.items()
}
_SLIM_COLUMNS: Final = tuple(shipments.c[name] for name in SLIM_COLUMNS)


@dataclass(frozen=True)
class ShipmentFilter:
    """Which shipments a page shows; every field narrows, empty/None means "any"."""

    statuses: frozenset[int] = frozenset()
    search: str | None = None
    carrier: int | None = None
    tag: str | None = None
    active: bool | None = None
    updated_since: datetime | None = None
    sort: SortKey = "updated"
    descending: bool | None = None
    carrier_codes_matching: Callable[[str], Sequence[int]] | None = field(
        default=None, compare=False, repr=False
    )
    """Carrier codes whose name contains a text (for search by carrier name)."""


@dataclass(frozen=True)
class HistoryFilter:
    """Which history rows a page shows."""

    search: str | None = None
    send_statuses: frozenset[str] = frozenset()
    condition: str | None = None
    channel: str | None = None
    audience: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    number: str | None = None


@dataclass(frozen=True)
class AuditFilter:
    """Which audit rows a page shows."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None


# --------------------------------------------------------------------------- cursors


def _pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, text: str, dialect: str) -> Any:
    """Case-insensitive substring match that needs no ``lower()`` call per row on SQLite
    (its LIKE already ignores ASCII case)."""
    if dialect == "postgresql":
        return column.ilike(_pattern(text), escape="\\")
    return column.like(_pattern(text), escape="\\")


def _equals_any(columns: Sequence[Any], text: str) -> Any:
    """The text equal to any of ``columns`` (as typed, or lower-cased: emails)."""
    values = list(dict.fromkeys([text, text.lower(), text.upper()]))
    return sa.or_(*(column.in_(values) for column in columns))


# --------------------------------------------------------------------------- shipments


@dataclass(frozen=True)
class _Search:
    """How a text search runs: rows whose value equals the text (their numbers), or a
    substring search."""

    numbers: tuple[str, ...] | None  # None: substring search


_EXACT_CAP: Final = 1000


def _shipment_where(
    flt: ShipmentFilter,
    dialect: str,
    search: _Search | None,
    *,
    paging: bool = False,
    probe: bool = False,
) -> list[Any]:
    """The WHERE clauses of ``flt``. A substring search runs through SQLite's trigram index,
    except for a page (``paging``) of a text in ASCII, whose matches are common (the probe
    found over ``_EXACT_CAP``): walking the sort's index and testing each row with LIKE
    (which ignores ASCII case, as the index does) meets a page of them in a few hundred rows,
    where the index would list them all to be sorted. ``probe``: the trigram index is asked
    for at most ``_EXACT_CAP + 1`` rows."""
    where: list[Any] = []
    if flt.statuses:
        where.append(shipments.c.package_status.in_(sorted(flt.statuses)))
    if flt.carrier is not None:
        where.append(shipments.c.carrier == flt.carrier)
    if flt.tag is not None:
        where.append(shipments.c.tag == flt.tag)
    if flt.active is not None:
        where.append(shipments.c.active == flt.active)
    if flt.updated_since is not None:
        where.append(shipments.c.updated_at >= flt.updated_since)
    text = (flt.search or "").strip()
    if not text or search is None:
        return where
    if search.numbers is not None:
        # Listed: the planner then looks each row up by key instead of walking the sort index
        # hoping to meet the few that match.
        where.append(shipments.c.number.in_(search.numbers))
        return where
    codes = list(flt.carrier_codes_matching(text)) if flt.carrier_codes_matching else []
    parts: list[Any] = []
    if dialect == "sqlite+fts" and len(text) >= 3 and not (paging and text.isascii()):
        phrase = '"' + text.replace('"', '""') + '"'
        limit = f" LIMIT {_EXACT_CAP + 1}" if probe else ""
        parts.append(
            sa.literal_column("shipments.rowid").in_(
                sa.text(
                    f"SELECT rowid FROM shipment_search WHERE shipment_search MATCH :phrase{limit}"
                ).bindparams(phrase=phrase)
            )
        )
    else:
        columns = (shipments.c.number, shipments.c.order_number, shipments.c.email, shipments.c.tag)
        parts += [_contains(column, text, dialect) for column in columns]
    if codes:
        parts.append(shipments.c.carrier.in_(codes[:500]))
    where.append(sa.or_(*parts))
    return where


_SEARCH_COLUMNS: Final = (
    shipments.c.number,
    shipments.c.order_number,
    shipments.c.email,
    shipments.c.tag,
)


async def _search_mode(conn: AsyncConnection, flt: ShipmentFilter, dialect: str) -> _Search | None:
    """None: no text search; else the numbers whose number, order, email or tag equals the
    text (indexed), or a substring search when none does."""
    text = (flt.search or "").strip()
    if not text:
        return None
    query = sa.select(shipments.c.number).where(_equals_any(_SEARCH_COLUMNS, text))
    numbers = tuple((await conn.execute(query.limit(_EXACT_CAP + 1))).scalars())
    if numbers and len(numbers) <= _EXACT_CAP:
        return _Search(numbers)
    if len(text) >= 3 and dialect in ("sqlite+fts", "postgresql"):
        # Through the trigram index, without the page's ORDER BY: listed when they are few,
        # so that the page is read by key. (With an ORDER BY ... LIMIT, the planner walks the
        # sort's index hoping to meet matches, and a rare text means reading every row.)
        substring = _Search(None)
        where = _shipment_where(
            ShipmentFilter(search=text, carrier_codes_matching=flt.carrier_codes_matching),
            dialect,
            substring,
            probe=True,
        )
        query = sa.select(shipments.c.number).where(*where).limit(_EXACT_CAP + 1)
        if dialect == "postgresql" and await _planned_rows(conn, query) > _COMMON_ESTIMATE:
            return _Search(None)
        found = tuple((await conn.execute(query)).scalars())
        if len(found) <= _EXACT_CAP:
            return _Search(found)
    return _Search(None)


# A text the planner expects in more rows than this is common: its page is met within a few
# hundred rows of the sort's index, and listing its matches first would cost more than the page.
_COMMON_ESTIMATE: Final = 5 * _EXACT_CAP


async def _planned_rows(conn: AsyncConnection, query: Any) -> float:
    """How many rows PostgreSQL's planner expects ``query``'s scan to give (``EXPLAIN``: a
    plan, nothing run). For a substring it samples the column statistics, which is close for a
    text in a few percent of the rows; a rare text is estimated low, and probed.

    Asking the trigram index instead (the probe) costs a common text more than its page: the
    index's bitmap holds every match, or the planner scans the table until it has met 1,001."""
    compiled = query.compile(dialect=conn.dialect)
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", params)
    plan: Any = result.scalar()  # asyncpg decodes json; a str otherwise
    if isinstance(plan, str):
        plan = json.loads(plan)
    node = plan[0]["Plan"]
    while node.get("Node Type") == "Limit" and node.get("Plans"):
        node = node["Plans"][0]  # the scan under the LIMIT: its estimate is the text's
    return float(node.get("Plan Rows", 0))


def _slim(row: Any) -> SlimShipment:
    return slim_shipment(row._mapping)


async def shipment_page(
    conn: AsyncConnection,
    dialect: str,
    flt: ShipmentFilter,
    *,
    limit: int,
    after: str | None = None,
    before: str | None = None,
    from_end: bool = False,
) -> tuple[list[SlimShipment], str | None, str | None]:
    """One page of shipments: (rows, cursor of the next page, cursor of the previous page).

    ``after``: the page following that cursor; ``before``: the page preceding it;
    ``from_end``: the last page. Rows are always in the sort's order.
    """
    if flt.sort not in _SORT_COLUMNS:
        raise CursorError(f"unknown sort {flt.sort!r}; expected one of {', '.join(SORT_KEYS)}")
    columns = _SORT_COLUMNS[flt.sort]
    descending = SORT_DESCENDING[flt.sort] if flt.descending is None else flt.descending
    kind = f"s:{flt.sort}:{'d' if descending else 'a'}"
    mode = await _search_mode(conn, flt, dialect)
    where = _shipment_where(flt, dialect, mode, paging=True)
    backwards = before is not None or from_end
    cursor = before if before is not None else after
    if cursor is not None:
        keys = decode_cursor(kind, cursor, KEY_TYPES[flt.sort])
        row_value = sa.tuple_(*columns)
        # Forward on a descending sort, or backward on an ascending one: smaller keys.
        smaller = descending != (before is not None)
        where.append(row_value < sa.tuple_(*keys) if smaller else row_value > sa.tuple_(*keys))
    scan_descending = descending != backwards
    order = [c.desc() if scan_descending else c.asc() for c in columns]
    if len(flt.statuses) > 1 and flt.sort == "updated":
        query = _per_status_union(flt, where, order, columns, scan_descending, limit + 1)
    else:
        query = sa.select(*_SLIM_COLUMNS).where(*where).order_by(*order).limit(limit + 1)
    rows = [_slim(r) for r in await conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    if not rows:
        return [], None, None
    first, last = (
        encode_cursor(kind, sort_keys(rows[0], flt.sort)),
        encode_cursor(kind, sort_keys(rows[-1], flt.sort)),
    )
    if backwards:
        # Read from the end: more rows means earlier pages exist; a `before` page always has
        # later rows (the cursor's own row at least), the last page has none.
        next_cursor, prev_cursor = (None if from_end else last), (first if more else None)
    else:
        next_cursor, prev_cursor = (last if more else None), (first if after else None)
    return rows, next_cursor, prev_cursor


def _per_status_union(
    flt: ShipmentFilter,
    where: list[Any],
    order: list[Any],
    columns: Sequence[Any],
    scan_descending: bool,
    limit: int,
) -> Any:
    """Several statuses sorted by update time: the first ``limit`` rows of each status, each
    read in order from the (status, updated_at, number) index, merged. One query over an
    ``IN (...)`` would sort every row of those statuses (tens of thousands) for one page."""
    status_filter = shipments.c.package_status.in_(sorted(flt.statuses))
    others = [w for w in where if w is not status_filter and not _same(w, status_filter)]
    parts = [
        sa.select(*_SLIM_COLUMNS)
        .where(shipments.c.package_status == code, *others)
        .order_by(*order)
        .limit(limit)
        .subquery()
        for code in sorted(flt.statuses)
    ]
    merged = sa.union_all(*(sa.select(part) for part in parts)).subquery()
    merged_order = [
        merged.c[c.name].desc() if scan_descending else merged.c[c.name].asc() for c in columns
    ]
    return sa.select(merged).order_by(*merged_order).limit(limit)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a.compare(b))
    except Exception:
        return False


async def count_shipments(conn: AsyncConnection, dialect: str, flt: ShipmentFilter) -> int:
    """How many shipments match ``flt``."""
    mode = await _search_mode(conn, flt, dialect)
    query = sa.select(sa.func.count()).select_from(shipments)
    return int(await conn.scalar(query.where(*_shipment_where(flt, dialect, mode))) or 0)


async def status_counts(
    conn: AsyncConnection, dialect: str, flt: ShipmentFilter | None = None
) -> dict[int, int]:
    """Shipments per status code (only the codes present); ``flt``'s statuses are ignored."""
    query = sa.select(shipments.c.package_status, sa.func.count()).group_by(
        shipments.c.package_status
    )
    if flt is not None:
        flt = ShipmentFilter(
            search=flt.search,
            carrier=flt.carrier,
            tag=flt.tag,
            active=flt.active,
            updated_since=flt.updated_since,
            carrier_codes_matching=flt.carrier_codes_matching,
        )
        mode = await _search_mode(conn, flt, dialect)
        query = query.where(*_shipment_where(flt, dialect, mode))
    return {int(code): int(count) for code, count in await conn.execute(query)}


async def iter_shipments(
    conn: AsyncConnection, *, batch: int = 5000
) -> AsyncIterator[list[SlimShipment]]:
    """Every shipment in number order, ``batch`` rows at a time (exports)."""
    last: str | None = None
    while True:
        query = sa.select(*_SLIM_COLUMNS).order_by(shipments.c.number).limit(batch)
        if last is not None:
            query = query.where(shipments.c.number > last)
        rows = [_slim(r) for r in await conn.execute(query)]
        if not rows:
            return
        yield rows
        last = rows[-1].number


EXPORT_SQL: Final = (
    "SELECT number, carrier, package_status, active, latest_event_raw, latest_event_location,"
    " latest_event_description, order_number, email, tag, registered_at, updated_at"
    " FROM shipments {where} ORDER BY number LIMIT {limit}"
)


async def iter_export_rows(
    conn: AsyncConnection,
    dialect: str,
    *,
    batch: int = 10_000,
    updated_since: datetime | None = None,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Every shipment as a plain tuple for the CSV export (number, carrier, status code,
    active, latest event time/location/description, order, email, tag, registered_at,
    updated_at), in number order, ``batch`` rows at a time. Driver-level: no per-value
    conversion, which was most of the cost of exporting 100,000 shipments; on SQLite the rows
    are aiosqlite's own tuples (no row objects made at all)."""
    marks = ("?", "?") if dialect == "sqlite" else ("$1", "$2")
    since: Any = updated_since
    if since is not None and dialect == "sqlite":  # the text SQLAlchemy's DateTime stores
        since = since.strftime("%Y-%m-%d %H:%M:%S.%f")
    driver: Any = None
    if dialect == "sqlite" and hasattr(conn, "get_raw_connection"):
        driver = (await conn.get_raw_connection()).driver_connection
    last: str | None = None
    while True:
        conditions: list[str] = []
        params: list[Any] = []
        if last is not None:
            conditions.append(f"number > {marks[len(params)]}")
            params.append(last)
        if since is not None:
            conditions.append(f"updated_at >= {marks[len(params)]}")
            params.append(since)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = EXPORT_SQL.format(where=where, limit=int(batch))
        if driver is not None:
            async with driver.execute(sql, tuple(params)) as cursor:
                rows = list(await cursor.fetchall())
        else:
            rows = [tuple(r) for r in await conn.exec_driver_sql(sql, tuple(params))]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


async def quiet_numbers(
    conn: AsyncConnection,
    cutoff: datetime,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[tuple[datetime, str]]:
    """Active shipments not updated since ``cutoff``, longest quiet first, as
    ``(updated_at, number)``; ``after``: those that come after that key (keyset paging)."""
    query = sa.select(shipments.c.updated_at, shipments.c.number).where(
        shipments.c.active.is_(True), shipments.c.updated_at < cutoff
    )
    if after is not None:
        query = query.where(
            sa.tuple_(shipments.c.updated_at, shipments.c.number)
            > sa.tuple_(sa.literal(after[0], sa.DateTime), sa.literal(after[1], sa.String))
        )
    query = query.order_by(shipments.c.updated_at, shipments.c.number).limit(limit)
    return [(row.updated_at, row.number) for row in await conn.execute(query)]


async def active_numbers(
    conn: AsyncConnection, *, after: str | None, limit: int
) -> list[tuple[str, int | None]]:
    """Active shipments' (number, carrier), in number order, a batch after ``after``."""
    query = sa.select(shipments.c.number, shipments.c.carrier).where(shipments.c.active.is_(True))
    if after is not None:
        query = query.where(shipments.c.number > after)
    rows = await conn.execute(query.order_by(shipments.c.number).limit(limit))
    return [(number, carrier) for number, carrier in rows]


# --------------------------------------------------------------------------- history


_HISTORY_KEYS: Final = (notifications.c.created_at, notifications.c.id)


def _history_where(flt: HistoryFilter, dialect: str, exact: bool | None) -> list[Any]:
    where: list[Any] = []
    if flt.number is not None:
        where.append(notifications.c.number == flt.number)
    if flt.send_statuses:
        where.append(notifications.c.send_status.in_(sorted(flt.send_statuses)))
    if flt.condition is not None:
        if flt.condition in CONDITION_KINDS:
            where.append(notifications.c.condition_kind == flt.condition)
        else:
            where.append(notifications.c.condition == flt.condition)
    if flt.channel is not None:
        where.append(notifications.c.channel == flt.channel)
    if flt.audience is not None:
        where.append(notifications.c.audience == flt.audience)
    if flt.since is not None:
        where.append(notifications.c.created_at >= flt.since)
    if flt.until is not None:
        where.append(notifications.c.created_at < flt.until)
    text = (flt.search or "").strip()
    if text and exact is not None:
        columns = (notifications.c.number, notifications.c.order_number, notifications.c.recipient)
        if exact:
            where.append(_equals_any(columns, text))
        else:
            where.append(sa.or_(*(_contains(c, text, dialect) for c in columns)))
    return where


async def history_page(
    conn: AsyncConnection,
    dialect: str,
    flt: HistoryFilter,
    *,
    limit: int,
    after: str | None = None,
) -> tuple[list[Any], str | None]:
    """One page of history rows (newest first) as row mappings, and the next page's cursor."""
    exact: bool | None = None
    ids: list[int] | None = None
    text = (flt.search or "").strip()
    if text:
        columns = (notifications.c.number, notifications.c.order_number, notifications.c.recipient)
        probe = sa.select(notifications.c.id).where(_equals_any(columns, text))
        found = list((await conn.execute(probe.limit(_EXACT_CAP + 1))).scalars())
        exact = bool(found)
        if exact and len(found) <= _EXACT_CAP:
            # A few rows equal the text: list them, so that the page is read by key rather
            # than by walking the whole history in time order looking for them.
            ids = found
    numbers: tuple[str, ...] | None = None
    if text and not exact and dialect == "sqlite+fts" and len(text) >= 3:
        # Nothing equals the text: the numbers of the shipments that contain it (their
        # number, order or email, through the search index), and recipients starting with
        # it, instead of reading the whole history.
        numbers = await _fts_numbers(conn, text)
    where = _history_where(flt, dialect, None if ids is not None or numbers is not None else exact)
    if ids is not None:
        where.append(notifications.c.id.in_(ids))
    if numbers is not None:
        low = text.lower()
        columns = (notifications.c.number, notifications.c.order_number, notifications.c.recipient)
        where.append(
            sa.or_(
                # the listed shipments' rows that themselves contain the text
                sa.and_(
                    notifications.c.number.in_(numbers),
                    sa.or_(*(_contains(c, text, dialect) for c in columns)),
                ),
                sa.and_(
                    notifications.c.recipient >= low,
                    notifications.c.recipient < low + "\U0010ffff",
                ),
            )
        )
    kind = "h"
    if after is not None:
        at, id_ = decode_cursor(kind, after, (datetime, int))
        where.append(sa.tuple_(*_HISTORY_KEYS) < sa.tuple_(at, id_))
    query = (
        sa.select(notifications)
        .where(*where)
        .order_by(notifications.c.created_at.desc(), notifications.c.id.desc())
        .limit(limit + 1)
    )
    rows = [r._mapping for r in await conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(kind, [rows[-1]["created_at"], rows[-1]["id"]]) if more else None
    return rows, cursor


async def _fts_numbers(conn: AsyncConnection, text: str) -> tuple[str, ...] | None:
    """Numbers of the shipments whose number, order, email or tag contains ``text`` (the
    search index); None when there are too many to list (then the caller scans)."""
    phrase = '"' + text.replace('"', '""') + '"'
    rows = await conn.execute(
        sa.text(
            "SELECT s.number FROM shipments AS s WHERE s.rowid IN"
            " (SELECT rowid FROM shipment_search WHERE shipment_search MATCH :phrase)"
            " LIMIT :cap"
        ),
        {"phrase": phrase, "cap": _EXACT_CAP + 1},
    )
    found = tuple(rows.scalars())
    return found if len(found) <= _EXACT_CAP else None


# --------------------------------------------------------------------------- audit


async def audit_page(
    conn: AsyncConnection, flt: AuditFilter, *, limit: int, after: str | None = None
) -> tuple[list[Any], str | None]:
    """One page of the audit log, newest first."""
    where: list[Any] = []
    if flt.actor is not None:
        where.append(audit.c.actor == flt.actor)
    if flt.action is not None:
        where.append(audit.c.action == flt.action)
    if flt.target is not None:
        where.append(audit.c.target == flt.target)
    if after is not None:
        (last_id,) = decode_cursor("a", after, (int,))
        where.append(audit.c.id < last_id)
    query = sa.select(audit).where(*where).order_by(audit.c.id.desc()).limit(limit + 1)
    rows = [r._mapping for r in await conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor("a", [rows[-1]["id"]]) if more else None


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class DeliveryFigures:
    """Raw figures for statistics: deliveries per day and days-to-delivery samples."""

    per_day: dict[date, int]
    by_carrier: dict[int | None, list[float]]
    by_route: dict[tuple[int | None, int | None], list[float]]


async def delivery_figures(conn: AsyncConnection, *, since: datetime) -> DeliveryFigures:
    """Delivered shipments whose delivery event is at or after ``since``.

    The delivery time is the latest event's time (the carrier's clock, read as UTC, as the
    stale rule does); days to delivery count from registration.
    """
    query = sa.select(
        shipments.c.carrier,
        shipments.c.origin_country,
        shipments.c.destination_country,
        shipments.c.registered_at,
        shipments.c.latest_event_time,
    ).where(
        shipments.c.package_status == int(PackageStatus.DELIVERED),
        shipments.c.latest_event_time >= since,
    )
    per_day: dict[date, int] = defaultdict(int)
    by_carrier: dict[int | None, list[float]] = defaultdict(list)
    by_route: dict[tuple[int | None, int | None], list[float]] = defaultdict(list)
    for carrier, origin, destination, registered, delivered in await conn.execute(query):
        per_day[delivered.date()] += 1
        days = max(0.0, (delivered - registered).total_seconds() / 86400)
        by_carrier[carrier].append(days)
        by_route[(origin, destination)].append(days)
    return DeliveryFigures(dict(per_day), dict(by_carrier), dict(by_route))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` (inclusive method; one sample is itself)."""
    if len(samples) == 1:
        return float(samples[0])
    if fraction == 0.5:
        return float(statistics.median(samples))
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return float(cuts[round(fraction * 100) - 1])


async def stuck_shipments(
    conn: AsyncConnection, *, cutoff: datetime, limit: int
) -> list[SlimShipment]:
    """Active, undelivered shipments whose latest event (or registration, with no event) is
    older than ``cutoff``, longest silent first."""
    silent_since = sa.func.coalesce(shipments.c.latest_event_time, shipments.c.registered_at)
    query = (
        sa.select(*_SLIM_COLUMNS)
        .where(
            shipments.c.active.is_(True),
            shipments.c.package_status != int(PackageStatus.DELIVERED),
            silent_since < cutoff,
        )
        .order_by(silent_since, shipments.c.number)
        .limit(limit)
    )
    return [_slim(r) for r in await conn.execute(query)]


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class ReportFigures:
    """What a weekly or monthly report says, counted in SQL."""

    by_status: dict[int, int]
    total: int
    tracked: int
    registered: int
    delivered: int
    sends: dict[str, int]
    attention: list[SlimShipment]
    attention_total: int


_NEEDS_ATTENTION: Final = (PackageStatus.ALERT, PackageStatus.UNDELIVERED, PackageStatus.EXPIRED)


async def report_figures(
    conn: AsyncConnection, *, start: datetime, end: datetime, attention_limit: int = 50
) -> ReportFigures:
    """The figures of a report over ``start``..``end`` (bounded reads only)."""
    by_status = {
        int(code): int(n)
        for code, n in await conn.execute(
            sa.select(shipments.c.package_status, sa.func.count()).group_by(
                shipments.c.package_status
            )
        )
    }
    count = sa.select(sa.func.count()).select_from(shipments)
    tracked = await conn.scalar(count.where(shipments.c.active.is_(True)))
    registered = await conn.scalar(count.where(shipments.c.registered_at.between(start, end)))
    delivered = await conn.scalar(
        count.where(
            shipments.c.package_status == int(PackageStatus.DELIVERED),
            shipments.c.updated_at.between(start, end),
        )
    )
    # One count per send status: each a range of the (send_status, created_at) index, where
    # a GROUP BY over the period would read every row of it.
    sends = {}
    for status in SEND_STATUSES:
        n = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(notifications)
            .where(notifications.c.send_status == status)
            .where(notifications.c.created_at.between(start, end))
        )
        if n:
            sends[status] = int(n)
    attention_where = (
        shipments.c.active.is_(True),
        shipments.c.package_status.in_([int(s) for s in _NEEDS_ATTENTION]),
    )
    attention_total = await conn.scalar(count.where(*attention_where))
    attention = [
        _slim(r)
        for r in await conn.execute(
            sa.select(*_SLIM_COLUMNS)
            .where(*attention_where)
            .order_by(shipments.c.updated_at.desc(), shipments.c.number)
            .limit(attention_limit)
        )
    ]
    return ReportFigures(
        by_status=by_status,
        total=sum(by_status.values()),
        tracked=int(tracked or 0),
        registered=int(registered or 0),
        delivered=int(delivered or 0),
        sends=sends,
        attention=attention,
        attention_total=int(attention_total or 0),
    )


# --------------------------------------------------------------------------- change feed


@dataclass(frozen=True)
class ChangeBatch:
    """What changed after a sequence value, up to ``seq``."""

    seq: int
    shipments: list[tuple[str, int, int]] = field(default_factory=list)
    """(number, status code, seq)"""
    notifications: list[tuple[int, str | None, str, int]] = field(default_factory=list)
    """(id, number, send status, seq)"""
    deleted: list[tuple[str, int]] = field(default_factory=list)
    """(number, seq)"""
    audit: list[tuple[int, str, int]] = field(default_factory=list)
    """(id, target, seq)"""


async def current_seq(conn: AsyncConnection) -> int:
    """The store's change sequence now (0 before anything changed)."""
    return int(await conn.scalar(sa.select(change_seq.c.seq).where(change_seq.c.id == 1)) or 0)


async def changes_since(conn: AsyncConnection, seq: int, *, limit: int = 2000) -> ChangeBatch:
    """Rows stamped after ``seq`` (at most ``limit`` of each kind), and the new high mark.

    When a kind has more than ``limit`` changes, the high mark stops at the last one read,
    so the next call continues from there.
    """
    top = await current_seq(conn)
    if top <= seq:
        return ChangeBatch(seq=seq)
    ship = [
        (n, int(s), int(q))
        for n, s, q in await conn.execute(
            sa.select(shipments.c.number, shipments.c.package_status, shipments.c.change_seq)
            .where(shipments.c.change_seq > seq, shipments.c.change_seq <= top)
            .order_by(shipments.c.change_seq)
            .limit(limit)
        )
    ]
    notes = [
        (int(i), n, st, int(q))
        for i, n, st, q in await conn.execute(
            sa.select(
                notifications.c.id,
                notifications.c.number,
                notifications.c.send_status,
                notifications.c.change_seq,
            )
            .where(notifications.c.change_seq > seq, notifications.c.change_seq <= top)
            .order_by(notifications.c.change_seq)
            .limit(limit)
        )
    ]
    deleted = [
        (n, int(q))
        for n, q in await conn.execute(
            sa.select(tombstones.c.number, tombstones.c.change_seq)
            .where(tombstones.c.change_seq > seq, tombstones.c.change_seq <= top)
            .order_by(tombstones.c.change_seq)
            .limit(limit)
        )
    ]
    acts = [
        (int(i), t, int(q))
        for i, t, q in await conn.execute(
            sa.select(audit.c.id, audit.c.target, audit.c.change_seq)
            .where(audit.c.change_seq > seq, audit.c.change_seq <= top)
            .order_by(audit.c.change_seq)
            .limit(limit)
        )
    ]
    high = top
    for rows in (ship, notes, deleted, acts):
        if len(rows) >= limit:
            high = min(high, rows[-1][-1])
    return ChangeBatch(seq=high, shipments=ship, notifications=notes, deleted=deleted, audit=acts)


async def last_push_at(conn: AsyncConnection) -> datetime | None:
    """When the newest push was received."""
    value = await conn.scalar(sa.select(sa.func.max(inbox.c.received_at)))
    return value if isinstance(value, datetime) else None


def days_ago(now: datetime, days: float) -> datetime:
    """``now`` minus ``days``."""
    return now - timedelta(days=days)
