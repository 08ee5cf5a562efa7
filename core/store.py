"""Persistence: shipments, their latest tracking info, the webhook inbox, the notification outbox.

SQLAlchemy 2 Core over an async engine. SQLite through aiosqlite is the embedded default (one
file, WAL); PostgreSQL through asyncpg is the same code with another URL, for several
``trackops serve`` processes against one database.

How it holds together:

* **One URL, one place.** ``normalize_url`` turns the configured URL into the async driver form
  (``sqlite:///PATH`` -> ``sqlite+aiosqlite:///PATH``, ``postgresql://`` or ``postgres://`` ->
  ``postgresql+asyncpg://``); every message that shows a URL shows it masked (``mask_url``).
* **Dialect differences live in ``_Dialect``**: SQLite pragmas and ``BEGIN IMMEDIATE`` for
  writers (so two processes writing one file wait for each other instead of failing), the
  PostgreSQL advisory locks, and the dialect's ``INSERT ... ON CONFLICT DO NOTHING``.
* **Migrations** are an ordered list of ``(version, description, step)``; ``Store.open``
  applies the missing ones in one transaction and records each in ``schema_version``. On
  PostgreSQL an advisory lock makes two processes opening at once take turns; on SQLite the
  immediate write transaction does the same. A step is frozen once released: a later change
  is a new step, never an edit of an old one (``_create_v1`` spells out the tables as they
  were, rather than using the current ``Table`` objects).
* **The outbox guarantee**: ``apply_updates`` writes a batch of shipments' new states and
  their notification intents in ONE transaction, so a crash between "decided" and "sent"
  loses nothing and sends nothing twice: the rows stay pending for the dispatcher.
* **Claiming the outbox**: ``claim_due`` picks due pending rows and pushes their
  ``next_attempt_at`` a lease ahead in one write transaction, so several dispatchers (several
  ``trackops serve`` processes on one database) never take the same row. PostgreSQL locks the
  picked rows with ``FOR UPDATE SKIP LOCKED`` (a concurrent claim skips them instead of waiting
  or taking them too); SQLite's writers are serialised by ``BEGIN IMMEDIATE``. A dispatcher
  that dies after claiming leaves its rows pending: they are due again when the lease ends.

Times are naive UTC ``datetime``s everywhere (aware ones are converted on the way in).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.util import greenlet_spawn
from trackops.core.errors import TrackopsError
from trackops.core.outbox import NEWS_AUDIENCES, NewsKey, ReportKey
from trackops.core.records import (
    SCHEMA_VERSION,
    STATUS_BY_CODE,
    NotificationRecord,
    history_json,
    notification_record,
    shipment_json,
)
from trackops.core.records import iso as _iso
from trackops.core.records import optional_status as _status
from trackops.core.redact import mask_url
from trackops.core.rules import NotificationIntent
from trackops.core.status import EventKey, StoredState, Transition, event_count
from trackops.core.wire import PackageStatus, TrackInfo, decode_track_info, encode

if TYPE_CHECKING:
    # Imported where an engine is made: ``sqlalchemy.ext.asyncio`` loads the ORM, which a
    # command that only reads a SQLite store never needs (see ``Store.open(read_only=True)``).
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "AUDIENCES",
    "CONDITION_KINDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SEND_STATUSES",
    "InboxRow",
    "InboxStats",
    "NewNotification",
    "NewShipment",
    "NotificationRecord",
    "ShipmentRecord",
    "ShipmentState",
    "ShipmentUpdate",
    "Store",
    "StoreError",
    "Subscription",
    "history_json",
    "is_transient",
    "mask_url",
    "normalize_url",
    "notification_record",
    "shipment_json",
]

SEND_STATUSES: Final = ("pending", "sent", "failed", "suppressed", "superseded")
AUDIENCES: Final = ("customer", "seller", "report")
CONDITION_KINDS: Final = ("default", "custom")
DAILY_LIMIT_REASON: Final = "daily limit"

# Rows per statement for "WHERE number IN (...)": far below every backend's parameter limit.
_CHUNK: Final = 500
_SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
# pg_advisory_xact_lock keys: any constants unique to trackops ("trk" + purpose).
_LOCK_MIGRATIONS: Final = 0x74726B_0001
_LOCK_SELLER_LIMIT: Final = 0x74726B_0002


class StoreError(TrackopsError):
    """The store cannot be opened or used; the message names the (masked) URL and the cause.

    ``transient`` is true when the store itself is the problem (unreachable, locked by another
    process, disk full, read-only): trying the same thing later may work, and the data that
    was being written is not to blame.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is unavailable (retry later) rather than that the data
    did not fit (a ``StoreError`` says which; raw driver and SQLAlchemy errors are classified
    by type: connection, lock, disk and timeout errors are transient)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StoreError):
            return current.transient
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(
            current,
            sa.exc.OperationalError
            | sa.exc.InterfaceError
            | sa.exc.DisconnectionError
            | sa.exc.TimeoutError
            | sqlite3.OperationalError
            | OSError
            | TimeoutError,
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(value: datetime | None) -> datetime | None:
    """Aware datetimes become naive UTC; naive ones are taken as UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _stored_key(raw: str | None, description: str | None) -> EventKey | None:
    """The stored latest event's identity, as ``status.event_key`` gives it."""
    if not (raw or description):
        return None
    return (raw or None, description or None)


# --------------------------------------------------------------------------- values that fit
# Pushes carry whatever 17TRACK (or someone holding the key) sends. A value a column cannot hold
# must not fail the transaction of a whole batch, so each is made to fit, the same way on both
# backends (SQLite would hold more than PostgreSQL; the rule is PostgreSQL's):
#
# * Integer columns (carrier, origin/destination country) hold 32-bit signed values; another
#   value is stored as NULL. 17TRACK's codes are far smaller: nothing real is lost, and the
#   stored tracking JSON keeps the raw value.
# * ``hash`` (17TRACK's ``hs``) holds 64-bit signed values; another is stored as NULL, which
#   only means a repeat of that push is re-applied instead of skipped as a duplicate. It does
#   not notify twice: the status did not change. The raw value stays in the tracking JSON.
# * Text columns cannot hold NUL on PostgreSQL: NUL becomes U+FFFD in every text column (the
#   JSON of the tracking info escapes it as ``\u0000`` and keeps it exact).

_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)


def _fit_int(value: int | None, bounds: tuple[int, int] = _INT32) -> int | None:
    """``value`` when the column can hold it, else None (see "values that fit")."""
    if value is None or not bounds[0] <= value <= bounds[1]:
        return None
    return value


def _fit_text(value: str | None) -> str | None:
    """``value`` without NUL characters, which PostgreSQL text cannot hold."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


# --------------------------------------------------------------------------- URLs


def normalize_url(url: str) -> URL:
    """The async driver form of a store URL; ``StoreError`` for what trackops cannot use.

    ``sqlite:///PATH`` -> ``sqlite+aiosqlite:///PATH``; ``postgresql://`` and ``postgres://``
    -> ``postgresql+asyncpg://``. Driver forms (``sqlite+aiosqlite://``,
    ``postgresql+asyncpg://``, ...) are taken as given.
    """
    try:
        parsed = make_url(url.strip())
    except Exception as exc:
        raise StoreError(
            f"store URL {mask_url(url)!r} is not a URL: expected sqlite:///PATH or "
            "postgresql://USER@HOST/DB"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"store URL {mask_url(url)!r}: unsupported database {backend!r}; expected "
            "sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    if not driver:
        driver = "aiosqlite" if backend == "sqlite" else "asyncpg"
    return parsed.set(drivername=f"{backend}+{driver}")


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database)


# --------------------------------------------------------------------------- tables
# The current shape of the schema, for queries. Changing it means adding a migration below.

metadata = sa.MetaData()

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("number", sa.String, primary_key=True),
    sa.Column("carrier", sa.Integer),
    sa.Column("final_carrier", sa.Integer),
    sa.Column("extra_param", sa.String),
    sa.Column("tag", sa.String),
    sa.Column("order_number", sa.String),
    sa.Column("email", sa.String),
    sa.Column("buyer_name", sa.String),
    sa.Column("package_status", sa.Integer, nullable=False, default=0),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("synced", sa.Boolean, nullable=False, default=False),
    sa.Column("latest_event_time", sa.DateTime),
    sa.Column("latest_event_raw", sa.String),
    sa.Column("latest_event_location", sa.String),
    sa.Column("latest_event_description", sa.String),
    sa.Column("hash", sa.BigInteger),
    sa.Column("info", sa.Text),
    sa.Column("registered_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("stopped_at", sa.DateTime),
    sa.Column("last_push_at", sa.DateTime),
    sa.Column("origin_country", sa.Integer),
    sa.Column("destination_country", sa.Integer),
    # v4: the store's change sequence when this row last changed (the cross-process feed)
    sa.Column("change_seq", sa.BigInteger, nullable=False, default=0),
    # v5: what ordering updates by their events needs besides the latest event (status.py):
    # 17TRACK's last-tracked time (its own clock) and the number of events held
    sa.Column("last_tracked_at", sa.DateTime),
    sa.Column("event_count", sa.Integer),
    # v7: when 17TRACK answered that it does not know the number (-18019902); NULL otherwise
    sa.Column("unknown_since", sa.DateTime),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("processed_at", sa.DateTime),
    sa.Column("error", sa.Text),
    # v6: a row that fails is retried with backoff, then quarantined (failed, with its error)
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("failed", sa.Boolean, nullable=False, default=False),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("number", sa.String),
    sa.Column("order_number", sa.String),
    sa.Column("audience", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("recipient", sa.String, nullable=False),
    sa.Column("condition", sa.String, nullable=False),
    sa.Column("condition_kind", sa.String, nullable=False),
    sa.Column("from_status", sa.Integer),
    sa.Column("to_status", sa.Integer),
    sa.Column("send_status", sa.String, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("resend_of", sa.Integer, sa.ForeignKey("notifications.id", ondelete="SET NULL")),
    # v2: what a report or export says, rendered when it was queued
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text),
    # v3: the event that triggered a status notification, as it was then (a message sent
    # later, after retries, still tells of that event, not of whatever happened since)
    sa.Column("event_time", sa.String),
    sa.Column("event_location", sa.String),
    sa.Column("event_description", sa.Text),
    # v4
    sa.Column("change_seq", sa.BigInteger, nullable=False, default=0),
    # v6: which process holds the claim ("host:pid"), so a restart releases a dead one's rows
    sa.Column("claimed_by", sa.String),
    # v8: the period a report belongs to ("2026-W49", "2026-12"), so it is sent once per period
    sa.Column("period", sa.String),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String, primary_key=True),  # "host:pid"
    sa.Column("host", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("seen_at", sa.DateTime, nullable=False),
)

change_seq = sa.Table(
    "change_seq",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)
"""One row: the store's change sequence, bumped by every write that front-ends should see."""

tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("change_seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("number", sa.String, nullable=False),
    sa.Column("deleted_at", sa.DateTime, nullable=False),
)
"""Deleted shipments, so that the change feed can tell other processes (pruned with age)."""

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("change_seq", sa.BigInteger, nullable=False, default=0),
)
"""Who did what: every command of every front-end, with its outcome."""

alert_subscriptions = sa.Table(
    "alert_subscriptions",
    metadata,
    sa.Column("channel", sa.String, primary_key=True),
    sa.Column("target", sa.String, primary_key=True),
    sa.Column("statuses", sa.String, nullable=False),
    sa.Column("created_by", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
"""Where seller alerts also go (a Slack channel subscribed with `/track subscribe`)."""

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)


# --------------------------------------------------------------------------- migrations


def _in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _create_v1(conn: Connection) -> None:
    """Version 1: shipments, inbox, notifications and their indexes, as first released."""
    md = sa.MetaData()
    sa.Table(
        "shipments",
        md,
        sa.Column("number", sa.String, primary_key=True),
        sa.Column("carrier", sa.Integer),
        sa.Column("final_carrier", sa.Integer),
        sa.Column("extra_param", sa.String),
        sa.Column("tag", sa.String),
        sa.Column("order_number", sa.String),
        sa.Column("email", sa.String),
        sa.Column("buyer_name", sa.String),
        sa.Column("package_status", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("synced", sa.Boolean, nullable=False),
        sa.Column("latest_event_time", sa.DateTime),
        sa.Column("latest_event_raw", sa.String),
        sa.Column("latest_event_location", sa.String),
        sa.Column("latest_event_description", sa.String),
        sa.Column("hash", sa.BigInteger),
        sa.Column("info", sa.Text),
        sa.Column("registered_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("stopped_at", sa.DateTime),
        sa.Column("last_push_at", sa.DateTime),
        sa.Column("origin_country", sa.Integer),
        sa.Column("destination_country", sa.Integer),
        sa.Index("ix_shipments_status", "package_status"),
        sa.Index("ix_shipments_updated", "updated_at"),
    )
    inbox_v1 = sa.Table(
        "inbox",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("processed_at", sa.DateTime),
        sa.Column("error", sa.Text),
    )
    unprocessed = inbox_v1.c.processed_at.is_(None)
    sa.Index(
        "ix_inbox_unprocessed",
        inbox_v1.c.id,
        sqlite_where=unprocessed,
        postgresql_where=unprocessed,
    )
    sa.Table(
        "notifications",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("number", sa.String),
        sa.Column("order_number", sa.String),
        sa.Column("audience", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("recipient", sa.String, nullable=False),
        sa.Column("condition", sa.String, nullable=False),
        sa.Column("condition_kind", sa.String, nullable=False),
        sa.Column("from_status", sa.Integer),
        sa.Column("to_status", sa.Integer),
        sa.Column("send_status", sa.String, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("resend_of", sa.Integer, sa.ForeignKey("notifications.id", ondelete="SET NULL")),
        sa.CheckConstraint(
            _in_list("audience", ("customer", "seller", "report")), name="ck_notifications_audience"
        ),
        sa.CheckConstraint(
            _in_list("condition_kind", ("default", "custom")), name="ck_notifications_kind"
        ),
        sa.CheckConstraint(
            _in_list("send_status", ("pending", "sent", "failed", "suppressed")),
            name="ck_notifications_send_status",
        ),
        sa.Index("ix_notifications_due", "send_status", "next_attempt_at"),
        sa.Index("ix_notifications_number", "number"),
        sa.Index("ix_notifications_created", "created_at"),
        sa.Index("ix_notifications_audience_created", "audience", "created_at"),
    )
    md.create_all(conn)


def _add_message_text_v2(conn: Connection) -> None:
    """Version 2: notifications keep the subject and body of reports and exports."""
    conn.exec_driver_sql("ALTER TABLE notifications ADD COLUMN subject TEXT")
    conn.exec_driver_sql("ALTER TABLE notifications ADD COLUMN body TEXT")


Migration = tuple[int, str, Callable[[Connection], None]]


def _add_event_snapshot_v3(conn: Connection) -> None:
    """Version 3: notifications keep the event that triggered them."""
    conn.exec_driver_sql("ALTER TABLE notifications ADD COLUMN event_time VARCHAR")
    conn.exec_driver_sql("ALTER TABLE notifications ADD COLUMN event_location VARCHAR")
    conn.exec_driver_sql("ALTER TABLE notifications ADD COLUMN event_description TEXT")


def _service_tables_v4(conn: Connection) -> None:
    """Version 4: the change sequence, tombstones, audit, alert subscriptions, and the indexes
    that keyset paging and history search use."""
    conn.exec_driver_sql("ALTER TABLE shipments ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0")
    conn.exec_driver_sql(
        "ALTER TABLE notifications ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0"
    )
    md = sa.MetaData()
    seq = sa.Table(
        "change_seq",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "tombstones",
        md,
        sa.Column("change_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("number", sa.String, nullable=False),
        sa.Column("deleted_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "audit",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("change_seq", sa.BigInteger, nullable=False),
        sa.Index("ix_audit_actor", "actor", "id"),
    )
    sa.Table(
        "alert_subscriptions",
        md,
        sa.Column("channel", sa.String, primary_key=True),
        sa.Column("target", sa.String, primary_key=True),
        sa.Column("statuses", sa.String, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    md.create_all(conn)
    conn.execute(seq.insert().values(id=1, seq=0))
    for statement in (
        "CREATE INDEX ix_shipments_change_seq ON shipments (change_seq)",
        "CREATE INDEX ix_notifications_change_seq ON notifications (change_seq)",
        "CREATE INDEX ix_shipments_updated_number ON shipments (updated_at, number)",
        "CREATE INDEX ix_shipments_status_updated ON shipments"
        " (package_status, updated_at, number)",
        "CREATE INDEX ix_shipments_order ON shipments (order_number)",
        "CREATE INDEX ix_shipments_email ON shipments (email)",
        "CREATE INDEX ix_notifications_order ON notifications (order_number)",
        "CREATE INDEX ix_notifications_recipient ON notifications (recipient)",
    ):
        conn.exec_driver_sql(statement)


def _add_ordering_facts_v5(conn: Connection) -> None:
    """Version 5: shipments keep 17TRACK's last-tracked time and their event count."""
    timestamp = sa.DateTime().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE shipments ADD COLUMN last_tracked_at {timestamp}")
    conn.exec_driver_sql("ALTER TABLE shipments ADD COLUMN event_count INTEGER")


def _add_inbox_retries_and_claims_v6(conn: Connection) -> None:
    """Version 6: inbox rows are retried, then quarantined; claims name their process."""
    false = "false" if conn.dialect.name == "postgresql" else "0"
    conn.exec_driver_sql("ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql("ALTER TABLE inbox ADD COLUMN next_attempt_at TIMESTAMP")
    conn.exec_driver_sql(f"ALTER TABLE inbox ADD COLUMN failed BOOLEAN NOT NULL DEFAULT {false}")
    # Rows that could not be read before v6 were marked done with their error: they are the
    # first quarantined ones, listed and replayable like any other.
    true = "true" if conn.dialect.name == "postgresql" else "1"
    conn.exec_driver_sql(f"UPDATE inbox SET failed = {true} WHERE error IS NOT NULL")
    conn.exec_driver_sql(f"CREATE INDEX ix_inbox_failed ON inbox (id) WHERE failed = {true}")
    conn.exec_driver_sql("ALTER TABLE notifications ADD COLUMN claimed_by VARCHAR")
    conn.exec_driver_sql(
        "CREATE TABLE workers (id VARCHAR PRIMARY KEY, host VARCHAR NOT NULL, "
        "pid INTEGER NOT NULL, started_at TIMESTAMP NOT NULL, seen_at TIMESTAMP NOT NULL)"
    )


def _unknown_since_v7(conn: Connection) -> None:
    """Version 7: shipments remember when 17TRACK stopped knowing their number."""
    timestamp = sa.DateTime().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE shipments ADD COLUMN unknown_since {timestamp}")


_SEND_STATUS_CHECK_RE: Final = re.compile(
    r"(ck_notifications_send_status\s+CHECK\s*\(\s*send_status\s+IN\s*\()[^)]*(\))"
)


def _superseded_v8(conn: Connection) -> None:
    """Version 8: notifications keep a report's period, and may be ``superseded``.

    The CHECK constraint on ``send_status`` gains ``superseded``. PostgreSQL replaces the
    constraint; SQLite cannot alter one, so the table is rebuilt from its own stored
    definition (columns added since v1 included) with only the constraint's list changed:
    the old table is renamed away first, so that its self-reference (``resend_of``) never
    fires ``ON DELETE SET NULL`` on the copied rows, then its indexes are made again.
    """
    statuses = ", ".join(
        f"'{v}'" for v in ("pending", "sent", "failed", "suppressed", "superseded")
    )
    conn.exec_driver_sql("ALTER TABLE notifications ADD COLUMN period VARCHAR")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS ck_notifications_send_status"
        )
        conn.exec_driver_sql(
            "ALTER TABLE notifications ADD CONSTRAINT ck_notifications_send_status "
            f"CHECK (send_status IN ({statuses}))"
        )
        return
    (table_sql,) = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'notifications'"
    ).one()
    new_sql, replaced = _SEND_STATUS_CHECK_RE.subn(rf"\g<1>{statuses}\g<2>", table_sql)
    if replaced != 1:
        raise StoreError("notifications: the send_status check constraint was not found")
    index_sql = [
        sql
        for (sql,) in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'notifications' "
            "AND sql IS NOT NULL"
        )
    ]
    columns = ", ".join(
        f'"{name}"'
        for (_, name, *_rest) in conn.exec_driver_sql("PRAGMA table_info(notifications)")
    )
    conn.exec_driver_sql("ALTER TABLE notifications RENAME TO notifications_v7")
    conn.exec_driver_sql(new_sql)
    conn.exec_driver_sql(
        f"INSERT INTO notifications ({columns}) SELECT {columns} FROM notifications_v7"
    )
    conn.exec_driver_sql("DROP TABLE notifications_v7")
    for sql in index_sql:
        conn.exec_driver_sql(sql)


_SEARCH_COLUMNS: Final = "number, order_number, email, tag"


def _search_index_v9(conn: Connection) -> None:
    """Version 9: text search and history filters that stay fast on a big store.

    SQLite: an FTS5 table with the trigram tokenizer over the shipments' number, order number,
    email and tag (kept by triggers, which fire only when those columns change, so applying
    tracking updates never touches it): a substring of three characters or more is found
    through the index instead of a scan. PostgreSQL: trigram (pg_trgm) GIN indexes when the
    extension can be created, else nothing (a scan, still correct). Both: indexes on the tag,
    and on a history row's send status with its time (the history's status filter).
    """
    conn.exec_driver_sql("CREATE INDEX ix_shipments_tag ON shipments (tag)")
    conn.exec_driver_sql(
        "CREATE INDEX ix_notifications_status_created ON notifications"
        " (send_status, created_at, id)"
    )
    if conn.dialect.name == "sqlite":
        try:
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE temp.fts_probe USING fts5(x, tokenize='trigram')"
            )
            conn.exec_driver_sql("DROP TABLE temp.fts_probe")
        except sa.exc.OperationalError:
            return  # this SQLite has no FTS5 trigram tokenizer (before 3.34): searches scan
        cols = _SEARCH_COLUMNS
        new = ", ".join(f"new.{c.strip()}" for c in cols.split(","))
        old = ", ".join(f"old.{c.strip()}" for c in cols.split(","))
        for statement in (
            f"CREATE VIRTUAL TABLE shipment_search USING fts5({cols}, content='shipments',"
            " content_rowid='rowid', tokenize='trigram')",
            "CREATE TRIGGER shipment_search_insert AFTER INSERT ON shipments BEGIN"
            f" INSERT INTO shipment_search(rowid, {cols}) VALUES (new.rowid, {new}); END",
            "CREATE TRIGGER shipment_search_delete AFTER DELETE ON shipments BEGIN"
            f" INSERT INTO shipment_search(shipment_search, rowid, {cols})"
            f" VALUES ('delete', old.rowid, {old}); END",
            f"CREATE TRIGGER shipment_search_update AFTER UPDATE OF {cols} ON shipments BEGIN"
            f" INSERT INTO shipment_search(shipment_search, rowid, {cols})"
            f" VALUES ('delete', old.rowid, {old});"
            f" INSERT INTO shipment_search(rowid, {cols}) VALUES (new.rowid, {new}); END",
            "INSERT INTO shipment_search(shipment_search) VALUES ('rebuild')",
        ):
            conn.exec_driver_sql(statement)
        return
    try:
        with conn.begin_nested():
            # In public, not in the first schema of the search path: an extension is one per
            # database, and a schema dropped with CASCADE (another store's, a test's) would
            # take it, and every index using it, along.
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    except sa.exc.DBAPIError:
        return  # not allowed here: searches scan, which is correct, only slower
    # Where it is (it may have been created elsewhere before): the operator class is named
    # with its schema, which need not be on this store's search path.
    schema = conn.exec_driver_sql(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
    ).scalar()
    for column in ("number", "order_number", "email", "tag"):
        conn.exec_driver_sql(
            f"CREATE INDEX ix_shipments_{column}_trgm ON shipments"
            f" USING gin ({column} {schema}.gin_trgm_ops)"
        )


def _carrier_index_v10(conn: Connection) -> None:
    """Version 10: shipments by carrier (the text search matches carrier names through it)."""
    conn.exec_driver_sql("CREATE INDEX ix_shipments_carrier ON shipments (carrier)")


MIGRATIONS: Final[tuple[Migration, ...]] = (
    (1, "shipments, inbox, notifications", _create_v1),
    (2, "notifications.subject and notifications.body", _add_message_text_v2),
    (3, "notifications.event_time, event_location, event_description", _add_event_snapshot_v3),
    (
        4,
        "change sequence, tombstones, audit, alert subscriptions, paging indexes",
        _service_tables_v4,
    ),
    (5, "shipments.last_tracked_at and event_count", _add_ordering_facts_v5),
    (
        6,
        "inbox.attempts, next_attempt_at, failed; notifications.claimed_by; workers",
        _add_inbox_retries_and_claims_v6,
    ),
    (7, "shipments.unknown_since", _unknown_since_v7),
    (8, "notifications.period; send status superseded", _superseded_v8),
    (9, "text search index, tag and history status indexes", _search_index_v9),
    (10, "shipments by carrier", _carrier_index_v10),
)
"""Every schema step, in order. Append only: a released step never changes."""

# The schema version this trackops writes is records.SCHEMA_VERSION (the quick reader, which
# loads no SQLAlchemy, checks a store against it): the last migration's.
if MIGRATIONS[-1][0] != SCHEMA_VERSION:
    raise RuntimeError(f"records.SCHEMA_VERSION {SCHEMA_VERSION} is not {MIGRATIONS[-1][0]}")

assert [m[0] for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1)), "versions 1, 2, ..."


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ShipmentRecord:
    """A stored shipment. ``info`` is its latest ``TrackInfo``, decoded on first use."""

    number: str
    carrier: int | None
    final_carrier: int | None
    extra_param: str | None
    tag: str | None
    order_number: str | None
    email: str | None
    buyer_name: str | None
    status: PackageStatus
    active: bool
    synced: bool
    latest_event_time: datetime | None
    latest_event_raw: str | None
    latest_event_location: str | None
    latest_event_description: str | None
    hash: int | None
    registered_at: datetime
    updated_at: datetime
    stopped_at: datetime | None
    last_push_at: datetime | None
    origin_country: int | None
    destination_country: int | None
    info_json: str | None = field(default=None, repr=False)
    change_seq: int = field(default=0, repr=False)
    last_tracked_at: datetime | None = None
    event_count: int | None = None
    unknown_since: datetime | None = None
    """When 17TRACK answered that it does not know the number (-18019902); tracking stopped."""

    @cached_property
    def info(self) -> TrackInfo | None:
        """The latest tracking information, or None before the first sync."""
        return decode_track_info(self.info_json) if self.info_json else None

    @property
    def package_status(self) -> PackageStatus:
        """Same as ``status`` (17TRACK's name for it)."""
        return self.status

    @property
    def tracking(self) -> Literal["active", "stopped"]:
        """``active`` while 17TRACK tracks the number, else ``stopped``."""
        return "active" if self.active else "stopped"

    def stored_state(self) -> StoredState:
        """What the state machine needs to know about this shipment."""
        return StoredState(
            package_status=self.status,
            latest_event_time=self.latest_event_time,
            hash=self.hash,
            synced=self.synced,
            latest_event=_stored_key(self.latest_event_raw, self.latest_event_description),
            last_tracked=self.last_tracked_at,
            event_count=self.event_count,
        )

    def to_json(self, carrier_name: Callable[[int | None], str] | None = None) -> dict[str, Any]:
        """The contract's shipment JSON object (``carrier_name`` resolves carrier codes)."""
        return shipment_json(
            self,
            carrier_name(self.carrier) if carrier_name else "",
            order=self.order_number,
            event_time=self.latest_event_raw or _iso(self.latest_event_time),
        )


@dataclass(frozen=True, slots=True)
class ShipmentState:
    """A stored shipment as deciding an update needs it (``Store.get_states``)."""

    number: str
    carrier: int | None
    tag: str | None
    order_number: str | None
    email: str | None
    state: StoredState


@dataclass(frozen=True)
class InboxRow:
    """A webhook push as received, waiting for (or done with) processing.

    ``attempts`` counts failed processing attempts; ``failed`` means quarantined: it failed
    ``attempts`` times (or could not be read at all) and waits for ``trackops inbox replay``.
    ``error`` is the last failure's reason.
    """

    id: int
    body: bytes
    received_at: datetime
    processed_at: datetime | None
    error: str | None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    failed: bool = False


@dataclass(frozen=True)
class InboxStats:
    """How far behind the inbox is.

    ``backlog``: rows not processed yet (retries waiting included); ``oldest_unprocessed_at``:
    when the oldest of them was received; ``failed``: rows quarantined; ``last_received_at``:
    the newest push.
    """

    backlog: int
    last_received_at: datetime | None
    oldest_unprocessed_at: datetime | None = None
    failed: int = 0


@dataclass(frozen=True)
class Subscription:
    """Seller alerts for ``statuses`` also go to ``target`` on ``channel`` (a Slack channel)."""

    channel: str
    target: str
    statuses: tuple[PackageStatus, ...]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class NewShipment:
    """A shipment to add (after 17TRACK accepted its registration)."""

    number: str
    carrier: int | None = None
    final_carrier: int | None = None
    extra_param: str | None = None
    tag: str | None = None
    order_number: str | None = None
    email: str | None = None
    buyer_name: str | None = None
    registered_at: datetime | None = None
    """Defaults to now."""
    active: bool = True


@dataclass(frozen=True)
class ShipmentUpdate:
    """New tracking information for one shipment, the decided transition and its intents.

    ``order``, ``email``, ``name``, ``tag`` and ``carrier`` are used only when the shipment
    does not exist yet (a push for a number registered outside trackops). ``pushed_at``, when
    given, is recorded as the shipment's last push time.
    """

    number: str
    info: TrackInfo
    transition: Transition
    intents: Sequence[NotificationIntent] = ()
    order: str | None = None
    email: str | None = None
    name: str | None = None
    tag: str | None = None
    carrier: int | None = None
    pushed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class NewNotification:
    """A notification row to add directly: a resend, a report, an export.

    ``created_at`` defaults to now and ``next_attempt_at`` to ``created_at`` for a pending row.
    """

    audience: str
    channel: str
    recipient: str
    condition: str
    condition_kind: str = "default"
    number: str | None = None
    order_number: str | None = None
    from_status: PackageStatus | None = None
    to_status: PackageStatus | None = None
    created_at: datetime | None = None
    send_status: str = "pending"
    reason: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    resend_of: int | None = None
    subject: str | None = None
    body: str | None = None
    event_time: str | None = None
    event_location: str | None = None
    event_description: str | None = None
    period: str | None = None


_UPDATABLE: Final = frozenset(c.name for c in shipments.columns) - {"number"}
_SHIPMENT_FIELDS: Final = {
    "package_status": "status",
    "info": "info_json",
}


def _shipment(row: sa.Row[Any]) -> ShipmentRecord:
    values = dict(row._mapping)
    values["package_status"] = PackageStatus(values["package_status"])
    values["active"] = bool(values["active"])
    values["synced"] = bool(values["synced"])
    return ShipmentRecord(**{_SHIPMENT_FIELDS.get(k, k): v for k, v in values.items()})


def _inbox_row(row: sa.Row[Any]) -> InboxRow:
    return InboxRow(
        id=row.id,
        body=bytes(row.body),
        received_at=row.received_at,
        processed_at=row.processed_at,
        error=row.error,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        failed=bool(row.failed),
    )


def _event_snapshot(info: TrackInfo) -> dict[str, str | None]:
    """The latest event of ``info`` as notification columns."""
    event = info.latest_event
    return {
        "event_time": _fit_text(event.time_raw) if event else None,
        "event_location": _fit_text(event.place or None) if event else None,
        "event_description": _fit_text(event.description) if event else None,
    }


def _check_send_status(send_status: str) -> None:
    if send_status not in SEND_STATUSES:
        raise ValueError(
            f"unknown send status {send_status!r}; expected one of: {', '.join(SEND_STATUSES)}"
        )


# --------------------------------------------------------------------------- dialects


@functools.lru_cache(maxsize=4096)  # a batch repeats its few times (now, next attempt) a lot
def _sqlite_datetime(value: datetime | None) -> str | None:
    """A datetime in the text form SQLAlchemy's SQLite ``DateTime`` writes and reads."""
    return None if value is None else _naive(value).strftime("%Y-%m-%d %H:%M:%S.%f")  # type: ignore[union-attr]


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


@functools.cache
def _sqlite_insert(
    table: sa.Table,
) -> tuple[tuple[str, ...], str, tuple[Callable[[Any], Any] | None, ...]]:
    """Column names, the ``INSERT`` text and a value converter per column (None: as is)."""
    columns = tuple(c.name for c in table.columns)
    converters: list[Callable[[Any], Any] | None] = []
    for column in table.columns:
        if isinstance(column.type, sa.DateTime):
            converters.append(_sqlite_datetime)
        elif isinstance(column.type, sa.Boolean):
            converters.append(_sqlite_bool)
        elif isinstance(column.type, sa.LargeBinary):
            converters.append(lambda v: None if v is None else bytes(v))
        else:
            converters.append(None)
    quoted = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" for _ in columns)
    return columns, f"INSERT INTO {table.name} ({quoted}) VALUES ({marks})", tuple(converters)


async def _driver_connection(conn: AsyncConnection) -> Any:
    """The driver's own connection under ``conn`` (aiosqlite's), for driver-level statements."""
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:
        raise StoreError("the database connection is closed")
    return driver


class _Dialect:
    """Everything that differs between SQLite and PostgreSQL, in one place."""

    def __init__(self, name: str, busy_ms: int = _SQLITE_BUSY_TIMEOUT_MS) -> None:
        self.name = name
        self.busy_ms = busy_ms
        self.is_sqlite = name == "sqlite"
        self.is_postgresql = name == "postgresql"

    def engine_options(self) -> dict[str, Any]:
        """Extra ``create_async_engine`` arguments."""
        if self.is_postgresql:
            # Long-running `trackops serve` processes outlive server restarts and idle cuts.
            return {"pool_pre_ping": True}
        return {}

    def install(self, engine: Engine, *, read_only: bool = False) -> None:
        """Connection set-up: for SQLite, pragmas and our own BEGIN (see ``_begin``).
        ``read_only``: the connections refuse to write (``PRAGMA query_only``)."""
        if not self.is_sqlite:
            return

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # The driver's own implicit BEGIN is off: SQLAlchemy's "begin" event emits ours.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={self.busy_ms}")
                # journal_mode=WAL is not set here: it is persistent in the file, and switching
                # needs a lock the busy handler does not wait for (see ``use_wal``).
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                if read_only:
                    cursor.execute("PRAGMA query_only=ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # A writer takes the write lock up front. A deferred transaction that reads and
            # then writes fails at once (SQLITE_BUSY, no waiting) when another process
            # committed in between; BEGIN IMMEDIATE waits for the busy timeout instead.
            options = conn.get_execution_options()
            writer = options.get("trackops_write", False)
            # A transaction may bound its wait (Store._write(busy_timeout=...)); the pragma is
            # per connection, so it is set only when this connection has another value.
            busy = options.get("trackops_busy_ms", self.busy_ms)
            info = conn.connection.info
            if info.get("trackops_busy_ms", self.busy_ms) != busy:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy)}")
                info["trackops_busy_ms"] = busy
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    async def use_wal(self, engine: AsyncEngine) -> None:
        """SQLite: switch the file to WAL, once per file (the mode is kept in the file).

        The switch reads the header, then upgrades to a write lock to change it; a connection
        that finds another one switching the same new file fails that upgrade at once with
        "database is locked", without waiting through the busy timeout (SQLite's busy handler
        never waits inside a transaction that already reads, as waiting could deadlock). So
        the switch is retried here, for as long as the busy timeout, without blocking the loop.
        Once the file is in WAL mode the pragma takes no write lock at all.
        """
        if not self.is_sqlite:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_ms / 1000
        delay = 0.001
        async with engine.connect() as conn:
            driver = await _driver_connection(conn)
            while True:
                try:
                    async with driver.execute("PRAGMA journal_mode=WAL"):
                        return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or loop.time() >= deadline:
                        raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

    async def lock(self, conn: AsyncConnection, key: int) -> None:
        """Serialise transactions that take the same ``key`` (PostgreSQL; SQLite's writers
        are serialised by BEGIN IMMEDIATE already)."""
        if self.is_postgresql:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    async def insert_with_ids(
        self, conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]
    ) -> list[int]:
        """Insert ``rows`` into ``table`` (integer key ``id``); their new ids, in order.

        PostgreSQL: one batched ``INSERT ... RETURNING``. SQLite cannot promise RETURNING's
        order for a multi-row insert, so SQLAlchemy would send the rows one at a time (a thread
        hop each with aiosqlite); instead the ids are assigned here from ``max(id)``, which is
        safe because every SQLite writer holds the write lock (BEGIN IMMEDIATE) from its start.
        """
        if self.is_sqlite:
            sync = conn.sync_connection
            if sync is None or not sync.get_execution_options().get("trackops_write"):
                raise RuntimeError("insert_with_ids needs a write transaction (Store._write)")
            # Driver-level executemany in the same transaction: SQLAlchemy's per-row bind
            # processing was most of the cost of the hot inserts (inbox, notifications).
            driver = await _driver_connection(conn)
            cursor = await driver.execute(f"SELECT max(id) FROM {table.name}")
            (last,) = await cursor.fetchone()
            first = (last or 0) + 1
            ids = list(range(first, first + len(rows)))
            columns, sql, converters = _sqlite_insert(table)
            await driver.executemany(
                sql,
                [
                    tuple(
                        convert(row.get(name)) if convert else row.get(name)
                        for name, convert in zip(columns, converters, strict=True)
                    )
                    for row in ({**r, "id": i} for r, i in zip(rows, ids, strict=True))
                ],
            )
            return ids
        result = await conn.execute(
            table.insert().returning(table.c.id, sort_by_parameter_order=True), rows
        )
        return list(result.scalars())

    def claiming(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """``query`` as the selecting step of a claim (rows the transaction then updates).

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so that a concurrent claim neither waits for
        nor takes the rows this one picked (and a row another claim committed in between is
        re-checked against the WHERE clause, which its new ``next_attempt_at`` then fails).
        SQLite has no row locks: the claim's write transaction (BEGIN IMMEDIATE) holds the
        database's write lock from its start, so claims run one after the other.
        """
        if self.is_postgresql:
            return query.with_for_update(skip_locked=True)
        return query

    def insert_ignore(self, table: sa.Table) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING`` (on the primary key) in this dialect."""
        # Imported here: a command reading a SQLite store never loads PostgreSQL's dialect.
        if self.is_postgresql:
            from sqlalchemy.dialects import postgresql as module
        else:
            from sqlalchemy.dialects import sqlite as module  # type: ignore[no-redef]
        return module.insert(table).on_conflict_do_nothing()


class _Held:
    """An already acquired lock as an async context manager that releases it on exit."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


def _describe(exc: BaseException) -> str:
    """A one-line cause: the driver's message rather than SQLAlchemy's wrapper text."""
    orig = getattr(exc, "orig", None)
    cause = orig if isinstance(orig, BaseException) else exc
    # SQLAlchemy's async adapters wrap the driver's exception (asyncpg's
    # InvalidCatalogNameError ...) in a generic one; the driver's names the problem.
    if isinstance(cause.__cause__, Exception) and type(cause).__name__ in ("Error", "DBAPIError"):
        cause = cause.__cause__
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


# --------------------------------------------------------------------------- the store


class Store:
    """The persistence layer. Open with ``await Store.open(url)``; close with ``close()``."""

    def __init__(self, engine: AsyncEngine, dialect: _Dialect, url: str) -> None:
        """Use ``Store.open``; this wraps an engine that is already set up."""
        self._engine = engine
        self._writer = engine.execution_options(trackops_write=True)
        self._dialect = dialect
        # SQLite has one writer at a time. Within this process, writers queue on this lock and
        # are woken the moment it is free; left to SQLite's busy handler they would poll with
        # sleeps of up to 100 ms, which is what a webhook's latency cannot afford. Other
        # processes still wait through the busy timeout.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if dialect.is_sqlite else None
        self._busy_writers: dict[int, AsyncEngine] = {}
        self.url = url
        """The store URL as configured, password masked."""
        self._search_index = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        connect_args: Mapping[str, Any] | None = None,
        busy_timeout: float = _SQLITE_BUSY_TIMEOUT_MS / 1000,
        read_only: bool = False,
    ) -> Store:
        """Connect, then create or upgrade the schema; ``StoreError`` when that fails.

        ``connect_args`` go to the driver (e.g. asyncpg ``server_settings``). ``busy_timeout``
        (SQLite): how long a transaction waits for another process's write lock.

        ``read_only``: for a one-shot command that only reads (``list``, ``status``). An
        existing SQLite file at the current schema is then read through SQLAlchemy's blocking
        engine on the loop's thread: no asyncio extension, ORM or driver thread to load, which
        is most of such a command's time. Writing through it raises ``StoreError``. Any other
        store (PostgreSQL, a new or older SQLite file) opens as usual.
        """
        masked = mask_url(url)
        target = normalize_url(url)
        dialect = _Dialect(target.get_backend_name(), max(1, int(busy_timeout * 1000)))
        path = _sqlite_file(target) if dialect.is_sqlite else None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot open the store at {masked}: cannot create {path.parent}: "
                    f"{exc.strerror or exc}"
                ) from exc
        if read_only:
            reader = await _Reader.attach(target, dialect, masked, path, connect_args)
            if reader is not None:
                return reader
        from sqlalchemy.ext.asyncio import create_async_engine

        try:
            engine = create_async_engine(
                target,
                connect_args=dict(connect_args or {}),
                **dialect.engine_options(),
            )
        except Exception as exc:
            raise StoreError(f"cannot open the store at {masked}: {_describe(exc)}") from exc
        dialect.install(engine.sync_engine)
        store = cls(engine, dialect, masked)
        try:
            await dialect.use_wal(engine)
            await store._migrate()
            if dialect.is_sqlite:
                async with engine.connect() as conn:
                    found = await conn.exec_driver_sql(
                        "SELECT 1 FROM sqlite_master WHERE name = 'shipment_search'"
                    )
                    store._search_index = found.first() is not None
        except StoreError:
            await engine.dispose()
            raise
        except Exception as exc:
            await engine.dispose()
            raise StoreError(
                f"cannot open the store at {masked}: {store._scrub(_describe(exc), url)}"
            ) from exc
        return store

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self._engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    async def schema_version(self) -> int:
        """The schema version recorded in the database."""
        async with self._read() as conn:
            version = await conn.scalar(sa.select(sa.func.max(schema_version.c.version)))
        return int(version or 0)

    @staticmethod
    def _scrub(message: str, url: str) -> str:
        try:
            password = make_url(url).password
        except Exception:
            password = None
        if password:
            message = message.replace(str(password), "***")
        return message

    @property
    def dialect_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._dialect.name

    @property
    def query_dialect(self) -> str:
        """What the query layer needs to know: ``sqlite+fts`` (with the text search index),
        ``sqlite`` or ``postgresql``."""
        return "sqlite+fts" if self._search_index else self._dialect.name

    def read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A read connection for the query layer (``trackops.core.queries``)."""
        return self._read()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as conn:
                yield conn
        except (sa.exc.SQLAlchemyError, OSError) as exc:  # OSError: the server went away
            raise StoreError(
                f"store {self.url}: {_describe(exc)}", transient=is_transient(exc)
            ) from exc

    @asynccontextmanager
    async def _write(self, *, busy_timeout: float | None = None) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed when the block ends, rolled back on any error.

        ``busy_timeout`` bounds the wait for the write lock (this process's, then SQLite's)
        to that many seconds; by default SQLite waits up to 30 s for another process.
        """
        writer = self._writer
        lock: Any = self._write_lock or contextlib.nullcontext()
        if busy_timeout is not None and self._dialect.is_sqlite:
            ms = max(1, int(busy_timeout * 1000))
            writer = self._busy_writers.get(ms) or self._busy_writers.setdefault(
                ms, self._writer.execution_options(trackops_busy_ms=ms)
            )
            if self._write_lock is not None:
                try:
                    async with asyncio.timeout(busy_timeout):
                        await self._write_lock.acquire()
                except TimeoutError:
                    raise StoreError(
                        f"store {self.url}: busy (write lock not free within {busy_timeout:g} s)",
                        transient=True,
                    ) from None
                lock = _Held(self._write_lock)
        try:
            async with lock, writer.begin() as conn:
                yield conn
        # sqlite3.Error: the driver-level hot inserts; OSError: the server went away
        except (sa.exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"store {self.url}: {_describe(exc)}", transient=is_transient(exc)
            ) from exc

    async def _migrate(self) -> None:
        async with self._writer.begin() as conn:
            await self._dialect.lock(conn, _LOCK_MIGRATIONS)
            await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
            current = int(await conn.scalar(sa.select(sa.func.max(schema_version.c.version))) or 0)
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the store at {self.url} has schema version {current}, newer than this "
                    f"trackops knows ({SCHEMA_VERSION}): upgrade trackops"
                )
            for version, description, step in MIGRATIONS:
                if version <= current:
                    continue
                await conn.run_sync(step)
                await conn.execute(
                    schema_version.insert().values(
                        version=version, description=description, applied_at=_utcnow()
                    )
                )

    @staticmethod
    async def _bump(conn: AsyncConnection) -> int:
        """Advance the change sequence inside a write transaction; the new value.

        Every write that a front-end should see stamps its rows with this value, so that
        another process finds what changed with ``changes_since``. On PostgreSQL the row lock
        this UPDATE takes orders the stamping transactions: a higher value never commits
        before a lower one, so a reader that has seen N never misses a later commit below N.
        """
        await conn.execute(
            change_seq.update().where(change_seq.c.id == 1).values(seq=change_seq.c.seq + 1)
        )
        return int(await conn.scalar(sa.select(change_seq.c.seq).where(change_seq.c.id == 1)) or 0)

    # ------------------------------------------------------------------ shipments

    async def add_shipments(self, rows: Sequence[NewShipment]) -> list[str]:
        """Insert shipments; returns the numbers inserted.

        An existing shipment keeps what it has; only its empty details (order, email, name,
        tag, carrier, final carrier, extra param) are filled from the row. 17TRACK pushes a
        number's first data seconds after its registration, so the push may create the
        shipment before the registration stores it: the buyer's email must not be lost then.
        """
        if not rows:
            return []
        now = _utcnow()
        values: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.number in values:
                continue
            registered = _naive(row.registered_at) or now
            values[row.number] = {
                "number": row.number,
                "carrier": row.carrier,
                "final_carrier": row.final_carrier,
                "extra_param": row.extra_param,
                "tag": row.tag,
                "order_number": row.order_number,
                "email": row.email,
                "buyer_name": row.buyer_name,
                "package_status": int(PackageStatus.NOT_FOUND),
                "active": row.active,
                "synced": False,
                "registered_at": registered,
                "updated_at": registered,
            }
        async with self._write() as conn:
            existing = await self._existing_numbers(conn, list(values))
            fresh = [v for n, v in values.items() if n not in existing]
            if existing:
                await conn.execute(
                    self._fill_details,
                    [{f"p_{k}": v for k, v in values[n].items()} for n in sorted(existing)],
                )
            if fresh:
                seq = await self._bump(conn)
                for v in fresh:
                    v["change_seq"] = seq
                # ON CONFLICT: another process may have inserted one since the SELECT.
                await conn.execute(self._dialect.insert_ignore(shipments), fresh)
        return [v["number"] for v in fresh]

    _fill_details = (
        shipments.update()
        .where(shipments.c.number == sa.bindparam("p_number"))
        .values(
            {
                name: sa.func.coalesce(shipments.c[name], sa.bindparam(f"p_{name}", type_=kind))
                for name, kind in (
                    ("order_number", sa.String),
                    ("email", sa.String),
                    ("buyer_name", sa.String),
                    ("tag", sa.String),
                    ("carrier", sa.Integer),
                    ("final_carrier", sa.Integer),
                    ("extra_param", sa.String),
                )
            }
        )
    )

    async def _existing_numbers(self, conn: AsyncConnection, numbers: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(numbers), _CHUNK):
            chunk = numbers[start : start + _CHUNK]
            result = await conn.execute(
                sa.select(shipments.c.number).where(shipments.c.number.in_(chunk))
            )
            found.update(result.scalars())
        return found

    async def get_shipment(self, number: str) -> ShipmentRecord | None:
        """One shipment, or None."""
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(shipments).where(shipments.c.number == number))
            ).first()
        return _shipment(row) if row is not None else None

    async def get_shipments(self, numbers: Sequence[str]) -> dict[str, ShipmentRecord]:
        """The stored shipments among ``numbers``, by number (unknown numbers are absent)."""
        unique = list(dict.fromkeys(numbers))
        found: dict[str, ShipmentRecord] = {}
        async with self._read() as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                result = await conn.execute(
                    sa.select(shipments).where(shipments.c.number.in_(chunk))
                )
                for row in result:
                    record = _shipment(row)
                    found[record.number] = record
        return found

    async def get_states(self, numbers: Sequence[str]) -> dict[str, ShipmentState]:
        """What deciding an update needs of each stored shipment among ``numbers``.

        The engine's hot path: a narrow select, without the stored tracking JSON.
        """
        unique = list(dict.fromkeys(numbers))
        c = shipments.c
        columns = (c.number, c.carrier, c.tag, c.order_number, c.email, c.package_status,
                   c.synced, c.latest_event_time, c.hash, c.latest_event_raw,
                   c.latest_event_description, c.last_tracked_at, c.event_count)  # fmt: skip
        found: dict[str, ShipmentState] = {}
        async with self._read() as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                result = await conn.execute(sa.select(*columns).where(c.number.in_(chunk)))
                for (number, carrier, tag, order, email, status, synced, when, hash_,
                     raw, description, tracked, count) in result:  # fmt: skip
                    found[number] = ShipmentState(
                        number=number,
                        carrier=carrier,
                        tag=tag,
                        order_number=order,
                        email=email,
                        state=StoredState(
                            package_status=STATUS_BY_CODE.get(status) or PackageStatus(status),
                            latest_event_time=when,
                            hash=hash_,
                            synced=bool(synced),
                            latest_event=_stored_key(raw, description),
                            last_tracked=tracked,
                            event_count=count,
                        ),
                    )
        return found

    async def list_shipments(
        self,
        *,
        status: PackageStatus | int | str | None = None,
        active: bool | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ShipmentRecord]:
        """Shipments, most recently updated first (then by number).

        ``status`` accepts a ``PackageStatus``, a code or a slug; ``search`` is a
        case-insensitive substring of the number, order number, email or tag.
        """
        query = sa.select(shipments)
        if status is not None:
            query = query.where(shipments.c.package_status == int(PackageStatus.parse(status)))
        if active is not None:
            query = query.where(shipments.c.active == active)
        if search:
            query = query.where(
                sa.or_(
                    *(
                        column.icontains(search.strip(), autoescape=True)
                        for column in (
                            shipments.c.number,
                            shipments.c.order_number,
                            shipments.c.email,
                            shipments.c.tag,
                        )
                    )
                )
            )
        query = query.order_by(shipments.c.updated_at.desc(), shipments.c.number)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        async with self._read() as conn:
            result = await conn.execute(query)
            return [_shipment(row) for row in result]

    async def count_by_status(self) -> dict[PackageStatus, int]:
        """How many shipments are in each main status (every status present, 0 included)."""
        counts = dict.fromkeys(PackageStatus, 0)
        query = sa.select(shipments.c.package_status, sa.func.count()).group_by(
            shipments.c.package_status
        )
        async with self._read() as conn:
            for code, count in await conn.execute(query):
                counts[PackageStatus(code)] = count
        return counts

    async def update_shipment(self, number: str, **values: Any) -> None:
        """Set columns of one shipment (carrier, final_carrier, tag, active, stopped_at ...).

        ``status`` is accepted for ``package_status``; ``updated_at`` defaults to now.
        ``ValueError`` names an unknown column.
        """
        if "status" in values:
            values["package_status"] = values.pop("status")
        unknown = set(values) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update shipment column(s): {', '.join(sorted(unknown))}")
        if "package_status" in values:
            values["package_status"] = int(PackageStatus.parse(values["package_status"]))
        if isinstance(values.get("info"), TrackInfo):
            values["info"] = encode(values["info"]).decode()
        values = {k: _naive(v) if isinstance(v, datetime) else v for k, v in values.items()}
        values.setdefault("updated_at", _utcnow())
        async with self._write() as conn:
            values["change_seq"] = await self._bump(conn)
            await conn.execute(
                shipments.update().where(shipments.c.number == number).values(**values)
            )

    async def delete_shipment(self, number: str) -> None:
        """Forget a shipment (its notification history stays)."""
        async with self._write() as conn:
            result = await conn.execute(shipments.delete().where(shipments.c.number == number))
            if result.rowcount:
                seq = await self._bump(conn)
                await conn.execute(
                    tombstones.insert().values(change_seq=seq, number=number, deleted_at=_utcnow())
                )

    # ------------------------------------------------------------------ the outbox

    _apply_state = (
        shipments.update()
        .where(shipments.c.number == sa.bindparam("p_number"))
        .values(
            package_status=sa.bindparam("p_status"),
            synced=True,
            # An update without a usable event time keeps the stored one, so that a later,
            # older update is still recognised as out of order (status.next_state).
            latest_event_time=sa.func.coalesce(
                sa.bindparam("p_event_time", type_=sa.DateTime), shipments.c.latest_event_time
            ),
            latest_event_raw=sa.bindparam("p_event_raw", type_=sa.String),
            latest_event_location=sa.bindparam("p_event_location", type_=sa.String),
            latest_event_description=sa.bindparam("p_event_description", type_=sa.String),
            hash=sa.bindparam("p_hash", type_=sa.BigInteger),
            info=sa.bindparam("p_info", type_=sa.Text),
            updated_at=sa.bindparam("p_now", type_=sa.DateTime),
            change_seq=sa.bindparam("p_seq", type_=sa.BigInteger),
            carrier=sa.func.coalesce(
                shipments.c.carrier, sa.bindparam("p_carrier", type_=sa.Integer)
            ),
            origin_country=sa.func.coalesce(
                sa.bindparam("p_origin", type_=sa.Integer), shipments.c.origin_country
            ),
            destination_country=sa.func.coalesce(
                sa.bindparam("p_destination", type_=sa.Integer), shipments.c.destination_country
            ),
            last_push_at=sa.func.coalesce(
                sa.bindparam("p_pushed", type_=sa.DateTime), shipments.c.last_push_at
            ),
            last_tracked_at=sa.bindparam("p_last_tracked", type_=sa.DateTime),
            event_count=sa.bindparam("p_event_count", type_=sa.Integer),
        )
    )

    async def apply_updates(
        self,
        updates: Sequence[ShipmentUpdate],
        *,
        now: datetime,
        seller_day_start: datetime,
        seller_daily_limit: int,
    ) -> list[NotificationRecord]:
        """Store new tracking states and their notification intents in ONE transaction.

        For each update, in order: when ``transition.applies``, the shipment takes the new
        state (it is created first when unknown: a push for a number registered outside
        trackops); every intent becomes a pending notification row due at ``now``. Seller
        rows beyond ``seller_daily_limit`` -- counting the seller rows created since
        ``seller_day_start`` that were not suppressed, this call's included -- are stored
        as ``suppressed`` with reason "daily limit". Returns the notification rows inserted.
        Either everything is stored or (on any error) nothing.
        """
        if not updates:
            return []
        now = _naive(now) or _utcnow()
        day_start = _naive(seller_day_start)
        state_rows: list[dict[str, Any]] = []
        new_rows: dict[str, dict[str, Any]] = {}
        intents: list[tuple[ShipmentUpdate, NotificationIntent]] = []
        for update in updates:
            for intent in update.intents:
                intents.append((update, intent))
            if not update.transition.applies:
                continue
            info = update.info
            event_ = info.latest_event
            first_carrier = _fit_int(info.first_carrier or None)
            state_rows.append(
                {
                    "p_number": update.number,
                    "p_status": int(update.transition.new_status),
                    "p_event_time": event_.time if event_ else None,
                    "p_event_raw": _fit_text(event_.time_raw) if event_ else None,
                    "p_event_location": _fit_text(event_.place or None) if event_ else None,
                    "p_event_description": _fit_text(event_.description) if event_ else None,
                    "p_hash": _fit_int(info.hash, _INT64),
                    "p_info": encode(info).decode(),
                    "p_now": now,
                    "p_carrier": first_carrier,
                    "p_origin": _fit_int(info.origin_country),
                    "p_destination": _fit_int(info.destination_country),
                    "p_pushed": _naive(update.pushed_at),
                    "p_last_tracked": info.last_tracked,
                    "p_event_count": event_count(info),
                }
            )
            if update.number not in new_rows:
                new_rows[update.number] = {
                    "number": update.number,
                    "carrier": _fit_int(update.carrier) or first_carrier,
                    "tag": _fit_text(update.tag),
                    "order_number": update.order,
                    "email": update.email,
                    "buyer_name": update.name,
                    "package_status": int(PackageStatus.NOT_FOUND),
                    "active": True,
                    "synced": False,
                    "registered_at": now,
                    "updated_at": now,
                }
        # Rows are written in number order (stable: one number's updates keep their order) so
        # that concurrent batches on PostgreSQL lock rows in the same order: no deadlock.
        state_rows.sort(key=lambda row: row["p_number"])
        has_seller = any(intent.audience == "seller" for _, intent in intents)
        async with self._write() as conn:
            if has_seller:
                # Taken before any row lock (same order everywhere), so that two processes
                # cannot both count 99 and both send the 100th.
                await self._dialect.lock(conn, _LOCK_SELLER_LIMIT)
            seq = await self._bump(conn)
            orders = await self._orders(
                conn, sorted({u.number for u, _ in intents} | set(new_rows))
            )
            missing = [new_rows[number] for number in sorted(new_rows) if number not in orders]
            if missing:
                for row in missing:
                    row["change_seq"] = seq
                await conn.execute(self._dialect.insert_ignore(shipments), missing)
                for row in missing:
                    orders[row["number"]] = row["order_number"]
            if state_rows:
                for row in state_rows:
                    row["p_seq"] = seq
                await conn.execute(self._apply_state, state_rows)
            if not intents:
                return []
            seller_count = await self._seller_count(conn, day_start) if has_seller else 0
            rows: list[dict[str, Any]] = []
            for update, intent in intents:
                send_status, reason = "pending", None
                if intent.audience == "seller":
                    if seller_count >= seller_daily_limit:
                        send_status, reason = "suppressed", DAILY_LIMIT_REASON
                    else:
                        seller_count += 1
                rows.append(
                    {
                        "created_at": now,
                        "number": update.number,
                        "order_number": orders.get(update.number, update.order),
                        "audience": intent.audience,
                        "channel": intent.channel,
                        "recipient": intent.recipient,
                        "condition": intent.condition,
                        "condition_kind": intent.condition_kind,
                        "from_status": int(intent.from_status),
                        "to_status": int(intent.to_status),
                        "send_status": send_status,
                        "reason": reason,
                        "attempts": 0,
                        "sent_at": None,
                        "next_attempt_at": now if send_status == "pending" else None,
                        "resend_of": None,
                        "subject": None,
                        "body": None,
                        **_event_snapshot(update.info),
                        "change_seq": seq,
                    }
                )
            return await self._insert_notifications(conn, rows)

    async def _orders(self, conn: AsyncConnection, numbers: Sequence[str]) -> dict[str, Any]:
        """Order numbers of the stored shipments among ``numbers`` (the keys: which exist)."""
        found: dict[str, Any] = {}
        for start in range(0, len(numbers), _CHUNK):
            chunk = numbers[start : start + _CHUNK]
            result = await conn.execute(
                sa.select(shipments.c.number, shipments.c.order_number).where(
                    shipments.c.number.in_(chunk)
                )
            )
            found.update({number: order for number, order in result})
        return found

    @staticmethod
    async def _seller_count(conn: AsyncConnection, day_start: datetime | None) -> int:
        query = sa.select(sa.func.count()).where(
            notifications.c.audience == "seller",
            notifications.c.send_status != "suppressed",
        )
        if day_start is not None:
            query = query.where(notifications.c.created_at >= day_start)
        return int(await conn.scalar(query) or 0)

    async def _insert_notifications(
        self, conn: AsyncConnection, rows: list[dict[str, Any]]
    ) -> list[NotificationRecord]:
        ids = await self._dialect.insert_with_ids(conn, notifications, rows)
        return [notification_record({**row, "id": id_}) for row, id_ in zip(rows, ids, strict=True)]

    # ------------------------------------------------------------------ notifications

    async def add_notification(self, row: NewNotification) -> NotificationRecord:
        """Insert one notification row as given (resends, reports): no daily limit applies."""
        _check_send_status(row.send_status)
        created = _naive(row.created_at) or _utcnow()
        next_attempt = _naive(row.next_attempt_at)
        if next_attempt is None and row.send_status == "pending":
            next_attempt = created
        values = {
            "created_at": created,
            "number": row.number,
            "order_number": row.order_number,
            "audience": row.audience,
            "channel": row.channel,
            "recipient": row.recipient,
            "condition": row.condition,
            "condition_kind": row.condition_kind,
            "from_status": None if row.from_status is None else int(row.from_status),
            "to_status": None if row.to_status is None else int(row.to_status),
            "send_status": row.send_status,
            "reason": row.reason,
            "attempts": row.attempts,
            "sent_at": None,
            "next_attempt_at": next_attempt,
            "resend_of": row.resend_of,
            "subject": row.subject,
            "body": row.body,
            "event_time": row.event_time,
            "event_location": row.event_location,
            "event_description": row.event_description,
            "period": row.period,
        }
        async with self._write() as conn:
            values["change_seq"] = await self._bump(conn)
            (record,) = await self._insert_notifications(conn, [values])
        return record

    async def get_notification(self, id: int) -> NotificationRecord | None:
        """One history row, or None."""
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(notifications).where(notifications.c.id == id))
            ).first()
        return notification_record(row._mapping) if row is not None else None

    async def due_notifications(
        self, *, now: datetime, limit: int = 100
    ) -> list[NotificationRecord]:
        """Pending rows whose ``next_attempt_at`` has come, longest due first.

        Read-only: two dispatchers reading this at once see the same rows. A dispatcher that
        may run alongside others takes its rows with ``claim_due`` instead.
        """
        query = (
            sa.select(notifications)
            .where(
                notifications.c.send_status == "pending",
                notifications.c.next_attempt_at <= _naive(now),
            )
            .order_by(notifications.c.next_attempt_at, notifications.c.id)
            .limit(limit)
        )
        async with self._read() as conn:
            return [notification_record(row._mapping) for row in await conn.execute(query)]

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int = 100,
        lease: timedelta = timedelta(minutes=2),
        worker: str | None = None,
    ) -> list[NotificationRecord]:
        """Take up to ``limit`` due pending rows for sending, longest due first.

        In ONE write transaction: pick the pending rows whose ``next_attempt_at`` is at or
        before ``now`` (ordered by ``next_attempt_at``, then id) and set their
        ``next_attempt_at`` to ``now + lease``. Returns them with that new time, in the order
        picked. Concurrent claims, from this store or another process on the same database,
        never return the same row while its lease lasts; a row that is not marked (sent,
        failed, or pending with a retry time) before the lease ends is due again then, so a
        dispatcher that died after claiming delays its rows by ``lease``, and loses none.
        ``send_status``, ``attempts`` and ``reason`` are left as they are. ``worker`` (host:pid)
        is recorded as ``claimed_by``, so that a restart can release a dead process's rows at
        once (``release_claims``) instead of waiting out the lease.

        ``ValueError`` for a ``lease`` that is not positive; ``limit`` below 1 claims nothing.
        """
        if lease <= timedelta(0):
            raise ValueError(f"claim lease must be positive, got {lease}")
        if limit < 1:
            return []
        at = _naive(now) or _utcnow()
        until = at + lease
        query = self._dialect.claiming(
            sa.select(notifications)
            .where(
                notifications.c.send_status == "pending",
                notifications.c.next_attempt_at <= at,
            )
            .order_by(notifications.c.next_attempt_at, notifications.c.id)
            .limit(limit)
        )
        async with self._write() as conn:
            picked = [notification_record(row._mapping) for row in await conn.execute(query)]
            ids = [record.id for record in picked]
            for start in range(0, len(ids), _CHUNK):
                await conn.execute(
                    notifications.update()
                    .where(notifications.c.id.in_(ids[start : start + _CHUNK]))
                    .values(next_attempt_at=until, claimed_by=worker)
                )
        return [replace(record, next_attempt_at=until) for record in picked]

    async def heartbeat(self, worker: str, *, host: str, pid: int, now: datetime) -> None:
        """Record that process ``worker`` (``host:pid``) is alive at ``now``.

        A real write: the health check uses it to prove the store can be written.
        """
        at = _naive(now)
        async with self._write(busy_timeout=5.0) as conn:
            updated = await conn.execute(
                workers.update().where(workers.c.id == worker).values(seen_at=at)
            )
            if not updated.rowcount:
                await conn.execute(
                    self._dialect.insert_ignore(workers).values(
                        id=worker, host=host, pid=pid, started_at=at, seen_at=at
                    )
                )

    async def claim_holders(self) -> dict[str, datetime | None]:
        """Processes holding claims on pending rows, with their last heartbeat (None: never)."""
        query = (
            sa.select(notifications.c.claimed_by, workers.c.seen_at)
            .select_from(
                notifications.outerjoin(workers, workers.c.id == notifications.c.claimed_by)
            )
            .where(
                notifications.c.send_status == "pending", notifications.c.claimed_by.is_not(None)
            )
            .distinct()
        )
        async with self._read() as conn:
            return {holder: seen for holder, seen in await conn.execute(query)}

    async def release_claims(self, holders: Sequence[str], *, now: datetime) -> int:
        """Make the pending rows claimed by ``holders`` (dead processes) due at ``now``."""
        if not holders:
            return 0
        async with self._write() as conn:
            result = await conn.execute(
                notifications.update()
                .where(
                    notifications.c.send_status == "pending",
                    notifications.c.claimed_by.in_(list(holders)),
                )
                .values(next_attempt_at=_naive(now), claimed_by=None)
            )
            await conn.execute(workers.delete().where(workers.c.id.in_(list(holders))))
            return int(result.rowcount or 0)

    async def sent_news(self, numbers: Sequence[str]) -> dict[NewsKey, tuple[int, Any]]:
        """For the status notifications of ``numbers`` that were sent (resends aside): per
        (number, audience, recipient), the newest row's id and the status it told of."""
        c = notifications.c
        found: dict[NewsKey, tuple[int, Any]] = {}
        unique = sorted(set(numbers))
        async with self._read() as conn:
            for start in range(0, len(unique), _CHUNK):
                result = await conn.execute(
                    sa.select(c.id, c.number, c.audience, c.recipient, c.to_status).where(
                        c.number.in_(unique[start : start + _CHUNK]),
                        c.send_status == "sent",
                        c.audience.in_(NEWS_AUDIENCES),
                        c.resend_of.is_(None),
                    )
                )
                for id_, number, audience, recipient, to_status in result:
                    key = (number, audience, recipient)
                    if key not in found or id_ > found[key][0]:
                        found[key] = (id_, _status(to_status))
        return found

    async def sent_reports(self, periods: Sequence[str]) -> dict[ReportKey, int]:
        """Report rows of ``periods`` that were sent: per (condition, period, recipient,
        channel), one of their ids."""
        c = notifications.c
        if not periods:
            return {}
        async with self._read() as conn:
            result = await conn.execute(
                sa.select(c.id, c.condition, c.period, c.recipient, c.channel).where(
                    c.audience == "report",
                    c.send_status == "sent",
                    c.period.in_(sorted(set(periods))),
                )
            )
            return {(cond, period, rcpt, chan): id_ for id_, cond, period, rcpt, chan in result}

    async def mark_notification(
        self,
        id: int,
        *,
        send_status: str,
        reason: str | None,
        attempts: int,
        sent_at: datetime | None,
        next_attempt_at: datetime | None,
    ) -> None:
        """Record the outcome of a send attempt (a pending row without a time is due now)."""
        _check_send_status(send_status)
        if send_status == "pending" and next_attempt_at is None:
            next_attempt_at = _utcnow()
        async with self._write() as conn:
            seq = await self._bump(conn)
            await conn.execute(
                notifications.update()
                .where(notifications.c.id == id)
                .values(
                    send_status=send_status,
                    reason=reason,
                    attempts=attempts,
                    sent_at=_naive(sent_at),
                    next_attempt_at=_naive(next_attempt_at),
                    change_seq=seq,
                    claimed_by=None,
                )
            )

    async def history(
        self,
        *,
        search: str | None = None,
        send_status: str | None = None,
        condition: str | None = None,
        limit: int | None = None,
    ) -> list[NotificationRecord]:
        """Notification rows, newest first.

        ``search``: case-insensitive substring of the tracking number, recipient or order
        number. ``condition``: ``default`` or ``custom`` (the kind), else a condition's name.
        """
        query = sa.select(notifications)
        if search and search.strip():
            text = search.strip()
            query = query.where(
                sa.or_(
                    notifications.c.number.icontains(text, autoescape=True),
                    notifications.c.recipient.icontains(text, autoescape=True),
                    notifications.c.order_number.icontains(text, autoescape=True),
                )
            )
        if send_status is not None:
            _check_send_status(send_status)
            query = query.where(notifications.c.send_status == send_status)
        if condition is not None:
            if condition in CONDITION_KINDS:
                query = query.where(notifications.c.condition_kind == condition)
            else:
                query = query.where(notifications.c.condition == condition)
        query = query.order_by(notifications.c.created_at.desc(), notifications.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            return [notification_record(row._mapping) for row in await conn.execute(query)]

    # ------------------------------------------------------------------ audit

    async def add_audit(
        self, *, at: datetime, actor: str, action: str, target: str, outcome: str, detail: str
    ) -> int:
        """Record who did what and how it ended; the new row's id."""
        async with self._write() as conn:
            seq = await self._bump(conn)
            (row_id,) = await self._dialect.insert_with_ids(
                conn,
                audit,
                [
                    {
                        "at": _naive(at),
                        "actor": actor,
                        "action": action,
                        "target": target,
                        "outcome": outcome,
                        "detail": detail,
                        "change_seq": seq,
                    }
                ],
            )
        return row_id

    # ------------------------------------------------------------------ alert subscriptions

    async def set_subscription(
        self, *, channel: str, target: str, statuses: Sequence[int], by: str, at: datetime
    ) -> None:
        """Subscribe ``target`` on ``channel`` to seller alerts for ``statuses`` (replaces)."""
        codes = ",".join(str(int(s)) for s in sorted(set(statuses)))
        async with self._write() as conn:
            await conn.execute(
                alert_subscriptions.delete().where(
                    alert_subscriptions.c.channel == channel,
                    alert_subscriptions.c.target == target,
                )
            )
            await conn.execute(
                alert_subscriptions.insert().values(
                    channel=channel, target=target, statuses=codes, created_by=by,
                    created_at=_naive(at),
                )
            )  # fmt: skip

    async def remove_subscription(self, *, channel: str, target: str) -> bool:
        """Unsubscribe; True when there was a subscription."""
        async with self._write() as conn:
            result = await conn.execute(
                alert_subscriptions.delete().where(
                    alert_subscriptions.c.channel == channel,
                    alert_subscriptions.c.target == target,
                )
            )
        return bool(result.rowcount)

    async def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """Every alert subscription (of ``channel``, when given)."""
        query = sa.select(alert_subscriptions).order_by(
            alert_subscriptions.c.channel, alert_subscriptions.c.target
        )
        if channel is not None:
            query = query.where(alert_subscriptions.c.channel == channel)
        async with self._read() as conn:
            rows = await conn.execute(query)
            return [
                Subscription(
                    channel=r.channel,
                    target=r.target,
                    statuses=tuple(PackageStatus.parse(int(c)) for c in r.statuses.split(",") if c),
                    created_by=r.created_by,
                    created_at=r.created_at,
                )
                for r in rows
            ]

    # ------------------------------------------------------------------ webhook inbox

    async def inbox_add_many(
        self, bodies: Sequence[tuple[bytes, datetime]], *, busy_timeout: float | None = None
    ) -> list[int]:
        """Store push bodies (with their receive times) in one transaction; their ids, in order.

        ``busy_timeout`` (SQLite): give up after that many seconds when another process holds
        the database's write lock, instead of the usual 30 s (the listener answers 503 then,
        and 17TRACK retries later, rather than holding its connections open).
        """
        if not bodies:
            return []
        rows = [
            {"body": bytes(body), "received_at": _naive(at), "attempts": 0, "failed": False}
            for body, at in bodies
        ]
        async with self._write(busy_timeout=busy_timeout) as conn:
            return await self._dialect.insert_with_ids(conn, inbox, rows)

    async def inbox_pending(
        self, limit: int = 100, *, now: datetime | None = None
    ) -> list[InboxRow]:
        """Unprocessed pushes, oldest first; with ``now``, only those due (not waiting to retry)."""
        query = sa.select(inbox).where(inbox.c.processed_at.is_(None)).order_by(inbox.c.id)
        if now is not None:
            query = query.where(
                sa.or_(inbox.c.next_attempt_at.is_(None), inbox.c.next_attempt_at <= _naive(now))
            )
        async with self._read() as conn:
            result = await conn.execute(query.limit(limit))
            return [_inbox_row(row) for row in result]

    async def inbox_failed(self, limit: int | None = None) -> list[InboxRow]:
        """Quarantined pushes (``failed``), oldest first."""
        query = sa.select(inbox).where(inbox.c.failed.is_(True)).order_by(inbox.c.id)
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            return [_inbox_row(row) for row in await conn.execute(query)]

    async def inbox_get(self, id: int) -> InboxRow | None:
        """One inbox row, or None."""
        async with self._read() as conn:
            row = (await conn.execute(sa.select(inbox).where(inbox.c.id == id))).first()
        return _inbox_row(row) if row is not None else None

    async def inbox_retry_later(
        self, id: int, *, attempts: int, error: str, next_attempt_at: datetime
    ) -> None:
        """A push failed ``attempts`` times so far: try it again at ``next_attempt_at``."""
        async with self._write() as conn:
            await conn.execute(
                inbox.update()
                .where(inbox.c.id == id)
                .values(attempts=attempts, error=error, next_attempt_at=_naive(next_attempt_at))
            )

    async def inbox_quarantine(
        self, id: int, *, attempts: int, error: str, failed_at: datetime
    ) -> None:
        """Take a push out of processing for good (until replayed): ``failed``, with its error."""
        async with self._write() as conn:
            await conn.execute(
                inbox.update()
                .where(inbox.c.id == id)
                .values(
                    attempts=attempts,
                    error=error,
                    failed=True,
                    processed_at=_naive(failed_at),
                    next_attempt_at=None,
                )
            )

    async def inbox_dismiss(self, ids: Sequence[int], *, note: str) -> list[int]:
        """Set quarantined pushes aside for good: no longer ``failed`` (so health clears),
        kept with their body and their error followed by ``note`` until pruned; the ids that
        were quarantined, in order."""
        if not ids:
            return []
        async with self._write() as conn:
            rows = [
                (row_id, error)
                for row_id, error in await conn.execute(
                    sa.select(inbox.c.id, inbox.c.error)
                    .where(inbox.c.id.in_(list(ids)), inbox.c.failed.is_(True))
                    .order_by(inbox.c.id)
                )
            ]
            for row_id, error in rows:
                await conn.execute(
                    inbox.update()
                    .where(inbox.c.id == row_id)
                    .values(failed=False, error=f"{error or 'failed'}; {note}")
                )
        return [row_id for row_id, _ in rows]

    async def inbox_replay(self, ids: Sequence[int]) -> list[int]:
        """Put quarantined pushes back into processing (attempts from zero); the ids that were
        quarantined, in order (others are left alone)."""
        if not ids:
            return []
        async with self._write() as conn:
            found = [
                row_id
                for (row_id,) in await conn.execute(
                    sa.select(inbox.c.id)
                    .where(inbox.c.id.in_(list(ids)), inbox.c.failed.is_(True))
                    .order_by(inbox.c.id)
                )
            ]
            if found:
                await conn.execute(
                    inbox.update()
                    .where(inbox.c.id.in_(found))
                    .values(
                        failed=False,
                        processed_at=None,
                        attempts=0,
                        next_attempt_at=None,
                        error=None,
                    )
                )
        return found

    async def inbox_done(self, id: int, *, processed_at: datetime, error: str | None) -> None:
        """Mark a push processed (``error`` says why it could not be applied, if so)."""
        async with self._write() as conn:
            await conn.execute(
                inbox.update()
                .where(inbox.c.id == id)
                .values(processed_at=_naive(processed_at), error=error)
            )

    async def inbox_done_many(
        self, ids: Sequence[int], *, processed_at: datetime, errors: Mapping[int, str] | None = None
    ) -> None:
        """Mark many pushes processed in one transaction (``errors`` by id, for the bad ones)."""
        if not ids:
            return
        errors = errors or {}
        at = _naive(processed_at)
        clean = [i for i in ids if i not in errors]
        async with self._write() as conn:
            for start in range(0, len(clean), _CHUNK):
                chunk = clean[start : start + _CHUNK]
                await conn.execute(
                    inbox.update().where(inbox.c.id.in_(chunk)).values(processed_at=at, error=None)
                )
            for row_id, error in errors.items():
                await conn.execute(
                    inbox.update().where(inbox.c.id == row_id).values(processed_at=at, error=error)
                )

    async def inbox_stats(self) -> InboxStats:
        """Unprocessed rows (and the oldest one's time), quarantined rows, the newest push."""
        unprocessed = inbox.c.processed_at.is_(None)
        async with self._read() as conn:
            backlog = await conn.scalar(sa.select(sa.func.count()).where(unprocessed))
            last = await conn.scalar(sa.select(sa.func.max(inbox.c.received_at)))
            # Rows are received in id order: the lowest unprocessed id is the oldest (index).
            oldest = await conn.scalar(
                sa.select(inbox.c.received_at).where(unprocessed).order_by(inbox.c.id).limit(1)
            )
            failed = await conn.scalar(sa.select(sa.func.count()).where(inbox.c.failed.is_(True)))
        return InboxStats(
            backlog=int(backlog or 0),
            last_received_at=last,
            oldest_unprocessed_at=oldest,
            failed=int(failed or 0),
        )

    async def tombstones_prune(self, *, before: datetime) -> int:
        """Forget deletion markers older than ``before`` (change feeds read them long since)."""
        async with self._write() as conn:
            result = await conn.execute(
                tombstones.delete().where(tombstones.c.deleted_at < _naive(before))
            )
            return int(result.rowcount or 0)

    async def inbox_prune(self, *, before: datetime) -> int:
        """Delete processed pushes received before ``before``; returns how many."""
        async with self._write() as conn:
            result = await conn.execute(
                inbox.delete().where(
                    inbox.c.processed_at.is_not(None),
                    inbox.c.failed.is_(False),  # quarantined rows wait for a person
                    inbox.c.received_at < _naive(before),
                )
            )
            return int(result.rowcount or 0)


# --------------------------------------------------------------------------- reading only


class _ReaderConnection:
    """A connection of SQLAlchemy's plain engine behind the awaitable calls the query layer
    makes on an ``AsyncConnection`` (``execute``, ``scalar``, ``exec_driver_sql``).

    Each call runs in ``greenlet_spawn``, as ``AsyncConnection``'s own do: asyncpg's adapted
    driver awaits inside it, SQLite's blocking driver simply runs. Results are buffered, as an
    ``AsyncConnection``'s are, so that they outlive the block.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await greenlet_spawn(_buffered, self._conn.execute, statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await greenlet_spawn(self._conn.scalar, statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        return await greenlet_spawn(_buffered, self._conn.exec_driver_sql, statement, parameters)


def _buffered(run: Callable[..., Any], *args: Any) -> Any:
    return run(*args).freeze()()


class _Reader(Store):
    """A store opened for reading only (``Store.open(read_only=True)``).

    SQLAlchemy's plain engine, without its asyncio extension (which loads the ORM: a third of
    a one-shot command's time): SQLite through its blocking driver on the event loop's thread
    (each statement takes a few milliseconds on an indexed store, and the command has nothing
    else to do meanwhile), PostgreSQL through asyncpg in ``greenlet_spawn``. SQLite's
    connections are ``query_only``; any write raises ``StoreError``.
    """

    def __init__(self, engine: Engine, dialect: _Dialect, url: str) -> None:
        """Use ``attach``."""
        self._sync_engine = engine
        self._dialect = dialect
        self._write_lock = None
        self._busy_writers = {}
        self.url = url
        self._search_index = False

    @classmethod
    async def attach(
        cls,
        target: URL,
        dialect: _Dialect,
        masked: str,
        path: Path | None,
        connect_args: Mapping[str, Any] | None,
    ) -> _Reader | None:
        """The reader over an existing store at this trackops's schema version; ``None`` for
        a new SQLite file, an older schema or another driver (the usual open creates or
        upgrades the store; a failure to connect is told there too)."""
        if target.drivername == "sqlite+aiosqlite" and path is not None:
            url = target.set(drivername="sqlite+pysqlite")
        elif target.drivername == "postgresql+asyncpg":
            url = target
        else:
            return None
        # No pool_pre_ping: a one-shot command's connections are new (a ping is a round trip).
        engine = sa.create_engine(url, connect_args=dict(connect_args or {}))
        dialect.install(engine, read_only=True)

        def check() -> tuple[Any, bool]:
            if path is not None and not path.is_file():
                return None, False  # a new file: made by the usual open (WAL mode, schema)
            with engine.connect() as conn:
                version = conn.exec_driver_sql("SELECT max(version) FROM schema_version").scalar()
                search = dialect.is_sqlite and (
                    conn.exec_driver_sql(
                        "SELECT 1 FROM sqlite_master WHERE name = 'shipment_search'"
                    ).first()
                    is not None
                )
            return version, search

        try:
            version, search = await greenlet_spawn(check)
        except Exception:  # no schema yet, no server...: the usual open says what is wrong
            version, search = None, False
        if version != SCHEMA_VERSION:
            await greenlet_spawn(engine.dispose)
            return None
        reader = cls(engine, dialect, masked)
        reader._search_index = search
        return reader

    async def close(self) -> None:
        await greenlet_spawn(self._sync_engine.dispose)

    async def ping(self) -> bool:
        def ping() -> None:
            with self._sync_engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")

        try:
            await greenlet_spawn(ping)
            return True
        except Exception:
            return False

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await greenlet_spawn(self._sync_engine.connect)
            try:
                yield cast("AsyncConnection", _ReaderConnection(conn))
            finally:
                await greenlet_spawn(conn.close)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"store {self.url}: {_describe(exc)}", transient=is_transient(exc)
            ) from exc

    @asynccontextmanager
    async def _write(self, *, busy_timeout: float | None = None) -> AsyncIterator[AsyncConnection]:
        raise StoreError(f"store {self.url}: opened for reading only")
        yield  # pragma: no cover  (an async generator, as Store._write is)
