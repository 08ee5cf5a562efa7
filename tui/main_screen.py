"""The main screen: counts per status, search, the shipments table, recent notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Header, Input, Label
from trackops.core.wire import PackageStatus
from trackops.tui.format import STATUS_KEYS, clean
from trackops.tui.messages import NotificationsChanged, ShipmentsChanged, StatusLineChanged
from trackops.tui.table import ShipmentTable
from trackops.tui.widgets import KeyFooter, NotificationsPanel, StatusCounts, StatusLine

if TYPE_CHECKING:
    from trackops.core.service import ShipmentQuery, SortKey
    from trackops.tui.app import TrackopsApp

__all__ = ["MainScreen"]

_SORTS: tuple[SortKey, ...] = ("updated", "status", "number")


class MainScreen(Screen[None]):
    """Shipments, filtered by status (``0``-``7``) and search (``/``), live."""

    app: TrackopsApp
    RECOUNT_AFTER: ClassVar[float] = 0.3

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search"),
        *[
            Binding(key, f"status({key})", status.display, show=False)
            for key, status in STATUS_KEYS.items()
        ],
        Binding("0", "status(0)", "All", show=False),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("n", "register", "Register"),
        Binding("s", "stop", "Stop"),
        Binding("r", "retrack", "Retrack", show=False),
        Binding("d", "delete", "Delete", show=False),
        Binding("c", "change_carrier", "Carrier", show=False),
        Binding("e", "edit_tag", "Tag", show=False),
        Binding("y", "sync", "Sync"),
        Binding("o", "sort", "Sort"),
        Binding("h", "history", "History"),
        Binding("i", "stats", "Stats"),
        Binding("comma", "settings", "Settings"),
    ]

    def __init__(self) -> None:
        super().__init__(id="main")
        self.status: PackageStatus | None = None
        self.search: str = ""
        self.sort: SortKey = "updated"
        self._recount: Timer | None = None

    def compose(self) -> ComposeResult:
        from trackops.core.service import ShipmentQuery

        yield Header(show_clock=False, icon="▣")
        yield StatusCounts(id="counts")
        yield Input(placeholder="search number, order, tag, email, carrier", id="search")
        with Horizontal(id="body"):
            yield ShipmentTable(
                self.app.service, ShipmentQuery(), clock=self.app.clock, id="shipments"
            )
            with Vertical(id="side"):
                yield Label("Notifications", classes="panel-title")
                yield NotificationsPanel(id="notifications")
        yield StatusLine(id="status-line")
        yield KeyFooter()

    @property
    def table(self) -> ShipmentTable:
        """The shipments table."""
        return self.query_one(ShipmentTable)

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.table.focus()
        self._apply_query()
        self._load_notifications()

    def query_for_table(self) -> ShipmentQuery:
        """The query the table shows: status key, search text and sort."""
        from trackops.core.service import ShipmentQuery

        statuses = frozenset({int(self.status)}) if self.status is not None else frozenset()
        return ShipmentQuery(statuses=statuses, search=self.search or None, sort=self.sort)

    def _describe(self) -> str:
        parts = [STATUS_KEYS_NAMES.get(self.status, "all")]
        if self.search:
            parts.append(f"search {clean(self.search, limit=30)!r}")
        parts.append(f"sorted by {self.sort}")
        return " · ".join(parts)

    # ------------------------------------------------------------------ loading

    @work(exclusive=True, group="query")
    async def _apply_query(self, recount: bool = True, retitle: bool = True) -> None:
        """Show the query's first rows; ``recount``: then the counts for its search;
        ``retitle``: the title's count and description now (else with the next counts)."""
        with self.app.errors_shown("shipments"):
            await self.table.set_query(self.query_for_table())
            # The chosen status is marked with its rows, in the same frame: marking it at the
            # keystroke painted a frame of its own, and Textual's next came 17-33 ms later.
            self.query_one(StatusCounts).selected = self.status
            if retitle:
                self._show_total()
            if recount:
                self._count()

    @work(exclusive=True, group="refresh")
    async def _refresh(self) -> None:
        with self.app.errors_shown("refresh"):
            await self.table.refresh_rows()
            self._count()

    @work(exclusive=True, group="counts")
    async def _count(self) -> None:
        """Counts per status for the current search (the bar shows what each key would)."""
        from trackops.core.service import ShipmentQuery

        with self.app.errors_shown("counts"):
            counts = await self.app.service.status_counts(ShipmentQuery(search=self.search or None))
            self.query_one(StatusCounts).show_counts(counts)
            self._show_total()

    def _show_total(self) -> None:
        counts = self.query_one(StatusCounts).counts
        total = sum(counts.values())
        shown = counts.get(int(self.status), 0) if self.status is not None else total
        self.sub_title = f"{shown} shipments · {self._describe()}"

    @work(exclusive=True, group="notifications")
    async def _load_notifications(self) -> None:
        with self.app.errors_shown("notifications"):
            page = await self.app.service.history(limit=NotificationsPanel.LIMIT)
            self.query_one(NotificationsPanel).show_rows(page.items)

    def on_shipments_changed(self, message: ShipmentsChanged) -> None:
        self._refresh()

    def on_notifications_changed(self, message: NotificationsChanged) -> None:
        self._load_notifications()

    def on_status_line_changed(self, message: StatusLineChanged) -> None:
        self.query_one(StatusLine).show(message.text)

    # ------------------------------------------------------------------ keys

    def action_status(self, key: int) -> None:
        self.status = STATUS_KEYS.get(str(key)) if key else None
        self._apply_query(recount=False)  # the counts are per search, not per status

    @on(StatusCounts.Picked)
    def _picked(self, event: StatusCounts.Picked) -> None:
        self.status = event.status
        self._apply_query(recount=False)

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search = event.value.strip()
        # Rows at every keystroke; the counts (a scan of every shipment for a search) once
        # typing pauses, so they never hold up the next keystroke's rows. The title says
        # "N shipments · search 'text'": it changes with the counts, so that its number is
        # never the previous text's (and a keystroke does not repaint the whole screen).
        self._apply_query(recount=False, retitle=False)
        if self._recount is not None:
            self._recount.stop()
        self._recount = self.set_timer(self.RECOUNT_AFTER, self._count)

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        # The filter stays (the title says so); the box goes, so the table has the room.
        self.query_one("#search", Input).display = False
        self.table.focus()

    def action_clear_search(self) -> None:
        """Escape: in the search box it clears the filter and returns to the table (the
        contract); on the table it clears a kept search too."""
        box = self.query_one("#search", Input)
        had = bool(box.value)
        with box.prevent(Input.Changed):
            box.value = ""
        box.display = False
        self.table.focus()
        if had or self.search:
            self.search = ""
            self._apply_query()

    def action_sort(self) -> None:
        self.sort = _SORTS[(_SORTS.index(self.sort) + 1) % len(_SORTS)]
        self.notify(f"sorted by {self.sort}", timeout=2)
        self._apply_query(recount=False)

    @on(ShipmentTable.Highlighted)
    def _highlighted(self, event: ShipmentTable.Highlighted) -> None:
        self.app.prefetch_detail(event.number)

    @on(ShipmentTable.RowSelected)
    def _open(self, event: ShipmentTable.RowSelected) -> None:
        self.app.open_detail(event.number)

    def _current(self) -> str | None:
        row = self.table.highlighted
        if row is None:
            self.notify("no shipment selected", severity="warning")
            return None
        return row.number

    def action_register(self) -> None:
        self.app.register_shipments()

    def action_stop(self) -> None:
        if number := self._current():
            self.app.run_command("stop", number)

    def action_retrack(self) -> None:
        if number := self._current():
            self.app.run_command("retrack", number)

    def action_delete(self) -> None:
        if number := self._current():
            self.app.run_command("delete", number)

    def action_change_carrier(self) -> None:
        if row := self.table.highlighted:
            self.app.change_carrier(row.number, row.carrier_name)

    def action_edit_tag(self) -> None:
        if row := self.table.highlighted:
            self.app.edit_tag(row.number, row.tag or "")

    def action_sync(self) -> None:
        self.app.sync_now()

    def action_history(self) -> None:
        self.app.action_history()

    def action_stats(self) -> None:
        self.app.action_stats()

    def action_settings(self) -> None:
        self.app.action_settings()


STATUS_KEYS_NAMES: dict[PackageStatus | None, str] = {
    None: "all",
    **{status: status.display for status in PackageStatus},
}
