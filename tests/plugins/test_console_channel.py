"""The built-in ``console`` channel: notifications printed (and logged) instead of sent."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from plugin_helpers import make_message
from trackops.core.channels import Attachment, ChannelError
from trackops.core.config import ConfigError, Settings, settings_from_dict
from trackops.core.plugins import PluginHost
from trackops.core.wire import Event
from trackops.plugins import console as console_plugin
from trackops.plugins.console import ConsoleChannel, format_message


def _settings(tmp_path: Path, console: dict[str, object] | None = None) -> Settings:
    data: dict[str, object] = {"channels": {"console": console}} if console is not None else {}
    settings = settings_from_dict(data, str(tmp_path / "trackops.toml"))
    return replace(settings, path=tmp_path / "trackops.toml")


def _registered(settings: Settings) -> ConsoleChannel:
    found: list[ConsoleChannel] = []
    console_plugin.trackops_register_channels(found.append, settings)  # type: ignore[arg-type]
    (channel,) = found
    return channel


async def test_prints_each_notification_to_stdout_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    channel = _registered(_settings(tmp_path))
    assert channel.destination == "stdout"
    with caplog.at_level(logging.INFO, logger="trackops.plugins.console"):
        await channel.send(make_message(channel="console"))
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        "[buyer buyer@example.com · customer] Your order 1001 is out for delivery",
        "    status: In transit -> Pick up",
        "    carrier: China Post",
        "    latest event: 2026-11-20 14:05 · Köln, Paketzentrum · Out for delivery"
        " — Zustellung heute",
        "    track: https://t.17track.net/en#nums=RR123456789CN",
    ]
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "notification 7 to buyer@example.com (customer): Your order 1001 is out for delivery"
    )


async def test_stderr_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    channel = _registered(_settings(tmp_path, {"output": "stderr"}))
    await channel.send(make_message(channel="console", audience="seller", condition="seller"))
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("[seller buyer@example.com · seller] Pick up: shipment RR123456789CN")


async def test_a_relative_file_is_next_to_the_config_and_appended_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "logs").mkdir()
    channel = _registered(_settings(tmp_path, {"output": "logs/notifications.txt"}))
    assert channel.path == tmp_path / "logs" / "notifications.txt"
    await channel.send(make_message(channel="console", order="1001"))
    await channel.send(make_message(channel="console", order="1002"))
    text = (tmp_path / "logs" / "notifications.txt").read_text(encoding="utf-8")
    assert [line for line in text.splitlines() if line.startswith("[")] == [
        "[buyer buyer@example.com · customer] Your order 1001 is out for delivery",
        "[buyer buyer@example.com · customer] Your order 1002 is out for delivery",
    ]
    assert capsys.readouterr() == ("", "")


async def test_a_file_that_cannot_be_written_is_a_channel_error(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    channel = ConsoleChannel(path=tmp_path / "notes")  # a folder, not a file
    with pytest.raises(ChannelError, match=r"console output .*notes"):
        await channel.send(make_message(channel="console"))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"colour": "red"}, "[channels.console] unknown key 'colour'; expected one of: output"),
        ({"output": ""}, '[channels.console] output: expected "stdout", "stderr" or a file'),
        ({"output": 3}, '[channels.console] output: expected "stdout", "stderr" or a file'),
        ({"output": "no/such/dir/x.txt"}, "in an existing folder"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(
    tmp_path: Path, table: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _registered(_settings(tmp_path, table))
    assert expected in str(caught.value)
    assert str(caught.value).startswith(f"{tmp_path / 'trackops.toml'}: ")


def test_outside_text_cannot_drive_the_terminal() -> None:
    event = Event(
        time_raw="2026-11-20 14:05:00",
        location="\x1b[2J\x1b]0;pwned\x07Köln",
        description="Delivered\u202e\nsigned",
    )
    text = format_message(make_message(latest_event=event, order="10\x1b[31m01"))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert text.count("\n") == 5  # one line per field, the event's newline flattened
    assert "␛[2J" in text


async def test_reports_show_their_body_and_attachments(capsys: pytest.CaptureFixture) -> None:
    message = make_message(
        channel="console",
        audience="report",
        condition="weekly",
        recipient="team@example.com",
        subject="trackops weekly report",
        body="12 shipments\n3 delivered",
        attachments=(Attachment("shipments.csv", b"number\n"),),
    )
    await ConsoleChannel(stream="stdout").send(message)
    assert capsys.readouterr().out.splitlines() == [
        "[report team@example.com · weekly] trackops weekly report",
        "    12 shipments",
        "    3 delivered",
        "    attached: shipments.csv",
    ]


async def test_the_host_registers_console_from_its_entry_point(tmp_path: Path) -> None:
    host = PluginHost(_settings(tmp_path))
    try:
        assert "console" in host.channels
        assert host.provider_of("channel", "console") == "console"
    finally:
        await host.aclose()
