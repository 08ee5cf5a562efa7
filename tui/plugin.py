"""The dashboard's plugin: adds ``trackops tui`` and ``trackops demo`` to the CLI.

Registered under the ``trackops`` entry-point group (``tui = "trackops.tui.plugin"``). The CLI
loads every plugin to build ``--help``, so Textual is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING

from trackops.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from trackops.core.hookspecs import CliContext, RegisterCommand

__all__ = ["trackops_register_commands"]


def _configure_tui(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sync-every",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="also sync with 17TRACK every MINUTES (default 0: never; `trackops serve` "
        "applies the pushes and the dashboard shows them)",
    )


async def _run_tui(args: argparse.Namespace, ctx: CliContext) -> int:
    from trackops.core.runtime import running
    from trackops.tui.app import make_app
    from trackops.tui.logs import logging_beside

    if args.sync_every < 0:
        raise ValueError("--sync-every: expected minutes >= 0")
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
        "--speed", type=float, default=3600.0, help="simulated seconds per real second"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated parcels")
    parser.add_argument("--shipments", type=int, default=60, help="how many to register")


async def _run_demo(args: argparse.Namespace, ctx: CliContext) -> int:
    from trackops.tui.demo import run_demo

    return await run_demo(speed=args.speed, seed=args.seed, shipments=args.shipments)


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
