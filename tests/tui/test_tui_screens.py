"""History, statistics, settings, sync and resend, driven by the Pilot."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from factories import settings_for
from textual.widgets import DataTable, Input, Select, Sparkline, Static
from trackops.core.channels import RecordingChannel
from trackops.core.config import example_config_text, load_settings
from trackops.tui.app import TrackopsApp, make_app
from trackops.tui.dialogs import ConfirmDialog
from trackops.tui.history import HistoryScreen, parse_day
from trackops.tui.main_screen import MainScreen
from trackops.tui.settings_screen import SettingsScreen
from trackops.tui.stats import StatsScreen
from tui_harness import NOW, seed_numbers, seed_store, wait_until

SEEDED = len(seed_numbers()) + 1


def app_for(service: Any, config_path: Path | None = None) -> TrackopsApp:
    return make_app(
        service, service.settings, clock=lambda: NOW, live=False, config_path=config_path
    )


async def main_loaded(pilot: Any) -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
    await wait_until(pilot, lambda: pilot.app.screen.table.row_count > 0)


async def test_history_searches_and_filters(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await main_loaded(pilot)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.rows) > 0)
        total = len(screen.rows)
        assert {row.send_status for row in screen.rows} == {"sent"}
        await pilot.press("slash", *"buyer4@")
        await wait_until(
            pilot, lambda: {r.recipient for r in screen.rows} == {"buyer4@example.com"}
        )
        screen.query_one("#history-search", Input).value = ""
        await wait_until(pilot, lambda: len(screen.rows) == total)
        screen.query_one("#send-status", Select).value = "failed"
        await wait_until(pilot, lambda: screen.rows == [])
        screen.query_one("#send-status", Select).value = "sent"
        screen.query_one("#condition", Select).value = "seller"
        await wait_until(pilot, lambda: len(screen.rows) > 0)
        assert {r.audience for r in screen.rows} == {"seller"}
        screen.query_one("#since", Input).value = "2027-01-01"
        await wait_until(pilot, lambda: screen.rows == [])
        await pilot.press("escape", "escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))


def test_history_dates_are_checked() -> None:
    assert parse_day(" 2026-11-30 ").day == 30
    assert parse_day("") is None
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("30/11/2026")


async def test_statistics_show_deliveries_and_carriers(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await main_loaded(pilot)
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, StatsScreen))
        spark = app.screen.query_one(Sparkline)
        await wait_until(pilot, lambda: sum(spark.data or []) == 3)
        carriers = str(app.screen.query_one("#carriers", Static).render())
        assert "China Post" in carriers or "carrier" in carriers.lower()


async def test_sync_now_shows_progress_then_a_summary(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await main_loaded(pilot)
        await pilot.press("y")
        await wait_until(
            pilot, lambda: any("sync:" in str(n.message) for n in app._notifications), seconds=15
        )
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.sync_progress == (SEEDED, SEEDED)  # the bar reached its end
        note = next(str(n.message) for n in app._notifications if "sync:" in str(n.message))
        assert f"{SEEDED} asked" in note
    assert (await service.audit(actor="tui", action="sync")).items


@pytest.fixture
async def failing(tmp_path: Path, box: Any) -> Any:
    """A service over a store whose notifications all failed once (max_attempts 1)."""
    from trackops.core.runtime import open_service

    settings = settings_for(tmp_path, base_url=box.base_url, max_attempts=1)
    await seed_store(settings, fail_with="mailbox full")
    async with open_service(
        settings, clock=lambda: NOW, channels=[RecordingChannel("memory")], load_plugins=False
    ) as opened:
        yield opened


async def test_resend_a_failed_notification_from_the_history(failing: Any) -> None:
    app = app_for(failing)
    async with app.run_test(size=(160, 48)) as pilot:
        await main_loaded(pilot)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.rows) > 0)
        first = screen.rows[0]
        assert first.send_status == "failed" and first.reason == "mailbox full"
        table = screen.query_one("#history-table", DataTable)
        assert "mailbox full" in str(table.get_row_at(0)[-1])
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(  # a new history row, sent this time; the failed one stays
            pilot,
            lambda: (
                isinstance(app.screen, HistoryScreen)
                and any(
                    r.id > first.id and r.recipient == first.recipient and r.send_status == "sent"
                    for r in app.screen.rows
                )
            ),
            seconds=10,
        )
        assert any(r.id == first.id and r.send_status == "failed" for r in app.screen.rows)
    assert (await failing.audit(actor="tui", action="resend")).items


COMMENTED = """\
# my trackops config: keep this comment
[api]
key = "k"  # the key
base_url = "{base_url}"

[store]
url = "{store_url}"

[notifications.seller]
# who gets alerts
email = "old@shop.example"
daily_limit = 100   # per day
channels = ["memory"]

[notifications.customer]
channels = ["memory"]

[[notifications.conditions]]
name = "late"  # a custom one
to = ["alert"]
channels = ["memory"]
"""


async def test_settings_are_saved_reread_and_comments_kept(service: Any, tmp_path: Path) -> None:
    path = tmp_path / "trackops.toml"
    path.write_text(
        COMMENTED.format(
            base_url=service.settings.api.base_url, store_url=service.settings.store.url
        )
    )
    app = app_for(service, config_path=path)
    async with app.run_test(size=(160, 48)) as pilot:
        await main_loaded(pilot)
        await pilot.press("comma")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        await wait_until(pilot, lambda: "late" in screen.query_one("#conditions").text)
        screen.query_one("#seller-email", Input).value = "new@shop.example"
        screen.query_one("#report-recipients", Input).value = "a@shop.example, b@shop.example"
        screen.query_one("#daily-limit", Input).value = "lots"
        await pilot.press("ctrl+s")
        error = screen.query_one("#settings-error", Static)
        await wait_until(pilot, lambda: "daily_limit" in str(error.render()))
        assert "expected a whole number" in str(error.render())
        assert "old@shop.example" in path.read_text()  # refused: the file is untouched
        screen.query_one("#daily-limit", Input).value = "25"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: str(error.render()) == "saved")
    text = path.read_text()
    for comment in (
        "# my trackops config",
        "# the key",
        "# who gets alerts",
        "# per day",
        "# a custom one",
    ):
        assert comment in text
    reread = load_settings(path)
    assert reread.notifications.seller.email == "new@shop.example"
    assert reread.notifications.seller.daily_limit == 25
    assert reread.notifications.reports.recipients == ("a@shop.example", "b@shop.example")
    assert [c.name for c in reread.notifications.conditions] == ["late"]
    assert app.settings.notifications.seller.daily_limit == 25


def test_config_edit_keeps_the_example_config_intact(tmp_path: Path) -> None:
    from trackops.tui.config_edit import NotificationChanges, save_notification_settings

    path = tmp_path / "trackops.toml"
    original = example_config_text()
    path.write_text(original)
    before = load_settings(path)
    save_notification_settings(
        path,
        NotificationChanges(
            customer_enabled=before.notifications.customer.enabled,
            seller_enabled=before.notifications.seller.enabled,
            seller_email=before.notifications.seller.email,
            daily_limit=str(before.notifications.seller.daily_limit),
            report_recipients=before.notifications.reports.recipients,
        ),
    )
    assert path.read_text() == original  # nothing changed: not a byte moved


def test_config_edit_refuses_bad_conditions_with_the_loaders_message(tmp_path: Path) -> None:
    from trackops.core.config import ConfigError
    from trackops.tui.config_edit import NotificationChanges, save_notification_settings

    path = tmp_path / "trackops.toml"
    path.write_text("[notifications.seller]\nemail = 'a@b.c'\n")
    changes = NotificationChanges(
        True,
        True,
        "a@b.c",
        "5",
        (),
        '[[notifications.conditions]]\nname = "x"\naudience = "robots"\n',
    )
    with pytest.raises(ConfigError, match="audience: expected customer or seller"):
        save_notification_settings(path, changes)
    bad_toml = NotificationChanges(True, True, "a@b.c", "5", (), "[[notifications.conditions]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        save_notification_settings(path, bad_toml)
    other = NotificationChanges(True, True, "a@b.c", "5", (), "[api]\nkey = 'x'\n")
    with pytest.raises(ConfigError, match="only"):
        save_notification_settings(path, other)
    assert tomllib.loads(path.read_text()) == {"notifications": {"seller": {"email": "a@b.c"}}}
