"""Settings: notifications on/off, the seller's recipient and daily limit, report recipients and
the custom conditions, saved back to the config file with its comments (``config_edit``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Label, Static, Switch, TextArea
from trackops.tui.config_edit import NotificationChanges, conditions_text
from trackops.tui.format import clean
from trackops.tui.widgets import KeyFooter

if TYPE_CHECKING:
    from trackops.tui.app import TrackopsApp

__all__ = ["SettingsScreen"]


class SettingsScreen(Screen[None]):
    """Edit the notification settings; ``ctrl+s`` saves, ``escape`` goes back."""

    app: TrackopsApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, path: Path | None) -> None:
        super().__init__(id="settings")
        self.path = path
        self._conditions_loaded = ""

    def compose(self) -> ComposeResult:
        notes = self.app.settings.notifications
        yield Header(show_clock=False, icon="▣")
        with VerticalScroll(id="settings-body"):
            yield Static(id="settings-file")
            with Horizontal():
                yield Label("Customer notifications")
                yield Switch(notes.customer.enabled, id="customer-enabled")
                yield Label("Seller notifications")
                yield Switch(notes.seller.enabled, id="seller-enabled")
            with Horizontal():
                yield Label("Seller's recipient")
                yield Input(notes.seller.email, placeholder="ops@shop.example", id="seller-email")
                yield Label("Daily limit")
                yield Input(str(notes.seller.daily_limit), id="daily-limit", max_length=9)
            yield Label("Report recipients (comma separated)")
            yield Input(", ".join(notes.reports.recipients), id="report-recipients")
            yield Label("Custom conditions ([[notifications.conditions]] tables, TOML)")
            yield TextArea("", id="conditions", language=None, soft_wrap=False)
            yield Static("", id="settings-error")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "Settings"
        where = self.path if self.path is not None else None
        if where is None:
            text = Text("No config file: settings cannot be saved.", style="bold red")
        else:
            text = Text(f"Saved to {clean(where)}; comments and other settings are kept.")
        self.query_one("#settings-file", Static).update(text)
        if self.path is not None:
            with self.app.errors_shown("settings"):
                self._conditions_loaded = conditions_text(self.path)
        self.query_one("#conditions", TextArea).text = self._conditions_loaded

    def changes(self) -> NotificationChanges:
        """What the form holds."""
        conditions = self.query_one("#conditions", TextArea).text
        recipients = self.query_one("#report-recipients", Input).value.split(",")
        return NotificationChanges(
            customer_enabled=self.query_one("#customer-enabled", Switch).value,
            seller_enabled=self.query_one("#seller-enabled", Switch).value,
            seller_email=self.query_one("#seller-email", Input).value,
            daily_limit=self.query_one("#daily-limit", Input).value,
            report_recipients=tuple(r.strip() for r in recipients if r.strip()),
            conditions=None if conditions == self._conditions_loaded else conditions,
        )

    def action_save(self) -> None:
        from trackops.core.config import ConfigError
        from trackops.tui.config_edit import save_notification_settings

        error = self.query_one("#settings-error", Static)
        if self.path is None:
            error.update(Text("no config file to save to", style="bold red"))
            return
        try:
            settings = save_notification_settings(self.path, self.changes())
        except ConfigError as exc:
            error.update(Text(clean(str(exc)), style="bold red"))
            self.notify(clean(str(exc)), title="not saved", severity="error", markup=False)
            return
        self.app.settings = settings
        self._conditions_loaded = conditions_text(self.path)
        error.update(Text("saved", style="green"))
        self.notify(
            clean(f"saved to {self.path}; a running `trackops serve` applies it on restart"),
            markup=False,
        )

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    def action_close(self) -> None:
        self.dismiss(None)
