"""Snapshots of the main screens at 160x48 and 80x24 (pytest-textual-snapshot).

The data is fixed (a seeded store, events at fixed times) and so is the clock; the live
status line is off. ``pytest --snapshot-update`` rewrites them after a deliberate change.
"""

from __future__ import annotations

from typing import Any

import pytest
from trackops.tui.main_screen import MainScreen
from trackops.tui.widgets import StatusCounts
from tui_harness import StoreApp, seeded_file, wait_until

SIZES = [pytest.param((160, 48), id="160x48"), pytest.param((80, 24), id="80x24")]


async def _loaded(pilot: Any) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
    await wait_until(pilot, lambda: app.screen.table.row_count > 0)
    await wait_until(pilot, lambda: sum(app.screen.query_one(StatusCounts).counts.values()) > 0)
    await pilot.pause(0.1)


@pytest.fixture(scope="module")
def seeded_settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return seeded_file(tmp_path_factory.mktemp("snapshots"))


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, seeded_settings: Any, size: tuple[int, int]) -> None:
    assert snap_compare(StoreApp(seeded_settings), terminal_size=size, run_before=_loaded)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_filtered(
    snap_compare: Any, seeded_settings: Any, size: tuple[int, int]
) -> None:
    async def filtered(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("2")
        await wait_until(pilot, lambda: "In transit" in pilot.app.screen.sub_title)
        await pilot.pause(0.1)

    assert snap_compare(StoreApp(seeded_settings), terminal_size=size, run_before=filtered)


@pytest.mark.parametrize("size", SIZES)
def test_detail_screen(snap_compare: Any, seeded_settings: Any, size: tuple[int, int]) -> None:
    async def detail(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("6", "enter")
        await wait_until(pilot, lambda: getattr(pilot.app.screen, "detail", None) is not None)
        await pilot.pause(0.1)

    assert snap_compare(StoreApp(seeded_settings), terminal_size=size, run_before=detail)


def test_help_screen(snap_compare: Any, seeded_settings: Any) -> None:
    async def help_open(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)

    assert snap_compare(StoreApp(seeded_settings), terminal_size=(80, 24), run_before=help_open)


def test_history_screen(snap_compare: Any, seeded_settings: Any) -> None:
    async def history(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("h")
        await wait_until(pilot, lambda: getattr(pilot.app.screen, "rows", None))
        await pilot.pause(0.1)

    assert snap_compare(StoreApp(seeded_settings), terminal_size=(160, 48), run_before=history)
