"""Register many numbers at 17TRACK's rate bound against a strict sandbox; print figures.

    .venv/bin/python benchmarks/register_bulk.py [--numbers 1200] [--rate 3] [--rounds 3]

Two measurements, each against a fresh in-process sandbox whose rate limit is a strict sliding
one-second window (a request is answered 429 when ``rate`` requests arrived within the second
before it, that second's both ends included):

* ``client``: ``TrackClient.register`` alone, timed from the call to its return.
* ``command``: ``trackops register --file numbers.txt`` as a user runs it, in its own process
  with a config file and a fresh SQLite store, timed from process start to exit: Python's
  start-up, imports, opening and migrating the store, the requests, and the store writes.
  A first, untimed run (40 numbers) leaves Python's bytecode cache as a user's installed
  package has it (this sandbox sets PYTHONDONTWRITEBYTECODE, which would otherwise recompile
  trackops in every process).

Figures per measurement: wall time; the bound ``ceil(N / 40) / rate`` seconds (one request per
``1 / rate`` s) and the ratio to it (target <= 1.05); first-to-last request against
``(requests - 1) / rate``; numbers accepted and lost (must be 0 lost); HTTP 429s the sandbox
answered (must be 0); the most requests any closed 1-second window saw (must be <= rate). The
command is run ``--rounds`` times; the median wall time is reported with the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from trackops.core.client import ApiUnavailable, TrackClient
from trackops.core.config import ApiSettings, Secret
from trackops.core.sandbox import SandboxConfig, running_sandbox
from trackops.core.wire import MAX_BATCH, RegisterItem

KEY = "BENCHMARK-KEY-0000000000000000"
TARGET = 1.05
TRACKOPS = Path(sys.executable).with_name("trackops")


def max_in_any_second(times: list[float]) -> int:
    """Most requests any closed 1-second window holds."""
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t - start <= 1.0) for i, start in enumerate(times)),
        default=0,
    )


@dataclass
class Round:
    wall: float
    started: float  # monotonic time the call (or the process) started
    requests: list[float]  # arrival times of the API requests (monotonic)
    answered_429: int
    accepted: int
    lost: int


def numbers_for(count: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:09d}CN" for i in range(count)]


async def client_round(count: int, rate: float) -> Round:
    numbers = numbers_for(count, "RB")
    async with running_sandbox(SandboxConfig(key=KEY, rate_limit=rate)) as sandbox:
        api = ApiSettings(key=Secret(KEY), base_url=sandbox.base_url, rate_limit=rate)
        async with TrackClient(api) as client:
            started = time.monotonic()
            try:
                result = await client.register([RegisterItem(number=n) for n in numbers])
            except ApiUnavailable:
                result = None
            wall = time.monotonic() - started
        log = list(sandbox.state.requests)
    accepted = {r.number for r in result.accepted} if result else set()
    rejected = {r.number or "" for r in result.rejected} if result else set()
    return Round(
        wall=wall,
        started=started,
        requests=[t for t, _, _ in log],
        answered_429=sum(1 for _, _, status in log if status == 429),
        accepted=len(accepted),
        lost=len(set(numbers) - accepted - rejected),
    )


async def command_round(count: int, rate: float, workdir: Path, index: int) -> Round:
    numbers = numbers_for(count, f"C{index}")
    folder = workdir / f"round-{index}"
    folder.mkdir()
    (folder / "numbers.txt").write_text("\n".join(numbers) + "\n")
    async with running_sandbox(SandboxConfig(key=KEY, rate_limit=rate)) as sandbox:
        config = folder / "trackops.toml"
        config.write_text(
            f'[api]\nkey = "{KEY}"\nbase_url = "{sandbox.base_url}"\nrate_limit = {rate:g}\n'
            f'[store]\nurl = "sqlite:///{folder / "trackops.db"}"\n'
        )
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(NO_COLOR="1", COLUMNS="120")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            str(TRACKOPS),
            "--config",
            str(config),
            "register",
            "--file",
            str(folder / "numbers.txt"),
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        _out, err = await proc.communicate()
        wall = time.monotonic() - started
        log = list(sandbox.state.requests)
        registered = {n for n in numbers if sandbox.state.tracked(n) is not None}
    if proc.returncode != 0:
        print(f"trackops register exited {proc.returncode}: {err.decode()[-2000:]}")
    stored = await stored_numbers(folder / "trackops.db")
    return Round(
        wall=wall,
        started=started,
        requests=[t for t, _, _ in log],
        answered_429=sum(1 for _, _, status in log if status == 429),
        accepted=len(registered & stored),
        lost=len(set(numbers) - (registered & stored)),
    )


async def stored_numbers(path: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT number FROM shipments")}


def report(name: str, rounds: list[Round], count: int, rate: float) -> bool:
    batches = math.ceil(count / MAX_BATCH)
    bound = batches / rate
    walls = sorted(r.wall for r in rounds)
    wall = statistics.median(walls)
    ratio = wall / bound
    spans = [max(r.requests) - min(r.requests) for r in rounds if r.requests]
    span = statistics.median(spans) if spans else float("nan")
    before = statistics.median(min(r.requests) - r.started for r in rounds if r.requests)
    after = statistics.median(r.started + r.wall - max(r.requests) for r in rounds if r.requests)
    worst_window = max(max_in_any_second(r.requests) for r in rounds)
    answered_429 = sum(r.answered_429 for r in rounds)
    lost = sum(r.lost for r in rounds)
    print(f"--- {name} ({len(rounds)} round{'s' if len(rounds) > 1 else ''})")
    print(
        f"wall time (median)          {wall:.2f} s  (all: {', '.join(f'{w:.2f}' for w in walls)})"
    )
    print(f"bound ceil(N/40)/rate       {bound:.2f} s")
    print(f"ratio wall/bound            {ratio:.3f} (target <= {TARGET:.2f})")
    print(f"first-to-last request       {span:.2f} s (evenly spaced: {(batches - 1) / rate:.2f} s)")
    print(f"start to first request      {before:.2f} s; last request to end {after:.2f} s")
    print(f"requests per round          {len(rounds[0].requests)} (batches: {batches})")
    print(f"accepted (all rounds)       {sum(r.accepted for r in rounds)}")
    print(f"lost                        {lost}")
    print(f"429 answered by sandbox     {answered_429}")
    print(f"max requests in any 1 s     {worst_window} (limit {rate:g})")
    ok = lost == 0 and answered_429 == 0 and worst_window <= rate and ratio <= TARGET
    print("result                      " + ("OK" if ok else "FAILED"))
    return ok


def load() -> str:
    """The machine's load averages (1, 5, 15 minutes), as ``/proc/loadavg`` has them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


async def run(count: int, rate: float, rounds: int) -> int:
    print(f"numbers {count}, rate limit {rate:g} req/s, strict sliding 1-second window")
    print(f"load average at start       {load()}")
    client = [await client_round(count, rate)]
    ok = report("client: TrackClient.register", client, count, rate)
    with tempfile.TemporaryDirectory() as tmp:
        await command_round(MAX_BATCH, rate, Path(tmp), rounds)  # bytecode cache, untimed
        commands = [await command_round(count, rate, Path(tmp), i) for i in range(rounds)]
    ok = (
        report("command: trackops register --file (process start to exit)", commands, count, rate)
        and ok
    )
    print(f"load average at end         {load()}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1200)
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    return asyncio.run(run(args.numbers, args.rate, args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
