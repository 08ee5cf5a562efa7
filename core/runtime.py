"""Start-up wiring, in one place: what ``serve``, ``demo`` and the dashboard share.

``open_service(settings)`` opens the engine (store, plugins, rules) and hands out the
``Service`` that front-ends hold. ``running(service)`` starts, around it, the listener (the
push endpoint, ``/healthz`` and whatever plugins mount through ``trackops_setup_server``, such
as Slack's routes), the inbox processor, the dispatcher and the periodic resync; optionally a
periodic sync (the dashboard's own). ``serve(settings)`` is ``trackops serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from trackops.core.config import ConfigError, Settings
from trackops.core.service import Service, open_service
from trackops.core.webhook import create_app, runner_options

__all__ = ["Running", "open_service", "running", "serve"]

log = logging.getLogger("trackops.serve")


@dataclass
class Running:
    """A running listener: its base URL (None when not listening) and application."""

    app: web.Application
    url: str | None


@contextlib.asynccontextmanager
async def running(
    service: Service,
    *,
    listen: bool = True,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
    sync_every: float | None = None,
    background: bool = True,
) -> AsyncIterator[Running]:
    """Run the listener and the background work around ``service`` for the block.

    ``listen=False`` runs the background work only (a dashboard beside a ``serve`` that
    owns the port). ``sock`` listens on an already bound socket. ``sync_every`` seconds: sync
    every tracked shipment periodically (the dashboard's own sync). On exit: stop accepting,
    finish requests in flight, write queued pushes, stop the background work.
    """
    settings = service.settings
    app = create_app(settings, service, background=background)
    plugins = service.engine.plugins
    if plugins is not None:
        plugins.setup_server(app, service, settings)
    runner = web.AppRunner(app, **runner_options(settings))
    await runner.setup()
    url: str | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        if listen:
            site: web.BaseSite
            if sock is not None:
                site = web.SockSite(runner, sock)
                bound_host, bound_port = sock.getsockname()[:2]
            else:
                bound_host = host or settings.webhook.host
                bound_port = settings.webhook.port if port is None else port
                site = web.TCPSite(runner, bound_host, bound_port, backlog=1024)
            await site.start()
            if not sock and bound_port == 0:
                server = getattr(site, "_server", None)
                if server is not None and server.sockets:
                    bound_port = server.sockets[0].getsockname()[1]
            url = f"http://{bound_host}:{bound_port}"
        if sync_every:
            tasks.append(asyncio.create_task(_sync_loop(service, sync_every), name="sync"))
        yield Running(app=app, url=url)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()


async def _sync_loop(service: Service, every: float) -> None:
    """Sync every tracked shipment every ``every`` seconds (failures logged, retried)."""
    while True:
        await asyncio.sleep(every)
        try:
            await service.sync(actor="schedule")
        except Exception as exc:
            log.warning("periodic sync failed; trying again in %gs: %s", every, exc)


async def serve(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """``trackops serve``: run the listener until cancelled, then shut down gracefully.

    Shutdown stops accepting, lets requests in flight finish, writes queued pushes, and leaves
    unprocessed inbox rows for the next start.
    """
    if not settings.api.key:
        where = f"{settings.path}: " if settings.path else ""
        raise ConfigError(
            f'{where}[api] key is empty: set your 17TRACK API key (or "env:NAME");'
            " 17TRACK signs its pushes with it"
        )
    async with open_service(settings) as service:
        service.engine.check_config()
        async with running(service, host=host, port=port) as run:
            # Said once, on stdout (callers wait for it), not as a log warning.
            print(f"trackops serve: listening on {run.url}{settings.webhook.path}", flush=True)
            if ready is not None:
                ready.set()
            await asyncio.Event().wait()
