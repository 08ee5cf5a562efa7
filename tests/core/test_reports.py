"""Weekly/monthly reports and the full export: built from the store, sent to every recipient."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from factories import BASE, days, make_info, settings_for
from trackops.core.channels import RecordingChannel
from trackops.core.config import ReportSettings
from trackops.core.engine import Engine
from trackops.core.store import NewShipment

RECIPIENTS = ("boss@shop.example", "ops@shop.example")


async def _engine_with_data(tmp_path: Path, channel: RecordingChannel) -> Engine:
    settings = settings_for(
        tmp_path, reports=ReportSettings(recipients=RECIPIENTS, channels=("memory",))
    )
    engine = Engine(settings, channels=[channel], load_plugins=False, clock=lambda: BASE)
    await engine.open()
    numbers = {"RR000000001CN": 40, "RR000000002CN": 50, "RR000000003CN": 10}
    await engine.store.add_shipments(
        [
            NewShipment(number=n, order_number=f"10{i}", registered_at=BASE - days(2))
            for i, n in enumerate(numbers)
        ]
    )
    for number, status in numbers.items():
        await engine.apply_track_info(number, make_info(10, BASE - days(1), description="Sorted"))
        await engine.apply_track_info(
            number, make_info(status, BASE - timedelta(hours=1), description="Événement à Paris")
        )
    await engine.dispatch_pending()
    return engine


async def test_weekly_report_goes_to_every_recipient_with_the_csv(tmp_path: Path) -> None:
    channel = RecordingChannel("memory")
    engine = await _engine_with_data(tmp_path, channel)
    try:
        channel.sent.clear()
        rows = await engine.send_report("weekly")
        assert sorted(r.recipient for r in rows) == sorted(RECIPIENTS)
        assert {r.send_status for r in rows} == {"sent"}
        assert {r.audience for r in rows} == {"report"}
        message = channel.sent[0]
        assert message.subject.startswith("trackops: weekly report 2026-11-13 to 2026-11-20")
        assert "Delivered" in message.body and "Alert" in message.body
        assert "Needing attention (1):" in message.body and "RR000000002CN" in message.body
        (attachment,) = message.attachments
        assert attachment.mime_type == "text/csv"
        table = list(csv.DictReader(io.StringIO(attachment.content.decode("utf-8-sig"))))
        assert {r["number"]: r["status"] for r in table} == {
            "RR000000001CN": "delivered",
            "RR000000002CN": "alert",
            "RR000000003CN": "in_transit",
        }
        assert table[0]["latest_event_description"] == "Événement à Paris"
        history = await engine.store.history(condition="weekly-report")
        assert len(history) == 2
    finally:
        await engine.close()


def _numbers_in(attachment_content: bytes) -> list[str]:
    table = csv.DictReader(io.StringIO(attachment_content.decode("utf-8-sig")))
    return [row["number"] for row in table]


async def test_export_and_monthly(tmp_path: Path) -> None:
    channel = RecordingChannel("memory")
    engine = await _engine_with_data(tmp_path, channel)
    try:
        # A parcel nothing happened to for six weeks: in the full export, not in the
        # weekly or monthly report's list (a big shop's whole list would be some 20 MB).
        await engine.store.add_shipments(
            [NewShipment(number="RR000000004CN", registered_at=BASE - days(60))]
        )
        await engine.store.update_shipment("RR000000004CN", updated_at=BASE - days(42))
        channel.sent.clear()
        await engine.send_report("export")
        assert channel.sent[0].subject.startswith("trackops: full shipment export (4 shipments")
        (export,) = channel.sent[0].attachments
        assert export.filename == "trackops-shipments-2026-11-20.csv"
        assert len(_numbers_in(export.content)) == 4
        await engine.send_report("monthly")
        assert "monthly report 2026-10-21 to 2026-11-20" in channel.sent[-1].subject
        (monthly,) = channel.sent[-1].attachments
        assert monthly.filename == "trackops-shipments-updated-2026-10-21-to-2026-11-20.csv"
        assert "RR000000004CN" not in _numbers_in(monthly.content)
        assert len(_numbers_in(monthly.content)) == 3
    finally:
        await engine.close()


async def test_reports_need_recipients(tmp_path: Path) -> None:
    async with Engine(
        settings_for(tmp_path), channels=[RecordingChannel("memory")], load_plugins=False
    ) as engine:
        with pytest.raises(ValueError, match=r"set \[notifications.reports\] recipients"):
            await engine.send_report("weekly")
        with pytest.raises(ValueError, match="unknown report"):
            await engine.send_report("daily")  # type: ignore[arg-type]


def test_report_command_without_recipients_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trackops.core.cli import main

    config = tmp_path / "trackops.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "r.db"}"\n'
        '[plugins]\ndisable = ["slack", "discord"]\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "report", "weekly"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "trackops: error: no report recipients: "
        "set [notifications.reports] recipients in the config"
    ]
