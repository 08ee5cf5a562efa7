"""Operational reports: the weekly report, the monthly report and the full shipment export.

Pure: given the figures the store counted in SQL (``queries.ReportFigures``) and ``now``, build
the subject and a plain-text body; ``export_csv`` turns shipment rows into the CSV attachment,
a batch at a time, so a report over 100,000 shipments never holds them all as objects. The
engine stores one history row per recipient and channel (audience ``report``) and the channels
deliver them like any other notification.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from trackops.core.queries import ReportFigures, SlimShipment
from trackops.core.wire import PackageStatus

__all__ = [
    "EXPORT_COLUMNS",
    "REPORT_KINDS",
    "CsvExport",
    "Report",
    "ReportKind",
    "build_report",
    "export_csv",
]

ReportKind = Literal["weekly", "monthly", "export"]
REPORT_KINDS: tuple[ReportKind, ...] = ("weekly", "monthly", "export")

EXPORT_COLUMNS = (
    "number", "carrier", "carrier_name", "status", "status_code", "tracking",
    "latest_event_time", "latest_event_location", "latest_event_description",
    "order", "email", "tag", "registered_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True)
class Report:
    """A built report: what the channels send."""

    kind: ReportKind
    subject: str
    body: str


def period_of(kind: ReportKind, now: datetime) -> tuple[datetime, datetime]:
    """The period a report covers: the last 7 days, the last 30 days, or everything."""
    if kind == "weekly":
        return now - timedelta(days=7), now
    if kind == "monthly":
        return now - timedelta(days=30), now
    return datetime.min, now


class CsvExport:
    """The shipment export as CSV, written a batch of rows at a time (UTF-8 with a BOM so
    that spreadsheet programs read accents right)."""

    def __init__(self, carrier_name: Callable[[int | None], str]) -> None:
        self._carrier_name = carrier_name
        self._out = io.StringIO()
        self._out.write("\ufeff")
        self._writer = csv.writer(self._out)
        self._writer.writerow(EXPORT_COLUMNS)
        self.rows = 0

    def add(self, shipments: Iterable[SlimShipment]) -> None:
        """Append rows."""
        name = self._carrier_name
        for s in shipments:
            status = _slug(s.status_code)
            self._writer.writerow(
                [
                    s.number, s.carrier or "", name(s.carrier), status, s.status_code,
                    "active" if s.active else "stopped", s.latest_event_raw or "",
                    s.latest_event_location or "", s.latest_event_description or "",
                    s.order_number or "", s.email or "", s.tag or "",
                    s.registered_at.isoformat(), s.updated_at.isoformat(),
                ]
            )  # fmt: skip
            self.rows += 1

    def add_plain(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Append rows in the order of ``queries.iter_export_rows`` (driver values)."""
        names: dict[int | None, str] = {}
        slugs: dict[int, str] = {}
        write = self._writer.writerow
        for (
            number, carrier, code, active, event_time, location, description,
            order, email, tag, registered, updated,
        ) in rows:  # fmt: skip
            slug = slugs.get(code)
            if slug is None:
                slug = slugs[code] = _slug(code)
            carrier_name = names.get(carrier)
            if carrier_name is None:
                carrier_name = names[carrier] = self._carrier_name(carrier)
            write(
                (
                    number, carrier or "", carrier_name, slug, code,
                    "active" if active else "stopped", event_time or "", location or "",
                    description or "", order or "", email or "", tag or "",
                    _iso_text(registered), _iso_text(updated),
                )
            )  # fmt: skip
            self.rows += 1

    def content(self) -> bytes:
        """The CSV so far, encoded."""
        return self._out.getvalue().encode("utf-8")


def _iso_text(value: Any) -> str:
    """A stored time as ISO 8601: a ``datetime`` (PostgreSQL) or SQLite's stored text."""
    if isinstance(value, datetime):
        return value.isoformat()
    # SQLAlchemy's SQLite text always has a fraction; isoformat() leaves a zero one out.
    return str(value or "").replace(" ", "T", 1).removesuffix(".000000")


def _slug(code: int) -> str:
    try:
        return PackageStatus(code).slug
    except ValueError:
        return f"unknown_{code}"


def export_csv(
    shipments: Iterable[SlimShipment], carrier_name: Callable[[int | None], str]
) -> bytes:
    """Every shipment of ``shipments`` as CSV."""
    export = CsvExport(carrier_name)
    export.add(shipments)
    return export.content()


def build_report(kind: ReportKind, figures: ReportFigures, *, now: datetime) -> Report:
    """Build the ``kind`` report from the period's ``figures``."""
    start, end = period_of(kind, now)
    day = now.strftime("%Y-%m-%d")
    lines: list[str] = []
    if kind == "export":
        subject = f"trackops: full shipment export ({figures.total} shipments, {day})"
        lines.append(f"All {figures.total} shipments are in the attached CSV.")
    else:
        title = "Weekly" if kind == "weekly" else "Monthly"
        subject = f"trackops: {title.lower()} report {start:%Y-%m-%d} to {end:%Y-%m-%d}"
        sends = figures.sends
        lines += [
            f"{title} report, {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            "",
            f"Shipments registered in the period: {figures.registered}",
            f"Delivered in the period: {figures.delivered}",
            f"Tracked now: {figures.tracked} of {figures.total}",
            "",
            "Shipments by status:",
        ]
        lines += [
            f"  {status.display:12} {figures.by_status.get(int(status), 0)}"
            for status in PackageStatus
        ]
        unknown = sorted(c for c in figures.by_status if c not in set(map(int, PackageStatus)))
        lines += [f"  {'code ' + str(c):12} {figures.by_status[c]}" for c in unknown]
        lines += [
            "",
            f"Notifications: {sends.get('sent', 0)} sent, {sends.get('failed', 0)} failed, "
            f"{sends.get('suppressed', 0)} held back by the daily limit, "
            f"{sends.get('pending', 0)} pending",
        ]
        if figures.attention_total:
            lines += ["", f"Needing attention ({figures.attention_total}):"]
            lines += [
                f"  {s.number}  {PackageStatus(s.status_code).display}  "
                f"order {s.order_number or '-'}  {s.latest_event_description or ''}".rstrip()
                for s in figures.attention
            ]
            if figures.attention_total > len(figures.attention):
                rest = figures.attention_total - len(figures.attention)
                lines.append(f"  ... and {rest} more in the attached CSV")
    return Report(kind=kind, subject=subject, body="\n".join(lines) + "\n")
