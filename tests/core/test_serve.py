"""``trackops serve`` as a real process: graceful stop, and kill -9 during a burst loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiohttp
import tomli_w
from factories import KEY, free_port, make_info, push_body, serve_process
from trackops.core.config import load_settings
from trackops.core.store import Store


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "trackops.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "api": {"key": KEY, "base_url": "http://127.0.0.1:9/track/v1"},
                "store": {"url": f"sqlite:///{tmp_path / 'serve.db'}"},
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


async def test_kill_9_during_a_burst_loses_no_acknowledged_push(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    url = f"http://127.0.0.1:{port}/webhooks/17track"
    numbers = [f"RR{n:09d}CN" for n in range(400)]
    acknowledged: list[str] = []
    async with serve_process(config) as proc:
        async with aiohttp.ClientSession() as session:
            queue: asyncio.Queue[str] = asyncio.Queue()
            for number in numbers:
                queue.put_nowait(number)
            killed = asyncio.Event()

            async def worker() -> None:
                while not queue.empty():
                    number = queue.get_nowait()
                    try:
                        async with session.post(url, data=push_body(number, make_info(10))) as r:
                            await r.read()
                            if r.status == 200:
                                acknowledged.append(number)
                    except aiohttp.ClientError:
                        return
                    if len(acknowledged) >= 150 and not killed.is_set():
                        killed.set()
                        os.kill(proc.pid, signal.SIGKILL)

            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(16))), timeout=60)
        assert killed.is_set(), "the burst ended before the kill"
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL

    # Every push answered 200 is in the store, and a restart processes it.
    async with serve_process(config) as proc:
        settings = load_settings(config)
        store = await Store.open(settings.store.url)
        try:
            for _ in range(300):  # bounded: up to ~30 s for the restarted server to drain
                if (await store.inbox_stats()).backlog == 0:
                    break
                await asyncio.sleep(0.1)
            found = await store.get_shipments(acknowledged)
        finally:
            await store.close()
        missing = sorted(set(acknowledged) - set(found))
        assert not missing, f"{len(missing)} acknowledged pushes lost, e.g. {missing[:3]}"
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=20)
        assert proc.returncode == 0


async def test_sigterm_stops_gracefully_and_healthz_answers(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    async with serve_process(config) as proc:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                body = json.loads(await response.read())
            assert response.status == 200 and body["store"] is True
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=20)
        assert proc.returncode == 0
    assert b"Traceback" not in proc.said  # type: ignore[attr-defined]
