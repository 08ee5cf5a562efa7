"""Webhook ingest: `trackops serve` on SQLite versus a bare aiohttp handler.

Signed TRACKING_UPDATED pushes for 2,000 numbers are sent from a separate process over 64
concurrent connections for 10 s on loopback, first to a bare aiohttp server that only reads
the body and answers 200, then to `trackops serve`. Prints both rates, the ratio, p50/p99
latency, and the pushes lost (answered 200 but not in the inbox afterwards).

    python benchmarks/webhook_ingest.py [--seconds 10] [--concurrency 64] [--numbers 2000]
                                        [--rounds 3]

Targets (issue 4): ratio >= 0.5 and p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _bodies(count: int) -> list[bytes]:
    from factories import make_info, push_body

    return [push_body(f"RR{n:09d}CN", make_info(10)) for n in range(count)]


async def _load(url: str, seconds: float, concurrency: int, count: int) -> dict[str, object]:
    import aiohttp

    bodies = _bodies(count)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                body = bodies[i % count]
                i += concurrency
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [0.0] * 99
    return {
        "requests": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "ok": statuses.get(200, 0),
        "statuses": statuses,
        "errors": errors,
    }


def _run_bare(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/17track", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _wait_listening(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def _drain_seconds(port: int, limit: float = 120.0) -> float | None:
    """Seconds until /healthz reports an empty inbox (None for a server without /healthz)."""
    import aiohttp

    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - start < limit:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                if response.status == 404:
                    return None
                if (await response.json()).get("inbox_backlog") == 0:
                    return time.perf_counter() - start
            await asyncio.sleep(0.1)
    return float("inf")


async def _drive(target_cmd: list[str], port: int, args: argparse.Namespace) -> dict[str, object]:
    # serve logs a line per push: its stderr must go somewhere that never fills up (a pipe
    # nobody reads would block it).
    server = await asyncio.create_subprocess_exec(
        *target_cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await _wait_listening(port)
        load = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--load",
            f"http://127.0.0.1:{port}/webhooks/17track",
            "--seconds",
            str(args.seconds),
            "--concurrency",
            str(args.concurrency),
            "--numbers",
            str(args.numbers),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await load.communicate()
        result = json.loads(out)
        result["drain_s"] = await _drain_seconds(port)
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.wait(), 30)
        except TimeoutError:
            server.kill()
            await server.wait()


async def _serve_round(args: argparse.Namespace) -> tuple[dict[str, object], int]:
    """One run against `trackops serve` on a fresh SQLite file; also the rows it stored."""
    from factories import KEY, free_port

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        config = Path(tmp) / "trackops.toml"
        port = free_port()
        config.write_text(
            f'[api]\nkey = "{KEY}"\nbase_url = "http://127.0.0.1:9/track/v1"\n'
            f'[store]\nurl = "sqlite:///{db}"\n[webhook]\nport = {port}\n'
            "[notifications.customer]\nenabled = false\nchannels = []\n"
            "[notifications.seller]\nenabled = false\nchannels = []\n"
            '[plugins]\ndisable = ["email", "slack", "discord"]\n',
            encoding="utf-8",
        )
        trackops = str(Path(sys.executable).with_name("trackops"))
        serve = await _drive([trackops, "--config", str(config), "serve"], port, args)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
    return serve, stored


def _line(name: str, r: dict[str, object]) -> str:
    return (
        f"{name:26} {float(r['rate']):8.0f} req/s  p50 {float(r['p50_ms']):6.1f} ms  "  # type: ignore[arg-type]
        f"p99 {float(r['p99_ms']):6.1f} ms  statuses {r['statuses']}  errors {r['errors']}"  # type: ignore[arg-type]
    )


async def main(args: argparse.Namespace) -> None:
    from factories import free_port

    print(
        f"load: {args.concurrency} connections, {args.seconds:g} s a run, {args.numbers} numbers, "
        f"separate process, loopback, {os.cpu_count()} cores; {args.rounds} rounds, "
        "bare and serve alternating (the bare baseline itself varies between runs)"
    )
    ratios, p99s, lost_total, drains = [], [], 0, []
    for round_no in range(1, args.rounds + 1):
        port = free_port()
        bare = await _drive([sys.executable, __file__, "--bare", str(port)], port, args)
        serve, stored = await _serve_round(args)
        lost = max(0, int(serve["ok"]) - stored)  # type: ignore[call-overload]
        ratio = float(serve["rate"]) / float(bare["rate"])  # type: ignore[arg-type]
        ratios.append(ratio)
        p99s.append(float(serve["p99_ms"]))  # type: ignore[arg-type]
        drains.append(float(serve["drain_s"]))  # type: ignore[arg-type]
        lost_total += lost
        print(f"round {round_no}")
        print("  " + _line("bare aiohttp", bare))
        print("  " + _line("trackops serve (SQLite)", serve))
        print(f"  ratio {ratio:.2f}; answered 200: {serve['ok']}, stored: {stored}, lost: {lost}")
    print(
        f"ratio serve/bare, median of {args.rounds}: {statistics.median(ratios):.2f} "
        f"(each: {', '.join(f'{r:.2f}' for r in ratios)}) target >= 0.5"
    )
    print(
        f"p99 serve, median: {statistics.median(p99s):.1f} ms (worst {max(p99s):.1f}) target <= 50"
    )
    print(f"pushes lost: {lost_total} (must be 0)")
    print(
        f"inbox fully processed {statistics.median(drains):.1f} s after a burst ended "
        "(processing yields to the listener while pushes arrive)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--numbers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.bare:
        _run_bare(ns.bare)
    elif ns.load:
        print(json.dumps(asyncio.run(_load(ns.load, ns.seconds, ns.concurrency, ns.numbers))))
    else:
        asyncio.run(main(ns))
