"""The dashboard's own widgets outside the main flows: the key bar."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Label
from trackops.tui.widgets import KeyFooter
from tui_harness import wait_until


class _Keys(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "act", "Act"),
        Binding("t", "toggle", "Toggle act", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.allowed = True

    def compose(self) -> ComposeResult:
        yield Label("keys")
        yield KeyFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool:
        return action != "act" or self.allowed  # False: not shown

    def action_toggle(self) -> None:
        self.allowed = not self.allowed
        self.refresh_bindings()


class _Cover(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Label("cover")


class _KeysApp(App[None]):
    def on_mount(self) -> None:
        self.push_screen(_Keys())


def _keys(screen: Screen[Any]) -> list[Widget]:
    return list(screen.query("FooterKey"))


def _actions(screen: Screen[Any]) -> list[str]:
    return [getattr(key, "action", "") for key in _keys(screen)]


async def test_the_key_bar_is_rebuilt_only_when_its_keys_change() -> None:
    app = _KeysApp()
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, _Keys) and _keys(app.screen))
        screen = app.screen
        built = _keys(screen)
        assert _actions(screen) == ["act", "command_palette"]
        screen.focus_next()  # the screen says its bindings changed; the shown ones did not
        await pilot.pause()
        app.push_screen(_Cover())  # covered and uncovered: Textual says "bindings changed"
        await wait_until(pilot, lambda: isinstance(app.screen, _Cover))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        await pilot.pause()
        assert _keys(screen) == built  # the very same widgets: no rebuild
        await pilot.press("t")  # a shown key is now hidden: rebuilt
        await wait_until(pilot, lambda: _actions(screen) == ["command_palette"])
