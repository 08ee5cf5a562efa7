"""What plugins add to the dashboard: palette commands and their keys, screens, detail panels.

The registrations come from the service (``Service.extensions()``), each with the plugin that
made it: that one object is the source of the name and help shown in the command palette, on
the help screen and (for a key) in the footer. Plugin code is never trusted to behave:

* a command or a screen's ``make`` that raises is an error notification naming the plugin;
* a detail panel whose ``render`` raises, hangs past ``PANEL_TIMEOUT`` or returns something
  that is neither text nor a widget shows "failed: ..." inside its own panel;
* a key the dashboard itself uses stays the dashboard's: the plugin's binding is refused
  (logged, a warning notification, and kept with the plugin's errors), its command stays in
  the palette.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Label, Static
from trackops.core.text import safe_text
from trackops.tui.format import clean

if TYPE_CHECKING:
    from trackops.core.hookspecs import DashboardScreen, DetailPanel, PaletteCommand
    from trackops.core.plugins import FrontEndExtensions, Provided
    from trackops.core.service import Service, ShipmentDetail
    from trackops.tui.app import TrackopsApp

__all__ = [
    "PANEL_TIMEOUT",
    "PluginContext",
    "PluginPanels",
    "bind_plugin_keys",
    "extensions_of",
    "help_rows",
    "reserved_keys",
]

log = logging.getLogger("trackops.tui")

PANEL_TIMEOUT = 10.0
"""Seconds a detail panel's ``render`` may take before it shows a timeout in place."""


def extensions_of(service: Service | None) -> FrontEndExtensions:
    """The plugins' dashboard registrations (empty without plugins)."""
    from trackops.core.plugins import FrontEndExtensions

    getter = getattr(service, "extensions", None)
    if getter is None:
        return FrontEndExtensions()
    try:
        return getter()
    except Exception as exc:  # a broken plugin set already failed the engine; be safe here
        log.warning("plugin extensions unavailable: %s", exc)
        return FrontEndExtensions()


@dataclass
class PluginContext:
    """``hookspecs.DashboardContext``: what a plugin's command, screen or panel gets."""

    app: TrackopsApp
    service: Service
    numbers: tuple[str, ...]
    plugin: str
    actor: str = "tui"

    def notify(self, text: str, *, error: bool = False) -> None:
        """A notification with ``text`` (plain, never markup)."""
        self.app.notify(
            clean(text, limit=500),
            title=f"plugin {clean(self.plugin)}",
            severity="error" if error else "information",
            markup=False,
        )


def _keys(bindings: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for binding in bindings:
        keys = binding.key if isinstance(binding, Binding) else binding[0]
        found.update(k.strip() for k in str(keys).split(",") if k.strip())
    return found


def reserved_keys() -> frozenset[str]:
    """Every key the dashboard's own screens, table and app bind (plus Textual's own)."""
    from trackops.tui.app import TrackopsApp
    from trackops.tui.detail import DetailScreen
    from trackops.tui.main_screen import MainScreen
    from trackops.tui.table import ShipmentTable

    keys: set[str] = {"ctrl+p", "ctrl+q", "tab", "shift+tab", "escape", "enter", "space"}
    for owner in (TrackopsApp, MainScreen, DetailScreen, ShipmentTable):
        keys |= _keys(owner.BINDINGS)
    keys |= {"question_mark", "slash", "comma"}
    return frozenset(keys)


_KEY_NAMES = {"?": "question_mark", "/": "slash", ",": "comma"}


def bind_plugin_keys(app: TrackopsApp, extensions: FrontEndExtensions) -> None:
    """Bind each plugin command's and screen's key on the app (unless the dashboard's own)."""
    taken = reserved_keys()
    entries: list[tuple[str, str | None, str, str]] = [
        (p.item.name, p.item.key, p.plugin, "plugin_command") for p in extensions.palette_commands
    ]
    entries += [(p.item.name, p.item.key, p.plugin, "plugin_screen") for p in extensions.screens]
    for name, key, plugin, action in entries:
        if key is None:
            continue
        if _KEY_NAMES.get(key, key) in taken:
            message = (
                f"key {key!r} of {name!r} is one of the dashboard's own keys; refused"
                " (the command stays in the command palette)"
            )
            app.service.refuse_extension(plugin, message)
            app.notify(clean(f"plugin {plugin!r}: {message}"), severity="warning", markup=False)
            continue
        app.bind(key, f"{action}({name!r})", description=name, show=False)


def help_rows(extensions: FrontEndExtensions) -> tuple[tuple[str, str], ...]:
    """The help screen's rows for what plugins add: (key, "help (plugin NAME)")."""
    rows: list[tuple[str, str]] = []
    if extensions.palette_commands or extensions.screens:
        rows.append(("space", "mark / unmark a shipment: plugin commands act on the marked ones"))
    for p in extensions.palette_commands:
        key = p.item.key or "ctrl+p"
        rows.append((key, clean(f"{p.item.name}: {p.item.help} (plugin {p.plugin})")))
    for s in extensions.screens:
        key = s.item.key or "ctrl+p"
        rows.append((key, clean(f"open {s.item.name}: {s.item.help} (plugin {s.plugin})")))
    for d in extensions.detail_panels:
        rows.append(("detail", clean(f"panel {d.item.title} (plugin {d.plugin})")))
    return tuple(rows)


def failure(plugin: str, what: str, exc: BaseException) -> str:
    """The one line a plugin's failure shows as."""
    from trackops.core.service import TrackopsError

    if isinstance(exc, TrackopsError):
        return clean(str(exc), limit=500)
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return clean(f"plugin {plugin!r}: {what} failed: {detail}", limit=500)


async def run_command(
    app: TrackopsApp, provided: Provided[PaletteCommand], numbers: tuple[str, ...]
) -> None:
    """Run a plugin's palette command; its text is a notification, its failure an error one."""
    command = provided.item
    context = PluginContext(app, app.service, numbers, provided.plugin)
    try:
        result = command.run(context)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        log.warning("plugin %s: command %s failed", provided.plugin, command.name, exc_info=True)
        app.notify(
            failure(provided.plugin, f"command {command.name!r}", exc),
            title=command.name,
            severity="error",
            markup=False,
        )
        return
    if result is not None:
        app.notify(clean(result, limit=500), title=command.name, markup=False)


async def open_screen(
    app: TrackopsApp, provided: Provided[DashboardScreen], numbers: tuple[str, ...]
) -> None:
    """Push a plugin's screen (a failing ``make`` or a non-screen is an error notification)."""
    spec = provided.item
    context = PluginContext(app, app.service, numbers, provided.plugin)
    try:
        screen = spec.make(context)
        if inspect.isawaitable(screen):
            screen = await screen
        if not isinstance(screen, Screen):
            raise TypeError(f"make() returned {type(screen).__name__}, not a Textual Screen")
        await app.push_screen(screen)
    except Exception as exc:
        log.warning("plugin %s: screen %s failed", provided.plugin, spec.name, exc_info=True)
        app.notify(
            failure(provided.plugin, f"screen {spec.name!r}", exc),
            title=spec.name,
            severity="error",
            markup=False,
        )


class PluginPanel(Vertical):
    """One plugin's panel in the detail: its title and what ``render`` gave (or its error)."""

    DEFAULT_CSS = """
    PluginPanel { height: auto; }
    PluginPanel > .plugin-panel--failed { color: $text-error; }
    """

    def __init__(self, provided: Provided[DetailPanel]) -> None:
        super().__init__(classes="plugin-panel", id=f"panel-{provided.item.name}")
        self.provided = provided
        self.state = "empty"
        """"empty", "shown", "hidden" or "failed" (tests read it)."""

    def compose(self) -> ComposeResult:
        title = f"{self.provided.item.title} (plugin {self.provided.plugin})"
        yield Label(Text(clean(title)), classes="panel-title")

    async def fill(self, detail: ShipmentDetail, service: Service, seconds: float) -> None:
        """Render the panel for ``detail``; any failure is shown here."""
        panel = self.provided.item
        await self.remove_children(".plugin-panel--body")
        try:
            result = panel.render(detail, service)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(_awaited(result), seconds)
            if result is None:
                self.state = "hidden"
                self.display = False
                return
            if isinstance(result, str):
                body: Widget = Static(Text(safe_text(result, multiline=True)))
            elif isinstance(result, Widget):
                body = result
            else:
                raise TypeError(f"render() returned {type(result).__name__}, not text or a widget")
            body.add_class("plugin-panel--body")
            self.display = True
            await self.mount(body)
            self.state = "shown"
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {seconds:g} s")
            log.warning("plugin %s: panel %s failed", self.provided.plugin, panel.name)
            self.display = True
            line = failure(self.provided.plugin, f"panel {panel.name!r}", exc)
            await self.mount(Static(Text(line), classes="plugin-panel--body plugin-panel--failed"))
            self.state = "failed"


async def _awaited(value: Any) -> Any:
    return await value


class PluginPanels(Vertical):
    """The detail's plugin panels, re-rendered when the shown shipment (or its data) changes."""

    DEFAULT_CSS = """
    PluginPanels { height: auto; }
    """
    TIMEOUT: ClassVar[float] = PANEL_TIMEOUT

    app: TrackopsApp

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown_for: tuple[str, object] | None = None
        self._panels: list[PluginPanel] = []

    def show(self, detail: ShipmentDetail) -> None:
        """Show the panels for ``detail`` (again only when the shipment changed)."""
        key = (detail.shipment.number, detail.shipment.updated_at)
        if key == self._shown_for:
            return
        self._shown_for = key
        self.run_worker(
            self._fill(detail), group="plugin-panels", exclusive=True, exit_on_error=False
        )

    async def _fill(self, detail: ShipmentDetail) -> None:
        extensions = extensions_of(self.app.service)
        if not self._panels and extensions.detail_panels:
            self._panels = [PluginPanel(p) for p in extensions.detail_panels]
            await self.mount_all(self._panels)
        await asyncio.gather(
            *(p.fill(detail, self.app.service, self.TIMEOUT) for p in self._panels)
        )
