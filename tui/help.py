"""The help screen (``?``): every key, in the words of the screen it works on."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HELP", "HelpScreen"]

HELP: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Shipments",
        (
            ("/", "search as you type: number, order, tag, email, carrier"),
            ("enter (in search)", "keep the filter and go back to the table"),
            ("escape (in search)", "clear the filter and go back to the table"),
            ("0", "all statuses"),
            ("1 - 7", "Not found, In transit, Expired, Pick up, Undelivered, Delivered, Alert"),
            ("enter", "open the highlighted shipment (timeline, notifications)"),
            ("escape", "close the detail"),
            ("↑ ↓ pgup pgdn", "move; home / end: first / last shipment"),
            ("o", "sort: last update, status, number"),
        ),
    ),
    (
        "Actions (also in the command palette, ctrl+p)",
        (
            ("n", "register numbers"),
            ("s / r / d", "stop / retrack / delete (asks first)"),
            ("c / e", "change carrier / edit tag"),
            ("y", "sync now"),
            ("f (in detail)", "resend the highlighted notification"),
        ),
    ),
    (
        "Screens",
        (
            ("h", "notification history"),
            ("i", "statistics: deliveries per day, days to delivery, stuck parcels"),
            (",", "settings (saved to the config file)"),
            ("?", "this help"),
            ("ctrl+p", "command palette"),
            ("q", "quit"),
        ),
    ),
)


class HelpScreen(ModalScreen[None]):
    """Every key; ``escape``, ``?`` or ``q`` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        from trackops.tui.extensions import extensions_of, help_rows

        plugins = help_rows(extensions_of(getattr(self.app, "service", None)))
        sections = (*HELP, ("Plugins", plugins)) if plugins else HELP
        for title, rows in sections:
            table.add_row(Text(title, style="bold underline"), "")
            for key, text in rows:
                table.add_row(Text(key), Text(text))
            table.add_row("", "")
        with VerticalScroll(classes="box wide", id="help"):
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
