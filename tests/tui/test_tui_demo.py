"""``trackops demo`` in-process: sandbox, real listener, service and dashboard, nothing set up."""

from __future__ import annotations

import io
from pathlib import Path

from trackops.core.config import load_settings
from trackops.core.service import RegisterRequest
from trackops.core.wire import PackageStatus
from trackops.tui.app import make_app
from trackops.tui.demo import pick_numbers, run_demo, running_demo, summary
from trackops.tui.main_screen import MainScreen
from trackops.tui.table import ShipmentTable
from trackops.tui.widgets import NotificationsPanel, StatusCounts, StatusLine
from tui_harness import wait_until


def test_the_demo_picks_parcels_ending_in_every_status() -> None:
    from trackops.core.sandbox import detect_carrier, generate_history

    numbers = pick_numbers(14)
    ends = [generate_history(n, 0, detect_carrier(n) or 0).final_status for n in numbers]
    assert set(ends) == set(PackageStatus)
    assert len(set(numbers)) == 14


async def test_the_demo_dashboard_shows_every_status_pushes_and_notifications(
    tmp_path: Path,
) -> None:
    async with running_demo(shipments=14, workdir=tmp_path) as run:
        app = make_app(run.service, run.settings, config_path=run.config_path)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), seconds=20)
            counts = app.screen.query_one(StatusCounts)
            # the travelled half arrives by signed pushes through the listener
            await wait_until(
                pilot, lambda: all(counts.counts.get(s, 0) for s in PackageStatus), seconds=20
            )
            assert sum(counts.counts.values()) == 14
            panel = app.screen.query_one(NotificationsPanel)
            await wait_until(
                pilot, lambda: any(r.send_status == "sent" for r in panel.rows), seconds=20
            )
            # The live half's Alert (41 h) and Undelivered (48 h) come by push once the
            # sandbox's clock has moved past them; seller alerts pop up as toasts.
            run.sandbox.state.advance(48 * 3600)
            await wait_until(pilot, lambda: app.seller_alerts, seconds=20)
            assert {r.audience for r in app.seller_alerts} == {"seller"}
            line = app.screen.query_one(StatusLine)
            await wait_until(pilot, lambda: "last push" in str(line.render()), seconds=20)
            assert "demo.db" in str(line.render()) and "never ago" not in str(line.render())
            # the rate limiter's bucket drains while nothing is asked of 17TRACK
            await wait_until(pilot, lambda: "API 10/10 req free" in str(line.render()), seconds=20)
            table = app.screen.query_one(ShipmentTable)
            before = table.generation
            # a parcel registered by another hand shows up without a key pressed
            extra = RegisterRequest(number=pick_numbers(15)[14], order="1015")
            await run.service.register([extra], actor="test")
            await wait_until(pilot, lambda: table.generation > before, seconds=15)  # live
        text = await summary(run)
        log = tmp_path / "notifications.log"
        assert log.exists() and "buyer" in log.read_text()
    assert f"config: {tmp_path / 'demo.toml'}" in text
    settings = load_settings(tmp_path / "demo.toml")  # `trackops --config <that> history`
    assert settings.store.url.endswith("demo.db") and (tmp_path / "demo.db").exists()


async def test_run_demo_prints_the_summary_and_returns_the_front_ends_status(
    tmp_path: Path,
) -> None:
    out = io.StringIO()

    async def front(run: object) -> int:
        return 0

    code = await run_demo(shipments=7, workdir=tmp_path, out=out, front=front)
    assert code == 0
    assert "7 shipments" in out.getvalue()
    assert f"trackops --config {tmp_path / 'demo.toml'} history" in out.getvalue()
