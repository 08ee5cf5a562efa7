"""The example plugin that extends every front-end (examples/trackops-late-parcels), installed
into a temporary folder (never this venv) and found through its entry point: its CLI command
as a subprocess, its palette command, screen and detail panel through Textual's Pilot. (Its
``/track`` subcommands: tests/bots/test_slack_late_example.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import make_info, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.config import Settings
from trackops.core.runtime import open_service
from trackops.core.wire import PackageStatus

LATE = "RR100000001CN"
ALSO_LATE = "LX200000002CN"
FRESH = "RR300000003CN"
DELIVERED = "RR400000004CN"

pytestmark = pytest.mark.usefixtures("late_parcels_installed")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None).replace(microsecond=0)


async def seed(settings: Settings, now: datetime) -> None:
    """Four shipments registered (at the sandbox ``settings`` name), then tracking data as
    17TRACK would send it: two silent for over a week (late), one with yesterday's event, one
    delivered long ago."""
    from trackops.core.service import RegisterRequest

    async with open_service(
        settings, clock=lambda: now, channels=[RecordingChannel("memory")], load_plugins=False
    ) as service:
        numbers = (LATE, ALSO_LATE, FRESH, DELIVERED)
        outcome = await service.register([RegisterRequest(n) for n in numbers], actor="test")
        assert outcome.ok, outcome.rejected
        await service.engine.apply_track_infos(
            [
                (LATE, make_info(PackageStatus.IN_TRANSIT, now - timedelta(days=10))),
                (ALSO_LATE, make_info(PackageStatus.ALERT, now - timedelta(days=9))),
                (FRESH, make_info(PackageStatus.IN_TRANSIT, now - timedelta(days=1))),
                (DELIVERED, make_info(PackageStatus.DELIVERED, now - timedelta(days=20))),
            ]
        )
        assert await service.count_shipments() == 4


@pytest.fixture
async def box() -> AsyncIterator[Any]:
    """A sandbox (17TRACK) on loopback."""
    from factories import KEY
    from trackops.core.sandbox import SandboxConfig, running_sandbox

    async with running_sandbox(SandboxConfig(key=KEY, speed=0.0)) as running:
        yield running


@pytest.fixture
async def seeded(tmp_path: Path, box: Any) -> Settings:
    settings = settings_for(tmp_path, base_url=box.base_url)
    await seed(settings, _now())
    return settings


def _cli(tmp_path: Path, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "trackops.toml"
    config.write_text(
        f'[api]\nkey = "test-key"\n[store]\nurl = "{settings.store.url}"\n', encoding="utf-8"
    )
    env = {**os.environ, "TRACKOPS_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "trackops.core.cli", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


async def test_its_cli_command_is_listed_and_runs_as_a_subprocess(
    seeded: Settings, tmp_path: Path
) -> None:
    helped = _cli(tmp_path, seeded, "--help")
    assert helped.returncode == 0, helped.stderr
    assert (
        "tracked parcels with no carrier event for DAYS days (default 7) (plugin late)"
        in " ".join(helped.stdout.split())
    )
    done = _cli(tmp_path, seeded, "late", "--days", "7")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [LATE, ALSO_LATE]
    assert lines[-1] == "2 late parcel(s)"
    assert _cli(tmp_path, seeded, "late", "--days", "30").stdout == "0 late parcel(s)\n"
    for days, why in (("0", "DAYS is from 1 to 3650, not 0"), ("10" * 10, "not 1010101010")):
        refused = _cli(tmp_path, seeded, "late", "--days", days)
        assert refused.returncode == 2 and why in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr and refused.stdout == ""


# --------------------------------------------------------------------------- the dashboard


@pytest.fixture
async def service(seeded: Settings) -> AsyncIterator[Any]:
    """The service with every installed plugin loaded (the example among them)."""
    async with open_service(seeded, channels=[RecordingChannel("memory")]) as opened:
        yield opened


def _app(service: Any) -> Any:
    from trackops.tui.app import make_app

    return make_app(service, service.settings, live=False)


async def _until(pilot: Any, predicate: Any, seconds: float = 5.0) -> None:
    import asyncio

    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {predicate}"
        await pilot.pause(0.02)


def _table(app: Any) -> Any:
    from trackops.tui.table import ShipmentTable

    return app.screen.query_one(ShipmentTable)


async def test_its_palette_command_tags_the_selected_shipment(service: Any) -> None:
    from trackops.tui.main_screen import MainScreen

    app = _app(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MainScreen) and _table(app).row_count)
        number = _table(app).highlighted.number
        await pilot.press("L")
        await _until(
            pilot, lambda: any("tagged late" in str(n.message) for n in app._notifications)
        )
        assert (await service.shipment(number)).shipment.tag == "late"
        page = await service.audit(actor="tui", action="tag", limit=5)
        assert [r.target for r in page.items] == [f"{number} -> late"]


async def test_its_screen_opens_from_the_palette_and_lists_the_late_parcels(service: Any) -> None:
    from textual.command import CommandPalette
    from trackops.tui.main_screen import MainScreen

    app = _app(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MainScreen) and _table(app).row_count)
        await pilot.press("ctrl+p")
        await _until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Open late")

        def highlighted() -> str:
            screen = app.screen
            if not isinstance(screen, CommandPalette):
                return ""
            option = screen.query_one("CommandList").highlighted_option
            return str(option.prompt) if option is not None else ""

        await _until(pilot, lambda: "Open late" in highlighted() and "plugin late" in highlighted())
        await pilot.press("enter")
        await _until(pilot, lambda: app.screen.id == "late-parcels")
        table = app.screen.query_one("#late-table")
        await _until(pilot, lambda: table.row_count == 2)
        assert [table.get_row_at(i)[0] for i in range(2)] == [LATE, ALSO_LATE]
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_its_detail_panel_links_the_tracking_page(service: Any) -> None:
    from textual.widgets import Link
    from trackops.tui.detail import DetailScreen
    from trackops.tui.extensions import PluginPanel
    from trackops.tui.main_screen import MainScreen

    app = _app(service)
    async with app.run_test(size=(160, 60)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MainScreen) and _table(app).row_count)
        number = _table(app).highlighted.number
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await _until(pilot, lambda: len(app.screen.query(PluginPanel)) == 1)
        panel = app.screen.query_one(PluginPanel)
        await _until(pilot, lambda: panel.state == "shown")
        assert panel.provided.plugin == "late"
        link = panel.query_one(Link)
        assert link.url == f"https://t.17track.net/en#nums={number}"
        # the detail screen is reused: the next shipment gets its own link, one panel still
        await pilot.press("escape", "down")
        other = _table(app).highlighted.number
        assert other != number
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen))
        url = f"https://t.17track.net/en#nums={other}"
        await _until(pilot, lambda: [x.url for x in panel.query(Link)] == [url])


def test_the_guide_shows_this_plugins_source_exactly() -> None:
    from plugin_helpers import LATE_EXAMPLE

    root = LATE_EXAMPLE.parents[1]
    docs = (root / "docs" / "plugins.md").read_text(encoding="utf-8")
    begin, end = (
        "<!-- late-parcels source: begin -->\n```python\n",
        "```\n<!-- late-parcels source: end -->",
    )
    shown = docs[docs.index(begin) + len(begin) : docs.index(end)]
    source = LATE_EXAMPLE / "trackops_late_parcels" / "__init__.py"
    assert shown == source.read_text(encoding="utf-8")


def test_trackops_plugins_says_what_it_adds_to_each_front_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trackops.core.cli import main

    config = tmp_path / "trackops.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "t.db"}"\n', encoding="utf-8")
    assert main(["--config", str(config), "plugins", "--json"]) == 0
    (late,) = [p for p in json.loads(capsys.readouterr().out) if p["name"] == "late"]
    assert late["distribution"] == "trackops-late-parcels"
    assert late["provides"] == [
        "palette command tag-late",
        "screen late",
        "detail panel tracking-page",
        "/track subcommand late",
        "/track subcommand tag-late",
        "command late",
    ]
    assert late["errors"] == []
