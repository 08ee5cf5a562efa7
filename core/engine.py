"""The engine: the one object the CLI, the webhook listener, the dashboard and the bot hold.

Data flows one way: wire -> state machine (``status.decide``) -> rules (``Rules.intents``) ->
outbox (``Store.apply_updates``, one transaction with the shipment's new state) -> channels
(the dispatcher). Because intents are written in the same transaction as the state that caused
them, a crash between "decided" and "sent" loses nothing: the rows are pending and the next
dispatcher run sends them. Sending is at-least-once; a row is marked sent right after the
channel accepted it.

Front-ends subscribe to ``changes()`` to see shipments and notifications change live.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import socket
import time
import urllib.parse
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from trackops.core import outbox, queries
from trackops.core.carriers import carrier_name
from trackops.core.channels import Attachment, Channel, ChannelError, Message
from trackops.core.config import ConfigError, Settings
from trackops.core.redact import install_log_redaction, redact
from trackops.core.registration import (
    Prepared,
    RegisterRequest,
    Registration,
    open_client,
    prepare,
)
from trackops.core.registration import rejected as _rejected
from trackops.core.reports import (
    REPORT_KINDS,
    CsvExport,
    Report,
    ReportKind,
    build_report,
    period_of,
)
from trackops.core.rules import NotificationIntent, Rules, ShipmentFacts
from trackops.core.status import Transition, decide, next_state
from trackops.core.store import (
    InboxRow,
    NewNotification,
    NewShipment,
    NotificationRecord,
    ShipmentRecord,
    ShipmentUpdate,
    Store,
    StoreError,
    Subscription,
    is_transient,
)
from trackops.core.text import has_unsafe, safe_text
from trackops.core.wire import (
    EVENT_TRACKING_UPDATED,
    CarrierResult,
    ChangeCarrierItem,
    Event,
    NumberItem,
    PackageStatus,
    RegisterResult,
    Rejected,
    TrackInfo,
    TrackingStopped,
    TrackingUpdated,
    WireError,
    decode_push,
    decode_push_data,
    error_message,
)

if TYPE_CHECKING:
    # aiohttp and the client are imported when the engine first talks to 17TRACK, so that
    # commands that only read the store start fast.
    from trackops.core.client import BatchResult, RateLimiter, TrackClient
    from trackops.core.plugins import PluginHost

__all__ = [
    "Change",
    "CommandOutcome",
    "Engine",
    "RegisterRequest",
    "SyncOutcome",
    "utcnow",
]

log = logging.getLogger("trackops.engine")
push_log = logging.getLogger("trackops.pushes")
"""One plain line per push applied (here) or refused (the listener): what `serve` shows."""

ALREADY_REGISTERED = -18019901
NOT_REGISTERED = -18019902
SYNC_CHUNK = 400
"""Numbers per sync step (10 gettrackinfo requests): applied before the next is asked for."""
NO_INFO_YET = -18019909
_SEND_CONCURRENCY = 8
_RETRY_BASE_SECONDS = 30.0
_CLAIM_LEASE = timedelta(minutes=5)
_HEARTBEAT_EVERY = 15.0  # seconds
_HEARTBEAT_STALE = timedelta(minutes=2)
INBOX_RETRY_DELAYS: tuple[float, ...] = (5.0, 30.0, 120.0)
"""Backoff of a failing inbox row: retried after 5 s, 30 s, 2 min, then quarantined."""


def _log_push(inbox_id: int, number: str | None, event: str, **fields: Any) -> None:
    """One structured (JSON) log line per push processed from the inbox."""
    if log.isEnabledFor(logging.INFO):
        record = {"inbox_id": inbox_id, "number": number, "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        log.info("push %s", json.dumps(record, ensure_ascii=False))


def _say_applied(transitions: Sequence[Transition], notes: Sequence[NotificationRecord]) -> None:
    """``push_log``: one line per push, e.g. "push RR123456789CN: Not found -> In transit,
    1 notification queued" (a number's notifications are told with its last notifying push)."""
    queued: dict[str, list[NotificationRecord]] = {}
    for note in notes:
        queued.setdefault(note.number or "", []).append(note)
    last_notifying = {t.number: i for i, t in enumerate(transitions) if t.notifies}
    for i, t in enumerate(transitions):
        if not t.applies or t.refresh:
            why = "a duplicate" if t.duplicate or t.refresh else "older than the stored state"
            push_log.info("push %s: %s, nothing changed", t.number, why)
            continue
        change = (
            f"{t.old_status.display} -> {t.new_status.display}"
            if t.status_changed
            else f"{t.new_status.display} (new event, same status)"
        )
        rows = queued.get(t.number, []) if last_notifying.get(t.number) == i else []
        pending = sum(1 for r in rows if r.send_status == "pending")
        held = len(rows) - pending
        told = f"{pending} notification{'s' if pending != 1 else ''} queued"
        if held:
            told += f", {held} held back (seller daily limit)"
        push_log.info("push %s: %s, %s", t.number, change, told)


def _event_of(row: NotificationRecord) -> Event | None:
    """The event a notification row was created for (rows from before schema 3 have none)."""
    if row.event_time is None and row.event_description is None:
        return None
    return Event(
        time_raw=row.event_time, location=row.event_location, description=row.event_description
    )


def _reason(exc: BaseException) -> str:
    """A failure's reason for logs and the inbox row: type and first line, never a traceback."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _plausible_number(number: str) -> bool:
    """A push's tracking number the store can key on: 1-100 characters, no control codes."""
    return 0 < len(number) <= 100 and not has_unsafe(number)


def _fits_int32(value: int) -> bool:
    return -(2**31) <= value < 2**31


def _safe_or_none(value: str | None) -> str | None:
    return None if value is None else safe_text(value)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _holder_dead(holder: str, seen: datetime | None, *, host: str, now: datetime) -> bool:
    """Whether the process named ``holder`` ("host:pid") is gone (see release_dead_claims)."""
    name, _, pid_text = holder.rpartition(":")
    if name == host and pid_text.isdigit():
        pid = int(pid_text)
        return pid != os.getpid() and not _pid_alive(pid)
    return seen is not None and now - seen > _HEARTBEAT_STALE


def utcnow() -> datetime:
    """Now as a naive UTC datetime (the engine's one time convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class CommandOutcome:
    """Per-number result of a command: what was done and what was refused, and why."""

    accepted: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing was rejected."""
        return not self.rejected


@dataclass(frozen=True)
class SyncOutcome:
    """What a sync did: numbers asked, updates applied, notifications created, rejections.

    ``unknown``: numbers 17TRACK answered it does not know (-18019902); they are marked
    (``unknown_since``) and no longer synced. ``interrupted``: the sync was stopped early;
    ``total`` numbers were due and ``asked`` of them were asked for and applied.
    """

    asked: int
    applied: int
    notifications: int
    no_info_yet: list[str]
    rejected: list[Rejected]
    requests: int
    unknown: list[str] = field(default_factory=list)
    interrupted: bool = False
    total: int = 0


@dataclass(frozen=True)
class Change:
    """One change for the front-ends: a shipment moved or a notification row changed."""

    kind: Literal["shipment", "notification", "audit"]
    number: str | None
    """The shipment's number (None for a report's row; the audit row's target for ``audit``)."""
    status: PackageStatus | None = None
    notification_id: int | None = None
    send_status: str | None = None
    seq: int = 0
    """The store's change sequence (0 for in-process changes, which carry none)."""


def _report_kind(row: NotificationRecord) -> ReportKind | None:
    """The report a history row sends (``weekly``, ``monthly``, ``export``), or None."""
    if row.audience != "report":
        return None
    kind = row.condition.removesuffix("-report")
    return kind if kind in REPORT_KINDS else None


class Engine:
    """trackops' engine. Use as ``async with Engine(settings) as engine: ...``.

    ``store``, ``client``, ``channels`` and ``plugins`` may be injected (tests, the demo);
    otherwise they are built from ``settings``. ``clock`` returns naive UTC ``datetime``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        client: TrackClient | None = None,
        channels: Iterable[Channel] | Mapping[str, Channel] | None = None,
        plugins: PluginHost | None = None,
        load_plugins: bool = True,
        clock: Callable[[], datetime] = utcnow,
        read_only: bool = False,
    ) -> None:
        self.settings = settings
        self._read_only = read_only
        self.clock = clock
        self._store = store
        self._owns_store = store is None
        self._client = client
        self._owns_client = client is None
        self._extra_channels: dict[str, Channel] = (
            dict(channels) if isinstance(channels, Mapping) else {c.name: c for c in channels or ()}
        )
        self._plugins = plugins
        self._load_plugins = load_plugins
        self.channels: dict[str, Channel] = {}
        self.rules: Rules | None = None
        self.config_error: ConfigError | None = None
        """A notification setting the engine cannot work with (see ``check_config``)."""
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._change_events: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()
        self._wake = asyncio.Event()
        self._dispatch_lock = asyncio.Lock()
        self._apply_lock = asyncio.Lock()
        self._inbox_lock = asyncio.Lock()
        self.last_sync_at: datetime | None = None
        """When this process last asked 17TRACK for tracking info (None: not yet)."""
        self.host = socket.gethostname()
        self.worker = f"{self.host}:{os.getpid()}"
        """Who this process is in the outbox's claims (``host:pid``)."""
        self.inbox_retry_delays: tuple[float, ...] = INBOX_RETRY_DELAYS
        """Seconds before each retry of a failing inbox row; quarantined after the last."""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Engine:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the store, build the client, load plugins and compile the rules."""
        install_log_redaction()
        if self._plugins is None and self._load_plugins:
            from trackops.core.plugins import PluginHost

            self._plugins = PluginHost(self.settings)
        plugin_channels: dict[str, Channel] = dict(self._plugins.channels) if self._plugins else {}
        predicates = dict(self._plugins.predicates) if self._plugins else {}
        self.channels = {**plugin_channels, **self._extra_channels}
        # Rules validate channel and predicate names. A bad notification config must not stop
        # reading (`list`, `status`, `history`): it is kept in ``config_error`` and raised by
        # whatever needs the rules (applying updates; ``check_config``).
        self.config_error = None
        try:
            self.rules = Rules(
                self.settings.notifications,
                known_channels=self.channels.keys(),
                predicates=predicates,
            )
        except ConfigError as exc:
            where = f"{self.settings.path}: " if self.settings.path else ""
            self.config_error = ConfigError(f"{where}{exc}")
            self.rules = None
        if self._store is None:
            self._store = await Store.open(self.settings.store.url, read_only=self._read_only)
        if self._read_only:
            return
        # A process killed while it held claims (kill -9, power cut) would delay its rows by
        # the whole lease; released at once, they are sent by the next dispatcher run.
        try:
            released = await self.release_dead_claims()
        except StoreError as exc:  # e.g. a read-only store: reading must still work
            log.warning("claims of dead processes not released: %s", exc)
            released = 0
        if released:
            log.warning("released %d notifications claimed by a process that died", released)

    async def release_dead_claims(self) -> int:
        """Make the rows claimed by dead processes due now; returns how many.

        Dead: on this host, a process id that no longer runs; on another host, a process
        whose heartbeat (``run_dispatcher``) is older than ``_HEARTBEAT_STALE``.
        """
        holders = await self.store.claim_holders()
        if not holders:
            return 0
        now = self.clock()
        dead = [
            holder
            for holder, seen in holders.items()
            if _holder_dead(holder, seen, host=self.host, now=now)
        ]
        return await self.store.release_claims(dead, now=now) if dead else 0

    async def close(self) -> None:
        """Close what the engine opened (store, client, plugin channels)."""
        if self._client is not None and self._owns_client:
            await self._client.__aexit__(None, None, None)
            self._client = None
        if self._plugins is not None:
            await self._plugins.aclose()
        for channel in self._extra_channels.values():
            with contextlib.suppress(Exception):
                await channel.aclose()
        if self._store is not None and self._owns_store:
            await self._store.close()
            self._store = None

    def check_config(self) -> None:
        """Raise ``config_error`` (a ``ConfigError``) if the notification settings are unusable.

        Reading commands work without it; syncing, applying pushes and ``serve`` call it first.
        """
        if self.config_error is not None:
            raise self.config_error

    @property
    def store(self) -> Store:
        """The open store."""
        if self._store is None:
            raise RuntimeError("engine is not open: use `async with Engine(settings)`")
        return self._store

    async def client(self) -> TrackClient:
        """The 17TRACK client, opened on first use (commands that only read never need it)."""
        if self._client is None:
            self._client = await open_client(self.settings)
            self._owns_client = True
        return self._client

    @property
    def plugins(self) -> PluginHost | None:
        """The plugin host (None when plugins are not loaded)."""
        return self._plugins

    # ------------------------------------------------------------------ change stream

    @contextlib.asynccontextmanager
    async def subscribe(self, maxsize: int = 10_000) -> AsyncIterator[asyncio.Queue[Change]]:
        """A queue that receives every ``Change`` while the context is open."""
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def changes(self) -> AsyncIterator[Change]:
        """An endless async stream of changes (shipments and notifications)."""
        async with self.subscribe() as queue:
            while True:
                yield await queue.get()

    def change_event(self) -> asyncio.Event:
        """An event set whenever this engine changes something (the service's change feed
        waits on it, so in-process changes show without waiting for the next poll)."""
        event = asyncio.Event()
        self._change_events.add(event)
        return event

    def notify_change(self) -> None:
        """Wake the change feeds (after a write that publishes no ``Change``, e.g. audit)."""
        for event in self._change_events:
            event.set()

    def rate_limiter(self) -> RateLimiter | None:
        """The limiter the 17TRACK client uses (None before the client is opened)."""
        return self._client.limiter if self._client is not None else None

    def _publish(self, change: Change) -> None:
        self.notify_change()
        for queue in self._subscribers:
            if queue.full():
                # A slow front-end loses the oldest change, never blocks the engine.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(change)

    # ------------------------------------------------------------------ carrier knowledge

    def carrier_name(self, code: int | None) -> str:
        """17TRACK's display name for a carrier code ("" for none, the number if unknown)."""
        return carrier_name(code) if code else ""

    # ------------------------------------------------------------------ commands

    async def register(
        self,
        requests: Sequence[RegisterRequest],
        progress: Callable[[int, int], None] | None = None,
        *,
        started: Registration | None = None,
    ) -> CommandOutcome:
        """Register shipments with 17TRACK and store them (Not found until their first data).

        Numbers are checked locally first (format, tag length, a carrier's required extra
        parameter) so a request that would fail is not spent. A number 17TRACK already
        tracks (-18019901) is stored as well, with a note. ``started``: the same requests,
        already checked and on their way (``registration.start``, begun before this engine
        was open); they are kept as they are answered.
        """
        if started is None:
            params = self._plugins.carrier_params if self._plugins is not None else None
            prepared = prepare(requests, params)
        else:
            prepared = started.prepared
        # Each batch's numbers are stored as soon as 17TRACK answers it, while the rate limit
        # holds the next batches back: the command ends soon after the last answer, and a
        # batch that fails later costs none of the numbers already registered.
        answered: dict[int, tuple[list[str], list[Rejected]]] = {}

        async def keep(index: int, result: BatchResult[RegisterResult]) -> None:
            answered[index] = await self._keep_registered(result, prepared)

        if started is not None:
            await started.finish(keep)
        elif prepared.items:
            client = await self.client()
            await client.register(prepared.items, progress=progress, on_batch=keep)
        accepted: list[str] = []
        rejected = list(prepared.rejected)
        for index in sorted(answered):
            batch_accepted, batch_rejected = answered[index]
            accepted += batch_accepted
            rejected += batch_rejected
        notes = prepared.notes
        return CommandOutcome(accepted=accepted, rejected=rejected, notes=notes)

    async def _keep_registered(
        self, result: BatchResult[RegisterResult], prepared: Prepared
    ) -> tuple[list[str], list[Rejected]]:
        """Store the numbers 17TRACK accepted in one register batch (and those it already
        tracked); the batch's accepted numbers and its rejections, explained."""
        from trackops.plugins import carriers as carrier_params

        wanted, notes, params = prepared.wanted, prepared.notes, prepared.params
        now = self.clock()
        accepted: list[str] = []
        rejected: list[Rejected] = []
        new_rows: list[NewShipment] = []
        for item in result.accepted:
            asked = wanted.get(item.number)
            if asked is None:
                continue
            new_rows.append(self._new_shipment(asked, item.carrier, now))
            accepted.append(item.number)
            if item.origin == 3:
                notes[item.number] = (
                    f"carrier detected automatically as {self.carrier_name(item.carrier)}"
                    " (may be wrong; use change-carrier)"
                )
        already: list[str] = []
        for rej in result.rejected:
            number = rej.number or ""
            asked = wanted.get(number)
            if rej.error.code == ALREADY_REGISTERED and asked is not None:
                new_rows.append(self._new_shipment(asked, asked.carrier, now))
                already.append(number)
                notes[number] = "already registered at 17TRACK; now tracked here too"
                continue
            if asked is not None:
                hint = carrier_params.explain_error(rej.error.code, asked.carrier, params)
                if hint:
                    rej = _rejected(number, rej.error.code, hint)
            rejected.append(rej)
        accepted += already
        if new_rows:
            inserted = set(await self.store.add_shipments(new_rows))
            for row in new_rows:
                self._publish(Change("shipment", row.number, PackageStatus.NOT_FOUND))
            # A number 17TRACK had forgotten (-18019902) and now took again: tracked again.
            fresh = set(accepted) - inserted
            if fresh:
                known = await self.store.get_shipments(sorted(fresh))
                for number, record in known.items():
                    if record.unknown_since is not None:
                        await self.store.update_shipment(
                            number, active=True, stopped_at=None, unknown_since=None
                        )
                        notes[number] = "registered again at 17TRACK; tracked again"
                        self._publish(Change("shipment", number, record.status))
                    elif number in already and record.active:
                        # Registered twice: it was tracked here before this command.
                        notes[number] = "already registered at 17TRACK and tracked here"
                    elif number in already:
                        notes[number] = (
                            "already registered and stopped here;"
                            f" `trackops retrack {number}` tracks it again"
                        )
        return accepted, rejected

    @staticmethod
    def _new_shipment(req: RegisterRequest, carrier: int | None, now: datetime) -> NewShipment:
        return NewShipment(
            number=req.number.strip(),
            carrier=carrier,
            final_carrier=req.final_carrier,
            extra_param=req.param,
            tag=req.tag,
            order_number=req.order,
            email=req.email,
            buyer_name=req.name,
            registered_at=now,
        )

    async def _known(
        self, numbers: Sequence[str]
    ) -> tuple[dict[str, ShipmentRecord], list[Rejected]]:
        found = await self.store.get_shipments(list(dict.fromkeys(numbers)))
        missing = [
            _rejected(n, -18019902, error_message(-18019902, n) + " (not in trackops' store)")
            for n in dict.fromkeys(numbers)
            if n not in found
        ]
        return found, missing

    async def stop(self, numbers: Sequence[str]) -> CommandOutcome:
        """Stop tracking: 17TRACK stops, the shipment is kept as stopped."""
        client = await self.client()
        return await self._set_tracking(numbers, client.stop_track, active=False)

    async def retrack(self, numbers: Sequence[str]) -> CommandOutcome:
        """Re-activate stopped numbers (17TRACK allows this once per number)."""
        client = await self.client()
        return await self._set_tracking(numbers, client.retrack, active=True)

    async def _set_tracking(
        self,
        numbers: Sequence[str],
        call: Callable[[list[NumberItem]], Awaitable[BatchResult[CarrierResult]]],
        *,
        active: bool,
    ) -> CommandOutcome:
        found, rejected = await self._known(numbers)
        if not found:
            return CommandOutcome(rejected=rejected)
        result = await call([NumberItem(number=n, carrier=r.carrier) for n, r in found.items()])
        stopped_at = None if active else self.clock()
        for item in result.accepted:
            await self.store.update_shipment(item.number, active=active, stopped_at=stopped_at)
            self._publish(Change("shipment", item.number, found[item.number].status))
        return CommandOutcome(
            accepted=[item.number for item in result.accepted],
            rejected=rejected + list(result.rejected),
        )

    async def delete(self, numbers: Sequence[str]) -> CommandOutcome:
        """Delete numbers at 17TRACK and from the store (their history is kept)."""
        found, rejected = await self._known(numbers)
        if not found:
            return CommandOutcome(rejected=rejected)
        client = await self.client()
        items = [NumberItem(number=n, carrier=r.carrier or 0) for n, r in found.items()]
        result = await client.delete_track(items)
        accepted = []
        rejected += list(result.rejected)
        done = {item.number for item in result.accepted}
        # A number 17TRACK no longer knows is deleted here too: the user asked for it gone.
        for rej in result.rejected:
            if rej.error.code == -18019902 and rej.number:
                done.add(rej.number)
                rejected.remove(rej)
        for number in done:
            await self.store.delete_shipment(number)
            accepted.append(number)
            self._publish(Change("shipment", number, None))
        return CommandOutcome(accepted=accepted, rejected=rejected)

    async def change_carrier(
        self, number: str, carrier: int, final_carrier: int | None = None
    ) -> CommandOutcome:
        """Change the first (and optionally last-mile) carrier of a registered number."""
        found, rejected = await self._known([number])
        if rejected:
            return CommandOutcome(rejected=rejected)
        record = found[number]
        client = await self.client()
        item = ChangeCarrierItem(
            number=number,
            carrier_old=record.carrier or None,
            carrier_new=carrier,
            final_carrier_old=record.final_carrier if final_carrier is not None else None,
            final_carrier_new=final_carrier,
        )
        result = await client.change_carrier([item])
        for acc in result.accepted:
            values: dict[str, Any] = {"carrier": acc.carrier or carrier}
            if final_carrier is not None:
                values["final_carrier"] = final_carrier
            await self.store.update_shipment(number, **values)
            self._publish(Change("shipment", number, record.status))
        return CommandOutcome(
            accepted=[a.number for a in result.accepted], rejected=list(result.rejected)
        )

    async def change_tag(self, number: str, tag: str) -> CommandOutcome:
        """Change a number's tag at 17TRACK and here."""
        found, rejected = await self._known([number])
        if rejected:
            return CommandOutcome(rejected=rejected)
        client = await self.client()
        result = await client.change_info(number, carrier=found[number].carrier or None, tag=tag)
        for acc in result.accepted:
            await self.store.update_shipment(acc.number, tag=tag)
            self._publish(Change("shipment", acc.number, found[number].status))
        return CommandOutcome(
            accepted=[a.number for a in result.accepted], rejected=list(result.rejected)
        )

    # ------------------------------------------------------------------ tracking data in

    async def sync(
        self,
        progress: Callable[[int, int], None] | None = None,
        numbers: Sequence[str] | None = None,
        stop: asyncio.Event | None = None,
    ) -> SyncOutcome:
        """Ask 17TRACK for the latest tracking info of every tracked shipment and apply it.

        Works in chunks of ``SYNC_CHUNK`` numbers, each applied before the next is asked for,
        so what was done is kept when ``stop`` is set (between chunks: the outcome then says
        ``interrupted``). ``progress(done, total)`` counts numbers. A number 17TRACK does not
        know (-18019902) is marked ``unknown_since`` and no longer tracked here.
        """
        self.check_config()
        if numbers is None:
            pairs: list[tuple[str, int | None]] = []
            async with self.store.read() as conn:
                while True:
                    batch = await queries.active_numbers(
                        conn, after=pairs[-1][0] if pairs else None, limit=5000
                    )
                    if not batch:
                        break
                    pairs += batch
        else:
            found = await self.store.get_shipments(list(numbers))
            pairs = [(r.number, r.carrier) for r in found.values()]
        self.last_sync_at = self.clock()
        if not pairs:
            return SyncOutcome(0, 0, 0, [], [], 0)
        client = await self.client()
        items = [NumberItem(number=n, carrier=c or None) for n, c in pairs]
        asked = applied = notifications = requests = 0
        no_info: list[str] = []
        unknown: list[str] = []
        rejected: list[Rejected] = []
        interrupted = False
        if progress is not None:
            progress(0, len(items))
        for start in range(0, len(items), SYNC_CHUNK):
            if stop is not None and stop.is_set():
                interrupted = True
                break
            chunk = items[start : start + SYNC_CHUNK]

            def chunk_progress(done: int, total: int, start: int = start) -> None:
                if progress is not None:
                    progress(start + done, len(items))

            result = await client.get_track_info(chunk, progress=chunk_progress)
            updates = [(a.number, a.track) for a in result.accepted if a.track is not None]
            transitions, notes = await self.apply_track_infos(updates)
            asked += len(chunk)
            applied += sum(1 for t in transitions if t.applies and not t.refresh)
            notifications += len(notes)
            requests += result.requests
            forgotten = []
            for rej in result.rejected:
                if rej.error.code == NO_INFO_YET:
                    no_info.append(rej.number or "")
                elif rej.error.code == NOT_REGISTERED and rej.number:
                    forgotten.append(rej.number)
                else:
                    rejected.append(rej)
            if forgotten:
                await self._mark_unknown(forgotten)
                unknown += forgotten
        return SyncOutcome(
            asked=asked,
            applied=applied,
            notifications=notifications,
            no_info_yet=no_info,
            rejected=rejected,
            requests=requests,
            unknown=unknown,
            interrupted=interrupted,
            total=len(items),
        )

    async def _mark_unknown(self, numbers: Sequence[str]) -> None:
        """17TRACK does not know these numbers: mark them and stop tracking them here."""
        now = self.clock()
        for number in dict.fromkeys(numbers):
            record = await self.store.get_shipment(number)
            if record is None or record.unknown_since is not None:
                continue
            await self.store.update_shipment(
                number, active=False, stopped_at=now, unknown_since=now
            )
            log.warning("17TRACK does not know %s (-18019902): no longer synced", number)
            self._publish(Change("shipment", number, record.status))

    async def apply_track_info(self, number: str, info: TrackInfo) -> Transition:
        """Apply one TrackInfo (from a sync or a push); returns the decided transition."""
        transitions, _ = await self.apply_track_infos([(number, info)])
        return transitions[0]

    async def apply_track_infos(
        self,
        updates: Sequence[tuple[str, TrackInfo]],
        extras: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> tuple[list[Transition], list[NotificationRecord]]:
        """Decide, apply and store a batch of updates in one transaction.

        Updates for the same number are decided in the order given, each against the state
        the previous one left. ``extras`` gives, per number, the ``tag`` of a shipment a push
        creates and ``pushed_at``, the time a push carrying the update was received.
        """
        if not updates:
            return [], []
        self.check_config()
        assert self.rules is not None
        async with self._apply_lock:
            now = self.clock()
            stale_after = timedelta(days=self.settings.notifications.stale_after_days)
            records = await self.store.get_states(list({n for n, _ in updates}))
            states = {n: r.state for n, r in records.items()}
            transitions: list[Transition] = []
            subscriptions: list[Subscription] | None = None
            store_updates: list[ShipmentUpdate] = []
            observed: list[tuple[Transition, ShipmentFacts]] = []
            for number, info in updates:
                extra = (extras or {}).get(number, {})
                transition = decide(
                    states.get(number), number, info, now=now, stale_after=stale_after
                )
                transitions.append(transition)
                if not transition.applies:
                    continue
                record = records.get(number)
                facts = ShipmentFacts(
                    number=number,
                    carrier=(record.carrier if record and record.carrier else None)
                    or info.first_carrier
                    or None,
                    tag=record.tag if record else extra.get("tag"),
                    order=record.order_number if record else None,
                    email=record.email if record else None,
                    origin_country=info.origin_country,
                    destination_country=info.destination_country,
                )
                intents = self.rules.intents(transition, facts)
                if transition.notifies and subscriptions is None:
                    subscriptions = await self.store.subscriptions()
                intents += self._subscription_intents(transition, subscriptions or ())
                observed.append((transition, facts))
                store_updates.append(
                    ShipmentUpdate(
                        number=number,
                        info=info,
                        transition=transition,
                        intents=intents,
                        tag=facts.tag,
                        carrier=facts.carrier,
                        pushed_at=extra.get("pushed_at"),
                    )
                )
                states[number] = next_state(states.get(number), transition, info)
            created = await self.store.apply_updates(
                store_updates,
                now=now,
                seller_day_start=self.seller_day_start(now),
                seller_daily_limit=self.settings.notifications.seller.daily_limit,
            )
        for update in store_updates:
            self._publish(Change("shipment", update.number, update.transition.new_status))
        for row in created:
            self._publish(Change("notification", row.number, None, row.id, row.send_status))
        if self._plugins is not None:
            for transition, facts in observed:
                await self._plugins.notify_transition(transition, facts)
        if any(row.send_status == "pending" for row in created):
            self._wake.set()
        return transitions, created

    def _subscription_intents(
        self, transition: Transition, subscriptions: Sequence[Subscription]
    ) -> list[NotificationIntent]:
        """Seller alerts for the places subscribed to this status (``/track subscribe``).

        They are seller notifications like the default ones: the seller switch turns them
        off, the daily limit counts them, and the history names the default ``seller``
        condition.
        """
        if not transition.notifies or not self.settings.notifications.seller.enabled:
            return []
        return [
            NotificationIntent(
                audience="seller",
                channel=sub.channel,
                recipient=sub.target,
                condition="seller",
                condition_kind="default",
                from_status=transition.old_status,
                to_status=transition.new_status,
            )
            for sub in subscriptions
            if transition.new_status in sub.statuses
        ]

    def seller_day_start(self, now: datetime) -> datetime:
        """Midnight of ``now``'s day in the configured time zone, as naive UTC."""
        zone = self.settings.notifications.zone
        local = now.replace(tzinfo=UTC).astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.astimezone(UTC).replace(tzinfo=None)

    async def _mark_stopped(self, stopped: Sequence[TrackingStopped]) -> None:
        now = self.clock()
        records = await self.store.get_shipments([s.number for s in stopped])
        for item in stopped:
            record = records.get(item.number)
            if record is None:
                continue
            await self.store.update_shipment(item.number, active=False, stopped_at=now)
            self._publish(Change("shipment", item.number, record.status))

    async def process_inbox(self, limit: int = 500) -> int:
        """Apply stored webhook pushes, oldest first; returns how many rows were handled.

        Pushes of one batch are applied in one transaction, in the order received. When the
        batch fails, its rows are applied one by one, so that one bad row never holds back
        the others: a row that fails is retried later with backoff (``INBOX_RETRY_DELAYS``)
        and, once those tries are spent, quarantined (``failed``, with its error) until
        ``trackops inbox replay``. A row that cannot be read at all is quarantined at once.
        Every failure is logged at WARNING with its reason. A store that cannot be used at all
        (unreachable, locked, full) charges no row: the error propagates and the caller tries
        again later. Each push gets one structured log line: inbox id, number, event, status
        change, time spent.
        """
        async with self._inbox_lock:
            rows = await self.store.inbox_pending(limit, now=self.clock())
            if not rows:
                return 0
            try:
                await self._process_rows(rows)
            except Exception as exc:
                if is_transient(exc) or len(rows) == 1:
                    if not is_transient(exc):
                        await self._inbox_failure(rows[0], exc)
                        return 1
                    raise
                log.warning(
                    "inbox batch of %d pushes failed (%s); applying them one by one",
                    len(rows),
                    _reason(exc),
                )
                for row in rows:
                    try:
                        await self._process_rows([row])
                    except Exception as row_exc:
                        if is_transient(row_exc):
                            raise
                        await self._inbox_failure(row, row_exc)
            return len(rows)

    async def _inbox_failure(self, row: InboxRow, exc: BaseException) -> None:
        """Charge one failed attempt to ``row``: retry later, or quarantine after the last."""
        attempts = row.attempts + 1
        reason = _reason(exc)
        now = self.clock()
        if attempts > len(self.inbox_retry_delays):
            await self.store.inbox_quarantine(
                row.id, attempts=attempts, error=reason, failed_at=now
            )
            log.warning(
                "inbox row %s quarantined after %d attempts: %s "
                "(see `trackops inbox --failed`, replay with `trackops inbox replay %s`)",
                row.id,
                attempts,
                reason,
                row.id,
            )
            return
        delay = self.inbox_retry_delays[attempts - 1]
        await self.store.inbox_retry_later(
            row.id, attempts=attempts, error=reason, next_attempt_at=now + timedelta(seconds=delay)
        )
        log.warning(
            "inbox row %s failed (attempt %d of %d), retrying in %g s: %s",
            row.id,
            attempts,
            len(self.inbox_retry_delays) + 1,
            delay,
            reason,
        )

    async def _process_rows(self, rows: Sequence[InboxRow]) -> None:
        """Decode and apply ``rows`` in one go, then mark them done (raises on failure)."""
        started = time.perf_counter()
        updates: list[tuple[str, TrackInfo]] = []
        update_rows: list[tuple[int, datetime]] = []
        extras: dict[str, dict[str, Any]] = {}
        stopped: list[TrackingStopped] = []
        unreadable: list[tuple[InboxRow, str]] = []
        for row in rows:
            try:
                envelope = decode_push(row.body)
                data = decode_push_data(envelope.event, bytes(envelope.data))
                if data is not None and not _plausible_number(data.number):
                    raise WireError(
                        f"push for tracking number {data.number[:60]!r}: expected 1 to 100 "
                        "characters without control characters"
                    )
                if isinstance(data, TrackingUpdated) and not _fits_int32(
                    int(data.track.package_status)
                ):
                    # Unknown status codes are kept, but one no column can hold is refused.
                    raise WireError(
                        f"push for {data.number}: status code {int(data.track.package_status)} "
                        "is out of range (expected a code from -2147483648 to 2147483647)"
                    )
            except WireError as exc:
                unreadable.append((row, str(exc)))
                _log_push(row.id, None, "unreadable", error=str(exc))
                continue
            if isinstance(data, TrackingUpdated):
                updates.append((data.number, data.track))
                update_rows.append((row.id, row.received_at))
                extras[data.number] = {"tag": data.tag, "pushed_at": row.received_at}
            elif isinstance(data, TrackingStopped):
                stopped.append(data)
                _log_push(row.id, data.number, envelope.event)
            else:
                _log_push(row.id, None, envelope.event, note="event type not acted on")
        transitions, notes = await self.apply_track_infos(updates, extras)
        if push_log.isEnabledFor(logging.INFO):
            _say_applied(transitions, notes)
        if stopped:
            await self._mark_stopped(stopped)
        now = self.clock()
        ms = round((time.perf_counter() - started) * 1000, 2)
        for (row_id, received_at), t in zip(update_rows, transitions, strict=True):
            _log_push(
                row_id,
                t.number,
                EVENT_TRACKING_UPDATED,
                change=f"{t.old_status.slug}->{t.new_status.slug}" if t.status_changed else None,
                applied=t.applies,
                duplicate=t.duplicate,
                out_of_order=t.out_of_order,
                notified=t.notifies,
                batch_ms=ms,
                waited_s=round((now - received_at).total_seconds(), 3),
            )
        bad = {row.id for row, _ in unreadable}
        await self.store.inbox_done_many(
            [row.id for row in rows if row.id not in bad], processed_at=now
        )
        # Reading it again cannot help: quarantined at once, replayable after an upgrade.
        for row, reason in unreadable:
            await self.store.inbox_quarantine(
                row.id, attempts=row.attempts + 1, error=reason, failed_at=now
            )
            log.warning(
                "inbox row %s quarantined: %s (replay with `trackops inbox replay %s`)",
                row.id,
                reason,
                row.id,
            )

    async def replay_inbox(self, ids: Sequence[int]) -> list[int]:
        """Put quarantined pushes back into processing and process them now.

        Returns the ids that were quarantined (others are ignored); whether each then applied
        is in the store (``Store.inbox_get``): a row that fails again is quarantined again.
        """
        replayed = await self.store.inbox_replay(ids)
        if replayed:
            while await self.process_inbox():
                pass
        return replayed

    # ------------------------------------------------------------------ dispatcher

    async def dispatch_pending(self, limit: int = 200) -> int:
        """Send every due notification once; returns how many were attempted."""
        async with self._dispatch_lock:
            now = self.clock()
            # A claim leases the rows, so several `serve` processes on one database never
            # send the same row; a dispatcher that dies leaves them due again after the lease.
            rows = await self.store.claim_due(
                now=now, limit=limit, lease=_CLAIM_LEASE, worker=self.worker
            )
            if not rows:
                return 0
            rows = await self._drop_superseded(rows)
            numbers = list({r.number for r in rows if r.number})
            shipments = await self.store.get_shipments(numbers) if numbers else {}
            # Reports carry their shipment list as of sending, so a retried or resent report
            # is never stale; each report's list is built once per dispatch.
            built: dict[tuple[str, datetime], tuple[Attachment, ...]] = {}
            attachments: dict[int, tuple[Attachment, ...]] = {}  # by row id
            for row in rows:
                kind = _report_kind(row)
                if kind is None:
                    continue
                if (kind, row.created_at) not in built:
                    name, content = await self.report_csv(kind, row.created_at, sent_at=now)
                    built[kind, row.created_at] = (
                        Attachment(filename=name, content=content, mime_type="text/csv"),
                    )
                attachments[row.id] = built[kind, row.created_at]
            semaphore = asyncio.Semaphore(_SEND_CONCURRENCY)

            async def chain(rows: list[NotificationRecord]) -> None:
                # One shipment's news to one person goes out oldest first (core.outbox).
                async with semaphore:
                    for row in rows:
                        extra = attachments.get(row.id, ())
                        await self._send(row, shipments.get(row.number or ""), extra)

            await asyncio.gather(*(chain(c) for c in outbox.in_order(rows)))
            return len(rows)

    async def _drop_superseded(self, rows: list[NotificationRecord]) -> list[NotificationRecord]:
        """Record as superseded the claimed rows that are no longer news (``core.outbox``);
        the rows still to send."""
        numbers = [r.number for r in rows if r.number and outbox.news_key(r) is not None]
        periods = [r.period for r in rows if r.period and outbox.report_key(r) is not None]
        sent_news = await self.store.sent_news(numbers) if numbers else {}
        sent_reports = await self.store.sent_reports(periods) if periods else {}
        superseded = outbox.supersessions(rows, sent_news, sent_reports)
        for row in rows:
            reason = superseded.get(row.id)
            if reason is None:
                continue
            await self.store.mark_notification(
                row.id,
                send_status=outbox.SUPERSEDED,
                reason=reason,
                attempts=row.attempts,
                sent_at=None,
                next_attempt_at=None,
            )
            log.info("notification %s to %s via %s: %s", row.id, row.recipient, row.channel, reason)
            self._publish(Change("notification", row.number, None, row.id, outbox.SUPERSEDED))
        return [r for r in rows if r.id not in superseded]

    async def _send(
        self,
        row: NotificationRecord,
        shipment: ShipmentRecord | None,
        attachments: tuple[Attachment, ...] = (),
    ) -> None:
        attempts = row.attempts + 1
        channel = self.channels.get(row.channel)
        reason: str | None
        retryable = True
        if channel is None:
            reason, retryable = f"channel {row.channel!r} is not configured", False
        else:
            try:
                message = self.message_for(row, shipment)
                if attachments:
                    message = dataclasses.replace(message, attachments=attachments)
                await channel.send(message)
                reason = None
            except ChannelError as exc:
                reason, retryable = exc.reason, exc.retryable
            except Exception as exc:  # a plugin's bug must not stop the others
                reason = f"channel {row.channel!r} failed: {type(exc).__name__}: {exc}"
        if reason is not None:
            reason = redact(reason)  # the history keeps no webhook token or password
        now = self.clock()
        if reason is None:
            await self.store.mark_notification(
                row.id,
                send_status="sent",
                reason=None,
                attempts=attempts,
                sent_at=now,
                next_attempt_at=None,
            )
            status = "sent"
        elif retryable and attempts < self.settings.notifications.max_attempts:
            delay = _RETRY_BASE_SECONDS * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
            await self.store.mark_notification(
                row.id,
                send_status="pending",
                reason=reason,
                attempts=attempts,
                sent_at=None,
                next_attempt_at=now + timedelta(seconds=delay),
            )
            status = "pending"
        else:
            await self.store.mark_notification(
                row.id,
                send_status="failed",
                reason=reason,
                attempts=attempts,
                sent_at=None,
                next_attempt_at=None,
            )
            status = "failed"
        if reason:
            log.warning(
                "notification %s to %s via %s: %s (%s)",
                row.id,
                row.recipient,
                row.channel,
                reason,
                status,
            )
        self._publish(Change("notification", row.number, None, row.id, status))

    async def heartbeat(self) -> None:
        """Record that this process is alive (a real write: the health check relies on it)."""
        await self.store.heartbeat(self.worker, host=self.host, pid=os.getpid(), now=self.clock())

    def message_for(self, row: NotificationRecord, shipment: ShipmentRecord | None) -> Message:
        """The ``Message`` a channel renders for one history row.

        Outside text (carrier events, numbers, orders, names, tags) is made safe here, once
        for every channel (``text.safe_text``): no control or bidi characters reach an email
        or a chat message. The tracking URL carries the number percent-encoded.
        """
        info = shipment.info if shipment else None
        carrier = (shipment.carrier if shipment else None) or (info.first_carrier if info else None)
        event = _event_of(row) or (info.latest_event if info else None)
        if event is not None:
            event = Event(
                time_raw=_safe_or_none(event.time_raw),
                location_mapping=event.location_mapping,
                location=_safe_or_none(event.location),
                location_detail=_safe_or_none(event.location_detail),
                description=_safe_or_none(event.description),
            )
        return Message(
            notification_id=row.id,
            audience=row.audience,  # type: ignore[arg-type]
            channel=row.channel,
            recipient=row.recipient,
            condition=row.condition,
            condition_kind=row.condition_kind,  # type: ignore[arg-type]
            number=safe_text(row.number),
            order=_safe_or_none(row.order_number),
            buyer_name=_safe_or_none(shipment.buyer_name) if shipment else None,
            tag=_safe_or_none(shipment.tag) if shipment else None,
            carrier=carrier,
            carrier_name=safe_text(self.carrier_name(carrier)),
            from_status=row.from_status,
            to_status=row.to_status,
            latest_event=event,
            origin_country=info.origin_country if info else None,
            destination_country=info.destination_country if info else None,
            tracking_url=self.settings.notifications.tracking_url.format(
                number=urllib.parse.quote(row.number, safe="")
            )
            if row.number
            else "",
            created_at=row.created_at,
            subject=safe_text(row.subject),
            body=safe_text(row.body, multiline=True),
        )

    async def run_dispatcher(self, idle_seconds: float = 5.0) -> None:
        """Send due notifications until cancelled; woken at once when new ones are stored.

        Records a heartbeat at most every ``_HEARTBEAT_EVERY`` (so that another host can tell
        this process is alive and leave its claims alone).
        """
        beat_at = float("-inf")
        while True:
            self._wake.clear()
            if time.monotonic() - beat_at >= _HEARTBEAT_EVERY:
                try:
                    await self.heartbeat()
                    beat_at = time.monotonic()
                except Exception as exc:
                    log.warning("heartbeat not recorded: %s", _reason(exc))
            try:
                sent = await self.dispatch_pending()
            except Exception:
                log.exception("dispatcher run failed; trying again")
                sent = 0
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle_seconds)

    async def send_report(self, kind: ReportKind) -> list[NotificationRecord]:
        """Queue the weekly or monthly report, or the full export, to every report recipient.

        One history row per recipient and channel (audience ``report``); they are sent at once
        and, like any notification, retried and recorded. The CSV attachment is built when
        sending.
        """
        reports = self.settings.notifications.reports
        if kind not in REPORT_KINDS:
            raise ValueError(f"unknown report {kind!r}; expected one of {', '.join(REPORT_KINDS)}")
        if not reports.recipients:
            raise ValueError(
                "no report recipients: set [notifications.reports] recipients in the config"
            )
        unknown = [c for c in reports.channels if c not in self.channels]
        if unknown:
            raise ValueError(
                f"[notifications.reports] channels: unknown channel {unknown[0]!r}; "
                f"known channels: {', '.join(sorted(self.channels)) or 'none'}"
            )
        now = self.clock()
        report = await self.build_report(kind, now)
        rows = []
        for channel in reports.channels:
            for recipient in reports.recipients:
                row = await self.store.add_notification(
                    NewNotification(
                        audience="report",
                        channel=channel,
                        recipient=recipient,
                        condition=f"{kind}-report" if kind != "export" else "export",
                        condition_kind="default",
                        created_at=now,
                        subject=report.subject,
                        body=report.body,
                        period=outbox.report_period(kind, now, self.settings.notifications.zone),
                    )
                )
                rows.append(row)
                self._publish(Change("notification", "", None, row.id, row.send_status))
        await self.dispatch_pending()
        return [await self.store.get_notification(r.id) or r for r in rows]

    async def build_report(self, kind: ReportKind, now: datetime) -> Report:
        """The ``kind`` report as of ``now``, from figures counted in SQL."""
        start, end = period_of(kind, now)
        async with self.store.read() as conn:
            figures = await queries.report_figures(conn, start=start, end=end)
        return build_report(kind, figures, now=now)

    async def export_csv(self, *, updated_since: datetime | None = None) -> bytes:
        """Every shipment as CSV (or those updated since ``updated_since``), read from the
        store a batch at a time."""
        export = CsvExport(self.carrier_name)
        async with self.store.read() as conn:
            async for batch in queries.iter_export_rows(
                conn, self.store.dialect_name, updated_since=updated_since
            ):
                export.add_plain(batch)
        return export.content()

    async def report_csv(
        self, kind: ReportKind, created_at: datetime, *, sent_at: datetime
    ) -> tuple[str, bytes]:
        """The CSV file a ``kind`` report made at ``created_at`` carries, and its name.

        The full export lists every shipment. A weekly or monthly report lists the shipments
        updated in its period (moved, registered, stopped, edited), as they are at
        ``sent_at``: all 100,000 of a big shop's shipments would make a weekly mail of some
        20 MB, which mail servers refuse, while ``trackops report export`` gives them all.
        """
        if kind == "export":
            return f"trackops-shipments-{sent_at:%Y-%m-%d}.csv", await self.export_csv()
        start, _ = period_of(kind, created_at)
        name = f"trackops-shipments-updated-{start:%Y-%m-%d}-to-{sent_at:%Y-%m-%d}.csv"
        return name, await self.export_csv(updated_since=start)

    async def resend(self, notification_id: int) -> NotificationRecord:
        """Send a failed notification again as a new history row (17TRACK cannot; we can)."""
        row = await self.store.get_notification(notification_id)
        if row is None:
            raise LookupError(f"no notification with id {notification_id}")
        if row.send_status != "failed":
            raise ValueError(
                f"notification {notification_id} is {row.send_status}; only failed ones are resent"
            )
        new = await self.store.add_notification(
            NewNotification(
                number=row.number,
                order_number=row.order_number,
                audience=row.audience,
                channel=row.channel,
                recipient=row.recipient,
                condition=row.condition,
                condition_kind=row.condition_kind,
                from_status=row.from_status,
                to_status=row.to_status,
                created_at=self.clock(),
                resend_of=row.id,
                event_time=row.event_time,
                event_location=row.event_location,
                event_description=row.event_description,
            )
        )
        self._publish(Change("notification", new.number, None, new.id, new.send_status))
        await self.dispatch_pending()
        return await self.store.get_notification(new.id) or new
