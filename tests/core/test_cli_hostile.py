"""The CLI with hostile data: carrier and merchant text is shown, never obeyed.

A real SQLite store holds what pushes delivered: an event description with Rich markup and a
terminal escape sequence (clear screen, set the window title, bell), a bidi override, an order
``[/bold]`` and a number ``[/]``. ``list``, ``status`` and ``history`` print them visibly and
exit 0; ``--json`` keeps them exact. One test runs ``trackops status`` on a real pseudo-terminal
and reads the bytes the terminal would receive. Also here: out-of-range arguments are usage
errors (exit 2), and ``trackops inbox`` lists and replays quarantined pushes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from factories import BASE, KEY, days, make_info, push_body
from trackops.core import cli
from trackops.core.channels import RecordingChannel
from trackops.core.config import load_settings
from trackops.core.engine import Engine
from trackops.core.store import NewShipment
from trackops.core.wire import Event, PackageStatus, TrackInfo

TRACKOPS = Path(sys.executable).with_name("trackops")
NUMBER = "RR123456789CN"
ESCAPES = "\x1b[2J\x1b]0;pwned\x07"
DESCRIPTION = f"{ESCAPES}Sorted [/HUB-7]"
PLACE = "Shen\u202ezhen"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "trackops.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "api": {"key": KEY, "base_url": "http://127.0.0.1:9/track/v1"},
                "store": {"url": f"sqlite:///{tmp_path / 'trackops.db'}"},
                "notifications": {
                    "customer": {"enabled": True, "channels": ["console"]},
                    "seller": {"enabled": False, "channels": []},
                },
                "plugins": {"disable": ["email", "slack", "discord"]},
            }
        ),
        encoding="utf-8",
    )
    return path


def _hostile_info(status: int = 10) -> TrackInfo:
    event = Event(time_raw="2026-11-20 12:00", location=PLACE, description=DESCRIPTION)
    base = make_info(status)
    return TrackInfo(
        package_status=PackageStatus(status),
        first_carrier=base.first_carrier,
        latest_event=event,
        first_carrier_events=[event],
        hash=base.hash,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    import asyncio

    path = _config(tmp_path)

    async def fill() -> None:
        settings = load_settings(path)
        now = BASE + days(1)
        async with Engine(
            settings, channels=[RecordingChannel("console")], load_plugins=False, clock=lambda: now
        ) as engine:
            await engine.store.add_shipments(
                [
                    NewShipment(
                        number=NUMBER, order_number="[/bold]", email="buyer@example.com",
                        registered_at=BASE,
                    )
                ]
            )  # fmt: skip
            await engine.apply_track_info(NUMBER, _hostile_info())
            await engine.apply_track_info("[/]", _hostile_info(40))  # a push creates "[/]"

    asyncio.run(fill())
    return path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["--config", str(config), *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n") or c in "\x7f\u202e\u2066"]


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("status", NUMBER),
        ("status", "[/]"),
        ("history",),
        ("history", "--search", "[/b"),
    ],
)
def test_hostile_text_is_printed_visibly_and_never_obeyed(
    config: Path, args: tuple[str, ...]
) -> None:
    code, out, err = run(config, *args)
    assert code == 0, err
    assert _raw_controls(out) == []
    if args[0] in ("list", "status"):
        assert "␛[2J␛]0;pwned␇Sorted [/HUB-7]" in out
    if args in (("list",), ("status", "[/]")):
        assert "[/]" in out
    if args == ("status", NUMBER):
        assert "order: [/bold]" in out and "Shenzhen" in out
    if args[0] == "history":
        assert NUMBER in out and "[/bold]" in out


def test_json_keeps_the_data_exact(config: Path) -> None:
    """Exact, and still safe on a terminal: what a terminal would obey or reorder by (ESC,
    U+202E) is written as a JSON escape, which decodes to the same text."""
    code, out, _ = run(config, "list", "--json")
    assert code == 0
    assert _raw_controls(out.replace("\n", "")) == [] and "\\u202e" in out
    rows = {row["number"]: row for row in json.loads(out)}
    assert rows[NUMBER]["latest_event"]["description"] == DESCRIPTION
    assert rows[NUMBER]["latest_event"]["location"] == PLACE
    assert rows[NUMBER]["order"] == "[/bold]"
    assert "[/]" in rows


def _read_all(fd: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> bytes:
    chunks = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.skipif(not TRACKOPS.exists(), reason=f"no console script at {TRACKOPS}")
@pytest.mark.parametrize("command", ["status", "list", "history"])
def test_on_a_real_terminal_no_escape_sequence_from_an_event_arrives_raw(
    config: Path, command: str
) -> None:
    master, slave = pty.openpty()
    args = [command, NUMBER] if command == "status" else [command]
    proc = subprocess.Popen(
        [str(TRACKOPS), "--config", str(config), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "200"},
    )
    os.close(slave)
    try:
        received = _read_all(master, proc)
        assert proc.wait(timeout=30) == 0, received
    finally:
        os.close(master)
    assert b"\x1b[2J" not in received  # clear screen
    assert b"\x1b]0;" not in received  # set the window title
    assert b"\x07" not in received  # bell / OSC terminator
    assert "\u202e".encode() not in received
    assert "␛[2J".encode() in received or command == "history"


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--limit", "99999999999999999999999"),
        ("list", "--limit", "-1"),
        ("history", "--limit", "2147483648"),
        ("resend", "9999999999999"),
        ("resend", "0"),
        ("sandbox", "--port", "70000"),
        ("sandbox", "--port", "-1"),
        ("sandbox", "--speed", "nan"),
        ("demo", "--shipments", "-5"),
        ("demo", "--shipments", "0"),
        ("demo", "--speed", "inf"),
        ("demo", "--seed", "-1"),
        ("tui", "--sync-every", "nan"),
        ("inbox", "replay"),
        ("inbox", "5"),
        ("inbox", "replay", "abc"),
        ("inbox", "replay", "99999999999"),
    ],
)
def test_out_of_range_arguments_are_usage_errors(config: Path, args: tuple[str, ...]) -> None:
    code, out, err = run(config, *args)
    assert code == 2, (out, err)
    assert err.startswith("trackops: error:") and "Traceback" not in err


# --------------------------------------------------------------------------- trackops inbox


def test_inbox_lists_and_replays_quarantined_pushes(config: Path) -> None:
    import asyncio

    unreadable = b'{"sign":"x","event":"TRACKING_UPDATED","data":{"track":{"e":10}}}'

    async def quarantine() -> list[int]:
        settings = load_settings(config)
        async with Engine(
            settings, channels=[RecordingChannel("console")], load_plugins=False
        ) as engine:
            ids = await engine.store.inbox_add_many(
                [(unreadable, BASE), (push_body("RR000000007CN", make_info(10)), BASE)]
            )
            while await engine.process_inbox():
                pass
            return ids

    bad, good = asyncio.run(quarantine())
    code, out, _ = run(config, "inbox")
    assert code == 0 and "0 pushes waiting, 1 quarantined" in out
    code, out, _ = run(config, "inbox", "--failed")
    assert code == 0 and str(bad) in out and "no tracking number" in out
    code, out, _ = run(config, "inbox", "--failed", "--json")
    (entry,) = json.loads(out)
    assert entry["id"] == bad and entry["state"] == "failed" and entry["attempts"] == 1
    # Replaying a push that still cannot be read quarantines it again: exit 1, reason shown.
    code, out, err = run(config, "inbox", "replay", str(bad))
    assert code == 1 and f"push {bad}" in out and "failed again" in out
    code, out, err = run(config, "inbox", "replay", str(good))
    assert code == 1 and "no quarantined push" in err
    code, out, _ = run(config, "inbox", "--json")
    assert json.loads(out)["failed"] == 1
    # A push that can never apply is set aside: no longer counted (health clears), recorded.
    code, out, err = run(config, "inbox", "dismiss", str(bad), str(good))
    assert code == 1 and f"push {bad}: set aside" in out and f"left alone: {good}" in err
    code, out, _ = run(config, "inbox", "--json")
    assert json.loads(out)["failed"] == 0
    code, out, err = run(config, "inbox", "dismiss", str(bad))
    assert code == 1 and "no quarantined push" in err


def test_inbox_replay_applies_a_push_once_its_cause_is_fixed(config: Path) -> None:
    """The way out of quarantine from the CLI: ``trackops inbox replay ID`` applies the push
    (here one a trigger in the database refused three times, then dropped)."""
    import asyncio
    import sqlite3

    db_path = config.parent / "trackops.db"

    async def quarantine() -> int:
        settings = load_settings(config)
        async with Engine(
            settings, channels=[RecordingChannel("console")], load_plugins=False
        ) as engine:
            (row_id,) = await engine.store.inbox_add_many(
                [(push_body("RR000000008CN", make_info(10)), BASE)]
            )
            engine.inbox_retry_delays = ()  # quarantined at the first failure
            while await engine.process_inbox():
                pass
            return row_id

    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON shipments WHEN NEW.number = 'RR000000008CN' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    )
    db.commit()
    row_id = asyncio.run(quarantine())
    code, out, _ = run(config, "inbox", "--failed")
    assert code == 0 and f"{row_id}" in out and "refused by a trigger" in out
    db.execute("DROP TRIGGER refuse")
    db.commit()
    db.close()
    code, out, err = run(config, "inbox", "replay", str(row_id))
    assert code == 0, err
    assert f"push {row_id} (RR000000008CN): applied" in out
    code, out, _ = run(config, "status", "RR000000008CN")
    assert code == 0 and "In transit" in out
    code, out, _ = run(config, "inbox", "--json")
    assert json.loads(out)["failed"] == 0


@pytest.fixture(autouse=True)
def _tty_independent(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COLUMNS", "200")
    yield


@pytest.mark.parametrize("verbose", [False, True])
def test_log_lines_on_the_terminal_carry_no_control_or_bidi_character(verbose: bool) -> None:
    """``serve`` and ``-v`` print log records to the terminal; a message can hold outside text
    (a 17TRACK answer's message, a value the store refused): it is shown, never obeyed."""
    import logging

    formatter = (cli._SafeFormatter if verbose else cli._OneLineFormatter)(cli._LOG_FORMAT)
    try:
        raise ValueError(f"refused {ESCAPES}{PLACE}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "trackops.client", logging.WARNING, __file__, 1, "17TRACK said %s", (DESCRIPTION,),
        exc_info,
    )  # fmt: skip
    shown = formatter.format(record)
    assert _raw_controls(shown) == []
    assert "␛[2J␛]0;pwned␇Sorted [/HUB-7]" in shown and "Shenzhen" in shown
    assert ("Traceback" in shown) is verbose


def test_register_with_a_store_that_cannot_open_ends_at_once_with_one_line(
    tmp_path: Path,
) -> None:
    """``trackops register`` sends to 17TRACK while the store opens: when the store cannot
    open, the requests still under way are stopped and the store's problem is the one line."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be\n")
    path = tmp_path / "trackops.toml"
    path.write_text(
        tomli_w.dumps(
            {
                # Nothing listens on port 9: the client would retry for seconds.
                "api": {"key": KEY, "base_url": "http://127.0.0.1:9/track/v1"},
                "store": {"url": f"sqlite:///{blocker / 'trackops.db'}"},
            }
        ),
        encoding="utf-8",
    )
    started = time.monotonic()
    code, out, err = run(path, "register", "RR123456789CN")
    assert time.monotonic() - started < 5
    assert code == 1 and out == ""
    assert err.startswith("trackops: error: cannot open the store at") and err.count("\n") == 1
    assert "Traceback" not in err
