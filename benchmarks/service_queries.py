"""Service queries over a big store: 100,000 shipments and 1,000,000 history rows.

The rows are written straight into a fresh store (schema from ``Store.open``, rows through the
driver), not through the API. Then, through ``trackops.core.service.Service`` (what the CLI,
the dashboard and the bot call), 50 runs each, p50 and p95 of: the first page of shipments
(unfiltered, by status, by text search: a whole order number and a fragment of a number),
page 500 (by its keyset cursor), counts per status, one shipment's detail, a history search by
order and by email, building the weekly report (figures and the CSV of the shipments updated
that week, as its mail carries), and the full export (the CSV of every shipment).
Also the process's peak RSS, and `trackops status NUMBER` and `trackops list --limit 50
--json` as whole processes on that store (best and median of 11 runs,
after a first run that caches bytecode).

    python benchmarks/service_queries.py [--shipments 100000] [--history 1000000] [--runs 50]
        [--cli-rounds 1]

With TRACKOPS_TEST_POSTGRES_URL set, the same on PostgreSQL (a database of its own, dropped).
Targets (issue 8): pages, counts and detail <= 20 ms p95; weekly report <= 1 s and <= 200 MiB
RSS; each CLI process <= 300 ms wall.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from trackops.core.config import ApiSettings, Secret, Settings, StoreSettings
from trackops.core.engine import Engine, utcnow
from trackops.core.service import HistoryQuery, Service, ShipmentQuery
from trackops.core.store import Store
from trackops.core.wire import Event, TrackInfo, encode

STATUSES = (0, 10, 10, 10, 20, 30, 35, 40, 40, 40, 40, 50)
CARRIERS = (3011, 100002, 100003, 7041, 21051, 190271, 100001, 6051)
COUNTRIES = (301, 2105, 1101, 1201, 601, 2103, 901, 1301)
PLACES = ("Shenzhen", "Los Angeles, CA", "Frankfurt", "Paris", "London", "Madrid")
NOW = utcnow().replace(microsecond=0)


def number(i: int) -> str:
    return f"R{'RLCE'[i % 4]}{(104729 * (i + 1)) % 10**9:09d}{('CN', 'US', 'GB', 'DE')[i % 4]}"


def shipment_rows(count: int, seq: int) -> list[dict[str, Any]]:
    rng = random.Random(8)
    rows = []
    for i in range(count):
        status = STATUSES[rng.randrange(len(STATUSES))]
        registered = NOW - timedelta(days=rng.uniform(1, 60))
        event_at = registered + timedelta(days=rng.uniform(0, 20)) if status else None
        if event_at and event_at > NOW:
            event_at = NOW - timedelta(hours=rng.uniform(1, 48))
        raw = event_at.strftime("%Y-%m-%d %H:%M") if event_at else None
        place = PLACES[i % len(PLACES)]
        info = None
        if status:
            event = Event(time_raw=raw, location=place, description=f"Arrived at facility {i % 97}")
            info = encode(
                TrackInfo(
                    package_status=status,
                    first_carrier=CARRIERS[i % 8],
                    latest_event=event,
                    first_carrier_events=[event],
                    hash=rng.randrange(2**31),
                )
            ).decode()
        rows.append(
            {
                "number": number(i),
                "carrier": CARRIERS[i % 8],
                "final_carrier": None,
                "extra_param": None,
                "tag": f"shop-{i % 50}" if i % 3 == 0 else None,
                "order_number": str(100000 + i),
                "email": f"buyer{i}@example.com",
                "buyer_name": f"Buyer {i}",
                "package_status": status,
                "active": status != 40 or i % 2 == 0,
                "synced": bool(status),
                "latest_event_time": event_at,
                "latest_event_raw": raw,
                "latest_event_location": place if status else None,
                "latest_event_description": f"Arrived at facility {i % 97}" if status else None,
                "hash": rng.randrange(2**31) if status else None,
                "info": info,
                "registered_at": registered,
                "updated_at": event_at or registered,
                "stopped_at": None,
                "last_push_at": None,
                "origin_country": COUNTRIES[i % 8] if status else None,
                "destination_country": COUNTRIES[(i + 3) % 8] if status else None,
                "change_seq": seq,
            }
        )
    return rows


def history_rows(
    rng: random.Random, first: int, count: int, total: int, shipments: int, seq: int
) -> list[dict[str, Any]]:
    """Rows ``first``..``first + count`` of ``total``, spread over the last 60 days."""
    rows = []
    start = NOW - timedelta(days=60)
    step = timedelta(days=60) / total
    for j in range(first, first + count):
        i = rng.randrange(shipments)
        seller = j % 5 == 0
        rows.append(
            {
                "created_at": start + step * j,
                "number": number(i),
                "order_number": str(100000 + i),
                "audience": "seller" if seller else "customer",
                "channel": "email",
                "recipient": "ops@shop.example" if seller else f"buyer{i}@example.com",
                "condition": "seller" if seller else "customer",
                "condition_kind": "default",
                "from_status": 10,
                "to_status": 50 if seller else 40,
                "send_status": ("sent", "sent", "sent", "failed", "suppressed")[j % 5],
                "reason": None,
                "attempts": 1,
                "sent_at": start + step * j,
                "next_attempt_at": None,
                "resend_of": None,
                "subject": None,
                "body": None,
                "event_time": None,
                "event_location": None,
                "event_description": None,
                "change_seq": seq,
            }
        )
    return rows


async def fill(store: Store, shipments: int, history: int) -> None:
    """Write the rows with the store's own tables, in big driver-level batches."""
    from trackops.core.store import notifications
    from trackops.core.store import shipments as shipments_table

    async with store._write() as conn:  # a benchmark may reach in: it is not a front-end
        seq = await store._bump(conn)
        rows = shipment_rows(shipments, seq)
        for start in range(0, len(rows), 20_000):
            await conn.execute(shipments_table.insert(), rows[start : start + 20_000])
    rng = random.Random(9)
    for start in range(0, history, 100_000):
        batch = history_rows(rng, start, min(100_000, history - start), history, shipments, seq)
        async with store._write() as conn:
            await conn.execute(notifications.insert(), batch)


async def timed(runs: int, fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    await fn()  # warm caches, as a dashboard that is already open would be
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)]


async def measure(service: Service, runs: int, shipments: int) -> list[tuple[str, float, float]]:
    results: list[tuple[str, float, float]] = []

    async def add(name: str, fn: Callable[[], Awaitable[Any]], n: int = runs) -> None:
        p50, p95 = await timed(n, fn)
        results.append((name, p50, p95))
        print(f"  {name:42} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms", flush=True)

    some = number(shipments // 3)
    order = str(100000 + shipments // 2)
    email = f"buyer{shipments // 4}@example.com"
    await add("first page, unfiltered", lambda: service.shipments(limit=50))
    await add(
        "first page, status Alert",
        lambda: service.shipments(ShipmentQuery(statuses=frozenset({50})), limit=50),
    )
    await add(
        "first page, In transit + Undelivered",
        lambda: service.shipments(ShipmentQuery(statuses=frozenset({10, 35})), limit=50),
    )
    await add(
        "first page, search: an order number",
        lambda: service.shipments(ShipmentQuery(search=order), limit=50),
    )
    await add(
        "first page, search: a number fragment",
        lambda: service.shipments(ShipmentQuery(search=some[2:8]), limit=50),
    )
    await add(
        "first page, search: a common fragment",
        lambda: service.shipments(ShipmentQuery(search="buyer1"), limit=50),
    )
    cursor = None
    for _ in range(499):
        cursor = (await service.shipments(limit=50, after=cursor)).next_cursor
    await add("page 500 (by its cursor)", lambda: service.shipments(limit=50, after=cursor))
    await add("last page (jump to the end)", lambda: service.shipments(limit=50, from_end=True))
    await add("counts per status", service.status_counts)
    await add("one shipment's detail", lambda: service.shipment(some))
    await add(
        "history search by order", lambda: service.history(HistoryQuery(search=order), limit=50)
    )
    await add(
        "history search by email", lambda: service.history(HistoryQuery(search=email), limit=50)
    )
    await add("history, failed only", lambda: service.history(
        HistoryQuery(send_statuses=frozenset({"failed"})), limit=50))  # fmt: skip

    async def weekly() -> None:  # what a weekly report mail carries
        await service.report_text("weekly")
        await service.report_csv("weekly")

    async def export() -> None:
        await service.export_csv()

    await add("weekly report (figures + the week's CSV)", weekly, n=5)
    await add("full export (CSV of every shipment)", export, n=5)
    return results


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ``getrusage``: Linux carries ``ru_maxrss`` over
    ``exec``, so a child would report the filling parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_times(command: list[str], runs: int = 7) -> tuple[float, float]:
    """Best and median wall time of ``command`` as a whole process, after one run that
    leaves Python's bytecode cache as a user's first run does (this sandbox sets
    PYTHONDONTWRITEBYTECODE, which would otherwise recompile trackops in every process)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, capture_output=True, timeout=60, env=env, check=False)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, timeout=60, env=env)
        times.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()}")
    return min(times), statistics.median(times)


def cli_times(config: Path, args: list[str], runs: int = 7) -> tuple[float, float]:
    """``process_times`` of ``trackops --config CONFIG ARGS``."""
    exe = Path(sys.executable).with_name("trackops")
    return process_times([str(exe), "--config", str(config), *args], runs)


def print_cli_times(url: str) -> None:
    """``trackops status NUMBER`` and ``trackops list --limit 50 --json`` on the store, and
    the machine's pace at that moment: a process that only imports SQLAlchemy (this kind of
    machine has run it in 215-290 ms within one hour)."""
    best, median = process_times([sys.executable, "-c", "import sqlalchemy"], runs=11)
    label = "(pace) python -c 'import sqlalchemy'"
    print(f"  {label:42} best {best:6.0f} ms  median {median:6.0f} ms", flush=True)
    with tempfile.TemporaryDirectory(prefix="trackops-bench-") as tmp:
        config = Path(tmp) / "trackops.toml"
        config.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
        for cli_args in (["status", number(7)], ["list", "--limit", "50", "--json"]):
            best, median = cli_times(config, cli_args, runs=11)
            label = "trackops " + " ".join(cli_args)
            print(f"  {label:42} best {best:6.0f} ms  median {median:6.0f} ms", flush=True)


async def fill_store(url: str, args: argparse.Namespace) -> None:
    store = await Store.open(url)
    started = time.perf_counter()
    await fill(store, args.shipments, args.history)
    await store.close()
    if url.startswith("postgres"):
        # What autovacuum does after a load like this one (statistics, visibility map), so
        # the figures are a running database's, not those of the minute after a bulk load.
        # (CHECKPOINT needs a superuser or pg_checkpoint, as the test server's postgres is.)
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("VACUUM ANALYZE shipments")
            await conn.execute("VACUUM ANALYZE notifications")
            # The load's dirty pages written out now, not by the checkpoint the load's WAL
            # triggers while the queries are being timed.
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
    print(f"  written in {time.perf_counter() - started:.1f} s", flush=True)


async def measure_store(url: str, args: argparse.Namespace) -> None:
    """In a process of its own, so that its peak RSS is the service's, not the filling's."""
    settings = Settings(api=ApiSettings(key=Secret("bench")), store=StoreSettings(url=url))
    store = await Store.open(url)
    async with Engine(settings, store=store, load_plugins=False) as engine:
        await measure(Service(engine), args.runs, args.shipments)
    await store.close()
    print(f"  peak RSS of the measuring process: {peak_rss_mib():.0f} MiB", flush=True)


def measure_in_child(url: str, args: argparse.Namespace) -> None:
    command = [
        sys.executable, __file__, "--measure", url, "--shipments", str(args.shipments),
        "--history", str(args.history), "--runs", str(args.runs),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=1800)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--cli-rounds",
        type=int,
        default=1,
        help="time the CLI processes this many times over (the VM's pace moves from minute to"
        " minute: several rounds show the spread)",
    )
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        await measure_store(args.measure, args)
        return
    with tempfile.TemporaryDirectory(prefix="trackops-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        print(f"\nSQLite: {args.shipments:,} shipments, {args.history:,} history rows")
        await fill_store(url, args)
        measure_in_child(url, args)
        for _ in range(args.cli_rounds):
            print_cli_times(url)
    pg = os.environ.get("TRACKOPS_TEST_POSTGRES_URL")
    if not pg:
        print("\nPostgreSQL: skipped (set TRACKOPS_TEST_POSTGRES_URL to measure it too)")
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    # A database of its own (dropped afterwards), so that the CLI's config can name it.
    name = f"trackops_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg.replace("postgresql+asyncpg://", "postgresql://"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    bench_url = make_url(pg).set(database=name).render_as_string(hide_password=False)
    try:
        print(f"\nPostgreSQL: {args.shipments:,} shipments, {args.history:,} history rows")
        await fill_store(bench_url, args)
        measure_in_child(bench_url, args)
        for _ in range(args.cli_rounds):
            print_cli_times(bench_url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
