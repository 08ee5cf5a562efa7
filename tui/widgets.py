"""Small widgets of the dashboard: counts per status, recent notifications, the status line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static
from trackops.core.wire import PackageStatus
from trackops.tui.format import STATUS_KEYS, safe, status_style

if TYPE_CHECKING:
    from trackops.core.service import HistoryRow

__all__ = ["KeyFooter", "NotificationsPanel", "StatusCounts", "StatusLine"]


class StatusCounts(Static):
    """One line per status key (``0`` all, ``1``-``7`` one status) and a bar of the shares.

    Clicking a status selects it, like its digit key.
    """

    DEFAULT_CSS = """
    StatusCounts { height: 2; }
    """

    selected: reactive[PackageStatus | None] = reactive(None)

    class Picked(Message):
        """A status was clicked (None: all)."""

        def __init__(self, status: PackageStatus | None) -> None:
            super().__init__()
            self.status = status

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.counts: dict[int, int] = {}
        self._spans: list[tuple[int, int, PackageStatus | None]] = []

    def show_counts(self, counts: Mapping[PackageStatus, int]) -> None:
        """New counts (from ``Service.status_counts``)."""
        self.counts = {int(k): v for k, v in counts.items()}
        self._redraw()

    def watch_selected(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        total = sum(self.counts.values())
        width = self.size.width or 160
        line = self._line(total, compact=False)
        if line.cell_len > width:
            line = self._line(total, compact=True)
        # Always two lines: a new status or new counts need no layout of the screen.
        self.update(Group(line, self._bar(total)), layout=False)

    def _line(self, total: int, *, compact: bool) -> Text:
        """``0 All 22 │ 1 ? Not found 3 │ ...``; compact: icons without names."""
        line = Text(no_wrap=True, overflow="ellipsis")
        self._spans = []
        entries: list[tuple[str, PackageStatus | None, str, str, int]] = [
            ("0", None, "All", "bold", total)
        ]
        for key, status in STATUS_KEYS.items():
            icon, colour, name = status_style(status)
            label = icon if compact else f"{icon} {name}"
            entries.append((key, status, label, colour, self.counts.get(status, 0)))
        known = {int(s) for s in PackageStatus}
        unknown = sum(v for k, v in self.counts.items() if k not in known)
        pad = "" if compact else " "
        for key, choice, label, colour, count in entries:
            start = line.cell_len
            chosen = choice == self.selected
            line.append(f"{pad}{key}{pad}", style="reverse bold" if chosen else "bold")
            line.append(f" {label} ", style=colour + (" underline" if chosen else ""))
            line.append(f"{count}{pad}", style="bold" if chosen else "")
            self._spans.append((start, line.cell_len, choice))
            line.append(" │ " if compact else "│", style="dim")
        if unknown:
            line.append(f" # other {unknown} ", style="white on red")
        return line

    def _bar(self, total: int) -> Text:
        width = max(10, self.size.width or 80)
        bar = Text(no_wrap=True)
        if not total:
            return bar.append("─" * width, style="dim")
        used = 0
        shares = [(s, self.counts.get(s, 0)) for s in STATUS_KEYS.values()]
        for i, (status, count) in enumerate(shares):
            cells = round(width * count / total) if i < len(shares) - 1 else width - used
            cells = max(0, min(cells, width - used))
            used += cells
            bar.append("█" * cells, style=status_style(status)[1])
        return bar

    def on_resize(self) -> None:
        self._redraw()

    def on_click(self, event: object) -> None:
        x = getattr(event, "x", -1)
        for start, end, status in self._spans:
            if start <= x < end:
                self.post_message(self.Picked(status))
                return


class NotificationsPanel(Static):
    """The latest notifications (buyer emails, seller alerts), newest first."""

    LIMIT: ClassVar[int] = 30

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[HistoryRow] = []

    def show_rows(self, rows: Iterable[HistoryRow]) -> None:
        """Replace the list with ``rows`` (newest first)."""
        self.rows = list(rows)[: self.LIMIT]
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        if not self.rows:
            self.update(Text("No notifications yet.", style="dim"))
            return
        for row in self.rows:
            change = " → ".join(
                status_style(s)[2] for s in (row.from_status, row.to_status) if s is not None
            )
            mark, style = _SEND_MARKS.get(row.send_status, ("·", ""))
            who = "buyer" if row.audience == "customer" else row.audience
            head = Text(mark, style=style)
            body = Text.assemble(
                safe(row.number, "bold"),
                " ",
                (change, status_style(row.to_status)[1] if row.to_status is not None else ""),
                "\n",
                Text(f"{who} {row.channel} ", style="dim"),
                safe(row.recipient, "dim"),
            )
            if row.reason:
                body.append("\n")
                body.append_text(safe(row.reason, "red"))
            table.add_row(head, body)
        self.update(table)


_SEND_MARKS = {
    "sent": ("✓", "green"),
    "failed": ("✗", "bold red"),
    "pending": ("…", "yellow"),
    "suppressed": ("−", "dim"),
    "superseded": ("−", "dim"),
}


class StatusLine(Static):
    """One line: API rate limiter, last push, last sync, the store (from the runtime)."""

    DEFAULT_CSS = """
    StatusLine { height: 1; }
    """

    def show(self, text: str) -> None:
        """Show ``text`` (already safe: built from the runtime's values)."""
        self.update(Text(text, no_wrap=True, overflow="ellipsis"), layout=False)  # one line


class KeyFooter(Footer):
    """Textual's key bar, rebuilt only when the keys it shows changed.

    ``Footer`` recomposes (a dozen widgets, their styles, a layout: 20-30 ms) each time its
    screen says its bindings may have changed, and Textual says so whenever the screen is
    covered or uncovered: opening a detail rebuilt the hidden main screen's keys, closing it
    rebuilt them again, unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[object, ...] | None = None

    def _keys(self, screen: Screen[object]) -> tuple[object, ...]:
        """What ``Footer.compose`` shows of ``screen``'s bindings."""
        display = self.app.get_key_display
        palette = self.app.COMMAND_PALETTE_BINDING
        return tuple(
            (active.binding, active.enabled, active.tooltip, display(active.binding))
            for key, active in screen.active_bindings.items()
            if active.binding.show or key == palette
        )

    def bindings_changed(self, screen: Screen[object]) -> None:
        if self._bindings_ready and not screen.is_current:
            return  # hidden: checked again when it is uncovered
        keys = self._keys(screen)
        if self._bindings_ready and keys == self._shown:
            return
        if self.app.app_focus:
            self._shown = keys  # what the rebuild it asks for will show
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._shown = self._keys(self.screen)
        yield from super().compose()
