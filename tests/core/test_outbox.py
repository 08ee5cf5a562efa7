"""``core.outbox``: which claimed rows are no longer news, table-driven (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from trackops.core.outbox import in_order, report_period, supersessions
from trackops.core.wire import PackageStatus as S


@dataclass(frozen=True)
class Row:
    id: int
    number: str | None = "RR1"
    audience: str = "customer"
    recipient: str = "buyer@example.com"
    channel: str = "email"
    condition: str = "customer"
    resend_of: int | None = None
    period: str | None = None
    to_status: S | None = S.IN_TRANSIT


def report(id_: int, period: str = "2026-W49", **changes: object) -> Row:
    values: dict[str, object] = dict(
        number=None, audience="report", recipient="ops@x.io", condition="weekly-report",
        period=period, to_status=None,
    )  # fmt: skip
    values.update(changes)
    return Row(id_, **values)  # type: ignore[arg-type]


CASES = [
    pytest.param([Row(1)], {}, {}, {}, id="alone-is-sent"),
    pytest.param(
        [Row(1)], {("RR1", "customer", "buyer@example.com"): (5, S.DELIVERED)}, {},
        {1: "superseded: newer notification #5 (Delivered) was already sent"},
        id="older-than-a-sent-one",
    ),
    pytest.param(
        [Row(6)], {("RR1", "customer", "buyer@example.com"): (5, S.DELIVERED)}, {}, {},
        id="newer-than-the-sent-one-goes-out",
    ),
    pytest.param(
        [Row(1), Row(3, to_status=S.DELIVERED), Row(2)], {}, {}, {},
        id="news-due-together-all-goes-out",
    ),
    pytest.param(
        [Row(1), Row(2, recipient="other@example.com"), Row(3, number="RR2"),
         Row(4, audience="seller", recipient="ops@x.io")],
        {}, {}, {}, id="other-people-and-shipments-are-independent",
    ),
    pytest.param(
        [Row(1, resend_of=0)], {("RR1", "customer", "buyer@example.com"): (5, S.DELIVERED)}, {},
        {}, id="a-resend-is-never-superseded",
    ),
    pytest.param(
        [report(1)], {}, {("weekly-report", "2026-W49", "ops@x.io", "email"): 4},
        {1: "superseded: weekly-report for 2026-W49 was already sent (#4)"},
        id="report-already-sent-this-period",
    ),
    pytest.param(
        [report(1, period="2026-W48")], {},
        {("weekly-report", "2026-W49", "ops@x.io", "email"): 4}, {}, id="report-other-period",
    ),
    pytest.param(
        [report(1), report(2), report(3, condition="monthly-report", period="2026-12")], {}, {},
        {1: "superseded: weekly-report for 2026-W49 is sent as #2"},
        id="one-report-per-period-in-a-batch",
    ),
    pytest.param(
        [report(1, period=None)], {}, {}, {}, id="report-without-period-is-sent",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("claimed", "news", "reports", "expected"), CASES)
def test_supersessions(
    claimed: list[Row], news: dict, reports: dict, expected: dict[int, str]
) -> None:
    assert supersessions(claimed, news, reports) == expected


@pytest.mark.parametrize(
    ("kind", "now", "zone", "period"),
    [
        ("weekly", datetime(2026, 12, 1, 12), "UTC", "2026-W49"),
        ("weekly", datetime(2027, 1, 1, 12), "UTC", "2026-W53"),
        ("monthly", datetime(2026, 11, 30, 23, 30), "UTC", "2026-11"),
        ("monthly", datetime(2026, 11, 30, 23, 30), "Europe/Paris", "2026-12"),
        ("export", datetime(2026, 12, 1, 12), "UTC", "2026-12-01"),
    ],
)
def test_report_period(kind: str, now: datetime, zone: str, period: str) -> None:
    assert report_period(kind, now, ZoneInfo(zone)) == period


def test_news_due_together_is_sent_oldest_first_one_chain_per_person() -> None:
    rows = [Row(3), Row(1), report(2), Row(4, recipient="b@x.io"), Row(5), report(6)]
    chains = [[r.id for r in chain] for chain in in_order(rows)]
    assert sorted(chains) == [[1, 3, 5], [2], [4], [6]]
