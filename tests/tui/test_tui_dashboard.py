"""The dashboard driven by Textual's Pilot over a real service, SQLite file and sandbox."""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Static, TextArea
from trackops.core.wire import PackageStatus
from trackops.tui.app import TrackopsApp, make_app
from trackops.tui.detail import DetailScreen
from trackops.tui.dialogs import CarrierPicker, ConfirmDialog, RegisterDialog
from trackops.tui.help import HelpScreen
from trackops.tui.main_screen import MainScreen
from trackops.tui.table import ShipmentTable
from trackops.tui.widgets import StatusCounts
from tui_harness import HOSTILE, NOW, seed_numbers, wait_until

SEEDED = len(seed_numbers()) + 1


def app_for(service: Any, *, live: bool = False, config_path: Path | None = None) -> TrackopsApp:
    return make_app(
        service, service.settings, clock=lambda: NOW, live=live, config_path=config_path
    )


def table(app: TrackopsApp) -> ShipmentTable:
    return app.screen.query_one(ShipmentTable)


def shown(app: TrackopsApp) -> list[str]:
    return [row.number for row in table(app).rows_shown]


def statuses(app: TrackopsApp) -> set[PackageStatus]:
    return {row.status for row in table(app).rows_shown}


async def loaded(pilot: Any, count: int | None = None) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, MainScreen) and table(app).row_count)
    if count is not None:
        await wait_until(pilot, lambda: table(app).row_count == count)


async def test_main_screen_shows_every_shipment_and_the_counts(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        counts = app.screen.query_one(StatusCounts)
        await wait_until(pilot, lambda: sum(counts.counts.values()) == SEEDED)
        assert counts.counts[int(PackageStatus.DELIVERED)] == 3
        assert counts.counts[int(PackageStatus.IN_TRANSIT)] == 4  # 3 + the hostile one
        assert str(SEEDED) in app.screen.sub_title


async def test_digits_show_one_status_in_code_order_and_zero_all(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        for key, status in zip("1234567", sorted(PackageStatus), strict=True):
            await pilot.press(key)
            await wait_until(pilot, lambda s=status: statuses(app) == {s})
        await pilot.press("0")
        await loaded(pilot, SEEDED)
        assert len(statuses(app)) == 7


async def test_search_filters_as_you_type_enter_keeps_escape_clears(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press("g", "i")  # the tag "gift": every third shipment
        await wait_until(pilot, lambda: table(app).row_count == 7)
        await pilot.press("f")
        await wait_until(pilot, lambda: table(app).row_count == 7)
        await pilot.press("enter")
        assert isinstance(app.focused, ShipmentTable)
        assert table(app).row_count == 7  # enter keeps the filter
        await pilot.press("6")  # digits work on the table again, within the search
        await wait_until(pilot, lambda: statuses(app) == {PackageStatus.DELIVERED})
        await pilot.press("0", "slash", "z", "z", "z")
        await wait_until(pilot, lambda: table(app).row_count == 0)
        await pilot.press("escape")
        assert isinstance(app.focused, ShipmentTable)
        await loaded(pilot, SEEDED)  # escape cleared the filter
        assert app.screen.query_one("#search", Input).value == ""


async def test_the_title_counts_what_it_says_it_counts_while_typing(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        await wait_until(pilot, lambda: app.screen.sub_title.startswith(f"{SEEDED} shipments"))
        await pilot.press("slash", "g", "i")  # the tag "gift": every third shipment
        await wait_until(pilot, lambda: table(app).row_count == 7)
        # the rows come at once, the counts once typing pauses: never the old count with
        # the new text
        assert "'gi'" not in app.screen.sub_title or app.screen.sub_title.startswith("7 ")
        await wait_until(pilot, lambda: app.screen.sub_title.startswith("7 shipments"))
        assert "search 'gi'" in app.screen.sub_title


async def test_search_by_order_and_email(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        await pilot.press("slash")
        box = app.screen.query_one("#search", Input)
        box.value = "A1004"
        await wait_until(pilot, lambda: shown(app) == [seed_numbers()[4][0]])
        box.value = "BUYER12@"  # case does not matter
        await wait_until(pilot, lambda: shown(app) == [seed_numbers()[12][0]])


async def test_enter_opens_the_detail_with_timeline_and_escape_closes_it(service: Any) -> None:
    number = seed_numbers()[1][0]  # In transit: its first sync notified the buyer
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        await pilot.press("slash", *number, "enter")
        await wait_until(pilot, lambda: shown(app) == [number])
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        detail = app.screen
        await wait_until(pilot, lambda: detail.detail is not None)
        assert detail.number == number
        timeline = detail.query_one("#timeline")
        assert timeline.row_count == 1
        time, _, location, event = (str(cell) for cell in timeline.get_row_at(0))
        assert (location, event) == ("Shenzhen", "Departed from the sorting centre")
        assert time == (NOW - timedelta(hours=6)).strftime("%Y-%m-%d %H:%M")  # as given
        notes = detail.query_one("#detail-notifications")
        assert notes.row_count == 1  # the buyer's email
        assert "sent" in [str(cell) for cell in notes.get_row_at(0)]
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert shown(app) == [number]  # the search is kept behind the detail


async def test_moving_the_cursor_repaints_the_rows_it_left_and_reached(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 20)) as pilot:  # fewer rows shown than there are
        await loaded(pilot, SEEDED)
        rows = table(app)
        cursor = rows.get_component_rich_style("shipment-table--cursor").bgcolor

        def highlighted() -> list[int]:
            """The painted lines in the cursor's colour (what the screen shows)."""
            lines = rows.render_lines(rows.size.region)
            firsts = [next(iter(line), None) for line in lines]
            return [
                y
                for y, seg in enumerate(firsts)
                if seg and seg.style and seg.style.bgcolor == cursor
            ]

        assert highlighted() == [1]  # under the header
        await pilot.press("down", "down")
        await wait_until(pilot, lambda: rows.cursor_row == 2)
        await pilot.pause()
        assert highlighted() == [3]
        await pilot.press("pagedown", "pagedown")  # past the last line shown: it scrolls
        await wait_until(pilot, lambda: rows.scroll_offset.y > 0)
        await pilot.pause()
        assert highlighted() == [rows.cursor_row - rows.scroll_offset.y + 1]
        await pilot.press("up")
        await wait_until(pilot, lambda: rows.highlighted is not None)
        await pilot.pause()
        assert highlighted() == [rows.cursor_row - rows.scroll_offset.y + 1]


def _facts(screen: DetailScreen) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(screen.query_one("#facts", Static).content)
    return " ".join(console.export_text().split())


async def test_the_reused_detail_never_shows_the_previous_shipment(service: Any) -> None:
    first, second = seed_numbers()[1][0], seed_numbers()[2][0]
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        app.open_detail(first)
        await wait_until(
            pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None
        )
        screen = app.screen
        assert first in _facts(screen)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        screen.show(second)  # nothing read ahead: nothing of the first while it is read
        assert _facts(screen) == "reading…"
        assert screen.query_one("#timeline", DataTable).row_count == 0
        app.push_screen(screen)
        await wait_until(pilot, lambda: screen.detail is not None)
        assert screen.detail is not None and screen.detail.shipment.number == second
        assert second in _facts(screen) and first not in _facts(screen)


async def test_a_read_ahead_detail_is_shown_once_when_the_fresh_read_agrees(
    service: Any, monkeypatch: Any
) -> None:
    shown: list[str] = []
    render = DetailScreen._show

    def counting(self: DetailScreen, detail: Any) -> None:
        shown.append(detail.shipment.number)
        render(self, detail)

    monkeypatch.setattr(DetailScreen, "_show", counting)
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        number = table(app).rows_shown[1].number
        app.open_detail(number)  # mounts the screen once
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("down")  # the highlighted shipment is read ahead
        await wait_until(pilot, lambda: table(app).highlighted.number == number)
        await app.workers.wait_for_complete()
        shown.clear()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await app.workers.wait_for_complete()  # the fresh read
        assert shown == [number]
        assert app.screen.query_one("#timeline", DataTable).row_count == 1


async def test_start_up_objects_are_out_of_the_collectors_sight_until_exit(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        await wait_until(pilot, lambda: gc.get_freeze_count() > 0)
    assert gc.get_freeze_count() == 0


async def open_register(app: Any, pilot: Any) -> RegisterDialog:
    """Press ``n`` on the main screen; the register dialog once it is up."""
    await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, RegisterDialog))
    dialog = app.screen
    assert isinstance(dialog, RegisterDialog)
    return dialog


async def test_register_through_the_dialog_and_see_the_row(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        dialog = await open_register(app, pilot)
        dialog.query_one("#numbers", TextArea).text = "RR555000111CN\n RR555000222CN \n\n"
        dialog.query_one("#tag", Input).value = "from-tui"
        dialog.query_one("#order", Input).value = "B-1"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        await wait_until(pilot, lambda: "RR555000111CN" in shown(app), seconds=10)
        assert "RR555000222CN" in shown(app)
        detail = await service.shipment("RR555000222CN")
        assert detail.shipment.tag == "from-tui" and detail.shipment.order == "B-1"
        page = await service.audit(actor="tui")
        assert any(row.action == "register" for row in page.items)


async def test_the_register_dialog_validates_before_sending(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        dialog = await open_register(app, pilot)
        await pilot.press("ctrl+s")  # no number
        error = dialog.query_one("#error", Static)
        await wait_until(pilot, lambda: "at least one" in str(error.render()))
        dialog.query_one("#numbers", TextArea).text = "RR555000333CN"
        dialog.query_one("#carrier", Input).value = "no such carrier at all"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "no such carrier" in str(error.render()).lower())
        assert isinstance(app.screen, RegisterDialog)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
    assert (await service.count_shipments()) == SEEDED


async def test_the_carrier_picker_searches_by_name_and_shows_the_param_hint(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        dialog = await open_register(app, pilot)
        await pilot.click("#carrier")
        await pilot.press(*"gls")
        options = dialog.query_one("#carrier-options")
        await wait_until(pilot, lambda: options.option_count > 1)
        await pilot.press("down", "down", "enter")  # into the list, the second match
        picker = dialog.query_one(CarrierPicker)
        assert picker.chosen is not None and "GLS" in picker.chosen.name
        assert dialog.query_one("#carrier", Input).value == picker.chosen.name
        label = str(dialog.query_one("#param-label").render())
        if picker.chosen.needs_param is not None:  # the carrier helper's hint is shown
            assert picker.chosen.needs_param.hint[:20] in label
        await pilot.press("escape")


async def test_stop_asks_first_and_then_stops(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        number = table(app).highlighted.number
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")  # no: nothing happens
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert (await service.shipment(number)).shipment.active
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        for _ in range(100):
            if not (await service.shipment(number)).shipment.active:
                break
            await pilot.pause(0.05)
        assert not (await service.shipment(number)).shipment.active
        rows = lambda: {r.number: r for r in table(app).rows_shown}  # noqa: E731
        await wait_until(pilot, lambda: not rows()[number].active)
        page = await service.audit(actor="tui", action="stop")
        assert [row.target for row in page.items] == [number]


async def test_delete_from_the_detail_closes_it(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        number = table(app).highlighted.number
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), seconds=10)
        await wait_until(pilot, lambda: number not in shown(app))
    assert (await service.count_shipments()) == SEEDED - 1


async def test_edit_tag(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        number = table(app).highlighted.number
        await pilot.press("e")
        box = await _focused_input(pilot)
        box.value = ""
        await pilot.press(*"urgent", "enter")
        await wait_until(pilot, lambda: table(app).highlighted.tag == "urgent", seconds=10)
    assert (await service.shipment(number)).shipment.tag == "urgent"


async def _focused_input(pilot: Any) -> Input:
    await wait_until(pilot, lambda: isinstance(pilot.app.focused, Input))
    return pilot.app.focused


async def test_help_palette_and_q_quits_with_status_zero(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"show deliv")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        await wait_until(pilot, lambda: statuses(app) == {PackageStatus.DELIVERED})
        await pilot.press("q")
    assert app.return_code == 0


async def test_outside_text_is_never_markup_nor_control_characters(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        cells = table(app).cells(HOSTILE)
        event = next(c for c in cells if "FAKE" in c)
        assert "[bold red]FAKE[/]" in event  # shown as typed, not as style
        assert not any(ch in event for ch in "\x1b\x07\u202e")
        assert any("[link]x[/link]" in c for c in cells)


async def test_a_change_by_another_process_appears(service: Any, seeded: Any) -> None:
    number = seed_numbers()[1][0]  # In transit
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from datetime import timedelta
        from trackops.core.channels import RecordingChannel
        from trackops.core.runtime import open_service
        from pathlib import Path
        from factories import settings_for
        from trackops.core.wire import PackageStatus
        from tui_harness import NOW, info_for

        async def main():
            settings = settings_for(Path("."), store_url={seeded.store.url!r})
            async with open_service(
                settings, clock=lambda: NOW, channels=[RecordingChannel("memory")],
                load_plugins=False,
            ) as service:
                info = info_for(PackageStatus.DELIVERED, NOW, "Delivered to a neighbour", "Paris")
                await service.engine.apply_track_infos([({number!r}, info)])

        asyncio.run(main())
        """
    )
    app = app_for(service, live=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        before = {r.number: r.status for r in table(app).rows_shown}
        assert before[number] is PackageStatus.IN_TRANSIT
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()

        def moved() -> bool:
            rows = {r.number: r for r in table(app).rows_shown}
            return rows[number].status is PackageStatus.DELIVERED

        await wait_until(pilot, moved, seconds=5)
        counts = app.screen.query_one(StatusCounts)
        await wait_until(pilot, lambda: counts.counts[int(PackageStatus.DELIVERED)] == 4)


async def test_the_mouse_moves_the_cursor_and_a_second_click_opens(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        third = shown(app)[2]
        # line 0 of the table is its header, so row 2 is at y=3
        await pilot.click(ShipmentTable, offset=(5, 3))
        await wait_until(pilot, lambda: table(app).highlighted.number == third)
        await pilot.click(ShipmentTable, offset=(5, 3))
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.number == third


async def test_a_refused_command_shows_as_a_notification_not_a_crash(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        dialog = await open_register(app, pilot)
        dialog.query_one("#numbers", TextArea).text = "RR555000444CN"
        dialog.query_one("#email", Input).value = "not an email"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any(n.severity == "error" for n in app._notifications), seconds=10
        )
        error = next(n for n in app._notifications if n.severity == "error")
        assert "email" in str(error.message).lower()
        assert isinstance(app.screen, MainScreen)  # still running
        await pilot.press("q")
    assert app.return_code == 0
    assert (await service.count_shipments()) == SEEDED


async def test_change_the_carrier_through_the_picker(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        number = table(app).highlighted.number
        await pilot.press("c")
        box = await _focused_input(pilot)
        box.value = ""
        await pilot.press(*"usps")
        options = app.screen.query_one("#carrier-options")
        await wait_until(pilot, lambda: options.option_count > 0)
        await pilot.press("enter")  # enter in the box takes the best match
        await wait_until(pilot, lambda: box.value == "USPS")
        await pilot.press("enter")  # and enter again changes the carrier
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), seconds=10)
        await wait_until(
            pilot,
            lambda: any(
                r.carrier_name == "USPS" for r in table(app).rows_shown if r.number == number
            ),
            seconds=10,
        )
    assert (await service.shipment(number)).shipment.carrier_name == "USPS"


async def test_a_flood_of_changes_is_one_refresh(service: Any) -> None:
    from trackops.core.service import Change

    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        await pilot.pause(0.3)
        before = table(app).generation
        for i in range(1000):
            number = seed_numbers()[i % 21][0]
            app.take_change(Change("shipment", number, PackageStatus.IN_TRANSIT))
        await wait_until(pilot, lambda: table(app).generation > before)
        await pilot.pause(app.COALESCE * 3)
        assert table(app).generation == before + 1


async def test_a_carrier_that_needs_a_param_is_checked_before_sending(service: Any) -> None:
    app = app_for(service)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot, SEEDED)
        dialog = await open_register(app, pilot)
        dialog.query_one("#numbers", TextArea).text = "RR555000555CN"
        await pilot.click("#carrier")
        await pilot.press(*"GLS (CZ)", "enter")
        label = dialog.query_one("#param-label")
        await wait_until(pilot, lambda: "required: postal code" in str(label.render()))
        await pilot.press("ctrl+s")  # no postal code: refused here, nothing sent
        error = dialog.query_one("#error", Static)
        await wait_until(pilot, lambda: "postal code" in str(error.render()))
        assert isinstance(app.screen, RegisterDialog)
        dialog.query_one("#param", Input).value = "11000"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        await wait_until(pilot, lambda: "RR555000555CN" in shown(app), seconds=10)
    assert (await service.shipment("RR555000555CN")).extra_param == "11000"
