"""The hooks a trackops plugin may implement (pluggy project ``trackops``).

A plugin is a module (or object) with functions decorated by ``hookimpl`` and named after the
hooks below, exposed through the ``trackops`` entry-point group::

    # pyproject.toml of your plugin
    [project.entry-points.trackops]
    myplugin = "my_package.plugin"

    # my_package/plugin.py
    from trackops.core.hookspecs import hookimpl

    @hookimpl
    def trackops_register_channels(register, settings):
        register(MyChannel(settings.channels.table("mine")))

A hook implementation may accept any subset of the hook's arguments. Hooks that contribute
things take a ``register`` callback; trackops validates each registration, rejects a name that
another plugin already registered (naming both plugins) and remembers which plugin gave what
(``trackops plugins``). ``docs/plugins.md`` documents every hook here with its exact signature.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    from aiohttp import web
    from trackops.core.carriers import CarrierParam
    from trackops.core.channels import Channel
    from trackops.core.config import Settings
    from trackops.core.rules import ShipmentFacts
    from trackops.core.service import Service, ShipmentDetail
    from trackops.core.status import Transition

__all__ = [
    "PROJECT",
    "Access",
    "CliCommand",
    "CliContext",
    "DashboardContext",
    "DashboardScreen",
    "DetailPanel",
    "PaletteCommand",
    "Predicate",
    "RegisterCarrierParam",
    "RegisterChannel",
    "RegisterCommand",
    "RegisterDetailPanel",
    "RegisterPaletteCommand",
    "RegisterPredicate",
    "RegisterScreen",
    "RegisterSlackCommand",
    "SlackButton",
    "SlackCommand",
    "SlackContext",
    "SlackReply",
    "hookimpl",
    "hookspec",
]

PROJECT = "trackops"
"""pluggy project name and entry-point group."""

hookspec = HookspecMarker(PROJECT)
"""Marks a hook specification (trackops' own use)."""

hookimpl = HookimplMarker(PROJECT)
"""Marks a plugin's hook implementation: ``@hookimpl def trackops_...``."""

RegisterChannel = Callable[["Channel"], None]
"""``register(channel)``: add a notifier channel (an object following ``channels.Channel``)."""

RegisterCarrierParam = Callable[["CarrierParam"], None]
"""``register(param)``: add one row of carrier extra-parameter knowledge."""


class CliContext(Protocol):
    """What a plugin's CLI command gets besides its parsed arguments."""

    settings: Settings | None
    """The loaded settings (None for a command with ``needs_config=False``)."""
    config_path: Path
    """The config file in force (it may not exist for ``needs_config=False``)."""
    actor: str
    """Who runs the command, for the audit log: ``cli:<user>``."""

    def open_service(self) -> contextlib.AbstractAsyncContextManager[Service]:
        """The service over the configured store and API (``async with ctx.open_service()``)."""
        ...

    def print(self, text: str) -> None:
        """Print a line to standard output (outside text made safe for the terminal)."""
        ...


@dataclass(frozen=True)
class CliCommand:
    """A ``trackops`` sub-command contributed by a plugin.

    ``name``: the sub-command (lower-case, digits, '-'); ``help``: its one-line help, shown by
    ``trackops --help`` with the plugin's name; ``configure(parser)`` adds its arguments
    (argparse); ``run(args, ctx)`` does the work and returns the exit code (0 done, 1 failed;
    it may be ``async``). A ``TrackopsError`` it raises becomes one line on stderr and exit 1;
    any other exception is reported as the plugin's failure, never a traceback.
    ``needs_config``: whether the command needs a config file; ``long_running``: it runs
    until Ctrl-C (logging then shows warnings, and Ctrl-C ends it with status 0).
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace, CliContext], Awaitable[int] | int]
    configure: Callable[[argparse.ArgumentParser], None] | None = None
    needs_config: bool = True
    long_running: bool = False


RegisterCommand = Callable[[CliCommand], None]
"""``register(CliCommand(...))``: add a ``trackops`` sub-command."""


class DashboardContext(Protocol):
    """What a plugin's dashboard command, screen or panel gets from the dashboard."""

    service: Service
    """The dashboard's service (queries, and commands that record ``actor``)."""
    numbers: tuple[str, ...]
    """The selected shipments: those marked with ``space`` in the table (in marking order),
    else the highlighted row, or the shipment whose detail is shown; empty on other screens
    or with an empty table."""
    actor: str
    """Who acts, for the service's commands: ``tui``."""
    plugin: str
    """The name of the plugin the command comes from."""

    def notify(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` as a notification (plain text, never markup)."""
        ...


@dataclass(frozen=True)
class PaletteCommand:
    """A dashboard command contributed by a plugin: in the command palette (``ctrl+p``) and
    the help screen (``?``) as "help (plugin NAME)", optionally on a key.

    ``name``: lower-case letters, digits, '-' (unique among the plugins' palette commands and
    screens); ``help``: one line; ``run(ctx)`` does the work on ``ctx.numbers`` with
    ``ctx.service`` and may be ``async``; the text it returns (or None) is shown as a
    notification. ``key``: a key that runs it (Textual's key names: ``"L"``, ``"ctrl+l"``,
    ``"f6"``); a key the dashboard or another plugin already uses is refused. Whatever ``run``
    raises becomes an error notification naming the plugin; the dashboard goes on.
    """

    name: str
    help: str
    run: Callable[[DashboardContext], Awaitable[str | None] | str | None]
    key: str | None = None


@dataclass(frozen=True)
class DashboardScreen:
    """A screen a plugin adds to the dashboard, opened from the command palette ("Open ...")
    or by ``key``.

    ``make(ctx)`` returns the screen to push: an instance of a ``textual.screen.Screen``
    subclass (import Textual inside ``make``; core never imports it). A failure in ``make``
    is an error notification naming the plugin.
    """

    name: str
    help: str
    make: Callable[[DashboardContext], object]
    key: str | None = None


@dataclass(frozen=True)
class DetailPanel:
    """A panel in the dashboard's shipment detail, below the shipment's fields.

    ``render(detail, service)`` returns what the panel shows for that shipment: a ``str``
    (plain text, never markup), a ``textual.widget.Widget`` (e.g. ``textual.widgets.Link``),
    or None to hide the panel for this shipment. It may be ``async``; it is bounded by a
    timeout. An exception, a timeout or another kind of value is shown in the panel itself
    ("failed: ..."), never a crash. ``title``: the panel's heading.
    """

    name: str
    title: str
    render: Callable[[ShipmentDetail, Service], object]


Access = Literal["anyone", "admins"]
"""Who may run a plugin's ``/track`` subcommand: anyone in the workspace, or ``[slack] admins``."""


class SlackContext(Protocol):
    """What a plugin's ``/track`` subcommand (or its button) gets from the bot."""

    service: Service
    """The bot's service; pass ``actor`` to its commands so the audit log names the user."""
    args: tuple[str, ...]
    """The words after the subcommand, split shell-style (quotes keep words together)."""
    user_id: str
    """The Slack user (``U012ABC``)."""
    actor: str
    """``slack:<user id>``, for the service's commands."""
    channel_id: str | None
    """The channel the command was typed in (None when Slack named none)."""
    is_admin: bool
    """Whether the user is in ``[slack] admins``."""


@dataclass(frozen=True)
class SlackButton:
    """A button under a plugin's ``/track`` answer: pressing it runs the plugin's ``/track``
    subcommand ``command`` with ``args``, with the same access check and audit as typing it."""

    label: str
    command: str
    args: tuple[str, ...] = ()
    style: Literal["primary", "danger"] | None = None


@dataclass(frozen=True)
class SlackReply:
    """A ``/track`` answer: ``text`` (Slack mrkdwn; ``&``, ``<`` and ``>`` are escaped, so it
    can be bold but cannot ping or forge links) and optional buttons."""

    text: str
    buttons: tuple[SlackButton, ...] = ()


@dataclass(frozen=True)
class SlackCommand:
    """A ``/track`` subcommand contributed by a plugin.

    ``name``: the subcommand (lower-case letters, digits, '-'; not one of the bot's own);
    ``help``: one line, shown by ``/track help`` as "help (plugin NAME)"; ``usage``: the
    arguments shown after the name (``"[DAYS]"``); ``access``: ``"anyone"`` or ``"admins"``
    (``[slack] admins``): the bot refuses others, records the refusal and runs nothing.
    ``run(ctx)`` returns a ``str`` or a ``SlackReply`` and may be ``async``; the bot records
    each run (actor ``slack:<user>``, action ``name``) and keeps Slack's 3-second
    acknowledgement (a slow answer follows through Slack's response URL; one not ready within
    10 minutes is cut off). A ``TrackopsError`` becomes its message; any other exception an
    error line naming the plugin.
    """

    name: str
    help: str
    run: Callable[[SlackContext], Awaitable[str | SlackReply] | str | SlackReply]
    usage: str = ""
    access: Access = "anyone"


RegisterPaletteCommand = Callable[[PaletteCommand], None]
"""``register(PaletteCommand(...))``: add a dashboard command."""

RegisterScreen = Callable[[DashboardScreen], None]
"""``register(DashboardScreen(...))``: add a dashboard screen."""

RegisterDetailPanel = Callable[[DetailPanel], None]
"""``register(DetailPanel(...))``: add a panel to the shipment detail."""

RegisterSlackCommand = Callable[[SlackCommand], None]
"""``register(SlackCommand(...))``: add a ``/track`` subcommand."""

Predicate = Callable[["Transition", "ShipmentFacts"], bool]
"""A custom condition's extra test: ``fn(transition, facts) -> bool``."""

RegisterPredicate = Callable[[str, Predicate], None]
"""``register(name, fn)``: add a predicate that ``[[notifications.conditions]] predicate`` names."""


@hookspec
def trackops_register_channels(register: RegisterChannel, settings: Settings) -> None:
    """Register notifier channels.

    Called once per process, when the plugin host is first asked for its channels (the engine
    does so when it opens). Call ``register(channel)`` for each channel, with an object that
    has a ``name`` (the name used in ``channels = [...]`` in the config), an async
    ``send(message)`` that returns when delivered or raises ``ChannelError``, and an async
    ``aclose()``. Register nothing when your ``[channels.NAME]`` table is not configured.
    Returns nothing.
    """


@hookspec
def trackops_register_carrier_params(register: RegisterCarrierParam) -> None:
    """Register which carriers need an extra parameter (postal code, phone number ...).

    Called once per process, when the host is first asked for carrier params. Call
    ``register(CarrierParam(...))`` once per (carrier, kind). The engine uses them to ask
    for a missing required parameter before registering a number, and to explain
    17TRACK's errors -18010018/-19/-20/-22. Returns nothing.
    """


@hookspec
def trackops_register_predicates(register: RegisterPredicate, settings: Settings) -> None:
    """Register named predicates for custom notification conditions.

    Called once per process, when the host is first asked for its predicates (the engine
    does so when it compiles the rules). ``register(name, fn)``: ``fn(transition, facts)``
    returns True when the condition whose ``predicate = "name"`` should fire. It runs inside
    the rules, so it must be fast and must not do I/O. Returns nothing.
    """


@hookspec
def trackops_transition_committed(
    transition: Transition, shipment: ShipmentFacts
) -> Awaitable[Any] | None:
    """Observe a shipment's transition after it was stored.

    Called by the engine for every applied transition (sync, push), after the transaction
    that stored it committed, whether or not it notifies anyone. ``shipment`` is what the
    rules saw (number, carrier, tag, order, email, countries). May be a plain function or
    return an awaitable (an ``async def``); trackops awaits it, bounded by a timeout. The
    return value is ignored; an exception is logged with the plugin's name and never stops
    the engine or the other observers.
    """


@hookspec
def trackops_register_commands(register: RegisterCommand) -> None:
    """Register ``trackops`` sub-commands (``trackops tui`` comes from the dashboard's plugin).

    Called once per process when the CLI builds its parser, before any config is read, so it
    must be cheap: import heavy libraries inside your command's ``run``, not at module level.
    Call ``register(CliCommand(...))`` for each command. A name that a built-in command or
    another plugin already uses is refused, naming both. Returns nothing.
    """


@hookspec
def trackops_setup_server(app: web.Application, service: Service, settings: Settings) -> None:
    """Extend the listener's aiohttp application (``serve``, ``demo``, ``tui``).

    Called once per server, after trackops added its own routes (the push endpoint and
    ``/healthz``) and before the server starts. Add routes (the Slack bot mounts
    ``POST /slack/events``), ``app.cleanup_ctx`` generators for background work (a Socket
    Mode client), or nothing when your settings are not configured. ``service`` is the
    front-ends' facade over the running engine. An exception is logged with the plugin's
    name and the server runs without that plugin's part. Returns nothing.
    """


@hookspec
def trackops_register_palette_commands(register: RegisterPaletteCommand) -> None:
    """Register dashboard commands (command palette, help screen, optional key).

    Called once per process, when the plugin host loads (the engine opens it). Call
    ``register(PaletteCommand(...))`` for each command. A name or key another plugin already
    registered is refused at load, naming both; a key the dashboard itself uses is refused
    when the dashboard starts (the command stays in the palette). Returns nothing.
    """


@hookspec
def trackops_register_screens(register: RegisterScreen) -> None:
    """Register dashboard screens, opened from the command palette ("Open NAME") or a key.

    Called once per process, when the plugin host loads. Call
    ``register(DashboardScreen(...))`` for each screen; its name shares the palette
    commands' namespace. Returns nothing.
    """


@hookspec
def trackops_register_detail_panels(register: RegisterDetailPanel) -> None:
    """Register panels for the dashboard's shipment detail (a carrier's tracking page,
    customs data ...).

    Called once per process, when the plugin host loads. Call ``register(DetailPanel(...))``
    for each panel; panels show in load order. Returns nothing.
    """


@hookspec
def trackops_register_slack_commands(register: RegisterSlackCommand) -> None:
    """Register ``/track`` subcommands for the Slack bot.

    Called once per process, when the plugin host loads. Call ``register(SlackCommand(...))``
    for each subcommand. A name another plugin already registered is refused at load, naming
    both; a name of the bot's own commands is refused when the bot starts (logged, and shown
    by ``trackops plugins``). Returns nothing.
    """
