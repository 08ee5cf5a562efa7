"""What people would rather see than read: counts per status as a bar, deliveries per day as
a sparkline, median days to delivery per carrier, and the parcels stuck for N days."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Label, Sparkline, Static
from trackops.tui.format import age, route, safe, status_text
from trackops.tui.messages import ShipmentsChanged
from trackops.tui.widgets import KeyFooter, StatusCounts

if TYPE_CHECKING:
    from trackops.core.service import CarrierStat, Statistics
    from trackops.tui.app import TrackopsApp

__all__ = ["StatsScreen"]

DAYS = 30
STUCK_DAYS = 7


class StatsScreen(Screen[None]):
    """Statistics over the whole store; ``escape`` goes back."""

    app: TrackopsApp

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Back")]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="▣")
        with VerticalScroll(id="stats-body"):
            yield Label("Shipments per status", classes="panel-title")
            yield StatusCounts(id="stats-counts")
            yield Label(f"Deliveries per day, last {DAYS} days", classes="panel-title")
            yield Sparkline([], id="deliveries")
            yield Static(id="deliveries-total")
            yield Label("Days to delivery", classes="panel-title")
            yield Static(id="carriers")
            yield Label(f"Stuck: no event for {STUCK_DAYS} days or more", classes="panel-title")
            yield Static(id="stuck")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "Statistics"
        self.load()

    @work(exclusive=True, group="stats")
    async def load(self) -> None:
        """Read the statistics and the counts."""
        with self.app.errors_shown("statistics"):
            stats = await self.app.service.statistics(days=DAYS, stuck_days=STUCK_DAYS)
            counts = await self.app.service.status_counts()
            self.query_one(StatusCounts).show_counts(counts)
            self._show(stats)

    def _show(self, stats: Statistics) -> None:
        per_day = [count for _, count in stats.deliveries_per_day]
        self.query_one(Sparkline).data = per_day or [0]
        if stats.deliveries_per_day:
            first, last = stats.deliveries_per_day[0][0], stats.deliveries_per_day[-1][0]
            text = f"{sum(per_day)} delivered from {first} to {last}, at most {max(per_day)} a day"
        else:
            text = "no deliveries yet"
        self.query_one("#deliveries-total", Static).update(Text(text, style="dim"))
        grid = Table.grid(padding=(0, 3))
        grid.add_row(_stat_table("Carrier", stats.by_carrier), _stat_table("Route", stats.by_route))
        self.query_one("#carriers", Static).update(grid)
        stuck = Table(box=None, pad_edge=False, expand=False)
        for name in ("Number", "Carrier", "Route", "Status", "Last event", "Since"):
            stuck.add_column(name, no_wrap=True)
        now = self.app.clock()
        for row in stats.stuck[:50]:
            stuck.add_row(
                safe(row.number, "bold"),
                safe(row.carrier_name, limit=20),
                safe(route(row.origin_country, row.destination_country)),
                status_text(row.status),
                safe(row.latest_event_description or "", limit=40),
                Text(age(row.event_at, now)),
            )
        if not stats.stuck:
            self.query_one("#stuck", Static).update(Text("nothing stuck", style="green"))
        else:
            self.query_one("#stuck", Static).update(stuck)

    def on_shipments_changed(self, message: ShipmentsChanged) -> None:
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)


def _stat_table(title: str, rows: list[CarrierStat]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column(title, no_wrap=True)
    table.add_column("delivered", justify="right")
    table.add_column("median days", justify="right")
    table.add_column("p90 days", justify="right")
    table.add_column("", no_wrap=True)
    longest = max((r.median_days for r in rows), default=0) or 1
    for row in rows[:12]:
        bar = "▇" * max(1, round(12 * row.median_days / longest))
        table.add_row(
            safe(row.key, limit=24),
            str(row.delivered),
            f"{row.median_days:.1f}",
            f"{row.p90_days:.1f}",
            Text(bar, style="cyan"),
        )
    if not rows:
        table.add_row(Text("no deliveries yet", style="dim"), "", "", "", "")
    return table
