"""A new user's first hour (issue 13), as a person sees it: the console script in a subprocess
against ``trackops sandbox`` (the sandbox and config helpers of ``test_cli``)."""

from __future__ import annotations

import asyncio
import fcntl
import importlib.metadata
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import test_cli
import tomli_w
from factories import KEY as FACTORY_KEY
from factories import make_info, push_body
from test_cli import (
    KEY,
    TRACKOPS,
    Result,
    assert_one_error_line,
    free_port,
    moving_numbers,
    trackops,
    trackops_process,
    wait_until_tracked,
    write_config,
)
from trackops.core import cli
from trackops.core.config import load_settings
from trackops.core.sandbox import detect_carrier, generate_history
from trackops.core.store import NewShipment, Store
from trackops.core.wire import PackageStatus

# test_cli's fixtures: its sandbox process (one per module), SMTP server and config.
sandbox_url = test_cli.sandbox_url
smtp = test_cli.smtp
config = test_cli.config


def run(*args: str, cwd: Path, timeout: float = 60) -> Result:
    """``trackops ARGS`` in its own process, started in ``cwd`` (no $TRACKOPS_CONFIG)."""
    env = {k: v for k, v in os.environ.items() if k != "TRACKOPS_CONFIG"}
    proc = subprocess.run(
        [str(TRACKOPS), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------- from the README


def test_readme_from_init_to_a_notification_on_the_console(
    tmp_path: Path, sandbox_url: str
) -> None:
    """README "Your first notification": init, point [api] at a sandbox, register, sync.

    The module's sandbox runs faster than the README's (``--speed 3600``, another seed), so the
    numbers are ones that are in transit at the first sync; the README's own number is checked
    against the README's sandbox below."""
    shop = tmp_path / "shop"
    shop.mkdir()
    init = run("init", cwd=shop)
    assert init.code == 0, init
    assert "Notifications are printed (the console channel)" in init.out
    config_file = shop / "trackops.toml"
    text = config_file.read_text(encoding="utf-8")
    # The two lines the README tells the reader to change.
    text = text.replace('key = ""  ', f'key = "{KEY}"', 1).replace(
        'base_url = "https://api.17track.net/track/v1"', f'base_url = "{sandbox_url}"', 1
    )
    config_file.write_text(text, encoding="utf-8")

    number, second = moving_numbers("RY", 2)
    registered = run(
        "register", number, "--order", "1001", "--email", "buyer@example.com", cwd=shop
    )
    assert registered.code == 0, registered
    wait_until_tracked(sandbox_url, [number])
    synced = run("sync", cwd=shop)
    assert synced.code == 0, synced
    assert synced.err == ""
    lines = synced.out.splitlines()
    assert "[buyer buyer@example.com · customer] Your order 1001 is on its way" in lines
    assert "    status: Not found -> In transit" in lines
    assert lines[-1] == (
        "synced 1 shipment: 1 updated, 0 with no tracking info yet, 1 notification, 1 sent"
    )
    (row,) = json.loads(run("history", "--json", cwd=shop).out)
    assert (row["channel"], row["send_status"], row["recipient"]) == (
        "console",
        "sent",
        "buyer@example.com",
    )
    assert (shop / "trackops.db").exists()

    # With --json, stdout stays one JSON document: the console channel prints on stderr then.
    assert run("register", second, "--email", "cy@example.com", cwd=shop).code == 0
    wait_until_tracked(sandbox_url, [second])
    as_json = run("sync", "--json", cwd=shop)
    assert as_json.code == 0, as_json
    assert json.loads(as_json.out)["sent"] == 1
    assert "[buyer cy@example.com · customer] Your parcel " in as_json.err


def test_the_readmes_number_is_in_transit_at_the_readmes_sandbox() -> None:
    """``trackops sandbox --port 8080 --key dev`` (default seed and speed) then ``register
    RR123456789CN`` and ``sync``: 17TRACK's first look already shows it In transit, so the
    README's sync prints a notification."""
    args = cli.build_parser().parse_args(["sandbox", "--port", "8080", "--key", "dev"])
    number = "RR123456789CN"
    history = generate_history(number, args.seed, detect_carrier(number) or 0)
    seen = [e for e in history.events if e.after <= history.lookup_after]
    assert seen and seen[-1].status == PackageStatus.IN_TRANSIT, history.events[:3]
    # The next step is simulated hours away: minutes at the default speed (60).
    later = [e for e in history.events if e.after > history.lookup_after]
    assert not later or (later[0].after - history.lookup_after) / args.speed > 120


# --------------------------------------------------------------------------- paths


def test_a_relative_store_is_found_from_another_folder(tmp_path: Path, sandbox_url: str) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    config_file = write_config(shop, sandbox_url)
    data = config_file.read_text(encoding="utf-8").replace(
        f"sqlite:///{shop / 'trackops.db'}", "sqlite:///trackops.db"
    )
    config_file.write_text(data, encoding="utf-8")
    assert run("register", "RX000000001CN", cwd=shop).code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = run("--config", "../shop/trackops.toml", "list", "--json", cwd=elsewhere)
    assert listed.code == 0, listed
    assert [r["number"] for r in json.loads(listed.out)] == ["RX000000001CN"]
    assert list(elsewhere.iterdir()) == []  # no new, empty store here


def test_a_missing_config_says_which_paths_were_tried(tmp_path: Path) -> None:
    result = run("list", cwd=tmp_path)
    assert_one_error_line(
        result,
        "no config file found: tried --config (not given), $TRACKOPS_CONFIG (not set), "
        f"{tmp_path / 'trackops.toml'} (no such file)",
        code=2,
    )
    given = run("--config", "conf/shop.toml", "list", cwd=tmp_path)
    assert_one_error_line(given, f"--config conf/shop.toml is {tmp_path}/conf/shop.toml", code=2)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_api_key_is_named_before_any_network_call(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/track/v1"
    config_file = write_config(tmp_path, closed, key="")
    started = time.monotonic()
    result = run("--config", str(config_file), "register", "RX000000002CN", cwd=tmp_path)
    assert time.monotonic() - started < 10  # no retries against the network first
    line = assert_one_error_line(result, f"{config_file}: [api] key is empty", code=2)
    assert "unavailable" not in line and "DNS" not in line


def test_a_channel_named_but_not_configured(tmp_path: Path, sandbox_url: str) -> None:
    config_file = write_config(tmp_path, sandbox_url)
    data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    data["notifications"]["customer"] = {"channels": ["discord"]}
    config_file.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert trackops("register", "RX000000003CN", config=config_file).code == 0

    listed = run("--config", str(config_file), "list", "--json", cwd=tmp_path)
    assert listed.code == 0, listed
    assert [r["number"] for r in json.loads(listed.out)] == ["RX000000003CN"]
    for reading in (("status", "RX000000003CN"), ("history",)):
        shown = run("--config", str(config_file), *reading, cwd=tmp_path)
        assert (shown.code, shown.err) == (0, ""), shown

    synced = run("--config", str(config_file), "sync", cwd=tmp_path)
    assert_one_error_line(
        synced,
        f"{config_file}: [notifications.customer] condition 'customer': channel 'discord' is"
        " not configured (fill in [channels.discord], or use a configured channel: console,"
        " email)",
        code=2,
    )


def test_reading_commands_work_while_the_api_key_variable_is_unset(
    tmp_path: Path, sandbox_url: str
) -> None:
    """``[api] key = "env:NAME"`` with NAME unset: ``list``, ``status`` and ``history`` only
    read the store and work; ``sync`` names the variable in one line."""
    config_file = write_config(tmp_path, sandbox_url)
    assert trackops("register", "RX000000004CN", config=config_file).code == 0
    data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    data["api"]["key"] = "env:TRACKOPS_TEST_UNSET_KEY"
    config_file.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert "TRACKOPS_TEST_UNSET_KEY" not in os.environ
    listed = run("--config", str(config_file), "list", "--json", cwd=tmp_path)
    assert listed.code == 0, listed
    assert [r["number"] for r in json.loads(listed.out)] == ["RX000000004CN"]
    for reading in (("status", "RX000000004CN"), ("history",)):
        shown = run("--config", str(config_file), *reading, cwd=tmp_path)
        assert (shown.code, shown.err) == (0, ""), shown
    synced = run("--config", str(config_file), "sync", cwd=tmp_path)
    assert_one_error_line(
        synced,
        f"{config_file}: [api] key: expected environment variable TRACKOPS_TEST_UNSET_KEY to be"
        ' set (the config says "env:TRACKOPS_TEST_UNSET_KEY"); it is not',
        code=2,
    )


# --------------------------------------------------------------------------- carriers by name


def test_carriers_name_says_which_carriers_need_an_extra_param(tmp_path: Path) -> None:
    config_file = tmp_path / "trackops.toml"
    config_file.write_text("", encoding="utf-8")
    result = trackops_process("carriers", "postnl", config=config_file)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["14041", "PostNL", "NL"]
    assert "needs destination country" in lines[1] and "--param, e.g. 'FR'" in lines[1]
    assert "accepts postal code" in lines[2]
    assert lines[3].split()[:2] == ["14044", "PostNL"]  # International Mail needs nothing

    shown = json.loads(trackops_process("carriers", "GLS", "--json", config=config_file).out)
    gls = {row["key"]: row for row in shown}
    assert gls[100005]["params"] == [
        {"kind": "postal_code", "label": "postal code", "required": True, "sample": ""}
    ]
    assert gls[101070]["params"] == []  # GLS (DE)


def test_carriers_with_no_match_exits_1_with_a_message(tmp_path: Path) -> None:
    config_file = tmp_path / "trackops.toml"
    config_file.write_text("", encoding="utf-8")
    result = trackops_process("carriers", "zzqx", "carrier", config=config_file)
    assert_one_error_line(result, "no carrier matches 'zzqx carrier'", code=1)
    assert result.out == ""


def test_register_takes_carrier_names_on_the_command_line_and_in_csv(
    config: Path,
    tmp_path: Path,
) -> None:
    by_name = trackops_process(
        "register", "RZ000000001CN", "--carrier", "china post", "--json", config=config
    )
    assert by_name.code == 0, by_name
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        "number,carrier,param\n"
        "RZ000000002CN,UPS,\n"
        "RZ000000003CN,DHL Paket,10115\n"
        "RZ000000004CN,fedex®,\n",  # three carriers' names contain it
        encoding="utf-8",
    )
    from_file = trackops_process("register", "--file", str(csv_file), config=config)
    assert from_file.code == 1, from_file
    assert sorted(from_file.out.splitlines()) == [
        "registered RZ000000002CN",
        "registered RZ000000003CN",
    ]
    line = assert_one_error_line(from_file, "line 4:", "'fedex®' is ambiguous")
    assert "FedEx® Poland (100261)" in line

    rows = {r["number"]: r for r in json.loads(trackops("list", "--json", config=config).out)}
    assert rows["RZ000000001CN"]["carrier"] == 3011
    assert rows["RZ000000002CN"]["carrier"] == 100002
    assert rows["RZ000000003CN"]["carrier"] == 7041
    assert "RZ000000004CN" not in rows

    ambiguous = trackops_process("register", "RZ000000005CN", "--carrier", "dhl e", config=config)
    assert_one_error_line(ambiguous, "argument --carrier: carrier 'dhl e' is ambiguous", code=2)
    assert "DHL eCommerce US (7047)" in ambiguous.err


# --------------------------------------------------------------------------- serve


async def test_serve_says_what_it_does(tmp_path: Path) -> None:
    port = free_port()
    config_file = tmp_path / "trackops.toml"
    config_file.write_text(
        tomli_w.dumps(
            {
                "api": {"key": FACTORY_KEY, "base_url": "http://127.0.0.1:9/track/v1"},
                "store": {"url": "sqlite:///serve.db"},
                "webhook": {"host": "127.0.0.1", "port": port},
                "notifications": {
                    "customer": {"channels": ["console"]},
                    "seller": {"email": "ops@shop.example", "channels": ["console"]},
                },
                "channels": {"console": {"output": "notifications.txt"}},
                "plugins": {"disable": ["slack", "discord"]},
            }
        ),
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        str(TRACKOPS),
        *("--config", str(config_file), "serve"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    url = f"http://127.0.0.1:{port}/webhooks/17track"
    recent = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert first.decode().strip() == f"trackops serve: listening on {url}"
        async with aiohttp.ClientSession() as session:
            pushes = [
                (push_body("RS000000001CN", make_info(35, recent)), 200),
                (push_body("RS000000001CN", make_info(35, recent)), 200),  # 17TRACK's retry
                (push_body("RS000000002CN", make_info(10, recent), sign="0" * 64), 401),
                (b'{"event": "TRACKING_UPDATED"}', 400),
            ]
            for body, status in pushes:
                async with session.post(url, data=body) as response:
                    assert response.status == status
        lines: list[str] = []
        while len(lines) < 4:  # bounded by the timeout: two refused, two applied
            line = await asyncio.wait_for(proc.stderr.readline(), timeout=20)
            assert line, f"serve ended early: {lines}"
            lines.append(line.decode().rstrip("\n"))
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=20)
        rest = (await proc.stderr.read()).decode()
        assert (await proc.stdout.read()) == b""  # the listening line was said once
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    said = [line.split(" ", 3)[3] for line in lines]  # past the date, time and level
    assert all(line.split(" ")[2] == "INFO" for line in lines), lines
    assert sorted(said) == sorted(
        [
            "trackops.pushes: push RS000000001CN: Not found -> Undelivered, 1 notification queued",
            "trackops.pushes: push RS000000001CN: a duplicate, nothing changed",
            "trackops.pushes: push refused (401 wrong sign) from 127.0.0.1",
            "trackops.pushes: push refused (400 push body is not a 17TRACK push envelope:"
            " Object missing required field `data`) from 127.0.0.1",
        ]
    ), lines
    assert "listening" not in rest and "WARNING" not in rest and "Traceback" not in rest
    assert FACTORY_KEY not in "\n".join(lines) + rest
    printed = (tmp_path / "notifications.txt").read_text(encoding="utf-8")
    assert printed.startswith(
        "[seller ops@shop.example · seller] Undelivered: shipment RS000000001CN"
    )


# --------------------------------------------------------------------------- register input


def test_email_addresses_are_checked_at_register(config: Path, tmp_path: Path) -> None:
    bad = trackops_process("register", "RW000000001CN", "--email", "ann@example", config=config)
    line = assert_one_error_line(bad, "RW000000001CN: ", "email 'ann@example' is invalid", code=1)
    assert "such as buyer@example.com" in line
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        "number,email\nRW000000002CN,ben@example.com\nRW000000003CN,ben@example.com; eve@x.org\n",
        encoding="utf-8",
    )
    mixed = trackops_process("register", "--file", str(csv_file), config=config)
    assert mixed.out.splitlines() == ["registered RW000000002CN"]
    assert_one_error_line(mixed, "line 3: RW000000003CN:", "'ben@example.com; eve@x.org'")
    rows = json.loads(trackops("list", "--json", config=config).out)
    assert [(r["number"], r["email"]) for r in rows] == [("RW000000002CN", "ben@example.com")]


def test_semicolon_and_tab_separated_files_are_read_as_csv(config: Path, tmp_path: Path) -> None:
    semicolons = tmp_path / "excel.csv"
    semicolons.write_text(
        "Number;Carrier;Order\nRV000000001CN;China Post;1001\nRV000000002CN;3011;1002\n",
        encoding="utf-8",
    )
    tabs = tmp_path / "sheet.tsv"
    tabs.write_text("number\torder\temail\nRV000000003CN\t1003\tcy@example.com\n", "utf-8")
    for path in (semicolons, tabs):
        result = trackops_process("register", "--file", str(path), config=config)
        assert result.code == 0, result
    rows = {r["number"]: r for r in json.loads(trackops("list", "--json", config=config).out)}
    assert {n: (r["carrier"], r["order"]) for n, r in rows.items()} == {
        "RV000000001CN": (3011, "1001"),
        "RV000000002CN": (3011, "1002"),
        "RV000000003CN": (3011, "1003"),  # detected by 17TRACK
    }
    assert rows["RV000000003CN"]["email"] == "cy@example.com"

    no_header = tmp_path / "rows.txt"
    no_header.write_text("RV000000004CN;3011\n", encoding="utf-8")
    refused = trackops_process("register", "--file", str(no_header), config=config)
    assert_one_error_line(refused, "line 1: 'RV000000004CN;3011' is not one tracking number")
    assert "RV000000004CN" not in trackops("list", config=config).out


# --------------------------------------------------------------------------- on a terminal


@dataclass
class Screen:
    """What a program wrote to a terminal (a pty), as received, and how it ended."""

    code: int
    raw: str

    @property
    def text(self) -> str:
        """The output with colour and cursor sequences removed and carriage returns as lines."""
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", self.raw)
        return plain.replace("\r\n", "\n").replace("\r", "\n")


def on_terminal(
    *args: str,
    cwd: Path,
    react: list[tuple[str, bytes | int]] | None = None,
    timeout: float = 90,
) -> Screen:
    """``trackops ARGS`` with stdin, stdout and stderr on a pseudo-terminal (120x40).

    ``react``: in order, when the output so far contains the text, write the bytes to the
    terminal (a keyboard answer) or send the signal (Ctrl-C is SIGINT).
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "TRACKOPS_CONFIG"}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [str(TRACKOPS), *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env
    )
    os.close(slave)
    pending = list(react or [])
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no end within {timeout} s: {received.decode(errors='replace')}"
            ready, _, _ = select.select([master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the program closed the terminal
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                received += chunk
            elif proc.poll() is not None:
                continue  # drain what is left, then EIO ends the loop
            while pending and pending[0][0] in received.decode(errors="replace"):
                _, action = pending.pop(0)
                if isinstance(action, int):
                    proc.send_signal(action)
                else:
                    os.write(master, action)
        assert not pending, f"never saw {pending[0][0]!r}: {received.decode(errors='replace')}"
        return Screen(proc.wait(timeout=30), received.decode(errors="replace"))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_version(tmp_path: Path) -> None:
    result = run("--version", cwd=tmp_path)
    assert result.code == 0
    assert result.out.strip() == f"trackops {importlib.metadata.version('trackops')}"


def test_delete_asks_for_confirmation_on_a_terminal(config: Path, tmp_path: Path) -> None:
    numbers = ["RU000000001CN", "RU000000002CN"]
    assert trackops("register", *numbers, config=config).code == 0

    declined = on_terminal(
        "--config", str(config), "delete", *numbers, cwd=tmp_path, react=[("[y/N]", b"n\n")]
    )
    assert "Delete 2 shipments (RU000000001CN, RU000000002CN) at 17TRACK and here?" in (
        declined.text
    )
    assert declined.code == 1 and "nothing deleted" in declined.text
    assert len(json.loads(trackops("list", "--json", config=config).out)) == 2

    agreed = on_terminal(
        "--config", str(config), "delete", numbers[0], cwd=tmp_path, react=[("[y/N]", b"y\n")]
    )
    assert agreed.code == 0 and f"deleted {numbers[0]}" in agreed.text
    skipped = on_terminal("--config", str(config), "delete", numbers[1], "--yes", cwd=tmp_path)
    assert skipped.code == 0 and "[y/N]" not in skipped.text
    assert json.loads(trackops("list", "--json", config=config).out) == []


def test_sync_on_a_terminal_shows_progress_and_ends_with_a_summary(
    config: Path, tmp_path: Path, sandbox_url: str
) -> None:
    numbers = moving_numbers("RP", 3)
    assert trackops("register", *numbers, config=config).code == 0
    wait_until_tracked(sandbox_url, numbers)
    screen = on_terminal("--config", str(config), "sync", cwd=tmp_path)
    assert screen.code == 0, screen.text
    assert "syncing" in screen.text and "3/3" in screen.text  # the progress bar, on stderr
    lines = [line for line in screen.text.splitlines() if line.strip()]
    assert lines[-1].startswith("synced 3 shipments: 3 updated, 0 with no tracking info yet")


def test_ctrl_c_during_sync_says_what_was_done(
    config: Path, tmp_path: Path, sandbox_url: str
) -> None:
    # 800 numbers in the store that 17TRACK has never heard of (imported from elsewhere):
    # filled in directly, since registering them would spend 20 rate-limited requests.
    numbers = [f"RQ{i:09d}CN" for i in range(1, 801)]
    asyncio.run(_add_to_store(load_settings(config).store.url, numbers))
    screen = on_terminal(
        "--config", str(config), "sync", cwd=tmp_path, react=[("40/800", signal.SIGINT)]
    )
    assert screen.code == 130, screen.text
    assert "stopping after the shipments being synced" in screen.text
    (summary,) = [line for line in screen.text.splitlines() if line.startswith("interrupted")]
    # The first 400 (one step of the sync) were asked for and applied; the rest were not.
    assert summary == (
        "interrupted: synced 400 of 800 shipments: 0 updated, 0 with no tracking info yet,"
        " 0 notifications, 0 sent; `trackops sync` again does the rest"
    ), screen.text
    assert "17TRACK no longer knows 400 numbers (-18019902)" in screen.text
    again = trackops_process("sync", config=config)
    assert again.out.startswith("synced 400 shipments: "), again  # the other 400


def test_a_second_ctrl_c_stops_sync_at_once(config: Path, tmp_path: Path) -> None:
    numbers = [f"RK{i:09d}CN" for i in range(1, 801)]
    asyncio.run(_add_to_store(load_settings(config).store.url, numbers))
    screen = on_terminal(
        "--config",
        str(config),
        "sync",
        cwd=tmp_path,
        react=[("40/800", signal.SIGINT), ("Ctrl-C again to stop at once", signal.SIGINT)],
    )
    assert screen.code == 130, screen.text
    assert "Traceback" not in screen.text and "error" not in screen.text, screen.text
    # Not the first Ctrl-C's clean end after the step: no summary of what was synced.
    assert "interrupted: synced" not in screen.text, screen.text


def test_registering_a_number_twice_says_it_was_already_tracked(config: Path) -> None:
    number = "RJ000000001CN"
    first = trackops_process("register", number, config=config)
    assert first.out.strip() == f"registered {number}", first
    again = trackops_process("register", number, config=config)
    assert again.code == 0, again
    assert again.out.strip() == (
        f"registered {number} (already registered at 17TRACK and tracked here)"
    )
    assert trackops("stop", number, config=config).code == 0
    stopped = trackops_process("register", number, config=config)
    assert stopped.out.strip() == (
        f"registered {number} (already registered and stopped here;"
        f" `trackops retrack {number}` tracks it again)"
    )


async def _add_to_store(url: str, numbers: list[str]) -> None:
    store = await Store.open(url)
    try:
        now = datetime.now(UTC).replace(tzinfo=None)
        await store.add_shipments([NewShipment(number=n, registered_at=now) for n in numbers])
    finally:
        await store.close()


def _forget_at_the_sandbox(base_url: str, number: str) -> None:
    """Delete ``number`` at 17TRACK (the sandbox) behind trackops' back."""
    request = urllib.request.Request(
        f"{base_url}/deletetrack",
        data=json.dumps([{"number": number, "carrier": 3011}]).encode(),
        headers={"17token": KEY, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    assert [a["number"] for a in body["data"]["accepted"]] == [number], body


def test_a_number_17track_forgot_is_reported_once_with_its_fix(
    config: Path, sandbox_url: str
) -> None:
    kept, forgotten = "RN000000001CN", "RN000000002CN"
    assert trackops("register", kept, forgotten, config=config).code == 0
    _forget_at_the_sandbox(sandbox_url, forgotten)

    first = trackops_process("sync", config=config)
    assert first.code == 0, first
    assert first.out.startswith("synced 2 shipments:")
    assert first.err.splitlines() == [
        f"trackops: warning: 17TRACK no longer knows {forgotten} (-18019902): marked and no"
        f" longer synced; `trackops register {forgotten}` tracks it again, `trackops delete"
        f" {forgotten} --yes` forgets it"
    ]
    later = trackops_process("sync", config=config)
    assert (later.code, later.err) == (0, "")
    assert later.out.startswith("synced 1 shipment:")
    rows = {r["number"]: r for r in json.loads(trackops("list", "--json", config=config).out)}
    assert rows[forgotten]["unknown_since"] is not None and rows[kept]["unknown_since"] is None
    table = trackops("list", config=config).out
    (line,) = [line for line in table.splitlines() if line.startswith(forgotten)]
    assert line.rstrip().endswith("unknown to 17TRACK")
    status = trackops_process("status", forgotten, config=config).out.splitlines()
    assert status[1].startswith("17TRACK no longer knows this number (since ")
    assert status[1].endswith(f"UTC): `trackops register {forgotten}` tracks it again")


def test_messages_do_not_repeat_the_error_code(config: Path) -> None:
    result = trackops_process("register", "GLS1234567890", "--carrier", "100005", config=config)
    line = assert_one_error_line(result, "GLS (100005) needs the recipient's postal code", code=1)
    assert line.count("18010019") == 1, line


def test_report_to_a_file_or_stdout(config: Path, tmp_path: Path) -> None:
    assert trackops("register", "RM000000001CN", "--order", "7001", config=config).code == 0
    out_file = tmp_path / "weekly.txt"
    written = trackops_process("report", "weekly", "--output", str(out_file), config=config)
    assert written.code == 0, written
    assert written.out.strip() == f"weekly report written to {out_file}"
    text = out_file.read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("trackops: weekly report ")
    monthly = trackops_process("report", "monthly", "-o", "-", config=config)
    assert monthly.code == 0, monthly
    assert monthly.out.splitlines()[0].startswith("trackops: monthly report ")
    export = trackops_process("report", "export", "--output", "-", config=config)
    assert export.code == 0, export
    header, *rows = export.out.splitlines()
    assert header.startswith("\ufeffnumber,")  # the BOM spreadsheets need for UTF-8
    assert [r.split(",")[0] for r in rows] == ["RM000000001CN"]


async def test_serve_host_and_port_override_the_config(tmp_path: Path) -> None:
    config_file = write_config(tmp_path, "http://127.0.0.1:9/track/v1")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(TRACKOPS),
        *("--config", str(config_file), "serve", "--host", "127.0.0.1", "--port", str(port)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line.decode().strip() == (
            f"trackops serve: listening on http://127.0.0.1:{port}/webhooks/17track"
        )
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
