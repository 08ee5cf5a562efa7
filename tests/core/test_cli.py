"""The ``trackops`` command as a user runs it, against ``trackops sandbox`` in its own process.

One sandbox process serves the module (``trackops sandbox --port N --key K --speed X --seed S``,
ready once its first stdout line is read). Each test has its own config (written with tomli-w)
and SQLite file, and its own tracking numbers, so tests share nothing but the sandbox and the
SMTP server (aiosmtpd, in a thread) behind the built-in email channel.

Commands run through the console script in a subprocess where what the process as a whole
prints matters (every bad-input case: one ``trackops: error:`` line, no traceback, no key), and
through ``cli.main([...])`` in-process for the longer flows, which keeps the module fast.

The sandbox's parcels follow histories generated from (seed, number, carrier); the tests pick
numbers whose history suits them (first event within minutes, then in transit for days of
simulated time), so what a sync sees does not depend on how fast this machine is. The sandbox
runs on real time, so waiting for a first event polls its API with a deadline.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import email
import email.policy
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from factories import free_port
from trackops.core import cli
from trackops.core.config import load_settings
from trackops.core.sandbox import detect_carrier, generate_history
from trackops.core.wire import PackageStatus

KEY = "cli-test-key-5f1e2d3c4b"
WRONG_KEY = "not-the-right-key-9a8b7c"
SEED = 5
SPEED = 3600  # one simulated hour per real second
HOUR = 3600.0
TRACKOPS = Path(sys.executable).with_name("trackops")
SELLER = "ops@shop.example"
TEAM = "team@shop.example"

SHIPMENT_KEYS = {
    "number",
    "carrier",
    "carrier_name",
    "status",
    "status_code",
    "tracking",
    "latest_event",
    "order",
    "email",
    "tag",
}
HISTORY_KEYS = {
    "id",
    "created_at",
    "number",
    "order",
    "recipient",
    "channel",
    "audience",
    "condition",
    "condition_kind",
    "from_status",
    "to_status",
    "send_status",
    "reason",
}

pytestmark = pytest.mark.skipif(not TRACKOPS.exists(), reason=f"no console script at {TRACKOPS}")


# --------------------------------------------------------------------------- running trackops


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def error_lines(self) -> list[str]:
        return self.err.splitlines()


def _argv(args: tuple[str, ...], config: Path | None) -> list[str]:
    return (["--config", str(config)] if config is not None else []) + list(args)


def trackops(*args: str, config: Path | None) -> Result:
    """``trackops ARGS`` in this process (``cli.main``), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(_argv(args, config))
            except SystemExit as exc:  # argparse's usage errors, as the console script
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return Result(code, out.getvalue(), err.getvalue())


def trackops_process(*args: str, config: Path | None, timeout: float = 60) -> Result:
    """``trackops ARGS`` as a user runs it: the console script in its own process."""
    proc = subprocess.run(
        [str(TRACKOPS), *_argv(args, config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_error_line(result: Result, *expected: str, code: int | None = None) -> str:
    """Non-zero exit, exactly one stderr line ``trackops: error: ...``, no traceback, no key."""
    assert result.code != 0, result
    if code is not None:
        assert result.code == code, result
    lines = result.error_lines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.err}"
    assert lines[0].startswith("trackops: error: "), lines[0]
    assert "Traceback" not in result.err
    assert KEY not in result.err and WRONG_KEY not in result.err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- the sandbox process


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``trackops sandbox`` in its own process; its URL once its first line is printed."""
    logs = tmp_path_factory.mktemp("sandbox")
    for attempt in range(3):  # the free port may be taken in between: try another
        port = free_port()
        errors = logs / f"stderr-{attempt}.log"
        with errors.open("w") as stderr:
            proc = subprocess.Popen(
                [
                    *(str(TRACKOPS), "sandbox", "--port", str(port), "--key", KEY),
                    *("--speed", str(SPEED), "--seed", str(SEED)),
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        assert proc.stdout is not None
        pool = concurrent.futures.ThreadPoolExecutor(1)
        try:
            line = pool.submit(proc.stdout.readline).result(timeout=30)
        except TimeoutError:
            proc.kill()
            pytest.fail(f"trackops sandbox printed nothing in 30 s: {errors.read_text()}")
        finally:
            pool.shutdown(wait=False)
        if line:
            break
        proc.wait(timeout=10)
    else:
        pytest.fail(f"trackops sandbox did not start: {errors.read_text()}")
    match = re.search(r"http://127\.0\.0\.1:(\d+)/track/v1", line)
    assert match is not None and int(match.group(1)) == port, line
    try:
        yield match.group(0)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise
        assert code == 0, f"sandbox exit {code} on SIGTERM: {errors.read_text()}"


def _history(number: str) -> Any:
    return generate_history(number, SEED, detect_carrier(number) or 0)


def moving_numbers(prefix: str, count: int) -> list[str]:
    """Numbers whose first event (In transit) comes within 0.6 simulated hours of registration,
    and that stay In transit for 40 hours after: a sync in between sees exactly that."""
    found = []
    for i in range(1, 1000):
        number = f"{prefix}{i:09d}CN"
        events = _history(number).events
        first, later = events[0], [e for e in events if e.status != PackageStatus.IN_TRANSIT]
        if (
            first.status == PackageStatus.IN_TRANSIT
            and first.after <= 0.6 * HOUR
            and all(e.after >= 40 * HOUR for e in later)
        ):
            found.append(number)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} moving numbers with prefix {prefix}")


def silent_numbers(prefix: str, count: int) -> list[str]:
    """Numbers the carrier never finds (17TRACK answers Not found after its first look)."""
    found = []
    for i in range(1, 1000):
        number = f"{prefix}{i:09d}CN"
        events = _history(number).events
        if all(e.status == PackageStatus.NOT_FOUND for e in events) and events[0].after <= HOUR:
            found.append(number)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} silent numbers with prefix {prefix}")


def wait_until_tracked(base_url: str, numbers: list[str], timeout: float = 20.0) -> None:
    """Poll the sandbox until it has tracking information for every number (bounded)."""
    body = json.dumps([{"number": n} for n in numbers]).encode()
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"{base_url}/gettrackinfo",
            data=body,
            headers={"17token": KEY, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                last = json.load(response)
            if last["code"] == 0 and not last["data"]["rejected"]:
                return
        except urllib.error.HTTPError as exc:  # 429: the sandbox's rate limit; try again
            if exc.code != 429:
                raise
        time.sleep(0.4)
    pytest.fail(f"no tracking information for {numbers} within {timeout} s: {last}")


# --------------------------------------------------------------------------- mail


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps every message; refuses the addresses in ``refuse`` with 550."""

    messages: list[tuple[list[str], email.message.EmailMessage]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def received_by(self, address: str) -> list[email.message.EmailMessage]:
        return [m for to, m in self.messages if address in to]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Mailbox, int]]:
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    pytest.importorskip("trackops.plugins.email", reason="the built-in email channel is absent")
    mailbox = Mailbox()
    port = free_port()
    controller = controller_mod.Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


# --------------------------------------------------------------------------- config


def write_config(
    tmp_path: Path,
    base_url: str,
    *,
    smtp_port: int = 25,
    name: str = "trackops.toml",
    **api: Any,
) -> Path:
    """A config for this test: the sandbox, a store in ``tmp_path``, email through ``smtp_port``
    only, and a custom condition ``moved`` that tells the team when a parcel is in transit."""
    data = {
        "api": {
            "key": KEY,
            "base_url": base_url,
            "rate_limit": 3,
            "timeout": 10,
            "max_retries": 3,
            **api,
        },
        "store": {"url": f"sqlite:///{tmp_path / 'trackops.db'}"},
        "plugins": {"disable": ["slack", "discord"]},
        "notifications": {
            "max_attempts": 1,
            "seller": {"email": SELLER},
            "conditions": [
                {
                    "name": "moved",
                    "audience": "seller",
                    "to": ["in_transit"],
                    "channels": ["email"],
                    "recipients": [TEAM],
                }
            ],
        },
        "channels": {
            "email": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "sender": "trackops@shop.example",
                "timeout": 10,
            }
        },
    }
    path = tmp_path / name
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, sandbox_url: str, smtp: tuple[Mailbox, int]) -> Path:
    return write_config(tmp_path, sandbox_url, smtp_port=smtp[1])


def by_number(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["number"]: row for row in rows}


# --------------------------------------------------------------------------- init


def test_init_writes_a_config_and_refuses_to_overwrite_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "etc" / "trackops.toml"
    result = trackops("init", config=path)
    assert result.code == 0 and str(path) in result.out, result
    original = path.read_text(encoding="utf-8")
    assert load_settings(path).path == path  # what init writes is a valid config

    path.write_text(original + "\n# my own edits\n", encoding="utf-8")
    refused = trackops("init", config=path)
    assert_one_error_line(refused, "already exists", "--force", code=2)
    assert path.read_text(encoding="utf-8").endswith("# my own edits\n")

    assert trackops("init", "--force", config=path).code == 0
    assert path.read_text(encoding="utf-8") == original

    monkeypatch.chdir(tmp_path)  # no --config: ./trackops.toml
    assert trackops("init", config=None).code == 0
    assert (tmp_path / "trackops.toml").read_text(encoding="utf-8") == original


# --------------------------------------------------------------------------- register, status, list


def test_register_then_status_and_list_as_json(config: Path) -> None:
    numbers = ["RA000000001CN", "RA000000002CN"]
    result = trackops_process(
        "register",
        *numbers,
        "--order",
        "ORD-7",
        "--email",
        "ada@example.com",
        "--tag",
        "gift",
        config=config,
    )
    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"registered {n}" for n in numbers]
    assert result.err == ""

    status = trackops_process("status", numbers[0], "--json", config=config)
    assert status.code == 0, status.err
    shipment = status.json()
    assert isinstance(shipment, dict) and SHIPMENT_KEYS <= shipment.keys()
    assert {k: shipment[k] for k in SHIPMENT_KEYS} == {
        "number": numbers[0],
        "carrier": 3011,
        "carrier_name": "China Post",
        "status": "not_found",
        "status_code": 0,
        "tracking": "active",
        "latest_event": {"time": None, "location": None, "description": None},
        "order": "ORD-7",
        "email": "ada@example.com",
        "tag": "gift",
    }

    listed = trackops("list", "--json", config=config)
    assert listed.code == 0, listed.err
    rows = listed.json()
    assert isinstance(rows, list) and sorted(r["number"] for r in rows) == numbers
    assert all(SHIPMENT_KEYS <= r.keys() and r["order"] == "ORD-7" for r in rows)

    human = trackops("status", numbers[1], config=config)
    assert human.code == 0 and numbers[1] in human.out and "Not found" in human.out


def test_reading_commands_import_only_what_they_use(config: Path) -> None:
    """``status`` and ``list`` read the store through its own driver (the quick reader): no
    SQLAlchemy at all. ``history`` and a text search read through the service without the
    asyncio extension of SQLAlchemy (which loads its ORM). None loads aiosqlite, aiohttp, the
    plugins or Rich: most of what a one-shot command would otherwise spend its time importing."""
    number = "RA000000003CN"
    assert trackops_process("register", number, "--order", "ORD-9", config=config).code == 0
    script = (
        "import io, sys, contextlib\n"
        "from trackops.core import cli\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    codes = [cli.main(['--config', {str(config)!r}, *a.split()]) for a in sys.argv[2:]]\n"
        "heavy = sys.argv[1].split(',')\n"
        "print(codes, sorted(m for m in heavy if m in sys.modules))\n"
        "print(out.getvalue())\n"
    )
    heavy = "sqlalchemy.orm,sqlalchemy.ext.asyncio,aiosqlite,aiohttp,pluggy,rich"
    for commands, unwanted in (
        ([f"status {number}", "list --json", "list --status 0 --json"], "sqlalchemy," + heavy),
        (["history --json", "list --search ORD-9 --json"], heavy),
    ):
        result = subprocess.run(
            [sys.executable, "-c", script, unwanted, *commands],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        first, *printed = result.stdout.splitlines()
        assert first == f"{[0] * len(commands)} []"
        assert number in "\n".join(printed) and "ORD-9" in "\n".join(printed)


def test_register_file_with_one_number_per_line(config: Path, tmp_path: Path) -> None:
    plain = tmp_path / "numbers.txt"
    plain.write_text("# from the shop\nRB000000001CN\n\n  RB000000002CN  \nno!\n", encoding="utf-8")
    result = trackops("register", "--file", str(plain), config=config)
    assert result.code == 1
    assert sorted(result.out.splitlines()) == [
        "registered RB000000001CN",
        "registered RB000000002CN",
    ]
    assert_one_error_line(result, "line 5", "no!", "-18010012")
    rows = trackops("list", "--json", config=config).json()
    assert sorted(r["number"] for r in rows) == ["RB000000001CN", "RB000000002CN"]


def test_register_csv_registers_good_rows_and_reports_each_bad_one_by_line(
    config: Path, tmp_path: Path
) -> None:
    lines = [
        "number,carrier,param,tag,order,email,name",
        "RC000000001CN,3011,,vip,ORD-1,ann@example.com,Ann",
        "RC000000002CN,,,,ORD-2,ben@example.com,Ben",
        "",
        ",3011,,,ORD-3,,",  # no number
        "RC000000004CN,no such carrier,,,ORD-4,,",  # carrier is neither a code nor a name
        "RC000000005CN,3011,,,ORD-5,,,surplus",  # more values than columns
        "bad!,,,,ORD-6,,",  # not a tracking number
        "GLS1234567890,100005,,,ORD-7,,",  # GLS needs the postal code
        '"RC000000009CN",,,"tag, with comma",ORD-9,,"Doe, Jane"',
    ]
    bad = {5: "no tracking number", 6: "'no such carrier'", 7: "more values", 8: "bad!", 9: "GLS"}
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = trackops("register", "--file", str(csv_file), config=config)
    assert result.code == 1, result
    assert sorted(result.out.splitlines()) == [
        "registered RC000000001CN",
        "registered RC000000002CN",
        "registered RC000000009CN",
    ]
    errors = result.error_lines()
    assert len(errors) == len(bad), result.err
    assert all(e.startswith("trackops: error: ") for e in errors)
    for line_no, text in bad.items():
        (error,) = [e for e in errors if f"line {line_no}:" in e]
        assert text in error, error
    assert "Traceback" not in result.err

    rows = by_number(trackops("list", "--json", config=config).json())
    assert sorted(rows) == ["RC000000001CN", "RC000000002CN", "RC000000009CN"]  # not "number"
    assert (rows["RC000000001CN"]["tag"], rows["RC000000001CN"]["order"]) == ("vip", "ORD-1")
    assert rows["RC000000001CN"]["email"] == "ann@example.com"
    assert (rows["RC000000002CN"]["tag"], rows["RC000000002CN"]["email"]) == (
        None,
        "ben@example.com",
    )
    assert rows["RC000000009CN"]["tag"] == "tag, with comma"


# --------------------------------------------------------------------------- sync and history


def test_sync_lists_by_status_and_searches_the_history(
    config: Path, tmp_path: Path, sandbox_url: str, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, _ = smtp
    alice, bob = moving_numbers("RD", 2)
    (lost,) = silent_numbers("RD", 1)
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "number,order,email\n"
        f"{alice},ORD-A,alice@example.com\n"
        f"{bob},ORD-B,bob@example.com\n"
        f"{lost},ORD-C,carol@example.com\n",
        encoding="utf-8",
    )
    assert trackops("register", "--file", str(orders), config=config).code == 0
    wait_until_tracked(sandbox_url, [alice, bob, lost])

    synced = trackops("sync", "--json", config=config)
    assert synced.code == 0, synced.err
    summary = synced.json()
    # Buyer and the custom "moved" condition for each parcel in transit; nothing for the lost one.
    assert {k: summary[k] for k in ("asked", "applied", "notifications", "dispatched", "sent")} == {
        "asked": 3,
        "applied": 3,
        "notifications": 4,
        "dispatched": 4,
        "sent": 4,
    }
    assert summary["no_info_yet"] == [] and summary["rejected"] == []

    def numbers_of(*args: str) -> list[str]:
        result = trackops("list", "--json", *args, config=config)
        assert result.code == 0, result.err
        return sorted(r["number"] for r in result.json())

    assert numbers_of("--status", "in_transit") == sorted([alice, bob])
    assert numbers_of("--status", "10") == sorted([alice, bob])
    assert numbers_of("--status", "not_found") == [lost]
    assert numbers_of("--status", "0") == [lost]
    assert numbers_of("--status", "delivered") == []
    assert len(numbers_of("--limit", "2")) == 2
    assert numbers_of() == sorted([alice, bob, lost])
    shipment = trackops("status", alice, "--json", config=config).json()
    assert shipment["status"] == "in_transit" and shipment["status_code"] == 10
    assert shipment["latest_event"]["time"] and shipment["latest_event"]["description"]

    def history(*args: str) -> list[dict[str, Any]]:
        result = trackops("history", "--json", *args, config=config)
        assert result.code == 0, result.err
        rows = result.json()
        assert isinstance(rows, list) and all(HISTORY_KEYS <= r.keys() for r in rows)
        return rows

    rows = history()
    assert len(rows) == 4 and len({r["id"] for r in rows}) == 4
    assert all(r["created_at"] for r in rows)
    common = {
        "channel": "email",
        "from_status": "not_found",
        "to_status": "in_transit",
        "send_status": "sent",
        "reason": None,
    }
    expected = {
        (alice, "ORD-A", "alice@example.com", "customer", "customer", "default"),
        (bob, "ORD-B", "bob@example.com", "customer", "customer", "default"),
        (alice, "ORD-A", TEAM, "seller", "moved", "custom"),
        (bob, "ORD-B", TEAM, "seller", "moved", "custom"),
    }
    keys = ("number", "order", "recipient", "audience", "condition", "condition_kind")
    assert {tuple(r[k] for k in keys) for r in rows} == expected
    assert all({k: r[k] for k in common} == common for r in rows)

    def found(*args: str) -> set[tuple[str, str]]:
        return {(r["number"], r["recipient"]) for r in history(*args)}

    assert found("--search", alice) == {(alice, "alice@example.com"), (alice, TEAM)}
    assert found("--search", "BOB@example") == {(bob, "bob@example.com")}
    assert found("--search", "ORD-B") == {(bob, "bob@example.com"), (bob, TEAM)}
    assert found("--search", "nobody") == set()
    assert len(history("--send-status", "sent")) == 4
    assert history("--send-status", "failed") == [] and history("--send-status", "pending") == []
    assert found("--condition", "default") == {
        (alice, "alice@example.com"),
        (bob, "bob@example.com"),
    }
    assert found("--condition", "custom") == {(alice, TEAM), (bob, TEAM)}
    assert found("--condition", "moved") == found("--condition", "custom")
    assert found("--condition", "customer") == found("--condition", "default")
    assert history("--condition", "seller") == []  # no alert, no undelivered

    (mail,) = mailbox.received_by("alice@example.com")
    text = mail.get_body(("plain",))
    assert text is not None and alice in text.get_content()
    team = [t.get_content() for m in mailbox.received_by(TEAM) if (t := m.get_body(("plain",)))]
    assert {n for n in (alice, bob) if any(n in t for t in team)} == {alice, bob}

    table = trackops("history", config=config)
    assert table.code == 0 and "moved" in table.out

    again = trackops("sync", "--json", config=config)
    assert again.code == 0, again.err
    assert (again.json()["notifications"], again.json()["dispatched"]) == (0, 0)
    assert len(history()) == 4


def test_resend_of_a_failed_notification(
    config: Path, sandbox_url: str, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, _ = smtp
    (number,) = moving_numbers("RE", 1)
    buyer = "gone@example.com"
    mailbox.refuse.add(buyer)
    try:
        registered = trackops(
            "register", number, "--email", buyer, "--order", "ORD-9", config=config
        )
        assert registered.code == 0, registered.err
        wait_until_tracked(sandbox_url, [number])
        synced = trackops("sync", config=config)
        assert synced.code == 0, synced.err
        assert "2 notifications, 1 sent, 1 not sent" in synced.out, synced.out
    finally:
        mailbox.refuse.discard(buyer)

    failed = trackops("history", "--json", "--send-status", "failed", config=config).json()
    assert [(r["recipient"], r["audience"], r["number"]) for r in failed] == [
        (buyer, "customer", number)
    ]
    assert "550" in failed[0]["reason"]
    old_id = failed[0]["id"]

    resent = trackops("resend", str(old_id), config=config)
    assert resent.code == 0, resent
    assert re.fullmatch(rf"notification {old_id} resent as (\d+): sent\n", resent.out), resent.out
    new_id = int(resent.out.split()[4].rstrip(":"))
    rows = by_id(trackops("history", "--json", config=config).json())
    assert rows[old_id]["send_status"] == "failed"  # the failed attempt stays in the history
    assert (rows[new_id]["send_status"], rows[new_id]["recipient"]) == ("sent", buyer)
    assert (rows[new_id]["order"], rows[new_id]["condition"]) == ("ORD-9", "customer")
    assert len(mailbox.received_by(buyer)) == 1

    assert_one_error_line(
        trackops("resend", str(new_id), config=config), "only failed ones are resent", code=2
    )


def by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows}


# --------------------------------------------------------------------------- stop, retrack, delete


def test_stop_retrack_once_change_carrier_tag_and_delete(config: Path) -> None:
    first, second = "RF000000001CN", "RF000000002CN"
    assert trackops("register", first, second, config=config).code == 0

    def shipment(number: str) -> dict[str, Any]:
        result = trackops("status", number, "--json", config=config)
        assert result.code == 0, result.err
        return result.json()

    stopped = trackops("stop", first, config=config)
    assert (stopped.code, stopped.out, stopped.err) == (0, f"stopped {first}\n", "")
    assert shipment(first)["tracking"] == "stopped"
    assert {
        r["number"]: r["tracking"] for r in trackops("list", "--json", config=config).json()
    } == {
        first: "stopped",
        second: "active",
    }

    resumed = trackops("retrack", first, "--json", config=config)
    assert resumed.code == 0 and resumed.json() == [{"number": first, "ok": True, "note": None}]
    assert shipment(first)["tracking"] == "active"

    assert trackops("stop", first, config=config).code == 0
    refused = trackops("retrack", first, config=config)
    assert_one_error_line(refused, first, "-18019905", code=1)
    assert shipment(first)["tracking"] == "stopped"
    refused_json = trackops("retrack", first, "--json", config=config)
    assert refused_json.code == 1
    assert [(r["number"], r["ok"], r["code"]) for r in refused_json.json()] == [
        (first, False, -18019905)
    ]

    assert trackops("change-carrier", second, "190271", config=config).code == 0
    assert (shipment(second)["carrier"], shipment(second)["carrier_name"]) == (190271, "Cainiao")
    assert trackops("tag", second, "vip", config=config).code == 0
    assert shipment(second)["tag"] == "vip"

    deleted = trackops("delete", first, second, config=config)
    assert deleted.code == 0, deleted.err
    assert sorted(deleted.out.splitlines()) == [f"deleted {first}", f"deleted {second}"]
    assert trackops("list", "--json", config=config).json() == []
    assert_one_error_line(trackops("status", first, config=config), "not registered", code=2)
    assert_one_error_line(trackops("stop", first, config=config), first, "-18019902", code=1)


# --------------------------------------------------------------------------- bad input


def _bad_input(case: str, tmp_path: Path, base_url: str) -> tuple[list[str], Path | None, str]:
    """argv, config and the text the one error line must contain, for each case."""

    def config_with(data: dict[str, Any]) -> Path:
        path = tmp_path / "custom.toml"
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        return path

    good = write_config(tmp_path, base_url)
    match case:
        case "missing config file":
            return ["list"], tmp_path / "nope.toml", "nope.toml: config file not found"
        case "invalid TOML":
            path = tmp_path / "broken.toml"
            path.write_text('[api\nkey = "x"\n', encoding="utf-8")
            return ["list"], path, "not valid TOML"
        case "unknown key":
            return ["list"], config_with({"api": {"kee": "x"}}), "[api] unknown key 'kee'"
        case "wrong type":
            path = config_with({"api": {"rate_limit": "fast"}})
            return ["list"], path, '[api] rate_limit: expected a number > 0, found "fast"'
        case "wrong type of a secret":
            path = config_with({"api": {"key": 918273645}})
            return ["list"], path, "[api] key: expected a string, found (hidden)"
        case "bad tracking number":
            return ["register", "ab!"], good, "The format of 'ab!' is invalid"
        case "bad --status name":
            return ["list", "--status", "lost"], good, "unknown package status 'lost'"
        case "unknown --carrier name":
            argv = ["register", "--carrier", "no such carrier", "RG000000001CN"]
            return argv, good, "no carrier matches 'no such carrier'"
        case "unknown CSV column":
            path = tmp_path / "orders.csv"
            path.write_text("number,colour\nRG000000002CN,red\n", encoding="utf-8")
            return ["register", "--file", str(path)], good, "unknown column 'colour'"
        case "wrong API key":
            path = write_config(tmp_path, base_url, name="wrong.toml", key=WRONG_KEY)
            return (
                ["register", "RG000000003CN"],
                path,
                "wrong key, IP not whitelisted, or account disabled",
            )
        case "network down":
            closed = f"http://127.0.0.1:{free_port()}/track/v1"
            path = write_config(tmp_path, closed, name="down.toml", max_retries=1)
            return ["register", "RG000000004CN"], path, "unavailable after 2 attempts"
        case "status of an unknown number":
            return ["status", "RG000000005CN"], good, "RG000000005CN is not registered here"
        case "resend of an unknown id":
            return ["resend", "42"], good, "no notification with id 42"
        case "bad --limit":
            return ["list", "--limit", "0"], good, "expected a whole number from 1 to 2147483647"
        case "carrier lists from a wrong URL":
            return ["carriers", "update", "--url", base_url], good, "HTTP 404"
        case "sandbox with a negative speed":
            return ["sandbox", "--port", "0", "--speed", "-1"], None, "a finite number from 0"
    raise AssertionError(case)


BAD_INPUT = [
    "missing config file",
    "invalid TOML",
    "unknown key",
    "wrong type",
    "wrong type of a secret",
    "bad tracking number",
    "bad --status name",
    "unknown --carrier name",
    "unknown CSV column",
    "wrong API key",
    "network down",
    "status of an unknown number",
    "resend of an unknown id",
    "bad --limit",
    "carrier lists from a wrong URL",
    "sandbox with a negative speed",
]


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_error_line_and_a_non_zero_exit(
    case: str, tmp_path: Path, sandbox_url: str
) -> None:
    argv, config, expected = _bad_input(case, tmp_path, sandbox_url)
    result = trackops_process(*argv, config=config)
    assert_one_error_line(result, expected)
    assert result.out == ""
    assert "918273645" not in result.err


def test_a_partly_refused_register_exits_1_and_keeps_the_good_numbers(config: Path) -> None:
    result = trackops("register", "RH000000001CN", "x", "RH000000002CN", config=config)
    assert result.code == 1
    assert sorted(result.out.splitlines()) == [
        "registered RH000000001CN",
        "registered RH000000002CN",
    ]
    assert_one_error_line(result, "x: ", "-18010012")


def test_carriers_update_downloads_the_lists_from_the_sandbox(
    config: Path, sandbox_url: str
) -> None:
    root = sandbox_url.removesuffix("/track/v1")
    result = trackops("carriers", "update", "--url", root, config=config)
    assert result.code == 0, result.err
    assert re.match(r"carrier lists updated: \d{4} carriers and \d+ countries", result.out)
    found = trackops("carriers", "3011", "--json", config=config)
    assert found.code == 0 and [c["name"] for c in found.json()] == ["China Post"]
