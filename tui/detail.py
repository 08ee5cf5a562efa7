"""One shipment: its fields, the whole timeline (both carriers) and its notifications."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Static
from trackops.tui.extensions import PluginPanels
from trackops.tui.format import clean, route, safe, status_style, status_text
from trackops.tui.messages import NotificationsChanged, ShipmentsChanged

if TYPE_CHECKING:
    from trackops.core.service import ShipmentDetail
    from trackops.tui.app import TrackopsApp

__all__ = ["DetailScreen"]


_KEYS = Text.assemble(
    *(
        part
        for key, what in (
            ("esc", "back"),
            ("s", "stop"),
            ("r", "retrack"),
            ("d", "delete"),
            ("c", "carrier"),
            ("e", "tag"),
            ("f", "resend a failed notification"),
            ("?", "help"),
        )
        for part in ((f" {key} ", "bold reverse"), (f" {what}  ", ""))
    )
)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


class DetailScreen(Screen[None]):
    """The detail of one shipment; ``escape`` closes it.

    The app installs one instance and shows it again for each shipment (``show``): building
    a screen's widgets and styles costs more than reading the shipment.
    """

    app: TrackopsApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("s", "stop", "Stop"),
        Binding("r", "retrack", "Retrack"),
        Binding("d", "delete", "Delete"),
        Binding("c", "change_carrier", "Carrier"),
        Binding("e", "edit_tag", "Tag"),
        Binding("f", "resend", "Resend failed"),
    ]

    def __init__(self, number: str = "") -> None:
        super().__init__(id="detail")
        self.number = number
        self.detail: ShipmentDetail | None = None
        self._ahead: ShipmentDetail | None = None

    def show(self, number: str, ahead: ShipmentDetail | None = None) -> None:
        """Show ``number`` (the screen is pushed next); ``ahead``: its detail read ahead,
        shown at once, and read again as the screen is shown.

        The read-ahead detail goes into the widgets here, before the push, so their new
        sizes are laid out in the screen's first frame rather than a frame or two later.
        """
        if number != self.number:
            self.detail = None
        self.number = number
        ahead = ahead if ahead is not None and ahead.shipment.number == number else None
        if not self.is_mounted:
            self._ahead = ahead  # shown as the screen is first shown
            return
        self.title = f"Shipment {clean(number)}"
        if ahead is not None:
            self.detail = ahead
            with self.app.errors_shown("detail"):
                self._show(ahead)
        elif self.detail is None:
            self._blank()

    def _blank(self) -> None:
        """No facts of the previously shown shipment while this one is read."""
        self.query_one("#facts", Static).update(Text("reading…", style="dim"))
        self.query_one("#timeline", DataTable).clear()
        self.query_one("#detail-notifications", DataTable).clear()

    def on_screen_resume(self) -> None:
        if self._ahead is not None:
            self.detail, self._ahead = self._ahead, None
            with self.app.errors_shown("detail"):
                self._show(self.detail)
        self.load()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="▣")
        with VerticalScroll(id="detail-body"):
            yield Static(id="facts")
            yield PluginPanels(id="plugin-panels")
            yield Label("Timeline (event times as the carrier gave them)", classes="panel-title")
            yield DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
            yield Label("Notifications", classes="panel-title")
            yield DataTable(id="detail-notifications", cursor_type="row")
        # A static key line, not a Footer: the Footer rebuilds its keys each time the screen
        # is shown, which cost more than reading the shipment.
        yield Static(_KEYS, classes="keys")

    def on_mount(self) -> None:
        self.title = f"Shipment {clean(self.number)}"
        self.query_one("#timeline", DataTable).focus()
        timeline = self.query_one("#timeline", DataTable)
        narrow = self.app.size.width < 120
        timeline.add_column("Time", width=16)
        timeline.add_column("Carrier", width=10 if narrow else 16)
        timeline.add_column("Location", width=12 if narrow else 20)
        timeline.add_column("Event", width=max(20, self.app.size.width - (50 if narrow else 70)))
        notes = self.query_one("#detail-notifications", DataTable)
        for label, width in (
            ("#", 5),
            ("Created", 16),
            ("Audience", 8),
            ("Channel", 8),
            ("Condition", 10),
            ("Change", 26),
            ("Send status", 11),
            ("Reason", None),
        ):
            notes.add_column(label, width=width)

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        """(Re)read the shipment from the service."""
        from trackops.core.service import NotFoundError

        with self.app.errors_shown("detail"):
            try:
                detail = await self.app.service.shipment(self.number)
            except NotFoundError:
                self.query_one("#facts", Static).update(
                    Text(f"{clean(self.number)} is no longer in the store.", style="bold red")
                )
                return
            if detail == self.detail:
                return  # what the read-ahead showed is still true: no second render
            self.detail = detail
            self._show(detail)

    def _show(self, detail: ShipmentDetail) -> None:
        row = detail.shipment
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column()
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column()
        status = status_text(row.status)
        if int(row.status) != detail.raw_status_code:
            status.append(f" (code {detail.raw_status_code})", style="dim")
        carrier = safe(row.carrier_name or "detecting")
        if detail.final_carrier_name:
            carrier.append(" → ")
            carrier.append_text(safe(detail.final_carrier_name))
        pairs = [
            ("Number", safe(row.number, "bold"), "Status", status),
            ("Carrier", carrier, "Route", safe(route(row.origin_country, row.destination_country))),
            ("Tag", safe(row.tag or "-"), "Extra param", safe(detail.extra_param or "-")),
            ("Order", safe(row.order or "-"), "Buyer", safe(_buyer(detail))),
            (
                "Tracking",
                Text("active" if row.active else f"stopped {_when(detail.stopped_at)}"),
                "Registered",
                Text(_when(detail.registered_at)),
            ),
            ("Last push", Text(_when(detail.last_push_at)), "Updated", Text(_when(row.updated_at))),
        ]
        for pair in pairs:
            facts.add_row(*pair)
        self.query_one("#facts", Static).update(facts)
        self.query_one(PluginPanels).show(detail)

        timeline = self.query_one("#timeline", DataTable)
        timeline.clear()
        for event in detail.events:
            timeline.add_row(
                safe(event.time or "-"),
                safe(event.carrier_name or ("last mile" if event.leg == 2 else "")),
                safe(event.location or ""),
                safe(event.description or ""),
            )
        if not detail.events:
            timeline.add_row(Text("no events yet", style="dim"), "", "", "")

        notes = self.query_one("#detail-notifications", DataTable)
        notes.clear()
        for note in detail.notifications:
            change = " → ".join(
                status_style(s)[2] for s in (note.from_status, note.to_status) if s is not None
            )
            style = {"failed": "bold red", "sent": "green"}.get(note.send_status, "")
            notes.add_row(
                Text(str(note.id)),
                Text(note.created_at.strftime("%Y-%m-%d %H:%M")),
                Text(note.audience),
                safe(note.channel),
                safe(f"{note.condition} ({note.condition_kind})"),
                Text(change),
                Text(note.send_status, style=style),
                safe(note.reason or ""),
                key=str(note.id),
            )

    def on_shipments_changed(self, message: ShipmentsChanged) -> None:
        if self.is_current and (not message.numbers or self.number in message.numbers):
            self.load()

    def on_notifications_changed(self, message: NotificationsChanged) -> None:
        if self.is_current:
            self.load()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_stop(self) -> None:
        self.app.run_command("stop", self.number)

    def action_retrack(self) -> None:
        self.app.run_command("retrack", self.number)

    def action_delete(self) -> None:
        self.app.run_command("delete", self.number)

    def action_change_carrier(self) -> None:
        name = self.detail.shipment.carrier_name if self.detail else ""
        self.app.change_carrier(self.number, name)

    def action_edit_tag(self) -> None:
        tag = self.detail.shipment.tag if self.detail else ""
        self.app.edit_tag(self.number, tag or "")

    def action_resend(self) -> None:
        notes = self.query_one("#detail-notifications", DataTable)
        if not self.detail or not self.detail.notifications:
            self.notify("this shipment has no notifications", severity="warning")
            return
        note = self.detail.notifications[min(notes.cursor_row, len(self.detail.notifications) - 1)]
        self.app.resend(note.id)

    @on(DataTable.RowSelected, "#detail-notifications")
    def _resend_selected(self) -> None:
        self.action_resend()


def _buyer(detail: ShipmentDetail) -> str:
    parts = [p for p in (detail.buyer_name, detail.shipment.email) if p]
    return " · ".join(parts) or "-"
