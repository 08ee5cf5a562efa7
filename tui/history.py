"""Notification history: search (number, recipient, order), filters, the failure reason."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Select
from trackops.tui.format import clean, safe, status_style
from trackops.tui.messages import NotificationsChanged
from trackops.tui.widgets import KeyFooter

if TYPE_CHECKING:
    from trackops.core.service import HistoryQuery, HistoryRow
    from trackops.tui.app import TrackopsApp

__all__ = ["HistoryScreen"]

SEND_STATUSES = ("sent", "failed", "pending", "suppressed", "superseded")
PAGE = 200


def parse_day(text: str) -> datetime | None:
    """``YYYY-MM-DD`` as midnight (naive UTC); ValueError names the expected form."""
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, found {clean(text)!r}") from None


class HistoryScreen(Screen[None]):
    """Every notification attempt, newest first; ``enter`` on a failed one resends it."""

    app: TrackopsApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("slash", "focus_search", "Search"),
        Binding("f", "resend", "Resend"),
        Binding("m", "more", "More rows"),
    ]

    def __init__(self) -> None:
        super().__init__(id="history")
        self.rows: list[HistoryRow] = []
        self.next_cursor: str | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="▣")
        with Horizontal(classes="filters"):
            yield Input(placeholder="number, recipient or order", id="history-search")
            yield Select([(s, s) for s in SEND_STATUSES], prompt="send status", id="send-status")
            yield Select(self._conditions(), prompt="condition", id="condition")
            yield Select(self._channels(), prompt="channel", id="channel")
            yield Input(placeholder="since YYYY-MM-DD", id="since", max_length=10)
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def _conditions(self) -> list[tuple[str, str]]:
        names = ["default", "custom", "customer", "seller"]
        names += [c.name for c in self.app.settings.notifications.conditions]
        return [(clean(n), n) for n in names]

    def _channels(self) -> list[tuple[str, str]]:
        notes = self.app.settings.notifications
        names = {*notes.customer.channels, *notes.seller.channels, *notes.reports.channels}
        for condition in notes.conditions:
            names.update(condition.channels)
        return [(clean(n), n) for n in sorted(names)]

    def on_mount(self) -> None:
        self.title = "Notification history"
        table = self.query_one("#history-table", DataTable)
        for label, width in (
            ("#", 5),
            ("Created (UTC)", 16),
            ("Number", 16),
            ("Order", 8),
            ("Recipient", 22),
            ("Channel", 8),
            ("Condition", 16),
            ("Change", 25),
            ("Status", 10),
            ("Reason", None),
        ):
            table.add_column(label, width=width)
        table.focus()
        self.load()

    def history_query(self) -> HistoryQuery:
        """The query the filters describe; ValueError for a bad date."""
        from trackops.core.service import HistoryQuery

        def chosen(select_id: str) -> str | None:
            value = self.query_one(select_id, Select).value
            return value if isinstance(value, str) else None

        status = chosen("#send-status")
        return HistoryQuery(
            search=self.query_one("#history-search", Input).value.strip() or None,
            send_statuses=frozenset({status}) if status else frozenset(),
            condition=chosen("#condition"),
            channel=chosen("#channel"),
            since=parse_day(self.query_one("#since", Input).value),
        )

    @work(exclusive=True, group="history")
    async def load(self, more: bool = False) -> None:
        """Read the first page (or the next one with ``more``)."""
        with self.app.errors_shown("history"):
            try:
                query = self.history_query()
            except ValueError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            after = self.next_cursor if more else None
            page = await self.app.service.history(query, limit=PAGE, after=after)
            self.rows = [*self.rows, *page.items] if more else list(page.items)
            self.next_cursor = page.next_cursor
            self._fill()

    def _fill(self) -> None:
        table = self.query_one("#history-table", DataTable)
        keep = table.cursor_row
        table.clear()
        for row in self.rows:
            change = " → ".join(
                status_style(s)[2] for s in (row.from_status, row.to_status) if s is not None
            )
            style = {"failed": "bold red", "sent": "green", "pending": "yellow"}.get(
                row.send_status, "dim"
            )
            table.add_row(
                Text(str(row.id)),
                Text(row.created_at.strftime("%Y-%m-%d %H:%M")),
                safe(row.number),
                safe(row.order or ""),
                safe(row.recipient),
                safe(row.channel),
                safe(f"{row.condition} ({row.condition_kind})"),
                Text(change),
                Text(row.send_status, style=style),
                safe(row.reason or "", "red"),
                key=str(row.id),
            )
        more = " (m: more)" if self.next_cursor else ""
        self.sub_title = f"{len(self.rows)} rows{more}"
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    @on(Input.Changed)
    @on(Select.Changed)
    def _filters_changed(self) -> None:
        self.load()

    def on_notifications_changed(self, message: NotificationsChanged) -> None:
        self.load()

    def action_focus_search(self) -> None:
        self.query_one("#history-search", Input).focus()

    def action_more(self) -> None:
        if self.next_cursor:
            self.load(more=True)

    def action_close(self) -> None:
        if self.focused is not self.query_one("#history-table"):
            self.query_one("#history-table").focus()
            return
        self.dismiss(None)

    def action_resend(self) -> None:
        table = self.query_one("#history-table", DataTable)
        if not self.rows:
            return
        row = self.rows[min(table.cursor_row, len(self.rows) - 1)]
        self.app.resend(row.id)

    @on(DataTable.RowSelected, "#history-table")
    def _selected(self) -> None:
        self.action_resend()
