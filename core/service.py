"""The service: the one typed facade that the front-ends and the listener hold.

Front-ends (CLI, dashboard, Slack bot) and the listener never touch the store or the engine;
they call this. It offers:

* **Queries**, done in SQL and paged by keyset (``trackops.core.queries``), returning slim typed
  rows: shipments (filtered, searched, sorted), one shipment with its whole timeline and its
  notifications, counts per status, history, the audit log and statistics.
* **Commands** (register, stop, retrack, delete, change carrier, change tag, sync, resend),
  each recorded in the audit log with its actor (``cli:<user>``, ``tui``, ``slack:U123``) and
  outcome. The Slack bot's access control relies on that record, so it is written by the
  service, not by the front-ends.
* **A change feed** that works across processes: every write that a front-end should see
  stamps its rows with the store's change sequence; ``changes()`` polls that one number (a
  primary-key read) every ``poll_seconds`` and, when it moved, reads what changed. A change
  made in this process wakes the poller at once, so in-process changes show without waiting.
* **The listener's work** (``trackops.core.webhook`` holds a service too): storing verified
  pushes in the inbox, applying them, the heartbeat, the dispatcher, pruning and the resync of
  quiet shipments, each bounded (batches with limits, never a whole table).

Errors a person can act on are ``TrackopsError``s (``str(exc)`` is the message to show).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from trackops.core import carriers as carrier_list
from trackops.core import queries
from trackops.core.channels import Channel
from trackops.core.config import Settings
from trackops.core.engine import (
    Change,
    CommandOutcome,
    Engine,
    RegisterRequest,
    SyncOutcome,
    utcnow,
)
from trackops.core.errors import (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TrackopsError,
)
from trackops.core.records import (
    CursorError,
    HistoryRow,
    Page,
    ShipmentDetail,
    ShipmentQuery,
    ShipmentRow,
    SortKey,
    TimelineEvent,
    check_page_size,
    check_sort,
    history_row,
    shipment_detail,
    shipment_row,
)
from trackops.core.records import package_status as _status
from trackops.core.store import (
    SEND_STATUSES,
    InboxRow,
    ShipmentRecord,
    StoreError,
    Subscription,
    is_transient,
    mask_url,
    notification_record,
)
from trackops.core.wire import (
    PackageStatus,
    Rejected,
    WireError,
    decode_push,
    decode_push_data,
)

if TYPE_CHECKING:
    from trackops.core.client import TrackClient
    from trackops.core.plugins import FrontEndExtensions, PluginHost
    from trackops.core.registration import Registration

__all__ = [
    "Actor",
    "AuditRow",
    "CarrierChoice",
    "CarrierStat",
    "Change",
    "CommandOutcome",
    "DispatchOutcome",
    "HistoryQuery",
    "HistoryRow",
    "InboxEntry",
    "InboxStatus",
    "InvalidInputError",
    "NotFoundError",
    "Page",
    "ParamHint",
    "PermissionDeniedError",
    "PruneOutcome",
    "RegisterRequest",
    "Rejected",
    "ResyncOutcome",
    "RuntimeStatus",
    "SendStatus",
    "Service",
    "ShipmentDetail",
    "ShipmentQuery",
    "ShipmentRow",
    "SortKey",
    "Statistics",
    "StoreError",
    "Subscription",
    "SyncOutcome",
    "TimelineEvent",
    "TrackopsError",
    "open_service",
]

T = TypeVar("T")
log = logging.getLogger("trackops.service")
Actor = str
"""Who asked: ``cli:<user>``, ``tui``, ``slack:U123``, ``plugin:<name>``."""
SendStatus = Literal["pending", "sent", "failed", "suppressed", "superseded"]
Outcome = Literal["ok", "partial", "failed", "denied"]
_MAX_STAT_DAYS = 36500
"""Longest period ``statistics`` looks back over (a hundred years; more overflows dates)."""
RESYNC_BATCH = 4000
"""Quiet shipments resynced per pass by default (100 gettrackinfo requests of 40)."""


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class HistoryQuery:
    """Which history rows. ``search`` matches a tracking number, recipient or order number."""

    search: str | None = None
    send_statuses: frozenset[str] = frozenset()
    condition: str | None = None
    channel: str | None = None
    audience: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditRow:
    """Who did what, to what, and how it ended."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str


@dataclass(frozen=True)
class CarrierStat:
    """Days from registration to delivery for one carrier or route."""

    key: str
    delivered: int
    median_days: float
    p90_days: float


@dataclass(frozen=True)
class Statistics:
    """What an operations person would rather see than read."""

    deliveries_per_day: list[tuple[date, int]]
    by_carrier: list[CarrierStat]
    by_route: list[CarrierStat]
    stuck: list[ShipmentRow]


@dataclass(frozen=True)
class ParamHint:
    """A carrier's extra parameter: what it is, whether 17TRACK requires it, an example."""

    required: bool
    kind: str
    hint: str


@dataclass(frozen=True)
class CarrierChoice:
    """One carrier for a picker."""

    code: int
    name: str
    country: str | None
    needs_param: ParamHint | None


@dataclass(frozen=True)
class DispatchOutcome:
    """What one dispatch did: notifications tried, and sent (the channel accepted them)."""

    attempted: int
    sent: int


@dataclass(frozen=True)
class RuntimeStatus:
    """For a status line: the API rate limit, the last push and sync, the store."""

    rate_limit: float
    rate_available: float | None
    last_push_at: datetime | None
    last_sync_at: datetime | None
    store: str
    seq: int


@dataclass(frozen=True)
class InboxStatus:
    """How the webhook inbox stands: pushes waiting (retries included), quarantined ones."""

    backlog: int
    failed: int
    oldest_unprocessed_at: datetime | None
    last_received_at: datetime | None


@dataclass(frozen=True)
class InboxEntry:
    """One stored push: ``failed`` when quarantined, with the reason (``error``).

    ``event`` and ``number`` are read from the body when it can be read (else None).
    """

    id: int
    received_at: datetime
    attempts: int
    failed: bool
    processed: bool
    error: str | None
    event: str | None
    number: str | None

    def to_json(self) -> dict[str, Any]:
        """``id``, ``received_at``, ``state`` (pending/applied/failed), ``attempts``, ``error``,
        ``event``, ``number``."""
        state = "failed" if self.failed else "applied" if self.processed else "pending"
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(timespec="seconds") + "Z",
            "state": state,
            "attempts": self.attempts,
            "error": self.error,
            "event": self.event,
            "number": self.number,
        }


@dataclass(frozen=True)
class PruneOutcome:
    """What one pruning removed: applied pushes and deleted-shipment markers."""

    pushes: int
    markers: int


@dataclass(frozen=True)
class ResyncOutcome:
    """One resync pass of quiet shipments: the numbers asked for (longest quiet first, at
    most the pass's limit) and what syncing them did."""

    numbers: list[str]
    sync: SyncOutcome


def _inbox_entry(row: InboxRow) -> InboxEntry:
    event = number = None
    try:
        envelope = decode_push(row.body)
        event = envelope.event
        data = decode_push_data(envelope.event, bytes(envelope.data))
        number = data.number if data is not None else None
    except WireError:
        pass
    return InboxEntry(
        id=row.id,
        received_at=row.received_at,
        attempts=row.attempts,
        failed=row.failed,
        processed=row.processed_at is not None,
        error=row.error,
        event=event,
        number=number,
    )


def _outcome(result: CommandOutcome) -> Outcome:
    if not result.rejected:
        return "ok"
    return "partial" if result.accepted else "failed"


def _rejections(result: CommandOutcome) -> str:
    return "; ".join(
        f"{r.number}: {r.error.message or r.error.code}" for r in result.rejected[:20]
    ) + (f"; and {len(result.rejected) - 20} more" if len(result.rejected) > 20 else "")


# --------------------------------------------------------------------------- the service


class Service:
    """The facade over one open ``Engine``. Build with ``runtime.open_service(settings)``."""

    def __init__(self, engine: Engine, *, poll_seconds: float = 0.25) -> None:
        """Wrap an open engine (``runtime.open_service`` does this for front-ends)."""
        self._engine = engine
        self.poll_seconds = poll_seconds
        self._params = engine.plugins.carrier_params if engine.plugins is not None else None
        self._resync_after: tuple[datetime, str] | None = None
        self._recording: set[asyncio.Future[None]] = set()

    @property
    def settings(self) -> Settings:
        """The settings in force (read-only; the dashboard edits the file, then reloads)."""
        return self._engine.settings

    @property
    def config_problem(self) -> str | None:
        """A notification setting that stops syncing and ``serve`` (an unconfigured channel),
        or None. Reading works regardless; front-ends show it as a warning."""
        error = self._engine.config_error
        return str(error) if error is not None else None

    @property
    def engine(self) -> Engine:
        """The engine, for the runtime wiring (plugins' server setup) and tests' set-up.
        Front-ends and the listener: don't."""
        return self._engine

    def extensions(self) -> FrontEndExtensions:
        """What plugins add to the front-ends (dashboard commands, screens and detail panels,
        ``/track`` subcommands), each with its plugin; empty when plugins are not loaded."""
        from trackops.core.plugins import FrontEndExtensions

        host = self._engine.plugins
        return host.front_end() if host is not None else FrontEndExtensions()

    def refuse_extension(self, plugin: str, what: str) -> None:
        """A front-end refused something ``plugin`` registered: logged and kept with the
        plugin's errors (``trackops plugins``)."""
        host = self._engine.plugins
        if host is not None:
            host.refuse(plugin, what)

    def now(self) -> datetime:
        """The engine's clock (naive UTC): the sandbox's in demos and tests, else the wall
        clock. Times a front-end stores or compares with stored ones come from here."""
        return self._engine.clock()

    def _dialect(self) -> str:
        return self._engine.store.query_dialect

    # ------------------------------------------------------------------ row building

    def carrier_name(self, code: int | None) -> str:
        """17TRACK's display name of a carrier code ("" for none)."""
        return self._engine.carrier_name(code)

    def _row(self, s: queries.SlimShipment) -> ShipmentRow:
        return shipment_row(s, self.carrier_name)

    def _record_row(self, r: ShipmentRecord) -> ShipmentRow:
        return shipment_row(_slim_of(r), self.carrier_name)

    @staticmethod
    def _history_row(values: Any) -> HistoryRow:
        return history_row(notification_record(values))

    def _filter(self, query: ShipmentQuery) -> queries.ShipmentFilter:
        check_sort(query.sort)
        return queries.ShipmentFilter(
            statuses=frozenset(int(s) for s in query.statuses),
            search=query.search,
            carrier=query.carrier,
            tag=query.tag,
            active=query.active,
            updated_since=query.updated_since,
            sort=query.sort,
            descending=query.descending,
            carrier_codes_matching=_carrier_codes_matching,
        )

    @staticmethod
    def _limit(limit: int) -> int:
        return check_page_size(limit)

    # ------------------------------------------------------------------ queries

    async def shipments(
        self,
        query: ShipmentQuery | None = None,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        from_end: bool = False,
    ) -> Page[ShipmentRow]:
        """One page of shipments (keyset paging: ``after``/``before`` a page's cursor, or
        ``from_end`` for the last page)."""
        flt = self._filter(query or ShipmentQuery())
        try:
            async with self._engine.store.read() as conn:
                rows, next_cursor, prev_cursor = await queries.shipment_page(
                    conn,
                    self._dialect(),
                    flt,
                    limit=self._limit(limit),
                    after=after,
                    before=before,
                    from_end=from_end,
                )
        except CursorError as exc:
            raise InvalidInputError(str(exc)) from None
        return Page([self._row(r) for r in rows], next_cursor, prev_cursor)

    async def count_shipments(self, query: ShipmentQuery | None = None) -> int:
        """How many shipments match ``query``."""
        async with self._engine.store.read() as conn:
            return await queries.count_shipments(
                conn, self._dialect(), self._filter(query or ShipmentQuery())
            )

    async def status_counts(self, query: ShipmentQuery | None = None) -> dict[PackageStatus, int]:
        """Shipments per status: all seven statuses (0 included) and any unknown code seen.

        ``query`` narrows by everything but its statuses (the counts are what the status
        filter keys would show)."""
        async with self._engine.store.read() as conn:
            counts = await queries.status_counts(
                conn, self._dialect(), self._filter(query) if query else None
            )
        result = dict.fromkeys(PackageStatus, 0)
        for code, count in counts.items():
            status = _status(code)
            result[status] = result.get(status, 0) + count
        return result

    async def shipment(self, number: str) -> ShipmentDetail:
        """One shipment with its timeline and notifications; ``NotFoundError`` if unknown."""
        record = await self._engine.store.get_shipment(number.strip())
        if record is None:
            raise NotFoundError(f"{number.strip()} is not registered here")
        async with self._engine.store.read() as conn:
            rows, _ = await queries.history_page(
                conn,
                self._dialect(),
                queries.HistoryFilter(number=record.number),
                limit=200,
            )
        return shipment_detail(
            _slim_of(record),
            final_carrier=record.final_carrier,
            extra_param=record.extra_param,
            buyer_name=record.buyer_name,
            stopped_at=record.stopped_at,
            last_push_at=record.last_push_at,
            info=record.info,
            notifications=[notification_record(r) for r in rows],
            carrier_name=self.carrier_name,
        )

    async def find_shipment(self, text: str) -> ShipmentDetail:
        """A shipment by its number, else by its order number; ``NotFoundError``."""
        text = text.strip()
        if not text:
            raise InvalidInputError("give a tracking number or an order number")
        with contextlib.suppress(NotFoundError):
            return await self.shipment(text)
        page = await self.shipments(ShipmentQuery(search=text), limit=2)
        exact = [r for r in page.items if r.order == text]
        if len(exact) == 1:
            return await self.shipment(exact[0].number)
        if len(exact) > 1:
            raise InvalidInputError(f"order {text} has several shipments; give the number")
        raise NotFoundError(f"no shipment with number or order {text}")

    async def history(
        self, query: HistoryQuery | None = None, *, limit: int = 50, after: str | None = None
    ) -> Page[HistoryRow]:
        """One page of the notification history, newest first."""
        query = query or HistoryQuery()
        unknown = sorted(set(query.send_statuses) - set(SEND_STATUSES))
        if unknown:
            raise InvalidInputError(
                f"unknown send status {unknown[0]!r}; expected one of {', '.join(SEND_STATUSES)}"
            )
        flt = queries.HistoryFilter(
            search=query.search,
            send_statuses=query.send_statuses,
            condition=query.condition,
            channel=query.channel,
            audience=query.audience,
            since=query.since,
            until=query.until,
        )
        try:
            async with self._engine.store.read() as conn:
                rows, cursor = await queries.history_page(
                    conn, self._dialect(), flt, limit=self._limit(limit), after=after
                )
        except CursorError as exc:
            raise InvalidInputError(str(exc)) from None
        return Page([self._history_row(r) for r in rows], cursor)

    async def notification(self, notification_id: int) -> HistoryRow:
        """One history row; ``NotFoundError`` if unknown."""
        row = await self._engine.store.get_notification(notification_id)
        if row is None:
            raise NotFoundError(f"no notification with id {notification_id}")
        return history_row(row)

    async def audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[AuditRow]:
        """One page of the audit log, newest first."""
        try:
            async with self._engine.store.read() as conn:
                rows, cursor = await queries.audit_page(
                    conn,
                    queries.AuditFilter(actor=actor, action=action, target=target),
                    limit=self._limit(limit),
                    after=after,
                )
        except CursorError as exc:
            raise InvalidInputError(str(exc)) from None
        return Page(
            [
                AuditRow(
                    id=r["id"],
                    at=r["at"],
                    actor=r["actor"],
                    action=r["action"],
                    target=r["target"],
                    outcome=r["outcome"],
                    detail=r["detail"],
                )
                for r in rows
            ],
            cursor,
        )

    async def statistics(self, *, days: int = 30, stuck_days: int = 7) -> Statistics:
        """Deliveries per day over ``days``, days to delivery per carrier and route, and the
        shipments with no event for ``stuck_days``."""
        for name, value in (("days", days), ("stuck_days", stuck_days)):
            if not 1 <= value <= _MAX_STAT_DAYS:
                raise InvalidInputError(f"{name} is from 1 to {_MAX_STAT_DAYS}, not {value}")
        now = self.now()
        today = now.date()
        first_day = today - timedelta(days=days - 1)
        async with self._engine.store.read() as conn:
            figures = await queries.delivery_figures(
                conn, since=datetime.combine(first_day, datetime.min.time())
            )
            stuck = await queries.stuck_shipments(
                conn, cutoff=now - timedelta(days=stuck_days), limit=200
            )
        per_day = [
            (first_day + timedelta(days=i), figures.per_day.get(first_day + timedelta(days=i), 0))
            for i in range(days)
        ]

        def stat(key: str, samples: list[float]) -> CarrierStat:
            return CarrierStat(
                key=key,
                delivered=len(samples),
                median_days=round(queries.percentile(samples, 0.5), 2),
                p90_days=round(queries.percentile(samples, 0.9), 2),
            )

        by_carrier = sorted(
            (
                stat(self.carrier_name(c) or "unknown carrier", s)
                for c, s in figures.by_carrier.items()
            ),
            key=lambda x: -x.delivered,
        )
        by_route = sorted(
            (
                stat(f"{_country(o) or '?'} -> {_country(d) or '?'}", s)
                for (o, d), s in figures.by_route.items()
            ),
            key=lambda x: -x.delivered,
        )
        return Statistics(per_day, by_carrier, by_route, [self._row(r) for r in stuck])

    # ------------------------------------------------------------------ carriers

    def carriers(self, text: str, limit: int = 20) -> list[CarrierChoice]:
        """Carriers for a picker: by name (best matches first) or code."""
        return [
            CarrierChoice(
                code=c.key,
                name=c.name,
                country=c.country_iso or None,
                needs_param=self.param_hint(c.key),
            )
            for c in carrier_list.search_carriers(text)[:limit]
        ]

    def resolve_carrier(self, text: str | int) -> int:
        """A carrier code from a code or a name (DESIGN.md); ``InvalidInputError`` listing
        the candidates."""
        try:
            return carrier_list.resolve_carrier(text)
        except carrier_list.CarrierNameError as exc:
            raise InvalidInputError(str(exc)) from None

    def param_hint(self, carrier: int) -> ParamHint | None:
        """What extra parameter ``carrier`` takes (None when it takes none)."""
        from trackops.plugins import carriers as carrier_params

        rows = carrier_params.params_for(carrier, self._params)
        if not rows:
            return None
        required = any(r.required for r in rows)
        kinds = " and ".join(dict.fromkeys(r.label for r in rows))
        samples = [r.sample for r in rows if r.sample]
        hint = kinds + (f", e.g. {samples[0]}" if samples else "")
        if required:
            hint = f"required: {hint}"
        return ParamHint(required=required, kind=kinds, hint=hint)

    def validate_param(self, carrier: int, param: str | None) -> str | None:
        """``param`` formatted as 17TRACK expects for ``carrier``; ``InvalidInputError``
        when it is required and missing, or malformed."""
        from trackops.plugins import carriers as carrier_params

        missing = carrier_params.missing_required(carrier, param, self._params)
        if missing is not None:
            raise InvalidInputError(
                carrier_params.explain_error(missing.error_code, carrier, self._params)
                or f"{self.carrier_name(carrier)} needs its {missing.label}"
            )
        if not param:
            return None
        try:
            return carrier_params.format_extra_param(carrier, param, self._params)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None

    # ------------------------------------------------------------------ commands

    async def record(
        self, actor: Actor, action: str, target: str, outcome: str, detail: str = ""
    ) -> None:
        """Add an audit row (front-ends use it for what never reaches a command, such as a
        refusal for lack of rights)."""
        await self._engine.store.add_audit(
            at=self.now(),
            actor=actor,
            action=action,
            target=target[:2000],
            outcome=outcome,
            detail=detail[:4000],
        )
        self._engine.notify_change()

    async def record_within(
        self,
        wait: float,
        actor: Actor,
        action: str,
        target: str,
        outcome: str,
        detail: str = "",
    ) -> None:
        """``record``, waiting at most ``wait`` seconds (never raises). A front-end with a
        deadline (Slack's 3 seconds) uses it: a store busy with another writer writes the row
        when it is free, and the service waits for such rows before it closes
        (``drain_records``), so none is lost when the process stops."""
        task = asyncio.ensure_future(self._record_logged(actor, action, target, outcome, detail))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)
        await asyncio.wait({task}, timeout=wait)

    async def _record_logged(
        self, actor: Actor, action: str, target: str, outcome: str, detail: str
    ) -> None:
        try:
            await self.record(actor, action, target, outcome, detail)
        except Exception as exc:
            log.error("could not record %s by %s: %s", action, actor, exc)

    async def drain_records(self, *, within: float = 30.0) -> int:
        """Wait (at most ``within`` seconds: the store's own busy timeout) for the audit rows
        ``record_within`` left to write; returns how many were still unwritten then (each is
        logged)."""
        if self._recording:
            await asyncio.wait(set(self._recording), timeout=within)
        for _ in self._recording:
            log.error("an audit row was still waiting for the store when the service closed")
        return len(self._recording)

    async def _audited(
        self, actor: Actor, action: str, target: str, result: CommandOutcome
    ) -> CommandOutcome:
        await self.record(actor, action, target, _outcome(result), _rejections(result))
        return result

    async def _failed(self, actor: Actor, action: str, target: str, exc: BaseException) -> None:
        with contextlib.suppress(Exception):
            await self.record(actor, action, target, "failed", str(exc) or type(exc).__name__)

    async def register(
        self,
        requests: Sequence[RegisterRequest],
        *,
        actor: Actor,
        progress: Callable[[int, int], None] | None = None,
        started: Registration | None = None,
    ) -> CommandOutcome:
        """Register shipments with 17TRACK and store them. ``started``: the same requests
        already on their way (``registration.start``, begun before the service was open: a
        one-shot command sends its first requests while the store opens)."""
        target = ", ".join(r.number for r in requests[:20]) + (
            f" (+{len(requests) - 20})" if len(requests) > 20 else ""
        )
        try:
            result = await self._engine.register(requests, progress=progress, started=started)
        except BaseException as exc:
            await self._failed(actor, "register", target, exc)
            raise
        return await self._audited(actor, "register", target, result)

    async def _numbers(
        self, action: str, numbers: Sequence[str], *, actor: Actor
    ) -> CommandOutcome:
        clean = [n.strip() for n in numbers if n.strip()]
        if not clean:
            raise InvalidInputError(f"{action}: give at least one tracking number")
        target = ", ".join(clean)
        call = {"stop": self._engine.stop, "retrack": self._engine.retrack}.get(action)
        try:
            result = await (call(clean) if call else self._engine.delete(clean))
        except BaseException as exc:
            await self._failed(actor, action, target, exc)
            raise
        return await self._audited(actor, action, target, result)

    async def stop(self, numbers: Sequence[str], *, actor: Actor) -> CommandOutcome:
        """Stop tracking (17TRACK stops; the shipment is kept as stopped)."""
        return await self._numbers("stop", numbers, actor=actor)

    async def retrack(self, numbers: Sequence[str], *, actor: Actor) -> CommandOutcome:
        """Re-activate stopped numbers (17TRACK allows this once per number)."""
        return await self._numbers("retrack", numbers, actor=actor)

    async def delete(self, numbers: Sequence[str], *, actor: Actor) -> CommandOutcome:
        """Delete numbers at 17TRACK and here (their history is kept)."""
        return await self._numbers("delete", numbers, actor=actor)

    async def change_carrier(
        self, number: str, carrier: int, *, actor: Actor, final_carrier: int | None = None
    ) -> CommandOutcome:
        """Change a number's carrier (and optionally its last-mile carrier)."""
        try:
            result = await self._engine.change_carrier(number.strip(), carrier, final_carrier)
        except BaseException as exc:
            await self._failed(actor, "change-carrier", number, exc)
            raise
        return await self._audited(actor, "change-carrier", f"{number} -> {carrier}", result)

    async def change_tag(self, number: str, tag: str, *, actor: Actor) -> CommandOutcome:
        """Change a number's tag at 17TRACK and here."""
        try:
            result = await self._engine.change_tag(number.strip(), tag)
        except BaseException as exc:
            await self._failed(actor, "tag", number, exc)
            raise
        return await self._audited(actor, "tag", f"{number} -> {tag}", result)

    async def sync(
        self,
        *,
        actor: Actor,
        numbers: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> SyncOutcome:
        """Ask 17TRACK for the latest tracking info (every tracked shipment, or ``numbers``),
        apply it and queue the notifications. Setting ``stop`` ends it after the chunk in
        progress, keeping what was applied (the outcome says ``interrupted``)."""
        target = "all tracked" if numbers is None else ", ".join(numbers)
        try:
            outcome = await self._engine.sync(progress=progress, numbers=numbers, stop=stop)
        except BaseException as exc:
            await self._failed(actor, "sync", target, exc)
            raise
        detail = (
            f"{outcome.asked} asked, {outcome.applied} updated, "
            f"{outcome.notifications} notifications"
        )
        if outcome.rejected:
            detail += f", {len(outcome.rejected)} refused"
        if outcome.unknown:
            detail += f", {len(outcome.unknown)} unknown to 17TRACK"
        if outcome.interrupted:
            detail += f", interrupted after {outcome.asked} of {outcome.total}"
        await self.record(actor, "sync", target, "partial" if outcome.rejected else "ok", detail)
        return outcome

    async def dispatch(self) -> DispatchOutcome:
        """Send the notifications that are due now: how many were tried, how many went out
        (a failed send is a history row with its reason, not an error)."""
        async with self._engine.subscribe() as changes:
            attempted = await self._engine.dispatch_pending()
        sent = 0
        while not changes.empty():
            change = changes.get_nowait()
            if change.kind == "notification" and change.send_status == "sent":
                sent += 1
        return DispatchOutcome(attempted=attempted, sent=sent)

    async def resend(self, notification_id: int, *, actor: Actor) -> HistoryRow:
        """Send a failed notification again (as a new history row)."""
        target = f"notification {notification_id}"
        try:
            row = await self._engine.resend(notification_id)
        except LookupError as exc:
            await self._failed(actor, "resend", target, exc)
            raise NotFoundError(str(exc).strip("'\"")) from None
        except ValueError as exc:
            await self._failed(actor, "resend", target, exc)
            raise InvalidInputError(str(exc)) from None
        outcome = "ok" if row.send_status == "sent" else "failed"
        await self.record(actor, "resend", target, outcome, f"new row {row.id}")
        return history_row(row)

    async def send_report(self, kind: str, *, actor: Actor) -> list[HistoryRow]:
        """Queue and send the weekly or monthly report, or the full export."""
        try:
            rows = await self._engine.send_report(kind)  # type: ignore[arg-type]
        except ValueError as exc:
            await self._failed(actor, "report", kind, exc)
            raise InvalidInputError(str(exc)) from None
        ok = all(r.send_status == "sent" for r in rows)
        await self.record(actor, "report", kind, "ok" if ok else "failed", f"{len(rows)} rows")
        return [history_row(r) for r in rows]

    async def report_text(self, kind: str) -> tuple[str, str]:
        """The report's subject and body as of now, without sending it."""
        if kind not in ("weekly", "monthly", "export"):
            raise InvalidInputError(f"unknown report {kind!r}; expected weekly, monthly, export")
        report = await self._engine.build_report(kind, self.now())  # type: ignore[arg-type]
        return report.subject, report.body

    async def export_csv(self) -> bytes:
        """Every shipment as CSV (the export report's attachment)."""
        return await self._engine.export_csv()

    async def report_csv(self, kind: str) -> tuple[str, bytes]:
        """The CSV file a ``kind`` report made now would carry, and its name: every shipment
        for the export, the shipments updated in the period for a weekly or monthly one."""
        if kind not in ("weekly", "monthly", "export"):
            raise InvalidInputError(f"unknown report {kind!r}; expected weekly, monthly, export")
        now = self.now()
        return await self._engine.report_csv(kind, now, sent_at=now)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ webhook inbox

    async def inbox_status(self) -> InboxStatus:
        """Pushes waiting to be applied and pushes quarantined after failing."""
        stats = await self._engine.store.inbox_stats()
        return InboxStatus(
            backlog=stats.backlog,
            failed=stats.failed,
            oldest_unprocessed_at=stats.oldest_unprocessed_at,
            last_received_at=stats.last_received_at,
        )

    async def inbox_failed(self, *, limit: int | None = None) -> list[InboxEntry]:
        """Quarantined pushes, oldest first, each with the reason it failed."""
        return [_inbox_entry(r) for r in await self._engine.store.inbox_failed(limit)]

    async def dismiss_inbox(self, ids: Sequence[int], *, actor: Actor) -> list[int]:
        """Set quarantined pushes aside (a push that can never apply, e.g. for a number
        nobody tracks): /healthz stops counting them; they stay readable until pruned.
        ``NotFoundError`` when none of ``ids`` is quarantined."""
        target = "inbox " + ", ".join(str(i) for i in ids[:20])
        done = await self._engine.store.inbox_dismiss(ids, note=f"dismissed by {actor}")
        if not done:
            await self.record(actor, "inbox-dismiss", target, "failed", "nothing quarantined")
            raise NotFoundError(
                "no quarantined push with id " + ", ".join(str(i) for i in ids)
                + " (see `trackops inbox --failed`)"
            )  # fmt: skip
        await self.record(actor, "inbox-dismiss", target, "ok", f"{len(done)} set aside")
        return done

    async def replay_inbox(self, ids: Sequence[int], *, actor: Actor) -> list[InboxEntry]:
        """Put quarantined pushes back and apply them now; each row as it ended (applied, or
        quarantined again with the new reason). ``NotFoundError`` when none of ``ids`` is
        quarantined; ids that are not are left out of the result."""
        target = "inbox " + ", ".join(str(i) for i in ids[:20])
        replayed = await self._engine.replay_inbox(ids)
        if not replayed:
            await self.record(actor, "inbox-replay", target, "failed", "nothing quarantined")
            raise NotFoundError(
                "no quarantined push with id " + ", ".join(str(i) for i in ids)
                + " (see `trackops inbox --failed`)"
            )  # fmt: skip
        entries = []
        for row_id in replayed:
            row = await self._engine.store.inbox_get(row_id)
            if row is not None:
                entries.append(_inbox_entry(row))
        failed = sum(e.failed for e in entries)
        outcome: Outcome = "ok" if not failed else "partial" if failed < len(entries) else "failed"
        await self.record(
            actor,
            "inbox-replay",
            target,
            outcome,
            f"{len(entries) - failed} applied, {failed} failed",
        )
        return entries

    # ------------------------------------------------------------------ the listener's work

    async def store_pushes(
        self, pushes: Sequence[tuple[bytes, datetime]], *, busy_timeout: float | None = None
    ) -> list[int]:
        """Store verified pushes (body, time received) in the webhook inbox, in one
        transaction; their inbox ids, in order. When it returns they are durable: the listener
        acknowledges a push only then. Nothing is applied here (``process_inbox`` does that).

        The listener's hot path: one call per group of waiting requests, no other read or
        write. ``busy_timeout`` (SQLite): give up after that many seconds when another process
        holds the write lock, so the listener can answer 503 and let 17TRACK retry.
        """
        return await self._engine.store.inbox_add_many(pushes, busy_timeout=busy_timeout)

    async def process_inbox(self, *, limit: int = 500) -> int:
        """Apply up to ``limit`` stored pushes that are due, oldest first; how many rows were
        handled (0: nothing due). A push that fails is retried later, then quarantined; it
        never holds back the others. A store that cannot be used at all (unreachable, locked,
        full) raises ``StoreError`` with ``transient`` set and charges no push: try again
        later."""
        if limit < 1:
            raise InvalidInputError(f"inbox batch must be at least 1 push, not {limit}")
        try:
            return await self._engine.process_inbox(limit=limit)
        except StoreError:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise StoreError(str(exc) or type(exc).__name__, transient=True) from exc
            raise

    async def heartbeat(self) -> None:
        """Record that this process is alive: a real write (``/healthz`` uses it to tell a
        store that can still be written)."""
        await self._engine.heartbeat()

    async def run_dispatcher(self, idle_seconds: float = 5.0) -> None:
        """Send due notifications until cancelled, woken at once when new ones are queued;
        records a heartbeat now and then. Failures are logged and retried, never raised."""
        await self._engine.run_dispatcher(idle_seconds)

    async def prune_inbox(self, retention_days: float) -> PruneOutcome:
        """Delete applied pushes and deleted-shipment markers older than ``retention_days``.
        Pushes not applied yet, and quarantined ones, are kept however old."""
        if retention_days < 0:
            raise InvalidInputError(f"retention must be 0 days or more, not {retention_days}")
        before = self.now() - timedelta(days=retention_days)
        store = self._engine.store
        pushes = await store.inbox_prune(before=before)
        markers = await store.tombstones_prune(before=before)
        return PruneOutcome(pushes=pushes, markers=markers)

    async def resync_quiet(self, hours: float, *, limit: int = RESYNC_BATCH) -> ResyncOutcome:
        """Sync the tracked shipments that had no update for ``hours`` (a push may have been
        lost): at most ``limit`` of them, read in update order through the ``updated_at``
        index (never the whole table), so one pass costs at most ``limit / 40`` gettrackinfo
        requests.

        Passes take turns: each goes on from where the last one stopped, and starts again
        from the longest quiet once it has been round. An answer that repeats what is stored
        leaves a shipment's update time as it was, so without the turns the same ``limit``
        quiet shipments would be asked for at every pass and the others never.

        The listener's safety net, like processing the inbox: not an operator's command, so
        not in the audit log.
        """
        if hours <= 0:
            raise InvalidInputError(f"resync needs a quiet time above 0 hours, not {hours}")
        if limit < 1:
            raise InvalidInputError(f"resync limit must be at least 1, not {limit}")
        cutoff = self.now() - timedelta(hours=hours)
        async with self._engine.store.read() as conn:
            quiet = await queries.quiet_numbers(conn, cutoff, limit=limit, after=self._resync_after)
            if not quiet and self._resync_after is not None:  # round: from the start again
                quiet = await queries.quiet_numbers(conn, cutoff, limit=limit)
        self._resync_after = quiet[-1] if len(quiet) == limit else None
        if not quiet:
            return ResyncOutcome(numbers=[], sync=SyncOutcome(0, 0, 0, [], [], 0))
        numbers = [number for _, number in quiet]
        return ResyncOutcome(numbers=numbers, sync=await self._engine.sync(numbers=numbers))

    # ------------------------------------------------------------------ subscriptions

    async def subscribe_alerts(
        self, channel: str, target: str, statuses: Sequence[PackageStatus], *, actor: Actor
    ) -> None:
        """Seller alerts for ``statuses`` also go to ``target`` on ``channel``."""
        if not statuses:
            raise InvalidInputError("give at least one status to subscribe to")
        await self._engine.store.set_subscription(
            channel=channel,
            target=target,
            statuses=[int(s) for s in statuses],
            by=actor,
            at=self.now(),
        )
        names = ", ".join(s.slug for s in statuses)
        await self.record(actor, "subscribe", f"{channel}:{target}", "ok", names)

    async def unsubscribe_alerts(self, channel: str, target: str, *, actor: Actor) -> bool:
        """Stop alerts to ``target``; False when it was not subscribed."""
        removed = await self._engine.store.remove_subscription(channel=channel, target=target)
        outcome = "ok" if removed else "failed"
        await self.record(actor, "unsubscribe", f"{channel}:{target}", outcome)
        return removed

    async def alert_subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """The alert subscriptions (of ``channel``, when given)."""
        return await self._engine.store.subscriptions(channel)

    # ------------------------------------------------------------------ live

    async def change_seq(self) -> int:
        """The store's change sequence now (``changes(since=...)`` starts after it)."""
        async with self._engine.store.read() as conn:
            return await queries.current_seq(conn)

    async def changes(self, since: int | None = None) -> AsyncIterator[Change]:
        """Every change after ``since`` (default: from now on), from this process or another
        on the same store, within ``poll_seconds`` (at once for changes made in this
        process). Endless; a consumer refreshes what a change names."""
        seq = await self.change_seq() if since is None else since
        wake = self._engine.change_event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.poll_seconds)
            wake.clear()
            try:
                async with self._engine.store.read() as conn:
                    batch = await queries.changes_since(conn, seq)
            except TrackopsError:
                continue  # the store is busy or away; the next poll tries again
            for change in _changes_of(batch):
                yield change
            seq = batch.seq

    async def status_line(self) -> RuntimeStatus:
        """The rate limiter, the last push and sync, the store and its change sequence."""
        async with self._engine.store.read() as conn:
            last_push = await queries.last_push_at(conn)
            seq = await queries.current_seq(conn)
        limiter = self._engine.rate_limiter()
        available = None
        if limiter is not None:
            available = float(limiter.available)
        return RuntimeStatus(
            rate_limit=self.settings.api.rate_limit,
            rate_available=available,
            last_push_at=last_push,
            last_sync_at=self._engine.last_sync_at,
            store=mask_url(self.settings.store.url),
            seq=seq,
        )


def _changes_of(batch: queries.ChangeBatch) -> list[Change]:
    found: list[tuple[int, Change]] = []
    for number, code, seq in batch.shipments:
        found.append((seq, Change("shipment", number, _status(code), seq=seq)))
    for number, seq in batch.deleted:
        found.append((seq, Change("shipment", number, None, seq=seq)))
    for id_, about, send_status, seq in batch.notifications:
        found.append((seq, Change("notification", about, None, id_, send_status, seq=seq)))
    for _id, target, seq in batch.audit:
        found.append((seq, Change("audit", target, seq=seq)))
    found.sort(key=lambda item: item[0])
    return [change for _, change in found]


def _slim_of(r: ShipmentRecord) -> queries.SlimShipment:
    """The slim row of a stored shipment (which has every field of it)."""
    values = {
        f.name: getattr(r, f.name)
        for f in dataclasses.fields(queries.SlimShipment)
        if f.name != "status_code"
    }
    return queries.SlimShipment(status_code=int(r.status), **values)


def _country(code: int | None) -> str | None:
    return (carrier_list.country_iso(code) or None) if code else None


def _carrier_codes_matching(text: str) -> list[int]:
    """Codes of the carriers whose name contains ``text`` (search by carrier name)."""
    if len(text.strip()) < 3:
        return []
    folded = text.strip().casefold()
    return [c.key for c in carrier_list.all_carriers() if folded in c.name.casefold()][:500]


@contextlib.asynccontextmanager
async def open_service(
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    channels: Iterable[Channel] | Mapping[str, Channel] | None = None,
    load_plugins: bool = True,
    plugins: PluginHost | None = None,
    client: TrackClient | None = None,
    poll_seconds: float = 0.25,
    read_only: bool = False,
) -> AsyncIterator[Service]:
    """The service over ``settings``' store and API, open for the block.

    ``load_plugins=False`` gives a service that builds no channels and compiles no rules
    (``list``, ``status``, ``history``); commands that apply updates then say why not.
    ``read_only`` (one-shot reading commands): nothing is written, not even the release of a
    dead process's claims, and a SQLite store is read without the asyncio machinery
    (``Store.open(read_only=True)``); a command that writes then fails with ``StoreError``.
    """
    engine = Engine(
        settings,
        clock=clock or utcnow,
        channels=channels,
        load_plugins=load_plugins,
        plugins=plugins,
        client=client,
        read_only=read_only,
    )
    async with engine:
        service = Service(engine, poll_seconds=poll_seconds)
        try:
            yield service
        finally:
            await service.drain_records()
