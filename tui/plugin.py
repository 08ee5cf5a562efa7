"""The dashboard's plugin: adds ``trackops tui`` and ``trackops demo`` to the CLI.

Registered under the ``trackops`` entry-point group (``tui = "trackops.tui.plugin"``). The CLI
loads every plugin to build ``--help``, so Textual is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from trackops.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from trackops.core.hookspecs import CliContext, RegisterCommand

__all__ = ["trackops_register_commands"]


def _number(
    low: float, high: float = math.inf, *, whole: bool = False, above: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in range (else a usage error naming the range)."""

    def parse(text: str) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > low if above else value >= low) and value <= high
        if not ok:
            kind = "a whole number" if whole else "a finite number"
            bound = f"above {low:g}" if above else f"from {low:g}"
            upper = f" to {high:g}" if math.isfinite(high) else ""
            raise argparse.ArgumentTypeError(f"expected {kind} {bound}{upper}, not {text!r}")
        return value

    return parse


def _configure_tui(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sync-every",
        type=_number(0),
        default=0.0,
        metavar="MINUTES",
        help="also sync with 17TRACK every MINUTES (default 0: never; `trackops serve` "
        "applies the pushes and the dashboard shows them)",
    )


async def _run_tui(args: argparse.Namespace, ctx: CliContext) -> int:
    from trackops.core.runtime import running
    from trackops.tui.app import make_app
    from trackops.tui.logs import logging_beside

    assert ctx.settings is not None  # needs_config
    async with ctx.open_service() as service, contextlib.AsyncExitStack() as stack:
        if args.sync_every > 0:
            await stack.enter_async_context(
                running(service, listen=False, sync_every=args.sync_every * 60)
            )
        app = make_app(service, ctx.settings, config_path=ctx.config_path)
        with logging_beside(app):
            await app.run_async()
        return app.return_code or 0


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speed",
        type=_number(0, above=True),
        default=3600.0,
        help="simulated seconds per real second (default 3600: an hour a second)",
    )
    parser.add_argument(
        "--seed", type=_number(0, 2**63 - 1, whole=True), default=0, help="seed of the parcels"
    )
    parser.add_argument(
        "--shipments",
        type=_number(1, 1000, whole=True),
        default=60,
        help="how many shipments to register (default 60)",
    )


async def _run_demo(args: argparse.Namespace, ctx: CliContext) -> int:
    from trackops.tui.demo import run_demo

    return await run_demo(speed=args.speed, seed=int(args.seed), shipments=int(args.shipments))


@hookimpl
def trackops_register_commands(register: RegisterCommand) -> None:
    """``tui``: the dashboard over the configured store; ``demo``: it over the sandbox."""
    from trackops.core.hookspecs import CliCommand

    register(
        CliCommand(
            name="tui",
            help="the terminal dashboard over the configured store",
            configure=_configure_tui,
            run=_run_tui,
        )
    )
    register(
        CliCommand(
            name="demo",
            help="the dashboard over the built-in sandbox: no key, no config, no internet",
            configure=_configure_demo,
            run=_run_demo,
            needs_config=False,
        )
    )
