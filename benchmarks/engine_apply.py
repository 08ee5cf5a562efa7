"""Engine apply: 100,000 TrackInfo updates for 20,000 shipments with 5 custom conditions.

Prints updates/s through state machine + rules alone, and through state machine + rules +
the SQLite store (``Engine.apply_track_infos`` in batches, one transaction each), with the
notifications created and the peak RSS.

    python benchmarks/engine_apply.py [--shipments 20000] [--updates 100000] [--batch 500]

Targets (issue 3): >= 100,000/s for state machine + rules, >= 5,000/s through the store.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from factories import make_info, settings_for  # noqa: E402
from trackops.core.channels import RecordingChannel  # noqa: E402
from trackops.core.config import ConditionSettings  # noqa: E402
from trackops.core.engine import Engine  # noqa: E402
from trackops.core.rules import Rules, ShipmentFacts  # noqa: E402
from trackops.core.status import decide, next_state  # noqa: E402
from trackops.core.store import NewShipment  # noqa: E402
from trackops.core.wire import PackageStatus as S  # noqa: E402

NOW = datetime(2026, 11, 20, 12, 0)
PATH = [S.IN_TRANSIT, S.IN_TRANSIT, S.PICK_UP, S.ALERT, S.DELIVERED]

_M = ("memory",)
CONDITIONS = (
    ConditionSettings(
        name="fedex-delivered", to_statuses=(S.DELIVERED,), carriers=(100003,), channels=_M
    ),
    ConditionSettings(name="vip", tag_pattern="^VIP", channels=_M),
    ConditionSettings(
        name="to-us", destination_countries=(2105,), to_statuses=(S.ALERT,), channels=_M
    ),
    ConditionSettings(name="orders-10xx", order_pattern="^10", audience="customer", channels=_M),
    ConditionSettings(
        name="from-cn-pickup", origin_countries=(301,), to_statuses=(S.PICK_UP,), channels=_M
    ),
)


def updates(shipments: int, total: int) -> list[tuple[str, object]]:
    per = max(1, total // shipments)
    out = []
    for step in range(per):
        for i in range(shipments):
            when = NOW - timedelta(days=6) + timedelta(hours=step * 12 + (i % 7))
            status = PATH[min(step, len(PATH) - 1)]
            out.append((f"RR{i:09d}CN", make_info(status, when, description=f"step {step}")))
    return out[:total]


def bench_pure(items: list[tuple[str, object]], settings: object, repeats: int = 3) -> None:
    """Best of ``repeats`` runs (as timeit does: other load only ever adds time)."""
    rules = Rules(settings.notifications, known_channels={"memory"})  # type: ignore[attr-defined]
    stale = timedelta(days=7)
    facts = ShipmentFacts("RR000000000CN", 3011, "VIP-1", "1001", "b@x.example", 301, 2105)
    runs = []
    for _ in range(repeats):
        states: dict[str, object] = {}
        intents = 0
        start = time.perf_counter()
        for number, info in items:
            stored = states.get(number)
            t = decide(stored, number, info, now=NOW, stale_after=stale)  # type: ignore[arg-type]
            intents += len(rules.intents(t, facts))
            states[number] = next_state(stored, t, info)  # type: ignore[arg-type]
        runs.append(time.perf_counter() - start)
    best = min(runs)
    print(
        f"state machine + rules: {len(items) / best:,.0f} updates/s best of {repeats} "
        f"(median {len(items) / sorted(runs)[len(runs) // 2]:,.0f}/s; {len(items):,} updates, "
        f"{intents:,} intents) target >= 100,000/s"
    )


async def bench_store(
    items: list[tuple[str, object]], shipments: int, batch: int, settings: object
) -> None:
    channel = RecordingChannel("memory")
    async with Engine(
        settings, channels=[channel], load_plugins=False, clock=lambda: NOW
    ) as engine:  # type: ignore[arg-type]
        rows = [
            NewShipment(
                number=f"RR{i:09d}CN",
                order_number=str(1000 + i),
                email=f"b{i}@x.example",
                tag="VIP-1" if i % 10 == 0 else None,
                registered_at=NOW - timedelta(days=7),
            )
            for i in range(shipments)
        ]
        for k in range(0, len(rows), 5000):
            await engine.store.add_shipments(rows[k : k + 5000])
        created = 0
        start = time.perf_counter()
        for k in range(0, len(items), batch):
            _, notes = await engine.apply_track_infos(items[k : k + batch])  # type: ignore[arg-type]
            created += len(notes)
        elapsed = time.perf_counter() - start
    print(
        f"state machine + rules + SQLite store: {len(items) / elapsed:,.0f} updates/s "
        f"({len(items):,} updates in batches of {batch}, {created:,} notifications stored, "
        f"{elapsed:.2f} s) target >= 5,000/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=20_000)
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    items = updates(args.shipments, args.updates)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), conditions=CONDITIONS)
        bench_pure(items, settings)
        asyncio.run(bench_store(items, args.shipments, args.batch, settings))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
