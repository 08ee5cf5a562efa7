"""A dead process's claims are released when trackops starts, on SQLite and PostgreSQL.

Issue 12: after kill -9 during dispatch, the claimed rows waited out the 5-minute lease. A
claim names its process (``host:pid``). At start-up the claims of a process on this host that
no longer runs are released at once, and so are those of a process on another host (several
``serve`` on one PostgreSQL) whose heartbeat is over 2 minutes old; a live process keeps its
claims, and so does one elsewhere whose heartbeat is recent.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import timedelta
from pathlib import Path

from factories import BASE, StoreTarget, make_info, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.engine import Engine
from trackops.core.store import NewShipment

NOW = BASE + timedelta(hours=1)
LEASE = timedelta(minutes=5)


async def dead_pid() -> int:
    """The id of a process that ran and ended."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    return proc.pid


async def test_claims_of_dead_processes_are_released_at_start_and_live_ones_kept(
    target: StoreTarget, tmp_path: Path
) -> None:
    here = socket.gethostname()
    dead = await dead_pid()
    live = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=asyncio.subprocess.PIPE
    )
    holders = {
        f"{here}:{dead}": None,  # killed on this host: released
        f"{here}:{live.pid}": None,  # still running here: kept
        "web-2:4242": NOW - timedelta(minutes=3),  # elsewhere, heartbeat stale: released
        "web-3:4242": NOW - timedelta(seconds=30),  # elsewhere, heartbeat recent: kept
    }
    settings = settings_for(tmp_path, store_url=target.url)
    numbers = [f"RR{i:09d}CN" for i in range(len(holders))]
    store = await target.open()
    try:
        async with Engine(
            settings, store=store, channels=[RecordingChannel("memory")], load_plugins=False,
            clock=lambda: NOW,
        ) as engine:  # fmt: skip
            await store.add_shipments([NewShipment(n, email=f"{n}@example.com") for n in numbers])
            await engine.apply_track_infos([(n, make_info(10, NOW)) for n in numbers])
            for number, (holder, seen) in zip(numbers, holders.items(), strict=True):
                (row,) = await store.history(search=number)
                claimed = await store.claim_due(now=NOW, limit=1, lease=LEASE, worker=holder)
                assert [r.id for r in claimed] == [row.id]
                if seen is not None:
                    name, _, pid = holder.rpartition(":")
                    await store.heartbeat(holder, host=name, pid=int(pid), now=seen)
            assert await store.claim_due(now=NOW, lease=LEASE) == []  # all four are held
        # A new process starts: the dead holders' rows are due at once, the others wait.
        async with Engine(
            settings, store=store, channels=[RecordingChannel("memory")], load_plugins=False,
            clock=lambda: NOW,
        ):  # fmt: skip
            due = await store.claim_due(now=NOW, lease=LEASE)
            assert sorted(r.number for r in due) == [numbers[0], numbers[2]]
            assert sorted(await store.claim_holders()) == [f"{here}:{live.pid}", "web-3:4242"]
    finally:
        await store.close()
        live.kill()
        await live.wait()


def test_the_worker_name_is_this_host_and_process(tmp_path: Path) -> None:
    """What a claim names: this host and process id (what start-up checks for life)."""
    import os

    engine = Engine(settings_for(tmp_path), load_plugins=False)
    assert engine.worker == f"{socket.gethostname()}:{os.getpid()}"
