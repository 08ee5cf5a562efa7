"""A new user's first hour (issue 13), as a person sees it: the console script in a subprocess
against ``trackops sandbox`` (the sandbox and config helpers of ``test_cli``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import tomllib
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
    trackops_process,
    wait_until_tracked,
    write_config,
)

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
    """README "Try it with your own config": init, point [api] at a sandbox, register, sync."""
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

    (number,) = moving_numbers("RY", 1)
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
    assert lines[-1].startswith("synced 1 shipments: 1 updated")
    assert lines[-1].endswith("1 notifications, 1 sent")
    (row,) = json.loads(run("history", "--json", cwd=shop).out)
    assert (row["channel"], row["send_status"], row["recipient"]) == (
        "console",
        "sent",
        "buyer@example.com",
    )
    assert (shop / "trackops.db").exists()


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
    assert run("--config", str(config_file), "register", "RX000000003CN", cwd=tmp_path).code == 0

    listed = run("--config", str(config_file), "list", "--json", cwd=tmp_path)
    assert listed.code == 0, listed
    assert [r["number"] for r in json.loads(listed.out)] == ["RX000000003CN"]

    synced = run("--config", str(config_file), "sync", cwd=tmp_path)
    assert_one_error_line(
        synced,
        f"{config_file}: [notifications.customer] condition 'customer': channel 'discord' is"
        " not configured (fill in [channels.discord], or use a configured channel: console,"
        " email)",
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

    rows = {
        r["number"]: r for r in json.loads(trackops_process("list", "--json", config=config).out)
    }
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
    rows = json.loads(trackops_process("list", "--json", config=config).out)
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
    rows = {
        r["number"]: r for r in json.loads(trackops_process("list", "--json", config=config).out)
    }
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
    assert "RV000000004CN" not in trackops_process("list", config=config).out
