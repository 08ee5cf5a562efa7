"""trackops-late-parcels: late parcels in the CLI, the dashboard and Slack.

A parcel is *late* when it is tracked, not delivered, and its carrier reported nothing new for
``DAYS`` days (the service's ``statistics(stuck_days=DAYS).stuck``). Every front-end gets one
piece, each through its hook; the name and help each piece registers is all trackops shows in
``trackops --help``, the dashboard's help screen and ``/track help``.

The module imports nothing heavy: trackops imports every plugin to build ``--help``. Textual
is imported inside the functions that build widgets, and only the dashboard calls them.
"""

from __future__ import annotations

import argparse
from typing import Any

from trackops.core.hookspecs import (
    CliCommand,
    CliContext,
    DashboardContext,
    DashboardScreen,
    DetailPanel,
    PaletteCommand,
    SlackButton,
    SlackCommand,
    SlackContext,
    SlackReply,
    hookimpl,
)

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "TAG",
    "late_shipments",
    "parse_days",
    "trackops_register_commands",
    "trackops_register_detail_panels",
    "trackops_register_palette_commands",
    "trackops_register_screens",
    "trackops_register_slack_commands",
]

DEFAULT_DAYS = 7
MAX_DAYS = 3650
TAG = "late"
LATE_HELP = "tracked parcels with no carrier event for DAYS days (default 7)"


def parse_days(text: str) -> int:
    """DAYS as typed in any front-end: a whole number from 1 to 3650; ``ValueError`` says why."""
    try:
        days = int(text)
    except ValueError:
        raise ValueError(f"DAYS is a whole number, not {text!r}") from None
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"DAYS is from 1 to {MAX_DAYS}, not {days}")
    return days


async def late_shipments(service: Any, days: int = DEFAULT_DAYS) -> list[Any]:
    """The late parcels (``ShipmentRow``s), the longest silent first."""
    stats = await service.statistics(days=1, stuck_days=days)
    return sorted(stats.stuck, key=lambda row: row.event_at or row.updated_at)


def _line(row: Any) -> str:
    event = row.latest_event_description or "no event yet"
    return f"{row.number}  {row.status.display}  {row.latest_event_time or '-'}  {event}"


# --------------------------------------------------------------------------- CLI


def _days_arg(text: str) -> int:
    try:
        return parse_days(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None  # argparse shows this message


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--days", type=_days_arg, default=DEFAULT_DAYS, help="days without an event (1 to 3650)"
    )


async def _late_cli(args: argparse.Namespace, ctx: CliContext) -> int:
    async with ctx.open_service() as service:
        rows = await late_shipments(service, args.days)
        for row in rows:
            ctx.print(_line(row))  # print() makes outside text safe for the terminal
    ctx.print(f"{len(rows)} late parcel(s)")
    return 0


@hookimpl
def trackops_register_commands(register: Any) -> None:
    """``trackops late [--days N]``."""
    register(CliCommand(name="late", help=LATE_HELP, run=_late_cli, configure=_configure))


# --------------------------------------------------------------------------- dashboard


async def _tag_selected(ctx: DashboardContext) -> str:
    if not ctx.numbers:
        return "select a shipment first"
    for number in ctx.numbers:
        await ctx.service.change_tag(number, TAG, actor=ctx.actor)
    return f"tagged {TAG}: {', '.join(ctx.numbers)}"


@hookimpl
def trackops_register_palette_commands(register: Any) -> None:
    """``tag-late`` (key ``L``): tag the selected shipment(s) late."""
    register(
        PaletteCommand(
            name="tag-late", help=f"tag the selected shipment {TAG!r}", run=_tag_selected, key="L"
        )
    )


def _late_screen(ctx: DashboardContext) -> Any:
    from textual.app import ComposeResult
    from textual.binding import Binding
    from textual.screen import Screen
    from textual.widgets import DataTable, Header, Static

    class LateScreen(Screen[None]):
        """The late parcels; ``escape`` closes it."""

        BINDINGS = [Binding("escape", "app.pop_screen", "Back")]  # noqa: RUF012

        def compose(self) -> ComposeResult:
            yield Header()
            yield Static("Late parcels (no carrier event for 7 days)", id="late-title")
            yield DataTable(id="late-table", cursor_type="row")

        async def on_mount(self) -> None:
            self.title = "Late parcels"
            table = self.query_one(DataTable)
            table.add_columns("Number", "Status", "Latest event", "What")
            for row in await late_shipments(ctx.service):
                # outside text as plain str cells: DataTable does not parse str as markup
                table.add_row(
                    row.number,
                    row.status.display,
                    row.latest_event_time or "-",
                    row.latest_event_description or "",
                )

    return LateScreen(id="late-parcels")


@hookimpl
def trackops_register_screens(register: Any) -> None:
    """The ``late`` screen, opened from the command palette ("Open late")."""
    register(DashboardScreen(name="late", help=LATE_HELP, make=_late_screen))


def _tracking_page(detail: Any, service: Any) -> Any:
    from textual.widgets import Link

    number = detail.shipment.number
    url = service.settings.notifications.tracking_url.format(number=number)
    carrier = detail.shipment.carrier_name or "the carrier"
    return Link(f"{carrier}: {url}", url=url, tooltip="open the tracking page")


@hookimpl
def trackops_register_detail_panels(register: Any) -> None:
    """ "Tracking page": a link to the parcel's tracking page."""
    register(DetailPanel(name="tracking-page", title="Tracking page", render=_tracking_page))


# --------------------------------------------------------------------------- Slack


async def _late_slack(ctx: SlackContext) -> SlackReply:
    from trackops.core.errors import InvalidInputError

    try:
        days = parse_days(ctx.args[0]) if ctx.args else DEFAULT_DAYS
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None  # answered as its message
    rows = await late_shipments(ctx.service, days)
    if not rows:
        return SlackReply(f"No parcel has been silent for {days} days.")
    lines = [f"*{len(rows)} late parcel(s)* (no event for {days} days):"]
    lines += [_line(row) for row in rows[:20]]
    buttons = tuple(
        SlackButton(f"Tag {row.number} late", "tag-late", (row.number,)) for row in rows[:5]
    )
    return SlackReply("\n".join(lines), buttons=buttons)


async def _tag_slack(ctx: SlackContext) -> str:
    from trackops.core.errors import InvalidInputError

    if len(ctx.args) != 1:
        raise InvalidInputError("usage: /track tag-late NUMBER")
    outcome = await ctx.service.change_tag(ctx.args[0], TAG, actor=ctx.actor)
    if outcome.rejected:
        return f"{ctx.args[0]}: {outcome.rejected[0].error.message}"
    return f"{ctx.args[0]} is tagged {TAG}."


@hookimpl
def trackops_register_slack_commands(register: Any) -> None:
    """``/track late [DAYS]`` for anyone, ``/track tag-late NUMBER`` for admins."""
    register(SlackCommand(name="late", help=LATE_HELP, run=_late_slack, usage="[DAYS]"))
    register(
        SlackCommand(
            name="tag-late",
            help=f"tag a parcel {TAG!r}",
            run=_tag_slack,
            usage="NUMBER",
            access="admins",
        )
    )
