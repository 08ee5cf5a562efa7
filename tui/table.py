"""The shipments table: a window of rows paged from the service by keyset, never all of them.

Two costs decide how big tables feel, and this widget avoids both:

* Loading: Textual's ``DataTable`` keeps every row it is given, and 100,000 of them take tens
  of seconds (Textual issue #1892). This table holds at most ``MAX_PAGES`` pages of ``PAGE``
  rows: moving the cursor onto the window's last (first) row fetches the next (previous) page
  with the service's ``after=``/``before=`` cursors and drops a page at the other end;
  ``end``/``home`` jump to the last/first page (``from_end=True``). A refresh re-reads the same
  window from the cursor it started at and keeps the cursor on the same shipment.
* Painting: ``DataTable`` renders each cell through Rich's console (about a millisecond a
  cell), so a new window of 40 visible rows cost a quarter of a second on a busy machine. This
  is a Line API widget: each visible line is a handful of ``Segment``s cut to fixed column
  widths, built only when it is painted. The styles are looked up once per paint and the
  texts cut once per window and width; a cursor move repaints the two rows it touches.

Measured with ``benchmarks/tui_scale.py`` (figures in README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events, work
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from trackops.tui.format import age, clean, route, status_style

if TYPE_CHECKING:
    from trackops.core.service import Page, Service, ShipmentQuery, ShipmentRow

__all__ = ["ShipmentTable"]

Anchor = tuple[Literal["start", "after", "before", "end"], str | None]


@dataclass(frozen=True)
class Column:
    """One column: key, header label, width in cells (0: what is left)."""

    key: str
    label: str
    width: int


# Widths for a wide terminal; narrower ones drop carrier and route and shrink the event column.
COLUMNS: tuple[Column, ...] = (
    Column("number", "Number", 16),
    Column("carrier", "Carrier", 14),
    Column("route", "Route", 7),
    Column("status", "Status", 13),
    Column("event", "Latest event", 0),
    Column("age", "Age", 4),
    Column("tag", "Tag / order", 12),
)
_NARROW_HIDDEN = frozenset({"carrier", "route"})
Cell = tuple[str, Style]
_MARKED = Style(color="yellow", bold=True)


def fit(text: str, width: int) -> str:
    """``text`` padded or cut (with ``…``) to exactly ``width`` cells."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, max(0, width - 1)) + "…" if width else ""


@dataclass
class _PaintStyles:
    """The table's styles for one paint, and the cell styles laid over a line's."""

    header: Style
    odd: Style
    even: Style
    cursor: Style
    _combined: dict[tuple[Style, Style], Style] = field(default_factory=dict)

    def on(self, line: Style, cell: Style) -> Style:
        """``cell`` over ``line`` (a handful of pairs per paint, each added once)."""
        combined = self._combined.get((line, cell))
        if combined is None:
            combined = self._combined[line, cell] = line + cell
        return combined


class ShipmentTable(ScrollView, can_focus=True):
    """Shipments for one ``ShipmentQuery``, a window of pages at a time."""

    PAGE: ClassVar[int] = 60
    MAX_PAGES: ClassVar[int] = 3

    DEFAULT_CSS = """
    ShipmentTable {
        background: $surface;
        overflow-x: hidden;
    }
    ShipmentTable > .shipment-table--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    ShipmentTable > .shipment-table--even {
        background: $surface-lighten-1 20%;
    }
    ShipmentTable > .shipment-table--cursor {
        background: $block-cursor-blurred-background;
    }
    ShipmentTable:focus > .shipment-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "shipment-table--header",
        "shipment-table--even",
        "shipment-table--cursor",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Open", show=False),
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first_page", "First", show=False),
        Binding("end,G", "last_page", "Last", show=False),
        Binding("space", "toggle_mark", "Mark", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)  # see watch

    class _AboutShipment(Message):
        """A message from the table about one shipment."""

        def __init__(self, table: ShipmentTable, number: str) -> None:
            super().__init__()
            self.table = table
            self.number = number

        @property
        def control(self) -> ShipmentTable:
            return self.table

    class RowSelected(_AboutShipment):
        """``enter`` (or a click on the highlighted row) on a shipment."""

    class Highlighted(_AboutShipment):
        """The cursor rests on another shipment."""

    class Loaded(Message):
        """A new window of rows is shown."""

        def __init__(self, table: ShipmentTable, rows: int) -> None:
            super().__init__()
            self.table = table
            self.rows = rows

        @property
        def control(self) -> ShipmentTable:
            return self.table

    def __init__(
        self,
        service: Service,
        query: ShipmentQuery,
        *,
        clock: Callable[[], datetime],
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.service = service
        self.shipment_query = query
        self.clock = clock
        self.pages: list[Page[ShipmentRow]] = []
        self.anchors: list[Anchor] = []
        self.generation = 0
        """Counts the windows shown (tests and the benchmark wait for it to move)."""
        self._rows: list[ShipmentRow] = []
        self._cells: list[dict[str, Cell]] = []
        self._index: dict[str, int] = {}
        self._fitted: dict[tuple[int, bool], list[Cell]] = {}
        self._columns_at: tuple[int, list[tuple[Column, int]]] | None = None
        self._paint: _PaintStyles | None = None
        self._loading = False
        self.marked: dict[str, None] = {}
        """Shipments marked with ``space``, in marking order (plugin commands act on them)."""

    # ------------------------------------------------------------------ what is shown

    @property
    def rows_shown(self) -> list[ShipmentRow]:
        """The rows in the window, top to bottom."""
        return self._rows

    @property
    def row_count(self) -> int:
        """How many rows the window holds."""
        return len(self._rows)

    @property
    def highlighted(self) -> ShipmentRow | None:
        """The shipment under the cursor (None for an empty table)."""
        if 0 <= self.cursor_row < len(self._rows):
            return self._rows[self.cursor_row]
        return None

    def row_index(self, number: str) -> int | None:
        """Where ``number`` is in the window (None: not in it)."""
        return self._index.get(number)

    def cells(self, number: str) -> list[str]:
        """The texts shown in ``number``'s row, column by column (for tests)."""
        index = self._index[number]
        return [self._cells[index][c.key][0] for c in self.columns()]

    def columns(self) -> list[Column]:
        """The columns shown at the widget's width."""
        return [c for c, _ in self.column_layout()]

    def column_layout(self, width: int | None = None) -> list[tuple[Column, int]]:
        """The columns shown at ``width`` (default: the widget's) with their widths."""
        width = self.size.width if width is None else width
        narrow = width < 100
        shown = [c for c in COLUMNS if not (narrow and c.key in _NARROW_HIDDEN)]
        fixed = sum(c.width for c in shown) + 2 * len(shown)
        rest = max(12, width - fixed - 1)
        return [(c, c.width or rest) for c in shown]

    def _row_cells(self, row: ShipmentRow, now: datetime) -> dict[str, Cell]:
        event = " · ".join(
            clean(part)
            for part in (row.latest_event_description, row.latest_event_location)
            if part and part.strip()
        )
        icon, colour, name = status_style(row.status)
        when = row.event_at if row.event_at and row.event_at <= now else row.updated_at
        plain = Style()
        number_style = Style(bold=True, strike=not row.active)
        return {
            "number": (clean(row.number), number_style),
            "carrier": (clean(row.carrier_name), plain),
            "route": (route(row.origin_country, row.destination_country), plain),
            "status": (f"{icon} {name}", Style.parse(colour)),
            "event": (event, plain),
            "age": (age(when, now), Style(dim=True)),
            "tag": (clean(row.tag or row.order or ""), plain),
        }

    def _show(self, keep: str | None = None, at: int | None = None) -> None:
        """Take the rows of ``self.pages``; the cursor goes to ``keep``, else row ``at``."""
        loading, self._loading = self._loading, True
        try:
            now = self.clock()
            self.generation += 1
            self._rows = [row for page in self.pages for row in page.items]
            self._cells = [self._row_cells(row, now) for row in self._rows]
            self._index = {row.number: i for i, row in enumerate(self._rows)}
            self._fitted.clear()
            self.virtual_size = Size(self.size.width, len(self._rows) + 1)
            target = self._index.get(keep, -1) if keep is not None else -1
            if target < 0:
                target = at if at is not None else self.cursor_row
            self.cursor_row = max(0, min(target, len(self._rows) - 1))
            self._scroll_to_cursor()
            self.refresh()
        finally:
            self._loading = loading

    # ------------------------------------------------------------------ painting

    def render_lines(self, crop: Region) -> list[Strip]:
        # The component styles are looked up once per paint, not once per line: each lookup
        # walks the widget's ancestors, and per line it was a third of a repaint.
        self._paint = self._paint_styles()
        try:
            return super().render_lines(crop)
        finally:
            self._paint = None

    def _paint_styles(self) -> _PaintStyles:
        base = self.rich_style
        return _PaintStyles(
            header=self.get_component_rich_style("shipment-table--header"),
            odd=base,
            even=base + self.get_component_rich_style("shipment-table--even"),
            cursor=self.get_component_rich_style("shipment-table--cursor"),
        )

    def _layout_at(self, width: int) -> list[tuple[Column, int]]:
        if self._columns_at is None or self._columns_at[0] != width:
            self._columns_at = (width, self.column_layout(width))
            self._fitted.clear()
        return self._columns_at[1]

    def _fitted_row(self, index: int, layout: list[tuple[Column, int]]) -> list[Cell]:
        """Row ``index``'s cells cut to the column widths (kept until the rows or the width
        change: moving the cursor repaints rows without cutting their texts again)."""
        marked = self._rows[index].number in self.marked
        key = (index, marked)
        fitted = self._fitted.get(key)
        if fitted is None:
            cells = self._cells[index]
            fitted = []
            for column, w in layout:
                text, style = cells[column.key]
                if marked and column.key == "number":
                    text, style = f"✓{text}", style + _MARKED
                fitted.append((f" {fit(text, w)} ", style))
            self._fitted[key] = fitted
        return fitted

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        layout = self._layout_at(width)
        paint = self._paint or self._paint_styles()
        if y == 0:
            style = paint.header
            segments = [Segment(f" {fit(c.label, w)} ", style) for c, w in layout]
            return Strip(segments).adjust_cell_length(width, style)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, paint.odd)
        cells = self._fitted_row(index, layout)
        if index == self.cursor_row:
            base = paint.cursor
            segments = [Segment(text, base) for text, _ in cells]
        else:
            base = paint.even if index % 2 else paint.odd
            segments = [Segment(text, paint.on(base, style)) for text, style in cells]
        return Strip(segments).adjust_cell_length(width, base)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._rows) + 1)
        self._scroll_to_cursor()

    # ------------------------------------------------------------------ cursor

    @property
    def _visible(self) -> int:
        return max(1, self.size.height - 1)

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_offset.y)
        row = self.cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + self._visible:
            self.scroll_to(y=row - self._visible + 1, animate=False)

    def move_cursor(self, row: int) -> None:
        """Put the cursor on ``row`` of the window (clamped)."""
        self.cursor_row = max(0, min(row, len(self._rows) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._scroll_to_cursor()  # a scroll repaints every line (ScrollView.watch_scroll_y)
        self.refresh_line(old + 1)  # else only the two rows the cursor left and reached
        self.refresh_line(new + 1)
        if row := self.highlighted:
            self.post_message(self.Highlighted(self, row.number))
        if self.pages and self._rows and not self._loading:
            if new >= len(self._rows) - 1 and self.pages[-1].next_cursor:
                self._grow("down")
            elif new <= 0 and self.pages[0].prev_cursor:
                self._grow("up")

    def action_move(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * self._visible)

    def action_toggle_mark(self) -> None:
        """Mark the highlighted shipment (or unmark it)."""
        if row := self.highlighted:
            if row.number in self.marked:
                del self.marked[row.number]
            else:
                self.marked[row.number] = None
            self.refresh_line(self.cursor_row + 1)

    def action_select(self) -> None:
        if row := self.highlighted:
            self.post_message(self.RowSelected(self, row.number))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if event.y < 1 or index >= len(self._rows):
            return
        if index == self.cursor_row:
            self.action_select()
        else:
            self.move_cursor(index)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # The mouse wheel reached the window's end: read on without moving the cursor.
        if self.pages and not self._loading and new >= self.max_scroll_y > 0:
            if self.pages[-1].next_cursor:
                self._grow("down")

    # ------------------------------------------------------------------ loading

    async def _fetch(self, anchor: Anchor, limit: int) -> Page[ShipmentRow]:
        kind, cursor = anchor
        if kind == "after":
            return await self.service.shipments(self.shipment_query, limit=limit, after=cursor)
        if kind == "before":
            return await self.service.shipments(self.shipment_query, limit=limit, before=cursor)
        return await self.service.shipments(
            self.shipment_query, limit=limit, from_end=kind == "end"
        )

    async def load(self, anchor: Anchor = ("start", None), *, keep: str | None = None) -> None:
        """Show one page from ``anchor`` (the first page by default)."""
        page = await self._fetch(anchor, self.PAGE)
        self.pages, self.anchors = [page], [anchor]
        self._show(keep=keep, at=len(page.items) - 1 if anchor[0] == "end" else 0)
        self.post_message(self.Loaded(self, self.row_count))

    async def set_query(self, query: ShipmentQuery) -> None:
        """Show the first page of another query."""
        self.shipment_query = query
        await self.load()

    async def refresh_rows(self) -> None:
        """Re-read the window in place (after changes), keeping the cursor's shipment."""
        if not self.pages:
            await self.load()
            return
        keep = self.highlighted.number if self.highlighted else None
        size = max(self.PAGE, len(self._rows))
        page = await self._fetch(self.anchors[0], size)
        if not page.items and self.anchors[0][0] != "start":
            await self.load(keep=keep)
            return
        self.pages, self.anchors = [page], [self.anchors[0]]
        self._show(keep=keep, at=self.cursor_row)
        self.post_message(self.Loaded(self, self.row_count))

    async def action_first_page(self) -> None:
        await self.load(("start", None))

    async def action_last_page(self) -> None:
        await self.load(("end", None))

    @work(exclusive=True, group="table-page")
    async def _grow(self, direction: Literal["up", "down"]) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            keep = self.highlighted.number if self.highlighted else None
            if direction == "down":
                anchor: Anchor = ("after", self.pages[-1].next_cursor)
                page = await self._fetch(anchor, self.PAGE)
                self.pages.append(page)
                self.anchors.append(anchor)
                if len(self.pages) > self.MAX_PAGES:
                    del self.pages[0], self.anchors[0]
            else:
                anchor = ("before", self.pages[0].prev_cursor)
                page = await self._fetch(anchor, self.PAGE)
                self.pages.insert(0, page)
                self.anchors.insert(0, anchor)
                if len(self.pages) > self.MAX_PAGES:
                    del self.pages[-1], self.anchors[-1]
            self._show(keep=keep)
        finally:
            self._loading = False
