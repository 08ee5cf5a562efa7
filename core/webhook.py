"""The push listener: 17TRACK's signed webhook pushes in, nothing acknowledged ever lost.

Answers, checked in this order (the contract): 403 for a source outside ``allow_networks``;
413 over ``max_body_bytes``; 400 for a body that is not a JSON object with ``event`` and
``data``; 401 for a missing or wrong ``sign``; 200 once the push is durable in the inbox
(duplicates and out-of-order pushes included); 503 when it cannot be stored, so 17TRACK
retries. A client that sends its body too slowly gets 408.

Durability without slowness: requests hand their body to ``InboxWriter``, which writes every
body waiting at that moment in one transaction (group commit) and only then lets each request
answer 200. Processing happens later, in the background, from the inbox through
``Service.process_inbox``; a slow mail server never slows the listener.

The listener holds the ``Service`` and nothing else (an import-linter contract forbids this
module the engine, the store and the queries), like every front-end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from trackops.core.config import Settings
from trackops.core.redact import install_log_redaction
from trackops.core.service import Service, StoreError
from trackops.core.text import safe_text
from trackops.core.wire import PushEnvelope, WireError, decode_push, verify_push_signature

__all__ = [
    "SERVICE",
    "SETTINGS",
    "STATS",
    "WRITER",
    "InboxWriter",
    "ListenerStats",
    "create_app",
    "quiet_malformed_requests",
    "runner_options",
    "serve",
    "signature_problem",
]

log = logging.getLogger("trackops.webhook")
push_log = logging.getLogger("trackops.pushes")  # the per-push story, with the engine's lines

_MAX_GROUP = 256
_BURST_WINDOW = 0.2  # seconds: a push this recent means a burst is on
_BURST_BATCH = 100
_BURST_SHARE = 0.25  # of the loop's time that processing may take during a burst


@dataclass
class ListenerStats:
    """Counters for ``/healthz`` and the logs."""

    accepted: int = 0
    rejected: int = 0
    store_failures: int = 0
    last_push_at: datetime | None = None
    started_at: float = field(default_factory=time.monotonic)


class InboxWriter:
    """Group commit: writes waiting bodies in one transaction, then releases their requests."""

    def __init__(
        self,
        service: Service,
        on_stored: asyncio.Event | None = None,
        *,
        busy_timeout: float | None = None,
    ) -> None:
        self._service = service
        self._busy_timeout = busy_timeout
        self._queue: asyncio.Queue[tuple[bytes, datetime, asyncio.Future[int]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._on_stored = on_stored
        self._last_write = float("-inf")
        self.last_error: str | None = None
        """Why the latest write failed; None once a write succeeds (``/healthz`` shows it)."""

    def start(self) -> None:
        """Start the writer task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="trackops-inbox-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def quiet_for(self) -> float:
        """Seconds since the last push arrived (infinite before the first)."""
        return time.monotonic() - self._last_write

    async def write(self, body: bytes, received_at: datetime) -> int:
        """Store ``body`` durably; returns the inbox id. Raises when the store fails."""
        self._last_write = time.monotonic()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put((body, received_at, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _MAX_GROUP:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                ids = await self._service.store_pushes(
                    [(b, t) for b, t, _ in batch], busy_timeout=self._busy_timeout
                )
            except Exception as exc:
                log.error("inbox write failed for %d pushes: %s", len(batch), exc)
                self.last_error = str(exc) or type(exc).__name__
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                self.last_error = None
                for (_, _, future), row_id in zip(batch, ids, strict=True):
                    if not future.done():
                        future.set_result(row_id)
                if self._on_stored is not None:
                    self._on_stored.set()
            finally:
                for _ in batch:
                    self._queue.task_done()


SERVICE = web.AppKey("service", Service)
SETTINGS = web.AppKey("settings", Settings)
WRITER = web.AppKey("writer", InboxWriter)
STATS = web.AppKey("stats", ListenerStats)
INBOX_EVENT = web.AppKey("inbox_event", asyncio.Event)
_Networks: TypeAlias = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
ALLOWED: web.AppKey[_Networks] = web.AppKey("allowed", list)
TRUSTED: web.AppKey[_Networks] = web.AppKey("trusted", list)


def _networks(values: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def client_address(request: web.Request, trusted: _Networks) -> str:
    """The client's address: the peer, or X-Forwarded-For's last untrusted hop behind a proxy."""
    peer = request.remote or ""
    if not trusted or not _in(peer, trusted):
        return peer
    forwarded = request.headers.get("X-Forwarded-For", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: _Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _answer(status: int, message: str) -> web.Response:
    return web.json_response(
        {"code": 0 if status == 200 else status, "message": message}, status=status
    )


class _BadBody(Exception):
    """The body could not be read as sent (e.g. ``Content-Encoding: gzip`` on plain bytes)."""


async def _read_body(request: web.Request, limit: int, within: float) -> bytes | None:
    """The body, or None when it is larger than ``limit``; ``TimeoutError`` when too slow,
    ``_BadBody`` when it cannot be decoded as its headers say."""
    try:
        return await _read_body_raw(request, limit, within)
    except (RequestPayloadError, HttpProcessingError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, HttpProcessingError) else exc
        detail = getattr(cause, "message", "") or type(cause).__name__
        encoding = request.headers.get("Content-Encoding", "")
        what = f"Content-Encoding {encoding!r}" if encoding else "the request's framing"
        raise _BadBody(f"body does not match {what}: {detail}") from None


async def _read_body_raw(request: web.Request, limit: int, within: float) -> bytes | None:
    length = request.content_length
    if length is not None and length > limit:
        return None
    async with asyncio.timeout(within):
        if length is not None:
            # The common case: aiohttp reads a known length in one go (client_max_size is
            # set to ``limit``, so a lying Content-Length still cannot exceed it).
            return await request.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


_STORED = b'{"code":0,"message":"stored"}'


def signature_problem(envelope: PushEnvelope, key: str) -> str | None:
    """``None`` when ``envelope`` is signed with ``key``; else "missing sign" or "wrong sign"."""
    if verify_push_signature(envelope, key):
        return None
    return "wrong sign" if envelope.sign else "missing sign"


def _closing(response: web.Response) -> web.Response:
    """``response``, then close the connection: the rest of the body was not (or could not
    be) read, so the connection cannot carry another request."""
    response.force_close()
    return response


def _refuse(request: web.Request, status: int, reason: str) -> web.Response:
    """Count, tell (``push_log``: reason and source, never the body or a signature), answer."""
    request.app[STATS].rejected += 1
    if push_log.isEnabledFor(logging.INFO):
        source = client_address(request, request.app[TRUSTED]) or "unknown address"
        push_log.info("push refused (%d %s) from %s", status, safe_text(reason)[:200], source)
    return _answer(status, reason)


async def handle_push(request: web.Request) -> web.Response:
    """``POST [webhook] path``: verify, store, answer."""
    app = request.app
    settings = app[SETTINGS]
    stats = app[STATS]
    started = time.perf_counter()
    allowed = app[ALLOWED]
    if allowed and not _in(client_address(request, app[TRUSTED]), allowed):
        return _refuse(request, 403, "source address not allowed")
    try:
        body = await _read_body(
            request, settings.webhook.max_body_bytes, settings.webhook.body_timeout
        )
    except TimeoutError:
        return _closing(_refuse(request, 408, "request body not received in time"))
    except _BadBody as exc:
        return _closing(_refuse(request, 400, str(exc)))
    if body is None:
        return _closing(
            _refuse(request, 413, f"body larger than {settings.webhook.max_body_bytes} bytes")
        )
    try:
        envelope = decode_push(body)
    except WireError as exc:
        return _refuse(request, 400, str(exc))
    problem = signature_problem(envelope, settings.api.key.reveal())
    if problem is not None:
        return _refuse(request, 401, problem)
    # The service's clock, like every other time stored (the sandbox's in demos and tests).
    now = app[SERVICE].now()
    try:
        row_id = await app[WRITER].write(body, now)
    except Exception as exc:
        stats.store_failures += 1
        # The writer logged the cause once for the whole batch (ERROR); one line per push here
        # would repeat it hundreds of times while, e.g., another process holds the lock.
        log.debug("push not stored, answering 503 so 17TRACK retries: %s", exc)
        return _answer(503, "push could not be stored; retry later")
    stats.accepted += 1
    stats.last_push_at = now
    if log.isEnabledFor(logging.DEBUG):
        ms = round((time.perf_counter() - started) * 1000, 2)
        log.debug(
            "push stored %s", json.dumps({"inbox_id": row_id, "event": envelope.event, "ms": ms})
        )
    return web.Response(body=_STORED, content_type="application/json")


async def handle_health(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 when pushes are stored and applied, else 503 with the reasons.

    503 when the store cannot be read or written (the write is a real one, this process's
    heartbeat, and the last push write must have succeeded: a full disk or a read-only file
    shows), when the inbox is stalled (its
    oldest unprocessed push is older than ``[webhook] stall_seconds``), or when pushes are
    quarantined (``trackops inbox --failed`` lists them). ``problems`` names each.
    """
    service = request.app[SERVICE]
    settings = request.app[SETTINGS]
    problems: list[str] = []
    stats = None
    try:
        stats = await service.inbox_status()
    except Exception as exc:
        problems.append(f"store not readable: {exc}")
    if stats is not None:
        try:
            await service.heartbeat()
        except Exception as exc:
            problems.append(f"store not writable: {exc}")
    writer_error = request.app[WRITER].last_error
    if writer_error is not None:  # what real pushes met: e.g. a full disk the probe misses
        problems.append(f"store not writable: the last pushes were not stored: {writer_error}")
    now = service.now()
    waited: float | None = None
    if stats is not None and stats.oldest_unprocessed_at is not None:
        waited = max(0.0, (now - stats.oldest_unprocessed_at).total_seconds())
        if waited > settings.webhook.stall_seconds:
            problems.append(
                f"inbox stalled: {stats.backlog} pushes unprocessed, the oldest for {waited:.0f} s"
            )
    if stats is not None and stats.failed:
        problems.append(
            f"{stats.failed} pushes quarantined after failing (trackops inbox --failed)"
        )
    if problems:
        log.warning("health check: %s", "; ".join(problems))
    last = stats.last_received_at if stats else None
    body = {
        "status": "ok" if not problems else "unhealthy",
        "problems": problems,
        "store": stats is not None and not any(p.startswith("store ") for p in problems),
        "inbox_backlog": stats.backlog if stats else None,
        "inbox_oldest_waiting_s": round(waited, 3) if waited is not None else None,
        "inbox_failed": stats.failed if stats else None,
        "last_push_at": last.isoformat() + "Z" if last else None,
        "accepted": request.app[STATS].accepted,
        "rejected": request.app[STATS].rejected,
        "store_failures": request.app[STATS].store_failures,
    }
    return web.json_response(body, status=200 if not problems else 503)


def setup_routes(app: web.Application, settings: Settings) -> None:
    """Every route of the listener, in one place."""
    app.router.add_post(settings.webhook.path, handle_push)
    app.router.add_get("/healthz", handle_health)


async def _inbox_worker(app: web.Application) -> AsyncIterator[None]:
    """Background: the inbox writer, the inbox processor and the dispatcher."""
    service = app[SERVICE]
    event = app[INBOX_EVENT]
    writer = app[WRITER]
    writer.start()

    async def process_loop() -> None:
        while True:
            event.clear()
            # During a burst the listener comes first: pushes are safe in the inbox, and
            # answering them fast is what keeps 17TRACK from retrying. So while pushes keep
            # arriving, processing takes at most a _BURST_SHARE of the time (small batches,
            # then a pause); when they stop, it catches up at full speed.
            burst = writer.quiet_for() < _BURST_WINDOW
            started = time.perf_counter()
            try:
                done = await service.process_inbox(limit=_BURST_BATCH if burst else 500)
            except Exception as exc:
                if isinstance(exc, StoreError) and exc.transient:
                    # The store, not a push: no traceback every 5 s.
                    log.warning("processing the inbox waits for the store: %s", exc)
                else:
                    log.exception("processing the inbox failed; trying again")
                done = 0
            if done:
                if burst:
                    spent = time.perf_counter() - started
                    await asyncio.sleep(spent * (1 - _BURST_SHARE) / _BURST_SHARE)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 5.0)

    tasks = [
        asyncio.create_task(process_loop(), name="trackops-inbox"),
        asyncio.create_task(service.run_dispatcher(), name="trackops-dispatcher"),
    ]
    tasks.append(
        asyncio.create_task(
            _prune_loop(service, app[SETTINGS].webhook.inbox_retention_days),
            name="trackops-prune",
        )
    )
    resync = app[SETTINGS].webhook.resync_hours
    if resync > 0:
        tasks.append(asyncio.create_task(_resync_loop(service, resync), name="trackops-resync"))
    yield
    # Stop accepting happened already (runner cleanup); write what is queued, then stop.
    await writer.stop()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _prune_loop(service: Service, retention_days: float) -> None:
    """Prune now, then every hour (the inbox never grows without bound)."""
    while True:
        try:
            pruned = await service.prune_inbox(retention_days)
        except Exception as exc:
            log.warning("pruning the inbox failed; trying again in an hour: %s", exc)
        else:
            if pruned.pushes or pruned.markers:
                log.info(
                    "pruned %d applied pushes and %d deletion markers",
                    pruned.pushes,
                    pruned.markers,
                )
        await asyncio.sleep(3600)


async def _resync_loop(service: Service, hours: float) -> None:
    """Every ``min(hours, 1 h)``, resync the shipments that have been quiet for ``hours``."""
    while True:
        await asyncio.sleep(min(hours * 3600, 3600))
        try:
            outcome = await service.resync_quiet(hours)
        except Exception:
            log.exception("periodic resync failed; trying again later")
        else:
            if outcome.numbers:
                log.info(
                    "resync of %d quiet shipments: %d updated",
                    len(outcome.numbers),
                    outcome.sync.applied,
                )


class _QuietMalformedRequests(logging.Filter):
    """aiohttp logs each malformed request (bad request line, header, framing) at ERROR with a
    traceback: anyone on the internet could fill the log. Such a record becomes one WARNING
    line without the traceback, at most once per ``every`` seconds, counting the ones held
    back; other records pass unchanged."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__("trackops")
        self.every = every
        self.suppressed = 0
        self._last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError | RequestPayloadError):
            return True
        now = time.monotonic()
        if now - self._last < self.every:
            self.suppressed += 1
            return False
        held, self.suppressed, self._last = self.suppressed, 0, now
        detail = getattr(exc, "message", "") or str(exc)
        record.msg = "malformed HTTP request refused (%s: %s)%s"
        record.args = (
            type(exc).__name__,
            str(detail).strip().splitlines()[0][:200] if str(detail).strip() else "",
            f"; {held} more in the last {self.every:g} s not logged" if held else "",
        )
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


_AIOHTTP_FILTER = _QuietMalformedRequests()


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger (idempotent)."""
    server_log = logging.getLogger("aiohttp.server")
    if _AIOHTTP_FILTER not in server_log.filters:
        server_log.addFilter(_AIOHTTP_FILTER)


def runner_options(settings: Settings) -> dict[str, Any]:
    """``web.AppRunner`` keyword arguments for the listener.

    ``keepalive_timeout`` doubles as the header timeout: aiohttp closes a connection on which
    no complete request arrived within it (a client sending its headers slowly, or nothing).
    """
    return {
        "access_log": None,
        "shutdown_timeout": 10.0,
        "keepalive_timeout": settings.webhook.header_timeout,
    }


def create_app(settings: Settings, service: Service, *, background: bool = True) -> web.Application:
    """The listener's aiohttp application over an open ``service`` (``open_service``).

    ``background`` runs the inbox processor and the dispatcher inside the app's lifetime.
    Run it with ``web.AppRunner(app, **runner_options(settings))``.
    """
    quiet_malformed_requests()
    install_log_redaction()
    app = web.Application(client_max_size=settings.webhook.max_body_bytes)
    app[SETTINGS] = settings
    app[SERVICE] = service
    app[STATS] = ListenerStats()
    app[INBOX_EVENT] = asyncio.Event()
    app[WRITER] = InboxWriter(
        service, app[INBOX_EVENT], busy_timeout=settings.webhook.store_timeout
    )
    app[ALLOWED] = _networks(settings.webhook.allow_networks)
    app[TRUSTED] = _networks(settings.webhook.trusted_proxies)
    setup_routes(app, settings)
    if background:
        app.cleanup_ctx.append(_inbox_worker)
    else:
        app.cleanup_ctx.append(_writer_only)
    return app


async def _writer_only(app: web.Application) -> AsyncIterator[None]:
    app[WRITER].start()
    yield
    await app[WRITER].stop()


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """``trackops serve`` (kept here for callers of this module; see ``runtime.serve``)."""
    from trackops.core.runtime import serve as run_serve

    await run_serve(settings, ready=ready)
