"""Several processes on one SQLite file: ``trackops serve`` under a stream of signed pushes while
other ``trackops`` processes open the same file, register, sync and list.

Nothing may fail with "database is locked", every push the listener acknowledged must be
applied, and every command must do its whole job. The 17TRACK side is an in-process sandbox;
serve and the commands are real processes (the console script), so SQLite's locking between
processes is what is tested, not an asyncio lock within one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import tomli_w
from factories import KEY, free_port, make_info, push_body
from trackops.core.sandbox import SandboxConfig, running_sandbox
from trackops.core.store import Store
from trackops.core.wire import PackageStatus

TRACKOPS = Path(sys.executable).with_name("trackops")
NOT_REGISTERED = -18019902
LOCKED = "database is locked"
POSTERS = 8  # concurrent connections pushing
NUMBERS = 500  # pushed numbers; once each has had its push, the same pushes come again

pytestmark = pytest.mark.skipif(not TRACKOPS.exists(), reason=f"no console script at {TRACKOPS}")


@dataclass
class Ran:
    """One finished ``trackops`` command."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def check(self, *codes: int) -> None:
        where = f"trackops {' '.join(self.args)} -> {self.code}: {self.err[-2000:]}"
        assert LOCKED not in self.out + self.err, where
        assert "Traceback" not in self.err, where
        assert self.code in (codes or (0,)), where


def write_config(tmp_path: Path, base_url: str, port: int) -> Path:
    path = tmp_path / "trackops.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "api": {"key": KEY, "base_url": base_url, "rate_limit": 200},
                "store": {"url": f"sqlite:///{tmp_path / 'one.db'}"},
                "webhook": {"host": "127.0.0.1", "port": port},
                "notifications": {
                    "customer": {"enabled": False, "channels": []},
                    "seller": {"enabled": False, "channels": []},
                },
                "plugins": {"disable": ["email", "slack", "discord"]},
            }
        ),
        encoding="utf-8",
    )
    return path


async def trackops(config: Path, *args: str) -> Ran:
    """``trackops --config CONFIG ARGS`` as its own process."""
    proc = await asyncio.create_subprocess_exec(
        str(TRACKOPS),
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Ran(args, proc.returncode, out.decode(), err.decode())


@asynccontextmanager
async def serving(config: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, bytearray]]:
    """``trackops serve`` until the block ends; its stderr collected as it comes."""
    proc = await asyncio.create_subprocess_exec(
        str(TRACKOPS),
        "--config",
        str(config),
        "serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    said = bytearray()
    stderr = proc.stderr

    async def drain() -> None:  # serve logs a line per push: a full pipe would block it
        while chunk := await stderr.read(65536):
            said.extend(chunk)

    draining = asyncio.create_task(drain())
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        if b"listening" not in line:
            await proc.wait()
            await draining
            raise AssertionError(f"serve did not start: {line!r} {bytes(said[-2000:])!r}")
        yield proc, said
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await asyncio.wait_for(draining, timeout=10)


async def test_serve_under_pushes_while_other_processes_register_sync_and_list(
    tmp_path: Path,
) -> None:
    registered = [f"LP{n:09d}CN" for n in range(60)]
    pool = [f"RR{n:09d}CN" for n in range(NUMBERS)]
    bodies = {n: push_body(n, make_info(10, description=f"left {n}")) for n in pool}
    pushes = itertools.cycle(pool)  # 17TRACK sends a push again when unsure it arrived
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/17track"
    async with running_sandbox(SandboxConfig(key=KEY, speed=3600, rate_limit=1000)) as sandbox:
        config = write_config(tmp_path, sandbox.base_url, port)
        # Opening a new file at once: serve and two readers start together on no file at all.
        starting = [asyncio.create_task(trackops(config, "list", "--json")) for _ in range(2)]
        async with serving(config) as (serve, said):
            for ran in await asyncio.gather(*starting):
                ran.check()
                assert ran.out.strip() == "[]"

            acknowledged: set[str] = set()
            refused: list[tuple[str, int]] = []
            sent = 0
            commands_done = asyncio.Event()

            async def poster(session: aiohttp.ClientSession) -> None:
                nonlocal sent
                while not commands_done.is_set():
                    number = next(pushes)
                    async with session.post(url, data=bodies[number]) as response:
                        await response.read()
                    sent += 1
                    if response.status == 200:
                        acknowledged.add(number)
                    else:
                        refused.append((number, response.status))

            async def registering() -> list[Ran]:
                runs = []
                for start in range(0, len(registered), 20):
                    runs.append(await trackops(config, "register", *registered[start : start + 20]))
                return runs

            async def reading() -> list[Ran]:
                runs = [await trackops(config, "list", "--json") for _ in range(2)]
                runs.append(await trackops(config, "sync", "--json"))
                runs.append(await trackops(config, "list", "--limit", "50", "--json"))
                return runs

            async with aiohttp.ClientSession() as session:
                posting = [asyncio.create_task(poster(session)) for _ in range(POSTERS)]
                try:
                    writes, reads = await asyncio.gather(registering(), reading())
                finally:
                    commands_done.set()
                    await asyncio.gather(*posting)

            for ran in writes:
                ran.check()
            *lists, sync, last = reads
            for ran in [*lists, last]:
                ran.check()
                assert isinstance(json.loads(ran.out), list)
            assert len(json.loads(last.out)) == 50  # after the first NUMBERS pushes
            # The pushed numbers were never registered at 17TRACK's side (pushes came for
            # numbers registered elsewhere): sync is refused those, and those only.
            sync.check(0, 1)
            summary = json.loads(sync.out)
            wrongly = [r for r in summary["rejected"] if r["code"] != NOT_REGISTERED]
            assert not wrongly, wrongly[:3]
            assert {r["number"] for r in summary["rejected"]} <= acknowledged
            assert not refused, f"{len(refused)} of {sent} pushes refused, e.g. {refused[:3]}"
            assert len(acknowledged) == NUMBERS, f"the commands ended after {sent} pushes"

            store = await Store.open(f"sqlite:///{tmp_path / 'one.db'}")
            try:
                for _ in range(600):  # bounded: up to ~60 s for serve to apply the backlog
                    if (await store.inbox_stats()).backlog == 0:
                        break
                    await asyncio.sleep(0.1)
                assert (await store.inbox_stats()).backlog == 0, "serve left pushes unapplied"
                found = await store.get_shipments([*acknowledged, *registered])
            finally:
                await store.close()
            serve.send_signal(signal.SIGTERM)
            await asyncio.wait_for(serve.wait(), timeout=20)
            assert serve.returncode == 0

    missing = [n for n in registered if n not in found]
    assert not missing, f"registered but not stored: {missing[:3]}"
    unapplied = [
        n
        for n in acknowledged
        if n not in found
        or found[n].status is not PackageStatus.IN_TRANSIT
        or found[n].latest_event_description != f"left {n}"
    ]
    assert not unapplied, f"{len(unapplied)} of {len(acknowledged)} pushes not applied"
    log = bytes(said).decode(errors="replace")
    assert LOCKED not in log and "Traceback" not in log, log[-3000:]
