"""``trackops demo``: the whole product on one machine, no API key, no config.

It starts the built-in 17TRACK sandbox, an engine on a throw-away SQLite file, and the webhook
listener the sandbox pushes to; registers a handful of shipments with order numbers and buyer
emails; and prints shipments and notifications as they happen. The sandbox runs fast
(``speed`` simulated seconds per real second) so parcels travel in about a minute.

Notifications go to the built-in ``console`` channel (``trackops.plugins.console``), which
prints them, so the demo needs no mail server; the history is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from aiohttp import web
from trackops.core.config import (
    ApiSettings,
    CustomerSettings,
    NotificationSettings,
    Secret,
    SellerSettings,
    Settings,
    StoreSettings,
    WebhookSettings,
)
from trackops.core.engine import Change, Engine, RegisterRequest
from trackops.core.text import safe_text
from trackops.plugins.console import ConsoleChannel

__all__ = ["ConsoleChannel", "demo_numbers", "demo_settings", "run_demo"]

DEMO_KEY = "demo-key"
_COUNTRIES = ("CN", "US", "GB", "DE", "FR", "AU", "JP", "ES")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_numbers(count: int, seed: int = 0) -> list[str]:
    """``count`` UPU-style numbers (RR123456789CN) the sandbox can detect."""
    return [
        f"R{'RLCE'[i % 4]}{(seed * 7919 + 104729 * (i + 1)) % 10**9:09d}{_COUNTRIES[i % 8]}"
        for i in range(count)
    ]


def demo_settings(
    workdir: Path, sandbox_port: int, listener_port: int, *, rate_limit: float = 3.0
) -> Settings:
    """Settings that point the engine at a local sandbox and a throw-away store."""
    return Settings(
        api=ApiSettings(
            key=Secret(DEMO_KEY),
            base_url=f"http://127.0.0.1:{sandbox_port}/track/v1",
            rate_limit=rate_limit,
        ),
        store=StoreSettings(url=f"sqlite:///{workdir / 'demo.db'}"),
        webhook=WebhookSettings(host="127.0.0.1", port=listener_port),
        notifications=NotificationSettings(
            customer=CustomerSettings(enabled=True, channels=("console",)),
            seller=SellerSettings(email="ops@shop.example", channels=("console",)),
        ),
    )


async def run_demo(
    *,
    speed: float = 3600.0,
    seed: int = 0,
    shipments: int = 24,
    headless: bool = True,
    seconds: float = 0,
    out: TextIO = sys.stdout,
    workdir: Path | None = None,
) -> list[Change]:
    """Run the demo until ``seconds`` pass (0 = until cancelled); returns the changes seen."""
    from trackops.core.sandbox import SandboxConfig, running_sandbox
    from trackops.core.webhook import create_app, runner_options

    seen: list[Change] = []
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trackops-")))
        listener_port = free_port()
        webhook_url = f"http://127.0.0.1:{listener_port}/webhooks/17track"
        config = SandboxConfig(key=DEMO_KEY, webhook_url=webhook_url, speed=speed, seed=seed)
        async with running_sandbox(config) as sandbox:
            settings = demo_settings(workdir, sandbox.port, listener_port)
            console = ConsoleChannel(out=out)
            async with Engine(settings, channels=[console], load_plugins=False) as engine:
                app = create_app(settings, engine)
                runner = web.AppRunner(app, **runner_options(settings))
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", listener_port).start()
                try:
                    out.write(
                        f"trackops demo: sandbox {settings.api.base_url}, listener {webhook_url}\n"
                        f"store {settings.store.url}; parcels move x{speed:g} real time."
                        " Ctrl-C to stop.\n"
                    )
                    if not headless:
                        out.write("(the dashboard is not built yet: showing events as text)\n")
                    requests = [
                        RegisterRequest(
                            number=number,
                            order=str(1001 + i),
                            email=f"buyer{i + 1}@example.com",
                            name=f"Buyer {i + 1}",
                        )
                        for i, number in enumerate(demo_numbers(shipments, seed))
                    ]
                    async with engine.subscribe() as queue:
                        outcome = await engine.register(requests)
                        out.write(f"registered {len(outcome.accepted)} shipments\n")
                        for rej in outcome.rejected:
                            out.write(f"  refused {rej.number}: {rej.error.message}\n")
                        out.flush()
                        await _print_changes(engine, queue, seen, out, seconds)
                finally:
                    await runner.cleanup()
    return seen


async def _print_changes(
    engine: Engine,
    queue: asyncio.Queue[Change],
    seen: list[Change],
    out: TextIO,
    seconds: float,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds if seconds > 0 else None
    last: dict[str, str] = {}
    while True:
        timeout = None if deadline is None else deadline - loop.time()
        if timeout is not None and timeout <= 0:
            return
        try:
            change = await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return
        seen.append(change)
        if change.kind != "shipment" or change.status is None or change.number is None:
            continue
        if last.get(change.number) == change.status.display:
            continue
        last[change.number] = change.status.display
        record = await engine.store.get_shipment(change.number)
        event = record.info.latest_event if record and record.info else None
        where = f" at {event.place}" if event and event.place else ""
        what = f": {event.description}" if event and event.description else ""
        line = f"{change.number:15} {change.status.display:12}{where}{what}"
        out.write(safe_text(line)[:160] + "\n")  # carrier text: never raw on a terminal
        out.flush()
