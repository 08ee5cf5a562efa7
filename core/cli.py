"""The ``trackops`` command.

Every failure a user can cause (bad config, bad arguments, an API error, the network) ends as
one line on stderr, ``trackops: error: ...``, and a non-zero exit; never a traceback. Exit
codes: 0 done, 1 the work failed or was partly refused, 2 bad usage or configuration,
70 an internal error (a bug: the message says so), 130 stopped by Ctrl-C (a sync then says
what it did).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import gc
import getpass
import importlib
import inspect
import io
import json
import logging
import math
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

from trackops.core.config import ConfigError, Settings, load_settings, resolve_config_path
from trackops.core.errors import TrackopsError
from trackops.core.text import safe_text
from trackops.core.wire import PackageStatus, Rejected, TrackApiError

if TYPE_CHECKING:
    from trackops.core.hookspecs import CliCommand
    from trackops.core.reader import Reading
    from trackops.core.service import Page, Service

T = TypeVar("T")

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it


class UsageError(Exception):
    """Bad command-line input; the message says what was expected."""


class CommandFailed(Exception):
    """The work failed for a reason the message explains (exit 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"trackops: error: {message} (see `{self.prog} --help`)\n")


def _status_arg(text: str) -> PackageStatus:
    try:
        return PackageStatus.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _carrier_arg(text: str) -> int:
    from trackops.core.carriers import CarrierNameError, resolve_carrier

    try:
        return resolve_carrier(text)
    except CarrierNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_MAX_ID: Final = 2**31 - 1  # ids and counts the store can hold (a 32-bit column)


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (else a usage error, exit 2)."""

    def parse(text: str) -> int:
        value = text.strip()
        digits = value.removeprefix("-")
        if not digits.isdigit() or len(digits) > 20 or not low <= int(value) <= high:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {low} to {high}, not {text!r}"
            )
        return int(value)

    return parse


_positive_int = _int_in(1, _MAX_ID)


def _float_in(
    low: float, high: float = math.inf, *, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (``low_open``: above ``low``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if not ok:
            bound = f"above {low:g}" if low_open else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, not {text!r}")
        return value

    return parse


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("trackops")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for (reading the
    package metadata costs every other command a few milliseconds)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        sys.stdout.write(f"trackops {_version()}\n")
        parser.exit()


def _port_arg(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, not {text!r}")
    return int(text)


def build_parser(
    plugins: Mapping[str, _PluginCommand] | None = None, *, refused: str | None = None
) -> argparse.ArgumentParser:
    """The argument parser for every sub-command (``plugins``: the commands plugins add;
    ``refused``: why they could not be added, shown under the help)."""
    parser = _Parser(
        prog="trackops",
        description="Watch parcels through the 17TRACK API.",
        epilog=f"Plugin commands are not available: {refused}" if refused else None,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $TRACKOPS_CONFIG, else ./trackops.toml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action=_VersionAction, help="show the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("init", help="write a starter config file")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("sandbox", help="run the local 17TRACK-compatible API (no key needed)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port_arg, default=8080, help="port to listen on (default 8080)")
    p.add_argument(
        "--key", default="sandbox", help="the API key clients must send (17token; default sandbox)"
    )
    p.add_argument("--webhook-url", help="where to push signed tracking updates")
    p.add_argument(
        "--speed",
        type=_float_in(0),
        default=60.0,
        help="simulated seconds per real second (default 60: a minute a second)",
    )
    p.add_argument(
        "--seed", type=_int_in(0, 2**63 - 1), default=0, help="seed for the simulated histories"
    )
    p.add_argument(
        "--undocumented-codes",
        action="store_true",
        help='some parcels pass through status code 60 and send null/""/{} fields, as 17TRACK has',
    )

    p = sub.add_parser(
        "serve", help="the webhook listener, dispatcher (and Slack bot) until stopped"
    )
    p.add_argument("--host", help="address to listen on (default: [webhook] host)")
    p.add_argument("--port", type=_port_arg, help="port to listen on (default: [webhook] port)")

    p = sub.add_parser("register", help="register tracking numbers")
    p.add_argument("numbers", nargs="*", metavar="NUMBER", help="tracking numbers")
    p.add_argument(
        "--file",
        type=Path,
        help="one number per line, or a CSV (comma, semicolon or tab) with a header naming"
        " columns among number, carrier, param, tag, order, email, name",
    )
    p.add_argument(
        "--carrier", type=_carrier_arg, help="17TRACK carrier code or name (`trackops carriers`)"
    )
    p.add_argument("--final-carrier", type=_carrier_arg, help="last-mile carrier, code or name")
    p.add_argument("--param", help="the carrier's extra parameter (postal code, phone, ...)")
    p.add_argument("--tag", help="a free text of yours (e.g. a customer group)")
    p.add_argument("--order", help="your order number")
    p.add_argument("--email", help="the buyer's email")
    p.add_argument("--name", help="the buyer's name")
    _json_flag(p)

    p = sub.add_parser("status", help="one shipment with its events")
    p.add_argument("number", help="a tracking number")
    _json_flag(p)

    p = sub.add_parser("list", help="shipments")
    p.add_argument(
        "--status", type=_status_arg, help="only this status: a name (in_transit) or code (10)"
    )
    p.add_argument("--search", help="number, order number, email, tag or carrier, or a part")
    p.add_argument("--stopped", action="store_true", help="only stopped shipments")
    p.add_argument("--limit", type=_positive_int, help="at most this many (default: all)")
    _json_flag(p)

    for name, text in (
        ("stop", "stop tracking"),
        ("retrack", "re-activate stopped numbers (once per number)"),
        ("delete", "delete numbers at 17TRACK and here"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("numbers", nargs="+", metavar="NUMBER", help="tracking numbers")
        if name == "delete":
            p.add_argument(
                "-y", "--yes", action="store_true", help="do not ask for confirmation on a terminal"
            )
        _json_flag(p)

    p = sub.add_parser("change-carrier", help="change a number's carrier")
    p.add_argument("number", help="a tracking number")
    p.add_argument("carrier", type=_carrier_arg, help="17TRACK carrier code or name")
    p.add_argument("--final-carrier", type=_carrier_arg, help="last-mile carrier, code or name")
    _json_flag(p)

    p = sub.add_parser("tag", help="change a number's tag")
    p.add_argument("number", help="a tracking number")
    p.add_argument("tag", help="the new tag")
    _json_flag(p)

    p = sub.add_parser(
        "sync",
        help="fetch the latest tracking info of every tracked shipment",
        description="Fetch, apply and notify, 400 numbers at a time. On a terminal: a progress"
        " bar; the first Ctrl-C stops after the current 400 and says what was done.",
    )
    _json_flag(p)

    p = sub.add_parser("history", help="notification history")
    p.add_argument("--search", help="tracking number, recipient or order number")
    p.add_argument(
        "--send-status",
        choices=["sent", "failed", "suppressed", "superseded", "pending"],
        help="only notifications with this outcome",
    )
    p.add_argument("--condition", help="default, custom, or a condition name")
    p.add_argument("--limit", type=_positive_int, help="at most this many (default: all)")
    _json_flag(p)

    p = sub.add_parser("resend", help="send a failed notification again")
    p.add_argument("id", type=_positive_int, help="the notification's id (`trackops history`)")
    _json_flag(p)

    p = sub.add_parser(
        "inbox",
        help="pushes waiting or quarantined; `inbox replay ID...` applies quarantined ones"
        " again, `inbox dismiss ID...` sets them aside",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["replay", "dismiss"],
        help="replay quarantined pushes, or dismiss those that can never apply",
    )
    p.add_argument(
        "ids", nargs="*", type=_positive_int, metavar="ID", help="quarantined pushes' ids"
    )
    p.add_argument("--failed", action="store_true", help="list the quarantined pushes")
    _json_flag(p)

    p = sub.add_parser("dispatch", help="send pending notifications now")
    _json_flag(p)

    p = sub.add_parser("report", help="send the weekly or monthly report, or the full export")
    p.add_argument(
        "kind",
        choices=["weekly", "monthly", "export"],
        help="a summary of the last 7 or 30 days, or every shipment as CSV",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write it to FILE (- for stdout) instead of sending it; the export is CSV",
    )
    _json_flag(p)

    p = sub.add_parser("plugins", help="installed plugins and their hooks")
    _json_flag(p)

    p = sub.add_parser("carriers", help="search 17TRACK's carrier list, or `carriers update`")
    p.add_argument("query", nargs="*", help="name or code; `update` refreshes the list")
    p.add_argument("--url", default="https://res.17track.net", help="where `update` downloads from")
    _json_flag(p)
    for name, entry in sorted((plugins or {}).items()):
        p = sub.add_parser(name, help=f"{entry.command.help} (plugin {entry.plugin})")
        if entry.command.configure is not None:
            entry.command.configure(p)
    return parser


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


# --------------------------------------------------------------------------- output helpers


# Characters JSON may carry raw inside a string that a terminal would obey or reorder by (C1
# controls, DEL, bidi marks, line separators): written as \uXXXX escapes, which decode to the
# same text, so --json stays exact (json.dumps already escapes C0 controls).
_JSON_UNSAFE: Final = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]"
)


def _print_json(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    text = _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    sys.stdout.write(text + "\n")


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _print_table(
    columns: Sequence[tuple[str, bool]],
    rows: Sequence[Sequence[str]],
    drop_first: Sequence[str] = (),
) -> None:
    """Print rows that stay one line each: ``(header, keep_whole)`` columns.

    Columns marked ``keep_whole`` (ids, numbers, statuses) are never shortened; the others
    share the remaining width and end with an ellipsis when cut. On a terminal too narrow for
    all of them, the columns named in ``drop_first`` are left out, in that order. Output that
    is not a terminal (a pipe, a file) is never cut.
    """
    from rich.table import Table
    from rich.text import Text

    # Cells are outside text: made safe, and given as Text so that Rich never reads markup.
    rows = [[safe_text(cell) for cell in row] for row in rows]
    console = _console()
    if not sys.stdout.isatty():
        console.width = 10_000
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, (h, _) in enumerate(columns)]
    minimum = [w if keep else min(w, 8) for w, (_, keep) in zip(widths, columns, strict=True)]
    shown = list(range(len(columns)))
    for header in drop_first:
        if sum(minimum[i] + 2 for i in shown) <= console.width:
            break
        shown = [i for i in shown if columns[i][0] != header]
    # Fixed widths: whole columns as they are, the others share what is left, widest first cut.
    final = {i: minimum[i] for i in shown}
    spare = console.width - sum(final[i] + 2 for i in shown)
    flexible = sorted((i for i in shown if not columns[i][1]), key=lambda i: widths[i])
    for n, i in enumerate(flexible):
        share = spare // (len(flexible) - n) if spare > 0 else 0
        grow = min(widths[i] - final[i], share)
        final[i] += grow
        spare -= grow
    table = Table(box=None, pad_edge=False)
    for i in shown:
        table.add_column(columns[i][0], no_wrap=True, overflow="ellipsis", width=final[i])
    for row in rows:
        table.add_row(*(Text(row[i]) for i in shown))
    console.print(table)


def _err(message: str) -> None:
    sys.stderr.write(f"trackops: error: {safe_text(message, multiline=True)}\n")


def _say(text: str) -> None:
    """Print a line that may hold outside text (numbers, carrier and 17TRACK messages) safely:
    no control or bidi character reaches the terminal (``--json`` output stays exact)."""
    print(safe_text(text, multiline=True))


def _report_outcome(
    outcome: Any, verb: str, as_json: bool, lines: dict[str, int | None] | None = None
) -> int:
    if as_json:
        _print_json(
            [{"number": n, "ok": True, "note": outcome.notes.get(n)} for n in outcome.accepted]
            + [_rejected_json(r) for r in outcome.rejected]
        )
    else:
        for number in outcome.accepted:
            note = outcome.notes.get(number)
            _say(f"{verb} {number}" + (f" ({note})" if note else ""))
        for rej in outcome.rejected:
            line = (lines or {}).get(rej.number or "")
            where = f"line {line}: " if line else ""
            _err(f"{where}{rej.number}: {_with_code(rej.error.message, rej.error.code)}")
    return EXIT_OK if not outcome.rejected else EXIT_FAILED


def _with_code(message: str, code: int) -> str:
    """``message (code N)``, unless the message already names the code."""
    return message if str(code) in message else f"{message} (code {code})"


def _rejected_json(rej: Rejected) -> dict[str, Any]:
    return {"number": rej.number, "ok": False, "code": rej.error.code, "message": rej.error.message}


# --------------------------------------------------------------------------- register input


REGISTER_COLUMNS = ("number", "carrier", "param", "tag", "order", "email", "name")


_DELIMITERS = (",", ";", "\t", "|")


def _delimiter(header: str) -> str:
    """The CSV delimiter of a header line: the one that splits it into the most known columns
    (a spreadsheet's "CSV" is often semicolon- or tab-separated)."""

    def known(delimiter: str) -> int:
        cells = next(csv.reader([header], delimiter=delimiter), [])
        return sum(1 for c in cells if c.strip().lower() in REGISTER_COLUMNS)

    return max(_DELIMITERS, key=known)  # ties keep the first: the comma


def read_register_file(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows to register from ``path`` and one message per bad row (with its line number).

    A file whose first line names known columns is a CSV (comma-, semicolon-, tab- or
    pipe-separated, told by that line); otherwise one number per line.
    A carrier cell is a code or a name (``resolve_carrier``).
    """
    from trackops.core.carriers import CarrierNameError, resolve_carrier

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read: {exc}") from None
    lines = text.splitlines()
    delimiter = _delimiter(lines[0]) if lines else ","
    first = (
        [c.strip().lower() for c in next(csv.reader([lines[0]], delimiter=delimiter), [])]
        if lines
        else []
    )
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    if "number" in first:
        unknown = [c for c in first if c and c not in REGISTER_COLUMNS]
        if unknown:
            raise UsageError(
                f"{path}: line 1: unknown column {unknown[0]!r}; expected columns among "
                f"{', '.join(REGISTER_COLUMNS)}"
            )
        # csv.reader, not DictReader with the header forced in: the header is not a row, and
        # line numbers follow the file even when a quoted value spans lines.
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter)
        next(reader, None)  # the header, already read into ``first``
        last_line = reader.line_num
        for raw in reader:
            line_no, last_line = last_line + 1, reader.line_num
            if not any(v.strip() for v in raw):
                continue
            if len(raw) > len(first):
                problems.append(f"{path}: line {line_no}: more values than columns")
                continue
            values = dict(zip(first, [*raw, *[""] * (len(first) - len(raw))], strict=True))
            row: dict[str, Any] = {k: v.strip() for k, v in values.items() if k in REGISTER_COLUMNS}
            if not row.get("number"):
                problems.append(f"{path}: line {line_no}: no tracking number")
                continue
            carrier = row.get("carrier") or ""
            try:
                row["carrier"] = resolve_carrier(carrier) if carrier else None
            except CarrierNameError as exc:
                problems.append(f"{path}: line {line_no}: {exc}")
                continue
            row["line"] = line_no
            rows.append(row)
    else:
        for line_no, line in enumerate(lines, start=1):
            number = line.strip()
            if number and not number.startswith("#"):
                if any(d in number for d in _DELIMITERS):
                    # Never send a CSV row to 17TRACK as if it were one tracking number.
                    problems.append(
                        f"{path}: line {line_no}: {number!r} is not one tracking number;"
                        " a CSV needs a first line naming its columns among"
                        f" {', '.join(REGISTER_COLUMNS)}"
                    )
                    continue
                rows.append({"number": number, "line": line_no})
    return rows, problems


# --------------------------------------------------------------------------- commands


ACTOR_PREFIX = "cli:"


def cli_actor() -> str:
    """``cli:<user>``: who runs this command, for the audit log."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (a container, a service account)
        user = "unknown"
    return f"{ACTOR_PREFIX}{user}"


async def _with_service(
    settings: Settings,
    fn: Callable[[Service], Awaitable[int]],
    *,
    plugins: bool = True,
    read_only: bool = False,
) -> int:
    """Run ``fn`` with the service open. Without ``plugins`` no channels are built and no
    notification rules compiled (nothing is sent); a ``read_only`` command (which loads no
    plugins either) writes nothing and reads a SQLite store the quickest way."""
    with _collector_paused(read_only):
        from trackops.core.service import open_service

        async with open_service(
            settings, load_plugins=plugins and not read_only, read_only=read_only
        ) as service:
            return await fn(service)


async def _with_reading(
    settings: Settings, fn: Callable[[Reading], Awaitable[int]], *, quick: bool = True
) -> int:
    """Run a reading command (``status``, ``list``): through the quick reader, which loads
    no SQLAlchemy, where it can answer (``quick``, and a store it can read), else through the
    service opened read-only. Both give the same rows."""
    if quick:
        with _collector_paused(True):
            from trackops.core.reader import QuickReader

            reader = await QuickReader.open(settings.store.url)
            if reader is not None:
                try:
                    return await fn(reader)
                finally:
                    await reader.close()
    return await _with_service(settings, fn, read_only=True)


@contextlib.contextmanager
def _collector_paused(pause: bool) -> Iterator[None]:
    """A one-shot read runs with the collector off: its imports make objects by the hundred
    thousand and no garbage worth a collection (a few percent of its time)."""
    paused = pause and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:  # main() also runs inside other programs (tests, scripts)
            gc.enable()


def _progress_bar(total_items: int) -> tuple[Any, Callable[[int, int], None] | None]:
    if total_items <= 40 or not sys.stderr.isatty():
        return None, None
    from rich.progress import Progress

    progress = Progress(transient=True)
    task = progress.add_task("registering", total=total_items)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


async def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core import registration
    from trackops.core.registration import RegisterRequest

    rows: list[dict[str, Any]] = [{"number": n} for n in args.numbers]
    problems: list[str] = []
    if args.file:
        file_rows, problems = read_register_file(args.file)
        rows += file_rows
    if not rows and not problems:
        raise UsageError("give tracking numbers, or --file F")
    for p in problems:
        _err(p)
    requests = [
        RegisterRequest(
            number=row["number"],
            carrier=row.get("carrier") or args.carrier,
            final_carrier=args.final_carrier,
            param=row.get("param") or args.param,
            tag=row.get("tag") or args.tag,
            order=row.get("order") or args.order,
            email=row.get("email") or args.email,
            name=row.get("name") or args.name,
        )
        for row in rows
    ]
    lines = {row["number"].strip(): row.get("line") for row in rows}

    progress, update = _progress_bar(len(requests))
    with progress if progress is not None else contextlib.nullcontext():
        # The numbers go to 17TRACK first; the store opens while the rate limit spaces the
        # requests out (SQLAlchemy's import in a thread, so that the limiter's turns keep
        # their time): at 3 requests per second, a bulk register then takes what the rate
        # limit allows and little more.
        async with registration.start(settings, requests, progress=update) as started:
            await asyncio.to_thread(importlib.import_module, "trackops.core.service")
            from trackops.core.service import open_service

            async with open_service(
                settings, client=started.client, plugins=started.plugins
            ) as service:
                outcome = await service.register(requests, actor=cli_actor(), started=started)
    code = _report_outcome(outcome, "registered", args.json, lines)
    return EXIT_FAILED if problems else code


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.errors import NotFoundError

    async def run(service: Reading) -> int:
        try:
            detail = await service.shipment(args.number)
        except NotFoundError:
            raise UsageError(
                f"{args.number.strip()} is not registered here (`trackops register` it)"
            ) from None
        row = detail.shipment
        data = row.to_json()
        if args.json:
            data["events"] = [
                {"time": e.time, "location": e.location or "", "description": e.description}
                for e in detail.events
            ]
            _print_json(data)
            return EXIT_OK
        # Plain lines (no Rich: a quick command); outside text made safe for a terminal.
        lines = [f"{row.number}  {row.status.display}  ({'tracking' if row.active else 'stopped'})"]
        if row.unknown_since is not None:
            lines.append(
                f"17TRACK no longer knows this number (since {row.unknown_since:%Y-%m-%d %H:%M}"
                f" UTC): `trackops register {row.number}` tracks it again"
            )
        lines.append(f"carrier: {row.carrier_name or 'carrier not known yet'}")
        for label, value in (("order", row.order), ("buyer", row.email), ("tag", row.tag)):
            if value:
                lines.append(f"{label}: {value}")
        if not detail.events:
            lines.append("no tracking events yet")
        for event in detail.events:
            place = f"  {event.location}" if event.location else ""
            lines.append(f"  {event.time or '?':16}{place}  {event.description}")
        print("\n".join(safe_text(line) for line in lines))
        return EXIT_OK

    return await _with_reading(settings, run)


async def _all_pages(
    fetch: Callable[[int, str | None], Awaitable[Page[T]]], limit: int | None
) -> list[T]:
    """Every item of a paged listing (or the first ``limit``), a page at a time."""
    items: list[T] = []
    cursor: str | None = None
    while True:
        size = min(1000, limit - len(items)) if limit is not None else 1000
        page = await fetch(size, cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None or (limit is not None and len(items) >= limit):
            return items


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.records import ShipmentQuery

    query = ShipmentQuery(
        statuses=frozenset({int(args.status)}) if args.status is not None else frozenset(),
        active=False if args.stopped else None,
        search=args.search,
    )

    async def run(service: Reading) -> int:
        rows = await _all_pages(
            lambda size, cursor: service.shipments(query, limit=size, after=cursor), args.limit
        )
        if args.json:
            _print_json([r.to_json() for r in rows])
            return EXIT_OK
        if not rows:
            print("no shipments")
            return EXIT_OK
        table = []
        for r in rows:
            latest = f"{r.latest_event_time or ''} {r.latest_event_description or ''}".strip()
            tracking = "unknown to 17TRACK" if r.unknown_since is not None else r.tracking
            table.append(
                (r.number, r.status.display, r.carrier_name, r.order or "", latest, tracking)
            )
        _print_table(
            [("number", True), ("status", True), ("carrier", False), ("order", False),
             ("latest event", False), ("tracking", True)],
            table,
            drop_first=("tracking", "order", "carrier"),
        )  # fmt: skip
        return EXIT_OK

    return await _with_reading(settings, run, quick=not (args.search or "").strip())


def _confirmed(numbers: Sequence[str]) -> bool:
    """Ask on the terminal before deleting; True without a terminal (scripts) or on "y"."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return True
    shown = ", ".join(numbers[:5]) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")
    plural = "shipment" if len(numbers) == 1 else "shipments"
    sys.stderr.write(
        f"Delete {len(numbers)} {plural} ({safe_text(shown)}) at 17TRACK and here?"
        " Their notification history is kept. [y/N] "
    )
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _numbers_cmd(
    method: str, verb: str
) -> Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]:
    async def command(args: argparse.Namespace, settings: Settings) -> int:
        numbers = [n.strip() for n in args.numbers]
        if method == "delete" and not getattr(args, "yes", False) and not _confirmed(numbers):
            raise CommandFailed("nothing deleted")

        async def run(service: Service) -> int:
            call = {"stop": service.stop, "retrack": service.retrack, "delete": service.delete}
            outcome = await call[method](numbers, actor=cli_actor())
            return _report_outcome(outcome, verb, args.json)

        return await _with_service(settings, run)

    return command


async def cmd_change_carrier(args: argparse.Namespace, settings: Settings) -> int:
    async def run(service: Service) -> int:
        outcome = await service.change_carrier(
            args.number, args.carrier, actor=cli_actor(), final_carrier=args.final_carrier
        )
        return _report_outcome(outcome, "changed carrier of", args.json)

    return await _with_service(settings, run)


async def cmd_tag(args: argparse.Namespace, settings: Settings) -> int:
    async def run(service: Service) -> int:
        outcome = await service.change_tag(args.number, args.tag, actor=cli_actor())
        return _report_outcome(outcome, "tagged", args.json)

    return await _with_service(settings, run)


async def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    async def run(service: Service) -> int:
        stop = asyncio.Event()
        with _first_ctrl_c_stops(stop), _sync_progress() as progress:
            outcome = await service.sync(actor=cli_actor(), progress=progress, stop=stop)
        # Count what the channels accepted: a failed send is a history row, not an error here
        # (its warning is hidden without -v), so the summary says how many went out.
        with _json_stdout_kept(args):
            dispatched = await service.dispatch()
        attempted, sent = dispatched.attempted, dispatched.sent
        if args.json:
            _print_json(
                {
                    "asked": outcome.asked,
                    "total": outcome.total,
                    "interrupted": outcome.interrupted,
                    "applied": outcome.applied,
                    "notifications": outcome.notifications,
                    "dispatched": attempted,
                    "sent": sent,
                    "no_info_yet": outcome.no_info_yet,
                    "unknown": outcome.unknown,
                    "rejected": [_rejected_json(r) for r in outcome.rejected],
                }
            )
        else:
            print(_sync_summary(outcome, attempted, sent))
            for rej in outcome.rejected:
                _err(f"{rej.number}: {_with_code(rej.error.message, rej.error.code)}")
            _warn_unknown(outcome.unknown)
        if outcome.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if not outcome.rejected else EXIT_FAILED

    return await _with_service(settings, run)


@contextlib.contextmanager
def _json_stdout_kept(args: argparse.Namespace) -> Iterator[None]:
    """With ``--json``, what the console channel prints while sending goes to stderr, so
    stdout stays one JSON document."""
    if not getattr(args, "json", False):
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def _sync_summary(outcome: Any, attempted: int, sent: int) -> str:
    """The line that ends a sync: what was asked, applied and sent."""
    done = f"{outcome.asked} of {outcome.total}" if outcome.interrupted else str(outcome.asked)
    counted = outcome.total if outcome.interrupted else outcome.asked
    unsent = attempted - sent
    line = (
        f"synced {done} {_plural(counted, 'shipment')}: {outcome.applied} updated, "
        f"{len(outcome.no_info_yet)} with no tracking info yet, "
        f"{outcome.notifications} {_plural(outcome.notifications, 'notification')}, {sent} sent"
        + (f", {unsent} not sent (see `trackops history`)" if unsent else "")
    )
    if outcome.interrupted:
        return f"interrupted: {line}; `trackops sync` again does the rest"
    return line


def _warn_unknown(numbers: Sequence[str]) -> None:
    """One line (with its fix) for the numbers 17TRACK no longer knows."""
    if not numbers:
        return
    if len(numbers) == 1:
        (number,) = numbers
        sys.stderr.write(
            f"trackops: warning: 17TRACK no longer knows {number} (-18019902): marked and no"
            f" longer synced; `trackops register {number}` tracks it again, `trackops delete"
            f" {number} --yes` forgets it\n"
        )
        return
    shown = " ".join(numbers[:10]) + (" ..." if len(numbers) > 10 else "")
    sys.stderr.write(
        f"trackops: warning: 17TRACK no longer knows {len(numbers)} numbers (-18019902): marked"
        f" and no longer synced; `trackops register NUMBER...` tracks them again, `trackops"
        f" list --stopped` lists them: {shown}\n"
    )


@contextlib.contextmanager
def _first_ctrl_c_stops(stop: asyncio.Event) -> Iterator[None]:
    """The first Ctrl-C sets ``stop`` (work ends cleanly, keeping what was done); the
    second one interrupts at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_sigint() -> None:
        if stop.is_set():
            if task is not None:
                task.cancel()
            return
        stop.set()
        sys.stderr.write(
            "\nstopping after the shipments being synced (Ctrl-C again to stop at once)\n"
        )
        sys.stderr.flush()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - non-POSIX
        yield
        return
    try:
        yield
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)


@contextlib.contextmanager
def _sync_progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal (``progress(done, total)``), else None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("syncing", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update


async def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.service import HistoryQuery

    query = HistoryQuery(
        search=args.search,
        send_statuses=frozenset({args.send_status}) if args.send_status else frozenset(),
        condition=args.condition,
    )

    async def run(service: Service) -> int:
        rows = await _all_pages(
            lambda size, cursor: service.history(query, limit=size, after=cursor), args.limit
        )
        if args.json:
            _print_json([r.to_json() for r in rows])
            return EXIT_OK
        if not rows:
            print("no notifications")
            return EXIT_OK

        table_rows = []
        for r in rows:
            change = "→".join(s.slug for s in (r.from_status, r.to_status) if s is not None)
            condition = r.condition + (" (custom)" if r.condition_kind == "custom" else "")
            table_rows.append(
                (
                    str(r.id), f"{r.created_at:%m-%d %H:%M}", r.number or "", r.order or "",
                    r.recipient, r.channel, condition, change, r.send_status, r.reason or "",
                )
            )  # fmt: skip
        _print_table(
            [("id", True), ("time", True), ("number", True), ("order", False),
             ("recipient", False), ("channel", False), ("condition", False), ("change", False),
             ("status", True), ("reason", False)],
            table_rows,
            drop_first=("order", "channel", "time", "condition", "recipient"),
        )  # fmt: skip
        return EXIT_OK

    return await _with_service(settings, run, read_only=True)


async def cmd_resend(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.service import InvalidInputError, NotFoundError

    async def run(service: Service) -> int:
        try:
            with _json_stdout_kept(args):
                row = await service.resend(args.id, actor=cli_actor())
        except (NotFoundError, InvalidInputError) as exc:
            raise UsageError(str(exc)) from None
        if args.json:
            _print_json(row.to_json())
        else:
            _say(
                f"notification {args.id} resent as {row.id}: {row.send_status}"
                + (f" ({row.reason})" if row.reason else "")
            )
        return EXIT_OK if row.send_status == "sent" else EXIT_FAILED

    return await _with_service(settings, run)


async def cmd_inbox(args: argparse.Namespace, settings: Settings) -> int:
    """``inbox``: the backlog and quarantined count; ``--failed`` lists quarantined pushes;
    ``inbox replay ID...`` applies them again (exit 1 when one fails again)."""
    from trackops.core.service import NotFoundError

    if args.action in ("replay", "dismiss") and not args.ids:
        raise UsageError(
            f"inbox {args.action}: give the ids of quarantined pushes (`inbox --failed`)"
        )
    if args.action is None and args.ids:
        raise UsageError("inbox: ids go with `inbox replay ID...`")

    async def replay(service: Service) -> int:
        try:
            entries = await service.replay_inbox(args.ids, actor=cli_actor())
        except NotFoundError as exc:
            raise CommandFailed(str(exc)) from None
        if args.json:
            _print_json([e.to_json() for e in entries])
        for entry in entries:
            if not args.json:
                state = f"failed again: {entry.error}" if entry.failed else "applied"
                _say(f"push {entry.id} ({entry.number or 'unreadable'}): {state}")
        missing = sorted(set(args.ids) - {e.id for e in entries})
        if missing:
            _err(f"not quarantined, left alone: {', '.join(str(i) for i in missing)}")
        return EXIT_OK if not missing and not any(e.failed for e in entries) else EXIT_FAILED

    async def show(service: Service) -> int:
        status = await service.inbox_status()
        failed = await service.inbox_failed() if args.failed else []
        if args.json:
            _print_json(
                [e.to_json() for e in failed]
                if args.failed
                else {
                    "backlog": status.backlog,
                    "failed": status.failed,
                    "oldest_unprocessed_at": _iso_or_none(status.oldest_unprocessed_at),
                    "last_received_at": _iso_or_none(status.last_received_at),
                }
            )
            return EXIT_OK
        if not args.failed:
            oldest = status.oldest_unprocessed_at
            print(
                f"{status.backlog} pushes waiting"
                + (f" (oldest received {oldest:%Y-%m-%d %H:%M:%S} UTC)" if oldest else "")
                + f", {status.failed} quarantined"
                + (" (`trackops inbox --failed`)" if status.failed else "")
            )
            return EXIT_OK
        if not failed:
            print("no quarantined pushes")
            return EXIT_OK
        _print_table(
            [("id", True), ("received", True), ("attempts", True), ("number", False),
             ("event", False), ("error", False)],
            [
                (str(e.id), f"{e.received_at:%Y-%m-%d %H:%M:%S}", str(e.attempts),
                 e.number or "", e.event or "", e.error or "")
                for e in failed
            ],
            drop_first=("event", "received"),
        )  # fmt: skip
        return EXIT_OK

    async def dismiss(service: Service) -> int:
        try:
            done = await service.dismiss_inbox(args.ids, actor=cli_actor())
        except NotFoundError as exc:
            raise CommandFailed(str(exc)) from None
        if args.json:
            _print_json({"dismissed": done})
        else:
            for row_id in done:
                _say(f"push {row_id}: set aside (kept until pruned; no longer counted as failed)")
        missing = sorted(set(args.ids) - set(done))
        if missing:
            _err(f"not quarantined, left alone: {', '.join(str(i) for i in missing)}")
        return EXIT_OK if not missing else EXIT_FAILED

    if args.action == "replay":
        return await _with_service(settings, replay)
    if args.action == "dismiss":
        return await _with_service(settings, dismiss, plugins=False)
    return await _with_service(settings, show, read_only=True)


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


async def cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    async def run(service: Service) -> int:
        with _json_stdout_kept(args):
            done = await service.dispatch()
        if args.json:
            _print_json({"attempted": done.attempted, "sent": done.sent})
        else:
            print(
                f"attempted {done.attempted} {_plural(done.attempted, 'notification')},"
                f" {done.sent} sent"
            )
        return EXIT_OK

    return await _with_service(settings, run)


async def _write_report(service: Service, kind: str, output: str) -> int:
    """``report KIND --output FILE|-``: the report's text (the export: its CSV), not sent."""
    if kind == "export":
        content = await service.export_csv()
    else:
        subject, body = await service.report_text(kind)
        content = f"{subject}\n\n{body.rstrip()}\n".encode()
    if output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return EXIT_OK
    path = Path(output)
    try:
        await asyncio.to_thread(path.write_bytes, content)
    except OSError as exc:
        raise CommandFailed(f"{path}: cannot be written: {exc.strerror or exc}") from None
    print(f"{kind} report written to {path}")
    return EXIT_OK


async def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.service import InvalidInputError

    async def run(service: Service) -> int:
        if args.output is not None:
            return await _write_report(service, args.kind, args.output)
        try:
            with _json_stdout_kept(args):
                rows = await service.send_report(args.kind, actor=cli_actor())
        except InvalidInputError as exc:
            raise UsageError(str(exc)) from None
        if args.json:
            _print_json([r.to_json() for r in rows])
        else:
            for r in rows:
                reason = f" ({r.reason})" if r.reason else ""
                _say(f"{args.kind} to {r.recipient} via {r.channel}: {r.send_status}{reason}")
        return EXIT_OK if all(r.send_status == "sent" for r in rows) else EXIT_FAILED

    return await _with_service(settings, run)


async def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.sandbox import SandboxConfig, running_sandbox

    config = SandboxConfig(
        key=args.key,
        webhook_url=args.webhook_url,
        speed=args.speed,
        seed=args.seed,
        undocumented_codes=args.undocumented_codes,
    )
    try:
        config.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def serve() -> None:
        # The line is printed once the port is bound: a caller may use the API as soon as it
        # has read it, and with --port 0 it names the port that was picked.
        async with running_sandbox(config, args.host, args.port) as sandbox:
            print(
                f"17TRACK sandbox at {sandbox.base_url} (key {args.key!r}, "
                f"speed x{args.speed:g}, seed {args.seed})"
                + (f", pushing to {args.webhook_url}" if args.webhook_url else ""),
                flush=True,
            )
            await asyncio.Event().wait()

    await _until_signal(serve())
    return EXIT_OK


async def _until_signal(coro: Awaitable[Any]) -> None:
    """Run ``coro`` until it ends or SIGINT/SIGTERM arrives (then cancel it cleanly)."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, task.cancel)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-POSIX
            pass
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.runtime import serve

    await _until_signal(serve(settings, host=args.host, port=args.port))
    return EXIT_OK


async def cmd_plugins(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core.plugins import PluginError, PluginHost

    host = PluginHost(settings)
    try:
        host.load()
        try:  # so that "command NAME" shows among what each plugin provides
            host.cli_commands(reserved=COMMANDS)
        except PluginError as exc:  # a command name taken twice: the others still show
            host.warnings.append(str(exc))
        described = host.describe()
        if args.json:
            _print_json([dataclasses.asdict(info) for info in described])
            return EXIT_OK
        for info in described:
            print(f"{info.name} {info.version or ''}  ({info.module})")
            print(f"    hooks: {', '.join(info.hooks) or 'none'}")
            if info.provides:
                print(f"    provides: {', '.join(info.provides)}")
            for error in info.errors:
                print(f"    error: {error}")
        for warning in host.warnings:
            print(f"warning: {warning}")
        if settings.plugins_disable:
            print(f"disabled: {', '.join(settings.plugins_disable)}")
        return EXIT_OK
    finally:
        await host.aclose()


async def cmd_carriers(args: argparse.Namespace, settings: Settings) -> int:
    from trackops.core import carriers

    if args.query[:1] == ["update"]:
        import aiohttp

        try:
            written = await carriers.update_carrier_lists(args.url)
        except (carriers.CarrierListError, aiohttp.ClientError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise CommandFailed(f"carrier lists not updated from {args.url}: {detail}") from None
        print(f"carrier lists updated: {written}")
        return EXIT_OK
    query = " ".join(args.query)
    found = carriers.search_carriers(query)
    if query.strip() and not found:
        raise CommandFailed(
            f"no carrier matches {query!r}; try a shorter part of its name, or its numeric code"
        )
    params = await _carrier_params(settings)
    if args.json:
        _print_json(
            [
                {**dataclasses.asdict(c), "params": [_param_json(p) for p in params.get(c.key, ())]}
                for c in found
            ]
        )
        return EXIT_OK
    for c in found[:50]:
        _say(f"{c.key:>7}  {c.name}  {c.country_iso}".rstrip())  # a downloaded list
        for p in params.get(c.key, ()):
            need = "needs" if p.required else "accepts"
            sample = f", e.g. {p.sample!r}" if p.sample else ""
            print(f"         {need} {p.label} as --param{sample}")
    if len(found) > 50:
        print(f"... {len(found) - 50} more; narrow the search")
    return EXIT_OK


async def _carrier_params(settings: Settings) -> dict[int, list[Any]]:
    """Carrier code -> its extra-parameter rows, from the loaded plugins."""
    from trackops.core.plugins import PluginHost

    host = PluginHost(settings)
    try:
        out: dict[int, list[Any]] = {}
        for param in host.carrier_params:
            out.setdefault(param.carrier, []).append(param)
        return out
    finally:
        await host.aclose()


def _param_json(param: Any) -> dict[str, Any]:
    return {
        "kind": param.kind,
        "label": param.label,
        "required": param.required,
        "sample": param.sample,
    }


async def cmd_init(args: argparse.Namespace, settings: Settings | None) -> int:
    from trackops.core.config import write_config

    path = resolve_config_path(args.config)
    write_config(path, force=args.force)
    print(
        f"wrote {path}; put your 17TRACK key in [api] key (or point [api] base_url at"
        " `trackops sandbox`), then `trackops register NUMBER`. Notifications are printed"
        " (the console channel) until you set up [channels.email]."
    )
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Any], Coroutine[Any, Any, int]]] = {
    "init": cmd_init,
    "sandbox": cmd_sandbox,
    "serve": cmd_serve,
    "register": cmd_register,
    "status": cmd_status,
    "list": cmd_list,
    "stop": _numbers_cmd("stop", "stopped"),
    "retrack": _numbers_cmd("retrack", "retracking"),
    "delete": _numbers_cmd("delete", "deleted"),
    "change-carrier": cmd_change_carrier,
    "tag": cmd_tag,
    "sync": cmd_sync,
    "history": cmd_history,
    "resend": cmd_resend,
    "inbox": cmd_inbox,
    "dispatch": cmd_dispatch,
    "report": cmd_report,
    "plugins": cmd_plugins,
    "carriers": cmd_carriers,
}

NO_CONFIG = {"init", "sandbox"}
# Work without a config file (their defaults suffice); every other command needs one.
OPTIONAL_CONFIG = {"carriers", "plugins"}
# Only read the store: a secret whose env:NAME is not set is no reason to refuse them.
READING = {"status", "list", "history"}
LONG_RUNNING = {"serve", "sandbox"}
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _SafeFormatter(logging.Formatter):
    """Log records as the terminal may show them: a message can carry outside text (a
    17TRACK answer's message, a value a store refused), so control and bidi characters are
    made visible (``text.safe_text``), as everywhere else trackops prints."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(super().format(record), multiline=True)


class _OneLineFormatter(logging.Formatter):
    """Log records as one line each: an exception shows as its type and message, never as a
    traceback (tracebacks are for ``-v``); outside text made safe, as ``_SafeFormatter``."""

    def formatException(self, ei: Any) -> str:
        return ""

    def formatStack(self, stack_info: str) -> str:
        return ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text += f" ({type(exc).__name__}: {exc})"
        return safe_text(" ".join(text.splitlines()))


def _setup_logging(args: argparse.Namespace, *, long_running: bool = False) -> None:
    """Logging to stderr. A one-shot command shows only errors unless ``-v``, so a failure
    stays one line (e.g. no "retrying" warnings before "API unavailable"); ``serve``,
    ``sandbox`` and long-running plugin commands also show warnings. Without ``-v`` no record
    carries a traceback.
    """
    if args.verbose:
        level = logging.INFO
    elif args.command in LONG_RUNNING or long_running:
        level = logging.WARNING
    else:
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _SafeFormatter(_LOG_FORMAT) if args.verbose else _OneLineFormatter(_LOG_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler])
    if args.command == "serve":
        # What serve does, one line per push applied or refused, is shown at the default level.
        logging.getLogger("trackops.pushes").setLevel(logging.INFO)


# --------------------------------------------------------------------------- plugin commands


@dataclasses.dataclass
class _PluginCommand:
    command: CliCommand
    plugin: str


@dataclasses.dataclass
class _PluginCommands:
    """The sub-commands plugins add, by name; ``refused``: why none could be added (two
    plugins claiming one name, a plugin taking a built-in's name ...), naming the plugins."""

    commands: dict[str, _PluginCommand]
    refused: str | None = None
    asked: str | None = None
    """The sub-command asked for on the command line (None for none, or an option)."""


def _plugin_commands(argv: Sequence[str] | None) -> _PluginCommands:
    """The sub-commands plugins add (``trackops_register_commands``), by name.

    The config's ``[plugins] disable`` is honoured when the config can be read; a plugin that
    cannot be imported is left out here (the commands that need plugins then say why). When
    the registrations clash, no plugin command is added and ``refused`` says why."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("-v", "--verbose", action="store_true")
    known, rest = pre.parse_known_args(argv)
    asked = rest[0] if rest and not rest[0].startswith("-") else None
    if asked in COMMANDS:
        # A built-in command: its parser needs no plugin (and loading them costs imports).
        return _PluginCommands({}, asked=asked)
    from trackops.core.plugins import PluginError, PluginHost

    try:
        settings = load_settings(known.config, required=False)
    except ConfigError:
        settings = Settings()
    host = PluginHost(settings)
    try:
        commands = host.cli_commands(reserved=COMMANDS)
    except PluginError as exc:
        return _PluginCommands({}, refused=str(exc), asked=asked)
    found = {}
    for command in commands:
        plugin = host.provider_of("command", command.name) or "?"
        found[command.name] = _PluginCommand(command, plugin)
    return _PluginCommands(found, asked=asked)


@dataclasses.dataclass
class _Context:
    """What a plugin's command gets (``hookspecs.CliContext``)."""

    settings: Settings | None
    config_path: Path
    actor: str

    def open_service(self) -> contextlib.AbstractAsyncContextManager[Service]:
        from trackops.core.service import open_service

        if self.settings is None:
            raise UsageError("this command has no config to open the store with")
        return open_service(self.settings)

    def print(self, text: str) -> None:
        print(safe_text(text, multiline=True))


async def _run_plugin_command(
    entry: _PluginCommand, args: argparse.Namespace, settings: Settings | None
) -> int:
    context = _Context(settings, resolve_config_path(args.config), cli_actor())
    command = entry.command

    async def run() -> int:
        result = command.run(args, context)
        if inspect.isawaitable(result):
            result = await result
        return int(result or 0)

    try:
        if command.long_running:
            await _until_signal(run())
            return EXIT_OK
        return await run()
    except (TrackopsError, UsageError, CommandFailed):
        raise
    except Exception as exc:
        raise CommandFailed(
            f"plugin {entry.plugin!r}: command {command.name!r} failed:"
            f" {type(exc).__name__}: {safe_text(str(exc))}"
        ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trackops`` console script; returns the exit code."""
    found = _plugin_commands(argv)
    plugins = found.commands
    if found.refused and found.asked is not None and found.asked not in COMMANDS:
        # Not a built-in: a plugin command, which cannot run while the plugins' clash.
        _err(f"no command {found.asked!r}: plugin commands are not available: {found.refused}")
        return EXIT_USAGE
    args = build_parser(plugins, refused=found.refused).parse_args(argv)
    entry = plugins.get(args.command)
    _setup_logging(args, long_running=entry is not None and entry.command.long_running)
    try:
        if entry is not None:
            loaded = load_settings(args.config, required=entry.command.needs_config)
            return asyncio.run(_run_plugin_command(entry, args, loaded))
        settings = (
            None
            if args.command in NO_CONFIG
            else load_settings(
                args.config,
                required=args.command not in OPTIONAL_CONFIG,
                unset_secrets=args.command in READING,
            )
        )
        code = asyncio.run(COMMANDS[args.command](args, settings))
        # Nothing is left to free: without this, the interpreter's last garbage collection over
        # every imported module (SQLAlchemy, aiohttp) takes 0.3-0.6 s of a one-shot command.
        gc.freeze()
        return code
    except KeyboardInterrupt:
        return 130
    except (ConfigError, UsageError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except Exception as exc:  # every known failure becomes one line, see _describe_failure
        message = _describe_failure(exc)
        if message is None:
            # A bug of ours: still one line, with the traceback only when asked for.
            if args.verbose:
                logging.getLogger("trackops").exception("internal error")
            message = f"internal error: {type(exc).__name__}: {exc} (run with -v for details)"
            _err(message)
            return EXIT_INTERNAL
        _err(message)
        return EXIT_FAILED


def _describe_failure(exc: BaseException) -> str | None:
    """The one line for a failure a user can act on; None for a bug of ours."""
    if isinstance(exc, TrackApiError):
        return f"17TRACK: {_with_code(exc.message, exc.code)}"
    # PluginError: a broken third-party plugin, and its message names it.
    # TrackopsError: the store, the API, a plugin, the config... each says what went wrong.
    known = (CommandFailed, TrackopsError)
    if isinstance(exc, known):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
