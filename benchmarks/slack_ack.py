"""Slack acknowledgement times: signed `/track` requests against the listener `serve` builds.

The bot runs as `trackops serve` runs it (``trackops.core.runtime``: the listener with the
Slack plugin mounted), over a temp SQLite store holding ``--shipments`` parcels registered at
the sandbox, with Slack's Web API on a local stand-in. Signed requests go to
``/slack/events``: ``/track help``, ``/track status NUMBER``, ``/track list`` and the History
button, one after another and then ``--concurrency`` at a time. Prints p50/p95/max of the
round trip (the acknowledgement Slack waits for; Slack allows 3 s) per kind.

    python benchmarks/slack_ack.py [--shipments 400] [--requests 200] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _figures(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return (
        f"{name:<28} n={len(samples):<5} p50 {statistics.median(ordered) * 1000:7.1f} ms"
        f"   p95 {p95 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    from aiohttp import web
    from factories import KEY, settings_for
    from slack_standin import (
        BOT_TOKEN,
        SIGNING_SECRET,
        SlackStandIn,
    )
    from trackops.core.channels import RecordingChannel
    from trackops.core.config import ApiSettings, Secret, SlackBotSettings
    from trackops.core.runtime import open_service, running
    from trackops.core.service import RegisterRequest

    standin = SlackStandIn()
    runner = web.AppRunner(standin.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    standin.base_url = f"http://127.0.0.1:{port}"

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        sock.setblocking(False)
        # The sandbox runs in its own process, like 17TRACK: its clock work stays off the
        # bot's event loop.
        sandbox = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("trackops")), "sandbox", "--port", "0",
            "--key", KEY, "--speed", "0",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert sandbox.stdout is not None
        line = (await sandbox.stdout.readline()).decode()
        api = line.split(" at ", 1)[1].split(" ", 1)[0]
        try:
            base = settings_for(Path(tmp), base_url=api)
            settings = dataclasses.replace(
                base,
                api=ApiSettings(key=Secret(KEY), base_url=api, rate_limit=3),
                slack=SlackBotSettings(
                    signing_secret=Secret(SIGNING_SECRET),
                    bot_token=Secret(BOT_TOKEN),
                    admins=("U0ADMIN",),
                    api_base_url=standin.api_url,
                ),
            )
            numbers = [f"RR{n:09d}CN" for n in range(args.shipments)]
            async with (
                open_service(settings, channels=[RecordingChannel("memory")]) as service,
                running(service, sock=sock) as run,
            ):
                started = time.perf_counter()
                await service.register([RegisterRequest(n) for n in numbers], actor="bench")
                print(
                    f"registered {len(numbers)} shipments in {time.perf_counter() - started:.1f} s"
                )
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--client", f"{run.url}/slack/events",
                    "--hooks", standin.base_url, "--shipments", str(args.shipments),
                    "--requests", str(args.requests), "--concurrency", str(args.concurrency),
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, _ = await proc.communicate()
                print(out.decode(), end="")
        finally:
            sandbox.terminate()
            await sandbox.wait()
    await runner.cleanup()


async def client(args: argparse.Namespace) -> None:
    """The load, from its own process (so the server's event loop is the server's alone)."""
    import aiohttp
    from slack_standin import button_payload, form, sign, slash_body
    from trackops.bots.blocks import ACTION_HISTORY

    numbers = [f"RR{n:09d}CN" for n in range(args.shipments)]
    hooks = iter(range(1, 10**9))
    url = args.client

    def hook() -> str:
        return f"{args.hooks}/hooks/bench-{next(hooks)}"

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(body: str) -> float:
            t = time.perf_counter()
            async with session.post(url, data=body, headers=sign(body)) as response:
                await response.read()
                assert response.status == 200, response.status
            return time.perf_counter() - t

        def slash(text: str) -> Callable[[int], str]:
            return lambda i: slash_body(
                text.format(number=numbers[i % len(numbers)]),
                user="U0USER",
                channel="C0SHIPPING",
                response_url=hook(),
            )

        def history(i: int) -> str:
            number = numbers[i % len(numbers)]
            payload = button_payload(
                ACTION_HISTORY, number, user="U0USER", channel="C0SHIPPING", response_url=hook()
            )
            return form(payload)

        kinds: list[tuple[str, Callable[[int], str]]] = [
            ("/track help", slash("help")),
            ("/track status NUMBER", slash("status {number}")),
            ("/track list", slash("list")),
            ("History button", history),
        ]
        await post(kinds[0][1](0))  # warm-up (auth.test, first queries)
        worst = 0.0
        for name, make in kinds:
            samples = [await post(make(i)) for i in range(args.requests)]
            worst = max(worst, *samples)
            print(_figures(name, samples))
        for name, make in kinds[1:3]:
            # ``concurrency`` people typing at once: each worker sends one request after the
            # other, so a time never includes waiting for a free connection on our side.
            samples: list[float] = []

            async def worker(first: int) -> None:
                for i in range(first, args.requests, args.concurrency):
                    samples.append(await post(make(i)))  # noqa: B023

            await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
            worst = max(worst, *samples)
            print(_figures(f"{name} x{args.concurrency}", samples))
        print(f"slowest acknowledgement: {worst * 1000:.1f} ms (Slack allows 3000 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=400)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the load process: events URL
    parser.add_argument("--hooks", help=argparse.SUPPRESS)  # the stand-in's base URL
    parsed = parser.parse_args()
    asyncio.run(client(parsed) if parsed.client else main(parsed))
