"""Operational reports: the weekly report, the monthly report and the full shipment export.

Pure: given shipments and notification history (and ``now``), build the subject, a plain-text
body and a CSV attachment. The engine stores one history row per recipient and channel
(audience ``report``) and the channels deliver them like any other notification.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from trackops.core.channels import Attachment
from trackops.core.store import NotificationRecord, ShipmentRecord
from trackops.core.wire import PackageStatus

__all__ = ["EXPORT_COLUMNS", "REPORT_KINDS", "Report", "ReportKind", "build_report", "export_csv"]

ReportKind = Literal["weekly", "monthly", "export"]
REPORT_KINDS: tuple[ReportKind, ...] = ("weekly", "monthly", "export")

EXPORT_COLUMNS = (
    "number", "carrier", "carrier_name", "status", "status_code", "tracking",
    "latest_event_time", "latest_event_location", "latest_event_description",
    "order", "email", "tag", "registered_at", "updated_at",
)  # fmt: skip

_NEEDS_ATTENTION = (PackageStatus.ALERT, PackageStatus.UNDELIVERED, PackageStatus.EXPIRED)


@dataclass(frozen=True)
class Report:
    """A built report: what the channels send."""

    kind: ReportKind
    subject: str
    body: str
    attachment: Attachment


def period_of(kind: ReportKind, now: datetime) -> tuple[datetime, datetime]:
    """The period a report covers: the last 7 days, the last 30 days, or everything."""
    if kind == "weekly":
        return now - timedelta(days=7), now
    if kind == "monthly":
        return now - timedelta(days=30), now
    return datetime.min, now


def export_csv(
    shipments: Sequence[ShipmentRecord], carrier_name: Callable[[int | None], str]
) -> bytes:
    """Every shipment as CSV (UTF-8 with BOM so spreadsheet programs read accents right)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for s in shipments:
        writer.writerow(
            [
                s.number, s.carrier or "", carrier_name(s.carrier), s.status.slug, int(s.status),
                s.tracking, s.latest_event_raw or "", s.latest_event_location or "",
                s.latest_event_description or "", s.order_number or "", s.email or "",
                s.tag or "", s.registered_at.isoformat(), s.updated_at.isoformat(),
            ]
        )  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def build_report(
    kind: ReportKind,
    shipments: Sequence[ShipmentRecord],
    notifications: Sequence[NotificationRecord],
    *,
    now: datetime,
    carrier_name: Callable[[int | None], str],
) -> Report:
    """Build the ``kind`` report over ``shipments`` and the period's ``notifications``."""
    start, end = period_of(kind, now)
    day = now.strftime("%Y-%m-%d")
    counts = Counter(s.status for s in shipments)
    lines: list[str] = []
    if kind == "export":
        subject = f"trackops: full shipment export ({len(shipments)} shipments, {day})"
        lines.append(f"All {len(shipments)} shipments are in the attached CSV.")
    else:
        title = "Weekly" if kind == "weekly" else "Monthly"
        subject = f"trackops: {title.lower()} report {start:%Y-%m-%d} to {end:%Y-%m-%d}"
        registered = sum(1 for s in shipments if start <= s.registered_at <= end)
        delivered = [
            s for s in shipments
            if s.status is PackageStatus.DELIVERED and s.updated_at and start <= s.updated_at <= end
        ]  # fmt: skip
        in_period = [n for n in notifications if start <= n.created_at <= end]
        sends = Counter(n.send_status for n in in_period)
        lines += [
            f"{title} report, {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            "",
            f"Shipments registered in the period: {registered}",
            f"Delivered in the period: {len(delivered)}",
            f"Tracked now: {sum(1 for s in shipments if s.active)} of {len(shipments)}",
            "",
            "Shipments by status:",
        ]
        lines += [f"  {status.display:12} {counts.get(status, 0)}" for status in PackageStatus]
        lines += [
            "",
            f"Notifications: {sends.get('sent', 0)} sent, {sends.get('failed', 0)} failed, "
            f"{sends.get('suppressed', 0)} held back by the daily limit, "
            f"{sends.get('pending', 0)} pending",
        ]
        attention = [s for s in shipments if s.status in _NEEDS_ATTENTION and s.active]
        if attention:
            lines += ["", f"Needing attention ({len(attention)}):"]
            lines += [
                f"  {s.number}  {s.status.display}  order {s.order_number or '-'}  "
                f"{s.latest_event_description or ''}".rstrip()
                for s in attention[:50]
            ]
            if len(attention) > 50:
                lines.append(f"  ... and {len(attention) - 50} more in the attached CSV")
    attachment = Attachment(
        filename=f"trackops-{kind}-{day}.csv",
        content=export_csv(shipments, carrier_name),
        mime_type="text/csv",
    )
    return Report(kind=kind, subject=subject, body="\n".join(lines) + "\n", attachment=attachment)
