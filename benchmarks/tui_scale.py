"""Dashboard at scale: 100,000 shipments in a SQLite store, driven by Textual's Pilot.

Prints the time to first paint of rows, a status filter (digit key to filtered rows), a search
keystroke to filtered rows, opening a detail, jumping to the end of the list, and the peak RSS
of the dashboard's process (the store is filled in a child process first, so its memory does
not count).

    python benchmarks/tui_scale.py [--shipments 100000] [--rounds 20] [--db PATH]

Targets (issue 9): first paint < 1.5 s; filter, search and detail p95 < 150 ms; RSS < 300 MiB.
Each step prints its wall time and the CPU time the process spent on it: on a shared machine
the wall time includes waiting for a CPU, the CPU time does not.

A step's wall time runs from the keystroke until the Pilot finds the app idle (every frame
the keystroke caused is painted) and the step's rows or detail are there. The Pilot samples
idleness in 20 ms steps, twice per key: a key that does nothing measures about 43 ms, and
each extra frame Textual paints (at most 60 a second) can add a step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from factories import settings_for  # noqa: E402
from trackops.core.channels import RecordingChannel  # noqa: E402
from trackops.core.wire import Event, PackageStatus, TrackInfo  # noqa: E402

NOW = datetime(2026, 11, 30, 12, 0)
STATUSES = sorted(PackageStatus)
PLACES = ("Shenzhen", "Leeds", "Berlin", "Lyon", "Madrid", "Chicago", "Osaka", "Perth")


def number(i: int) -> str:
    return f"R{'RLCE'[i % 4]}{i:09d}{('CN', 'GB', 'US', 'DE')[i % 4]}"


def info(i: int) -> TrackInfo:
    when = NOW - timedelta(minutes=7 * i)
    raw = when.strftime("%Y-%m-%d %H:%M")
    status = STATUSES[i % 7]
    event = Event(time_raw=raw, location=PLACES[i % 8], description=f"Event {i % 97} of parcel")
    return TrackInfo(
        package_status=status,
        first_carrier=3011,
        origin_country=301,
        destination_country=2105,
        latest_event=event,
        first_carrier_events=[event],
        first_last_tracked_raw=raw,
        hash=i,
    )


async def fill(db: Path, shipments: int) -> None:
    """Write ``shipments`` shipments with tracking info straight into the store."""
    from trackops.core.engine import Engine
    from trackops.core.store import NewShipment

    settings = settings_for(db.parent, store_url=f"sqlite:///{db}", customer_enabled=False)
    async with Engine(
        settings, channels=[RecordingChannel("memory")], load_plugins=False, clock=lambda: NOW
    ) as engine:
        batch = 5000
        for start in range(0, shipments, batch):
            rows = [
                NewShipment(
                    number=number(i),
                    carrier=3011,
                    tag=f"tag{i % 50}",
                    order_number=f"{100000 + i}",
                    email=f"buyer{i}@example.com",
                    registered_at=NOW - timedelta(days=30),
                )
                for i in range(start, min(shipments, start + batch))
            ]
            await engine.store.add_shipments(rows)
            await engine.apply_track_infos(
                [(r.number, info(start + k)) for k, r in enumerate(rows)]
            )


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def drive(db: Path, rounds: int) -> dict[str, Any]:
    from trackops.core.runtime import open_service
    from trackops.tui.app import make_app
    from trackops.tui.detail import DetailScreen
    from trackops.tui.main_screen import MainScreen
    from trackops.tui.table import ShipmentTable

    settings = settings_for(db.parent, store_url=f"sqlite:///{db}")
    results: dict[str, Any] = {}
    started = time.perf_counter()
    async with open_service(
        settings, channels=[RecordingChannel("memory")], load_plugins=False, clock=lambda: NOW
    ) as service:
        app = make_app(service, settings, clock=lambda: NOW, live=False)
        async with app.run_test(size=(160, 48)) as pilot:

            async def until(predicate: Callable[[], object], seconds: float = 30) -> None:
                deadline = time.perf_counter() + seconds
                while not predicate():
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"timed out waiting for {predicate}")
                    await asyncio.sleep(0.001)

            def table() -> ShipmentTable:
                return app.screen.query_one(ShipmentTable)

            await until(lambda: isinstance(app.screen, MainScreen) and table().row_count > 0)
            # The rows are in the table; first paint is when the screen has been painted
            # with them (Textual runs this callback once no refresh is pending).
            painted = asyncio.Event()
            app.screen.call_after_refresh(painted.set)
            await asyncio.wait_for(painted.wait(), 30)
            results["first paint"] = time.perf_counter() - started

            cpu: dict[str, list[float]] = {}

            async def timed(
                keys: tuple[str, ...], done: Callable[[], object], name: str = ""
            ) -> float:
                before = table().generation
                t0, c0 = time.perf_counter(), time.process_time()
                await pilot.press(*keys)
                await until(lambda: table().generation != before and done())
                cpu.setdefault(name, []).append(time.process_time() - c0)
                return time.perf_counter() - t0

            filters = []
            for r in range(rounds):
                key = "1234567"[r % 7]
                status = STATUSES[r % 7]
                filters.append(
                    await timed(
                        (key,),
                        lambda s=status: table().rows_shown[0].status is s,
                        "status filter",
                    )
                )
            results["status filter"] = filters
            await pilot.press("0")
            await pilot.pause(0.2)

            searches = []
            await pilot.press("slash")
            typed = ""
            for r in range(rounds):
                char = "0123456789"[(r * 3 + 1) % 10]
                typed = (typed + char)[-3:]
                if len(typed) == 3 and r % 3 == 0:
                    await pilot.press("backspace", "backspace", "backspace")
                    await until(lambda: table().shipment_query.search is None)
                    typed = char
                text = typed
                searches.append(
                    await timed(
                        (char,),
                        lambda t=text: table().shipment_query.search == t,
                        "search keystroke",
                    )
                )
            await pilot.press("escape")
            await pilot.pause(0.2)

            details = []
            for _ in range(rounds):
                await pilot.press("down")
                t0, c0 = time.perf_counter(), time.process_time()
                await pilot.press("enter")
                await until(
                    lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None
                )
                details.append(time.perf_counter() - t0)
                cpu.setdefault("open detail", []).append(time.process_time() - c0)
                await pilot.press("escape")
                await until(lambda: isinstance(app.screen, MainScreen))
            results["open detail"] = details

            ends = []
            for _ in range(max(3, rounds // 4)):
                ends.append(
                    await timed(
                        ("end",),
                        lambda: (
                            table().highlighted is not None
                            and table().pages[-1].next_cursor is None
                            and table().cursor_row == table().row_count - 1
                        ),
                        "jump to end",
                    )
                )
                await timed(("home",), lambda: table().cursor_row == 0)
            results["jump to end"] = ends
            results["search keystroke"] = searches
            results["cpu"] = cpu
            await pilot.press("q")
    results["peak RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--db", type=Path, help="reuse (or create) this SQLite file")
    parser.add_argument("--fill-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackops-tui-") as tmp:
        db = args.db or Path(tmp) / "scale.db"
        if args.fill_only:
            asyncio.run(fill(db, args.shipments))
            return
        if not db.exists():
            t0 = time.perf_counter()
            cmd = [sys.executable, __file__, "--fill-only", "--db", str(db)]
            subprocess.run([*cmd, "--shipments", str(args.shipments)], check=True)
            print(f"filled {args.shipments:,} shipments in {time.perf_counter() - t0:.1f} s")
        results = asyncio.run(drive(db, args.rounds))
    print(f"dashboard over {args.shipments:,} shipments (SQLite, 160x48, Pilot):")
    print(f"  first paint of rows   {results['first paint'] * 1000:8.0f} ms   (target < 1500)")
    for name in ("status filter", "search keystroke", "open detail", "jump to end"):
        values, used = results[name], results["cpu"].get(name, [0.0])
        print(
            f"  {name:<20}  p50 {statistics.median(values) * 1000:6.1f} ms"
            f"  p95 {p95(values) * 1000:6.1f} ms  max {max(values) * 1000:6.1f} ms"
            f"  (CPU p50 {statistics.median(used) * 1000:5.1f} ms, p95 {p95(used) * 1000:5.1f} ms)"
            + ("   target p95 < 150" if name != "jump to end" else "")
        )
    load = os.getloadavg()[0]
    print(f"  (load average {load:.1f} on {os.cpu_count()} CPUs: wall times include waiting")
    print("   for the CPU; the CPU times are what this process itself spent)")
    print(f"  peak RSS              {results['peak RSS MiB']:8.0f} MiB   (target < 300)")


if __name__ == "__main__":
    main()
