"""``trackops demo``: the dashboard over the built-in sandbox, with no key, config or internet.

What runs, all in this process: the 17TRACK sandbox on loopback; a service on a SQLite store
in a new folder; the real webhook listener (``trackops.core.runtime.running``, as ``serve``
uses it) that the sandbox's signed pushes arrive at; and the dashboard. About 60 shipments are
registered, chosen so that every one of the seven statuses shows: half of them have already
travelled (the sandbox's clock is moved on), the other half travel while you watch, and a
couple of new parcels are registered every ``TRICKLE`` seconds so something keeps moving.
Buyer emails and seller alerts go to the built-in ``console`` channel, written to a file in
the demo's folder (never over the dashboard) and shown in the notifications panel.

On exit it prints a short summary and the config and store paths, so that
``trackops --config <that> history`` works afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from trackops.core.wire import PackageStatus

if TYPE_CHECKING:
    from trackops.core.config import Settings
    from trackops.core.sandbox import RunningSandbox
    from trackops.core.service import Service

__all__ = ["DemoRun", "bound_socket", "demo_numbers", "pick_numbers", "run_demo", "running_demo"]

DEMO_KEY: Final = "demo-key"
ACTOR: Final = "demo"
TRICKLE: Final = 20.0  # seconds between two new parcels
_COUNTRIES: Final = ("CN", "US", "GB", "DE", "FR", "AU", "JP", "ES", "CA", "IT")


def bound_socket() -> socket.socket:
    """A loopback socket bound to a free port: the sandbox must know where to push before the
    listener starts, and binding now leaves no window for another program to take the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def demo_numbers(count: int, seed: int = 0) -> list[str]:
    """``count`` UPU-style numbers (``RR123456789CN``) the sandbox recognises."""
    return [
        f"R{'RLCE'[i % 4]}{(seed * 7919 + 104729 * (i + 1)) % 10**9:09d}{_COUNTRIES[i % 10]}"
        for i in range(count)
    ]


def pick_numbers(count: int, seed: int = 0) -> list[str]:
    """``count`` numbers whose sandbox histories end in every status, round-robin."""
    from trackops.core.sandbox import detect_carrier, generate_history

    by_status: dict[PackageStatus, list[str]] = {s: [] for s in PackageStatus}
    for number in demo_numbers(count * 12, seed):
        carrier = detect_carrier(number) or 0
        by_status[generate_history(number, seed, carrier).final_status].append(number)
    picked: list[str] = []
    while len(picked) < count and any(by_status.values()):
        for numbers in by_status.values():
            if numbers and len(picked) < count:
                picked.append(numbers.pop(0))
    return picked


def demo_config(workdir: Path, sandbox_url: str, listener_port: int) -> dict[str, Any]:
    """The demo's config file contents (written once, with tomli-w)."""
    return {
        "api": {"key": DEMO_KEY, "base_url": sandbox_url, "rate_limit": 10},
        "store": {"url": f"sqlite:///{workdir / 'demo.db'}"},
        "webhook": {"host": "127.0.0.1", "port": listener_port},
        "notifications": {
            "customer": {"enabled": True, "channels": ["console"]},
            "seller": {"enabled": True, "email": "ops@shop.example", "channels": ["console"]},
        },
        "channels": {"console": {"output": "notifications.log"}},
    }


@dataclass
class DemoRun:
    """A running demo: its service, sandbox, folder and config file."""

    service: Service
    settings: Settings
    sandbox: RunningSandbox
    workdir: Path
    config_path: Path
    registered: list[str] = field(default_factory=list)

    @property
    def store_path(self) -> Path:
        """The SQLite file."""
        return self.workdir / "demo.db"


def _requests(numbers: list[str], start: int) -> list[Any]:
    from trackops.core.service import RegisterRequest

    return [
        RegisterRequest(
            number=number,
            order=str(1001 + start + i),
            email=f"buyer{start + i + 1}@example.com",
            name=f"Buyer {start + i + 1}",
            tag=("gift", "b2b", None, "express")[(start + i) % 4],
        )
        for i, number in enumerate(numbers)
    ]


@contextlib.asynccontextmanager
async def running_demo(
    *, speed: float = 3600.0, seed: int = 0, shipments: int = 60, workdir: Path | None = None
) -> AsyncIterator[DemoRun]:
    """Sandbox + service + listener on a new folder, shipments registered; yields the run."""
    from trackops.core.config import load_settings, write_config
    from trackops.core.runtime import open_service, running
    from trackops.core.sandbox import SandboxConfig, running_sandbox

    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="trackops-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sock = bound_socket()
    listener_port = int(sock.getsockname()[1])
    webhook_url = f"http://127.0.0.1:{listener_port}/webhooks/17track"
    sandbox_config = SandboxConfig(
        key=DEMO_KEY, webhook_url=webhook_url, speed=speed, seed=seed, rate_limit=10
    )
    async with running_sandbox(sandbox_config) as sandbox:
        config_path = workdir / "demo.toml"
        write_config(config_path, demo_config(workdir, sandbox.base_url, listener_port), force=True)
        settings = load_settings(config_path)
        async with open_service(settings) as service, running(service, listen=True, sock=sock):
            run = DemoRun(service, settings, sandbox, workdir, config_path)
            numbers = pick_numbers(shipments, seed)
            travelled, live = numbers[: len(numbers) // 2], numbers[len(numbers) // 2 :]
            # The first half has travelled already: register, then move the sandbox's clock.
            await service.register(_requests(travelled, 0), actor=ACTOR)
            sandbox.state.advance(8 * 86_400)
            await service.register(_requests(live, len(travelled)), actor=ACTOR)
            run.registered = list(numbers)
            yield run


async def trickle(run: DemoRun, seed: int, every: float = TRICKLE) -> None:
    """Register a new parcel every ``every`` seconds (until cancelled), so the demo stays alive."""
    for number in pick_numbers(400, seed + 1):
        if number in run.registered:
            continue
        await asyncio.sleep(every)
        await run.service.register(_requests([number], len(run.registered)), actor=ACTOR)
        run.registered.append(number)


async def summary(run: DemoRun) -> str:
    """What the demo did, and how to look at it again."""
    from trackops.core.service import HistoryQuery

    counts = await run.service.status_counts()
    sent, after = 0, None
    while True:
        page = await run.service.history(
            HistoryQuery(send_statuses=frozenset({"sent"})), limit=200, after=after
        )
        sent += len(page.items)
        after = page.next_cursor
        if after is None:
            break
    parts = ", ".join(f"{counts.get(s, 0)} {s.display.lower()}" for s in PackageStatus)
    return (
        f"trackops demo: {sum(counts.values())} shipments ({parts}); "
        f"{sent} notifications sent to the console channel.\n"
        f"  config: {run.config_path}\n"
        f"  store:  {run.store_path}\n"
        f"  notifications written to: {run.workdir / 'notifications.log'}\n"
        f"Look again with: trackops --config {run.config_path} history\n"
        f"             or: trackops --config {run.config_path} tui\n"
    )


async def run_demo(
    *,
    speed: float = 3600.0,
    seed: int = 0,
    shipments: int = 60,
    workdir: Path | None = None,
    out: TextIO = sys.stdout,
    front: Callable[[DemoRun], Awaitable[int]] | None = None,
) -> int:
    """Run the demo with the dashboard (or ``front``) until it quits; print the summary."""
    async with running_demo(speed=speed, seed=seed, shipments=shipments, workdir=workdir) as run:
        feeder = asyncio.create_task(trickle(run, seed))
        try:
            if front is None:
                from trackops.tui.app import make_app
                from trackops.tui.logs import logging_beside

                app = make_app(
                    run.service, run.settings, config_path=run.config_path, title="trackops demo"
                )
                with logging_beside(app, run.workdir / "demo.log"):
                    await app.run_async()
                code = app.return_code or 0
            else:
                code = await front(run)
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        out.write(await summary(run))
        out.flush()
    return code
