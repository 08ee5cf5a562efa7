"""Which claimed notifications must not go out any more: old news, and reports already sent.

Pure: no I/O, no clock. The dispatcher claims due rows, asks the store what was already sent
for them (``SentNews``, ``SentReports``), and calls ``supersessions``; the rows it names are
recorded ``superseded`` with the reason instead of being sent.

Theory of operation
-------------------
After an outage (the mail server down, then back), rows wait with different backoffs and come
due in any order. Two rules keep what people receive in order and single:

* **News is never older than what was already told.** A status notification (audience
  ``customer`` or ``seller``) is about one shipment's change; rows are created in the order the
  state machine applied the changes, so a higher id is newer news. A row is superseded when a
  newer row for the same shipment, audience and recipient was already sent. Rows of one such
  key that come due together are all news: the dispatcher sends them one after the other,
  oldest first (``in_order``), so nobody hears them out of order. Resends (``resend_of``) are
  a person's explicit request: they neither supersede nor are superseded.
* **A report goes out once per kind and period.** Report rows carry their period (the calendar
  week or month they were queued in, in the configured zone; the day for an export). A row is
  superseded when the same report (kind, period, recipient, channel) was already sent, or when
  a newer row for it is being sent in this dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Final, Protocol, TypeVar

from trackops.core.wire import PackageStatus

__all__ = [
    "NEWS_AUDIENCES",
    "SUPERSEDED",
    "NewsKey",
    "ReportKey",
    "SentNews",
    "SentReports",
    "in_order",
    "news_key",
    "report_key",
    "report_period",
    "supersessions",
]

SUPERSEDED: Final = "superseded"
"""The send status of a row that was not sent because it was no longer news."""

NEWS_AUDIENCES: Final = frozenset({"customer", "seller"})

NewsKey = tuple[str, str, str]
"""(tracking number, audience, recipient): one person's view of one shipment."""

ReportKey = tuple[str, str, str, str]
"""(condition, period, recipient, channel): one report of one period to one place."""

SentNews = Mapping[NewsKey, tuple[int, PackageStatus | None]]
"""Per key, the newest sent row's id and the status it told of."""

SentReports = Mapping[ReportKey, int]
"""Per key, the id of a sent row."""


class Row(Protocol):
    """What the decision reads of a notification row (``store.NotificationRecord``)."""

    @property
    def id(self) -> int: ...
    @property
    def number(self) -> str | None: ...
    @property
    def audience(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def condition(self) -> str: ...
    @property
    def resend_of(self) -> int | None: ...
    @property
    def period(self) -> str | None: ...
    @property
    def to_status(self) -> PackageStatus | None: ...


def report_period(kind: str, now: datetime, zone: tzinfo = UTC) -> str:
    """The period a report queued at ``now`` (naive UTC) belongs to, in ``zone``.

    ``weekly``: the ISO week (``2026-W49``); ``monthly``: the month (``2026-12``); anything
    else (the export): the day (``2026-12-01``).
    """
    local = now.replace(tzinfo=UTC).astimezone(zone)
    if kind == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "monthly":
        return f"{local:%Y-%m}"
    return f"{local:%Y-%m-%d}"


def news_key(row: Row) -> NewsKey | None:
    """The key news rows are ordered by, or ``None`` for a row outside that rule."""
    if row.audience not in NEWS_AUDIENCES or not row.number or row.resend_of is not None:
        return None
    return (row.number, row.audience, row.recipient)


def report_key(row: Row) -> ReportKey | None:
    """The key a report is sent once per, or ``None`` for a row outside that rule."""
    if row.audience != "report" or not row.period or row.resend_of is not None:
        return None
    return (row.condition, row.period, row.recipient, row.channel)


def _told(status: PackageStatus | None) -> str:
    return f" ({status.display})" if status is not None else ""


def supersessions(
    claimed: Sequence[Row], sent_news: SentNews, sent_reports: SentReports
) -> dict[int, str]:
    """The claimed rows that must not be sent, by id, with the reason recorded for each."""
    newest_report: dict[ReportKey, Row] = {}
    for row in claimed:
        report = report_key(row)
        if report is not None and (
            report not in newest_report or row.id > newest_report[report].id
        ):
            newest_report[report] = row
    out: dict[int, str] = {}
    for row in claimed:
        news = news_key(row)
        if news is not None:
            sent = sent_news.get(news)
            if sent is not None and sent[0] > row.id:
                out[row.id] = (
                    f"superseded: newer notification #{sent[0]}{_told(sent[1])} was already sent"
                )
            continue
        report = report_key(row)
        if report is not None:
            condition, period = report[0], report[1]
            sent_id = sent_reports.get(report)
            if sent_id is not None and sent_id != row.id:
                out[row.id] = f"superseded: {condition} for {period} was already sent (#{sent_id})"
                continue
            newest = newest_report[report]
            if newest.id > row.id:
                out[row.id] = f"superseded: {condition} for {period} is sent as #{newest.id}"
    return out


R = TypeVar("R", bound=Row)


def in_order(rows: Sequence[R]) -> list[list[R]]:
    """``rows`` as chains to send: the news rows of one key in one chain, oldest first (each
    sent after the one before it), every other row a chain of its own."""
    chains: dict[object, list[R]] = {}
    for row in sorted(rows, key=lambda r: r.id):
        key = news_key(row)
        chains.setdefault(key if key is not None else ("row", row.id), []).append(row)
    return list(chains.values())
