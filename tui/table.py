"""The shipments table: a window of rows paged from the service by keyset, never all of them.

Textual's ``DataTable`` keeps every row it is given, and loading 100,000 of them takes tens of
seconds (Textual issue #1892). This table holds at most ``MAX_PAGES`` pages of ``PAGE`` rows:
moving the cursor onto the window's last (first) row fetches the next (previous) page with the
service's ``after=``/``before=`` cursors and drops a page at the other end; ``end``/``home``
jump to the last/first page (``from_end=True``). A refresh re-reads the same window from the
cursor it started at and keeps the cursor on the same shipment when it is still there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist
from trackops.tui.format import age, route, safe, status_text

if TYPE_CHECKING:
    from trackops.core.service import Page, Service, ShipmentQuery, ShipmentRow

__all__ = ["ShipmentTable"]

Anchor = tuple[Literal["start", "after", "before", "end"], str | None]


@dataclass(frozen=True)
class _Column:
    key: str
    label: str
    width: int  # 0: takes what is left


# Widths for a 160-column terminal; narrower terminals shrink the event column first.
_COLUMNS: tuple[_Column, ...] = (
    _Column("number", "Number", 16),
    _Column("carrier", "Carrier", 14),
    _Column("route", "Route", 7),
    _Column("status", "Status", 13),
    _Column("event", "Latest event", 0),
    _Column("age", "Age", 4),
    _Column("tag", "Tag / order", 12),
)
_NARROW_HIDDEN = frozenset({"carrier", "route"})


class ShipmentTable(DataTable[Text]):
    """Shipments for one ``ShipmentQuery``, a window of pages at a time."""

    PAGE: ClassVar[int] = 100
    MAX_PAGES: ClassVar[int] = 3

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "first_page", "First", show=False),
        Binding("end", "last_page", "Last", show=False),
        Binding("g", "first_page", "First", show=False),
        Binding("G", "last_page", "Last", show=False),
    ]

    class Loaded(Message):
        """A window of rows is on screen (``total`` rows match the query)."""

        def __init__(self, table: ShipmentTable, rows: int) -> None:
            super().__init__()
            self.table = table
            self.rows = rows

    def __init__(
        self, service: Service, query: ShipmentQuery, *, clock: Callable[[], datetime], **kw: str
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.service = service
        self.query = query
        self.clock = clock
        self.pages: list[Page[ShipmentRow]] = []
        self.anchors: list[Anchor] = []
        self._layout_width = 0
        self._loading = False
        self.generation = 0
        """Counts the windows shown (tests and the benchmark wait for it to move)."""

    # ------------------------------------------------------------------ what is shown

    @property
    def rows_shown(self) -> list[ShipmentRow]:
        """The rows in the window, top to bottom."""
        return [row for page in self.pages for row in page.items]

    @property
    def highlighted(self) -> ShipmentRow | None:
        """The shipment under the cursor (None for an empty table)."""
        rows = self.rows_shown
        if not rows or not 0 <= self.cursor_row < len(rows):
            return None
        return rows[self.cursor_row]

    def on_mount(self) -> None:
        self._build_columns()

    def on_resize(self) -> None:
        if self._column_widths(self.size.width) != self._column_widths(self._layout_width):
            self._build_columns()
            self._render_rows(keep=self.highlighted.number if self.highlighted else None)

    def _column_widths(self, width: int) -> list[tuple[_Column, int]]:
        narrow = width < 110
        shown = [c for c in _COLUMNS if not (narrow and c.key in _NARROW_HIDDEN)]
        fixed = sum(c.width for c in shown) + 2 * len(shown)  # cell padding
        rest = max(12, width - fixed - 2)  # scrollbar
        return [(c, c.width or rest) for c in shown]

    def _build_columns(self) -> None:
        self._layout_width = self.size.width
        self.clear(columns=True)
        for column, width in self._column_widths(self.size.width):
            self.add_column(column.label, key=column.key, width=width)

    def _cells(self, row: ShipmentRow, now: datetime) -> list[Text]:
        event = " · ".join(
            part
            for part in (row.latest_event_description, row.latest_event_location)
            if part and part.strip()
        )
        cells: dict[str, Text] = {
            "number": safe(row.number, "bold"),
            "carrier": safe(row.carrier_name),
            "route": safe(route(row.origin_country, row.destination_country)),
            "status": status_text(row.status),
            "event": safe(event),
            "age": safe(age(row.event_at or row.updated_at, now), "dim"),
            "tag": safe(row.tag or row.order or ""),
        }
        if not row.active:
            cells["number"].stylize("strike")
        return [cells[str(key.value)] for key in self.columns]

    def _render_rows(self, keep: str | None = None, at: int | None = None) -> None:
        loading, self._loading = self._loading, True
        try:
            self._fill(keep, at)
        finally:
            self._loading = loading

    def _fill(self, keep: str | None, at: int | None) -> None:
        self.generation += 1
        now = self.clock()
        self.clear()
        for row in self.rows_shown:
            self.add_row(*self._cells(row, now), key=row.number)
        target = 0
        if keep is not None:
            try:
                target = self.get_row_index(keep)
            except RowDoesNotExist:
                target = at if at is not None else self.cursor_row
        elif at is not None:
            target = at
        if self.row_count:
            self.move_cursor(row=max(0, min(target, self.row_count - 1)), animate=False)

    # ------------------------------------------------------------------ loading

    async def _fetch(self, anchor: Anchor, limit: int) -> Page[ShipmentRow]:
        kind, cursor = anchor
        if kind == "after":
            return await self.service.shipments(self.query, limit=limit, after=cursor)
        if kind == "before":
            return await self.service.shipments(self.query, limit=limit, before=cursor)
        return await self.service.shipments(self.query, limit=limit, from_end=kind == "end")

    async def load(self, anchor: Anchor = ("start", None), *, keep: str | None = None) -> None:
        """Show one page from ``anchor`` (the first page by default)."""
        page = await self._fetch(anchor, self.PAGE)
        self.pages, self.anchors = [page], [anchor]
        at = len(page.items) - 1 if anchor[0] == "end" else 0
        self._render_rows(keep=keep, at=at)
        self.post_message(self.Loaded(self, self.row_count))

    async def set_query(self, query: ShipmentQuery) -> None:
        """Show the first page of another query."""
        self.query = query
        await self.load()

    async def refresh_rows(self) -> None:
        """Re-read the window in place (after changes), keeping the cursor's shipment."""
        if not self.pages:
            await self.load()
            return
        keep = self.highlighted.number if self.highlighted else None
        at = self.cursor_row
        size = max(self.PAGE, len(self.rows_shown))
        page = await self._fetch(self.anchors[0], size)
        if not page.items and self.anchors[0][0] != "start":
            await self.load(keep=keep)
            return
        self.pages, self.anchors = [page], [self.anchors[0]]
        self._render_rows(keep=keep, at=at)
        self.post_message(self.Loaded(self, self.row_count))

    async def action_first_page(self) -> None:
        await self.load(("start", None))

    async def action_last_page(self) -> None:
        await self.load(("end", None))

    def watch_cursor_coordinate(self, old: object, new: object) -> None:
        super().watch_cursor_coordinate(old, new)  # type: ignore[arg-type]
        if self.pages and self.row_count and not self._loading:
            row = self.cursor_row
            if row >= self.row_count - 1 and self.pages[-1].next_cursor:
                self._grow("down")
            elif row <= 0 and self.pages[0].prev_cursor:
                self._grow("up")

    @work(exclusive=True, group="table-page")
    async def _grow(self, direction: Literal["up", "down"]) -> None:
        self._loading = True
        try:
            keep = self.highlighted.number if self.highlighted else None
            if direction == "down":
                cursor = self.pages[-1].next_cursor
                anchor: Anchor = ("after", cursor)
                page = await self._fetch(anchor, self.PAGE)
                self.pages.append(page)
                self.anchors.append(anchor)
                if len(self.pages) > self.MAX_PAGES:
                    del self.pages[0], self.anchors[0]
            else:
                cursor = self.pages[0].prev_cursor
                anchor = ("before", cursor)
                page = await self._fetch(anchor, self.PAGE)
                self.pages.insert(0, page)
                self.anchors.insert(0, anchor)
                if len(self.pages) > self.MAX_PAGES:
                    del self.pages[-1], self.anchors[-1]
            self._render_rows(keep=keep)
        finally:
            self._loading = False
