"""What plugins add to the dashboard, driven by Textual's Pilot over a real service: palette
commands on the selected shipment (by key and by the palette), a plugin screen, detail panels,
the help screen's plugin rows, and every kind of plugin failure shown in place, never a crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.screen import Screen
from textual.widgets import Static
from trackops.core.channels import RecordingChannel
from trackops.core.config import Settings
from trackops.core.hookspecs import DashboardScreen, DetailPanel, PaletteCommand, hookimpl
from trackops.core.plugins import PluginHost
from trackops.tui.app import TrackopsApp, make_app
from trackops.tui.detail import DetailScreen
from trackops.tui.extensions import PluginPanel, PluginPanels
from trackops.tui.help import HelpScreen
from trackops.tui.main_screen import MainScreen
from trackops.tui.table import ShipmentTable
from tui_harness import NOW, wait_until

SEEN: list[tuple[str, tuple[str, ...], str]] = []


async def _tag_late(ctx: Any) -> str:
    SEEN.append(("tag-late", ctx.numbers, ctx.actor))
    for number in ctx.numbers:
        await ctx.service.change_tag(number, "late", actor=ctx.actor)
    return f"tagged late: {', '.join(ctx.numbers)} [bold]x[/bold]"


def _broken(ctx: Any) -> None:
    raise RuntimeError("the plugin has a bug")


class LateScreen(Screen[None]):
    BINDINGS = [("escape", "app.pop_screen", "Back")]  # noqa: RUF012

    def __init__(self, numbers: tuple[str, ...]) -> None:
        super().__init__(id="late-screen")
        self.numbers = numbers

    def compose(self) -> Any:
        yield Static(f"late parcels: {len(self.numbers)} selected", id="late-body")


async def _slow_panel(detail: Any, service: Any) -> str:
    await asyncio.sleep(30)
    return "never"


def _link_panel(detail: Any, service: Any) -> Any:
    from textual.widgets import Link

    number = detail.shipment.number
    return Link(f"track {number}", url=f"https://t.17track.net/en#nums={number}")


class DashboardPlugin:
    @hookimpl
    def trackops_register_palette_commands(self, register: Any) -> None:
        register(PaletteCommand("tag-late", "tag the selected shipments late", _tag_late, key="L"))
        register(PaletteCommand("explode", "always fails", _broken, key="X"))
        register(PaletteCommand("grab-quit", "wants q", lambda ctx: "no", key="q"))

    @hookimpl
    def trackops_register_screens(self, register: Any) -> None:
        register(DashboardScreen("late-list", "late parcels", lambda ctx: LateScreen(ctx.numbers)))
        register(DashboardScreen("broken-screen", "not a screen", lambda ctx: "nope"))

    @hookimpl
    def trackops_register_detail_panels(self, register: Any) -> None:
        register(
            DetailPanel(
                "customs",
                "Customs",
                lambda detail, service: f"HS code for {detail.shipment.number}\n\x1b[2Jok",
            )
        )
        register(DetailPanel("link", "Carrier page", _link_panel))
        register(DetailPanel("crash", "Crashing", lambda d, s: 1 / 0))
        register(DetailPanel("slow", "Slow", _slow_panel))
        register(DetailPanel("nothing", "Hidden", lambda d, s: None))


@pytest.fixture
async def plugged(seeded: Settings) -> AsyncIterator[Any]:
    from trackops.core.runtime import open_service

    host = PluginHost(seeded, load_entrypoints=False, extra_plugins=[("late", DashboardPlugin())])
    async with open_service(
        seeded, clock=lambda: NOW, channels=[RecordingChannel("memory")], plugins=host
    ) as service:
        yield service


def app_for(service: Any) -> TrackopsApp:
    return make_app(service, service.settings, clock=lambda: NOW, live=False)


async def _loaded(pilot: Any) -> ShipmentTable:
    app = pilot.app
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, MainScreen) and app.screen.query_one(ShipmentTable).row_count
        ),
    )
    return app.screen.query_one(ShipmentTable)


def _highlighted(app: TrackopsApp) -> str:
    """The text of the palette's highlighted entry ("" while it searches)."""
    if not isinstance(app.screen, CommandPalette):
        return ""
    option = app.screen.query_one("CommandList").highlighted_option
    return _plain(option.prompt) if option is not None else ""


def _plain(renderable: Any) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return " ".join(console.export_text().split())


def _messages(app: TrackopsApp, severity: str) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == severity]


async def test_a_key_runs_the_plugin_command_on_the_highlighted_shipment(plugged: Any) -> None:
    SEEN.clear()
    app = app_for(plugged)
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        number = table.highlighted.number
        await pilot.press("L")
        await wait_until(
            pilot, lambda: any("tagged late" in m for m in _messages(app, "information"))
        )
        assert SEEN == [("tag-late", (number,), "tui")]
        assert (await plugged.shipment(number)).shipment.tag == "late"
        page = await plugged.audit(actor="tui", limit=5)
        assert ("tag", f"{number} -> late") in {(r.action, r.target) for r in page.items}
        (shown,) = [m for m in _messages(app, "information") if "tagged late" in m]
        assert shown == f"tagged late: {number} [bold]x[/bold]"  # plain text, not markup
        # a key the dashboard owns stays the dashboard's: refused, with a warning
        assert any("'q'" in m and "refused" in m for m in _messages(app, "warning"))
        assert any("key 'q'" in e for e in plugged.engine.plugins._errors["late"])


async def test_the_palette_lists_plugin_commands_and_runs_them_on_the_detail(plugged: Any) -> None:
    SEEN.clear()
    app = app_for(plugged)
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        number = table.highlighted.number
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"tag-late")
        await wait_until(pilot, lambda: "(plugin late)" in _highlighted(app))
        await pilot.press("enter")
        await wait_until(pilot, lambda: SEEN)
        assert SEEN == [("tag-late", (number,), "tui")]
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))


async def test_a_raising_plugin_command_is_an_error_notification_not_a_crash(
    plugged: Any,
) -> None:
    app = app_for(plugged)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("X")
        await wait_until(pilot, lambda: _messages(app, "error"))
        assert _messages(app, "error") == [
            "plugin 'late': command 'explode' failed: RuntimeError: the plugin has a bug"
        ]
        assert isinstance(app.screen, MainScreen) and app.is_running
        app.action_plugin_screen("broken-screen")
        await wait_until(pilot, lambda: len(_messages(app, "error")) == 2)
        assert "not a Textual Screen" in _messages(app, "error")[1]
        await pilot.press("L")  # still working
        await wait_until(pilot, lambda: any("tagged" in m for m in _messages(app, "information")))


async def test_a_plugin_screen_opens_from_the_palette_with_the_selection(plugged: Any) -> None:
    app = app_for(plugged)
    async with app.run_test(size=(160, 48)) as pilot:
        await _loaded(pilot)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"open late-list")
        await wait_until(pilot, lambda: "Open late-list" in _highlighted(app))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LateScreen))
        assert len(app.screen.numbers) == 1
        assert "1 selected" in _plain(app.screen.query_one("#late-body", Static).content)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_detail_panels_render_and_failures_stay_in_their_panel(plugged: Any) -> None:
    PluginPanels.TIMEOUT = 0.5
    app = app_for(plugged)
    try:
        async with app.run_test(size=(160, 60)) as pilot:
            table = await _loaded(pilot)
            number = table.highlighted.number
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
            await wait_until(pilot, lambda: len(app.screen.query(PluginPanel)) == 5)
            panels = {p.provided.item.name: p for p in app.screen.query(PluginPanel)}
            await wait_until(
                pilot, lambda: all(p.state != "empty" for p in panels.values()), seconds=5
            )
            states = {name: p.state for name, p in panels.items()}
            assert states == {
                "customs": "shown",
                "link": "shown",
                "crash": "failed",
                "slow": "failed",
                "nothing": "hidden",
            }

            def body(name: str) -> str:
                widget = panels[name].query(".plugin-panel--body").first()
                return _plain(widget.content).replace(" ", "")

            assert body("customs") == f"HScodefor{number}␛[2Jok"  # safe text, no escape
            assert body("crash") == (
                "plugin'late':panel'crash'failed:ZeroDivisionError:divisionbyzero"
            )
            assert "noanswerwithin0.5s" in body("slow")
            link = panels["link"].query_one("Link")
            assert link.url == f"https://t.17track.net/en#nums={number}"
            assert not panels["nothing"].display
            assert app.screen.query_one("#timeline").row_count >= 1  # the rest is unaffected
    finally:
        PluginPanels.TIMEOUT = 10.0


async def test_the_help_screen_lists_plugin_commands_beside_the_built_in_keys(
    plugged: Any,
) -> None:
    app = app_for(plugged)
    async with app.run_test(size=(160, 60)) as pilot:
        await _loaded(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = _plain(app.screen.query_one("#help Static").content)
        assert "register numbers" in text  # built-in
        assert "L tag-late: tag the selected shipments late (plugin late)" in text
        assert "ctrl+p open late-list: late parcels (plugin late)" in text
        assert "detail panel Customs (plugin late)" in text


async def test_marked_shipments_are_the_selection_of_a_plugin_command(plugged: Any) -> None:
    SEEN.clear()
    app = app_for(plugged)
    async with app.run_test(size=(160, 48)) as pilot:
        table = await _loaded(pilot)
        first = table.highlighted.number
        await pilot.press("space", "down", "down")
        third = table.highlighted.number
        await pilot.press("space")
        assert list(table.marked) == [first, third]
        assert table.render_line(1).text.lstrip().startswith(f"✓{first}")
        assert "✓" not in table.render_line(2).text
        await pilot.press("L")
        await wait_until(pilot, lambda: SEEN)
        assert SEEN == [("tag-late", (first, third), "tui")]
        await pilot.press("space")  # unmark the third: the selection is the first alone
        assert list(table.marked) == [first]
