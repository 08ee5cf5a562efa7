"""The dashboard application: ``make_app(service, settings)``.

The app holds a ``Service`` and nothing else of the engine. It runs the service's change feed
in a worker and coalesces it: changes are gathered for ``COALESCE`` seconds, then every screen
gets one ``ShipmentsChanged``/``NotificationsChanged`` message, so a burst of pushes costs one
refresh. Commands (register, stop, ...) run in exclusive workers, are recorded by the service
with the actor ``tui``, and their failures show as notifications, never as a crash.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from trackops.core.plugins import FrontEndExtensions
from trackops.tui.detail import DetailScreen
from trackops.tui.dialogs import CarrierDialog, ConfirmDialog, RegisterDialog, TextDialog
from trackops.tui.format import STATUS_KEYS, age, clean
from trackops.tui.help import HelpScreen
from trackops.tui.main_screen import MainScreen
from trackops.tui.messages import NotificationsChanged, ShipmentsChanged, StatusLineChanged

if TYPE_CHECKING:
    from trackops.core.config import Settings
    from trackops.core.service import (
        Change,
        CommandOutcome,
        HistoryRow,
        RuntimeStatus,
        Service,
        ShipmentDetail,
    )
    from trackops.tui.table import ShipmentTable

__all__ = ["TrackopsApp", "make_app"]

log = logging.getLogger("trackops.tui")

ACTOR = "tui"
Command = Literal["stop", "retrack", "delete"]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class TrackopsApp(App[int]):
    """The trackops dashboard over one ``Service``."""

    CSS_PATH = str(Path(__file__).with_name("trackops.tcss"))  # absolute: subclasses live elsewhere
    TITLE = "trackops"
    # App declares it as an instance attribute, so no ClassVar here (mypy), hence the noqa.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012
    COALESCE: ClassVar[float] = 0.25
    STATUS_EVERY: ClassVar[float] = 2.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        service: Service,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        config_path: Path | None = None,
        live: bool = True,
        title: str = "trackops",
    ) -> None:
        super().__init__()
        self.service = service
        self.settings = settings
        self.clock = clock
        self.config_path = config_path if config_path is not None else settings.path
        self.live = live
        self.title = title
        self._pending_numbers: set[str] = set()
        self._pending_all = False
        self._pending_notes: set[int] = set()
        self._flush_scheduled = False
        self._seen_notes: set[int] = set()
        self.seller_alerts: list[HistoryRow] = []
        """The seller alerts popped up, oldest first."""
        self._details: dict[str, ShipmentDetail] = {}
        self.sync_progress: tuple[int, int] | None = None
        """The last (done, total) of a sync run from the dashboard."""
        self.extensions = FrontEndExtensions()
        """What plugins add (palette commands, screens, detail panels), read at mount."""
        self._heap_frozen = False

    def on_mount(self) -> None:
        from trackops.tui.extensions import bind_plugin_keys, extensions_of

        self.extensions = extensions_of(self.service)
        bind_plugin_keys(self, self.extensions)
        self.push_screen(MainScreen())
        if self.live:
            self._follow_changes()
            self._update_status_line()
            self.set_interval(self.STATUS_EVERY, self._update_status_line)

    def on_shipment_table_loaded(self, message: ShipmentTable.Loaded) -> None:
        if not self._heap_frozen:
            self._heap_frozen = True
            self.call_after_refresh(self._freeze_heap)

    def _freeze_heap(self) -> None:
        """Once the first rows are painted, take what start-up built (modules, styles,
        screens, the service) out of the garbage collector's sight.

        A full collection walks every tracked object: 40 ms of CPU at 100,000 shipments,
        and it fell on whichever keystroke allocated last (the p95 of the filter and search
        steps). After the freeze it walks only what was made since. No collection first
        (that would be the same 40 ms): start-up's few garbage cycles stay until the app
        exits, when ``on_unmount`` gives everything back to the collector.
        """
        gc.freeze()

    def on_unmount(self) -> None:
        if self._heap_frozen:
            gc.unfreeze()

    # ------------------------------------------------------------------ errors

    @contextmanager
    def errors_shown(self, what: str) -> Iterator[None]:
        """Show a failure inside the block as a notification instead of crashing."""
        from trackops.core.service import TrackopsError

        try:
            yield
        except TrackopsError as exc:
            self.notify(clean(str(exc)), title=what, severity="error", markup=False)
        except Exception as exc:
            log.warning("%s failed", what, exc_info=True)
            self.notify(
                clean(f"{type(exc).__name__}: {exc}"), title=what, severity="error", markup=False
            )

    # ------------------------------------------------------------------ live changes

    @work(group="changes", exit_on_error=False)
    async def _follow_changes(self) -> None:
        with self.errors_shown("change feed"):
            async for change in self.service.changes():
                self.take_change(change)

    def take_change(self, change: Change) -> None:
        """Gather one change; the screens hear of it at the next flush."""
        if change.kind == "shipment":
            if change.number:
                self._pending_numbers.add(change.number)
            else:
                self._pending_all = True
        elif change.kind == "notification":
            if change.notification_id is not None:
                self._pending_notes.add(change.notification_id)
            self._pending_all = self._pending_all or not change.number
            if change.number:
                self._pending_numbers.add(change.number)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.set_timer(self.COALESCE, self._flush_changes)

    def _flush_changes(self) -> None:
        self._flush_scheduled = False
        numbers, self._pending_numbers = self._pending_numbers, set()
        notes, self._pending_notes = self._pending_notes, set()
        everything, self._pending_all = self._pending_all, False
        if everything:
            self._details.clear()
        for number in numbers:
            self._details.pop(number, None)
        if numbers or everything:
            self.broadcast(ShipmentsChanged(frozenset() if everything else frozenset(numbers)))
        if notes:
            self.broadcast(NotificationsChanged(frozenset(notes)))
            self._toast_alerts(frozenset(notes))

    def broadcast(self, message: ShipmentsChanged | NotificationsChanged) -> None:
        """Send ``message`` to every screen on the stack (the main screen stays current)."""
        for screen in self.screen_stack:
            screen.post_message(
                type(message)(message.numbers)
                if isinstance(message, ShipmentsChanged)
                else type(message)(message.ids)
            )

    @work(group="toasts", exit_on_error=False)
    async def _toast_alerts(self, ids: frozenset[int]) -> None:
        """Pop up the seller alerts among the notification rows ``ids`` (at most 5 at once)."""
        from trackops.core.service import HistoryQuery

        with self.errors_shown("notifications"):
            page = await self.service.history(
                HistoryQuery(audience="seller"), limit=max(20, len(ids))
            )
            fresh = [r for r in page.items if r.id in ids and r.id not in self._seen_notes]
            for row in fresh:
                self._seen_notes.add(row.id)
                self.seller_alerts.append(row)
            for row in fresh[:5]:
                change = row.to_status.display if row.to_status is not None else "?"
                self.notify(
                    clean(f"{row.number}: {change} ({row.condition})"),
                    title="Seller alert",
                    severity="warning",
                    markup=False,
                )
            if len(fresh) > 5:
                self.notify(f"and {len(fresh) - 5} more", title="Seller alerts")

    @work(group="status-line", exclusive=True, exit_on_error=False)
    async def _update_status_line(self) -> None:
        try:
            status = await self.service.status_line()
        except Exception as exc:
            text = f"status unavailable: {clean(exc)}"
        else:
            text = clean(status_text(status, self.clock()))
        for screen in self.screen_stack:
            screen.post_message(StatusLineChanged(text))

    # ------------------------------------------------------------------ screens

    def open_detail(self, number: str) -> None:
        """Show one shipment's detail (``escape`` closes it)."""
        if not self.is_screen_installed("detail"):
            self.install_screen(DetailScreen(), "detail")
        screen = self.get_screen("detail")
        assert isinstance(screen, DetailScreen)
        screen.show(number, self._details.get(number))
        self.push_screen(screen)

    @work(exclusive=True, group="prefetch", exit_on_error=False)
    async def prefetch_detail(self, number: str) -> None:
        """Read the highlighted shipment's detail ahead, so ``enter`` shows it at once (the
        detail screen reads it again, fresh, as it opens)."""
        if number in self._details:
            return
        try:
            detail = await self.service.shipment(number)
        except Exception:  # the detail screen will say what is wrong, if it is opened
            return
        self._details = {number: detail}  # one is enough: the cursor's

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_history(self) -> None:
        from trackops.tui.history import HistoryScreen

        self.push_screen(HistoryScreen())

    def action_stats(self) -> None:
        from trackops.tui.stats import StatsScreen

        self.push_screen(StatsScreen())

    def action_settings(self) -> None:
        from trackops.tui.settings_screen import SettingsScreen

        self.push_screen(SettingsScreen(self.config_path))

    async def action_quit(self) -> None:
        self.exit(0)

    # ------------------------------------------------------------------ plugins

    def action_plugin_command(self, name: str) -> None:
        """Run plugin command ``name`` on the selected shipment (its key or the palette)."""
        self._plugin_command(name, self._selected_numbers(self.screen))

    def action_plugin_screen(self, name: str) -> None:
        """Open plugin screen ``name``."""
        self._plugin_screen(name, self._selected_numbers(self.screen))

    @work(group="plugin", exit_on_error=False)
    async def _plugin_command(self, name: str, numbers: tuple[str, ...]) -> None:
        from trackops.tui.extensions import run_command

        for provided in self.extensions.palette_commands:
            if provided.item.name == name:
                await run_command(self, provided, numbers)

    @work(group="plugin", exit_on_error=False)
    async def _plugin_screen(self, name: str, numbers: tuple[str, ...]) -> None:
        from trackops.tui.extensions import open_screen

        for provided in self.extensions.screens:
            if provided.item.name == name:
                await open_screen(self, provided, numbers)

    def _selected_numbers(self, screen: Screen[object]) -> tuple[str, ...]:
        """What plugin commands act on: the marked shipments (``space``), else the
        highlighted one, or the one whose detail is shown."""
        if isinstance(screen, MainScreen) and screen.table.marked:
            return tuple(screen.table.marked)
        number = self._selected_number(screen)
        return (number,) if number else ()

    # ------------------------------------------------------------------ commands

    def _report(self, what: str, outcome: CommandOutcome) -> None:
        if outcome.accepted:
            shown = ", ".join(outcome.accepted[:3])
            more = f" and {len(outcome.accepted) - 3} more" if len(outcome.accepted) > 3 else ""
            self.notify(clean(f"{what}: {shown}{more}"), markup=False)
        for rejected in outcome.rejected[:5]:
            self.notify(
                clean(f"{rejected.number}: {rejected.error.message} ({rejected.error.code})"),
                title=f"{what}: refused",
                severity="error",
                markup=False,
            )
        self._details.clear()
        self.broadcast(ShipmentsChanged(frozenset()))

    @work(exclusive=True, group="command", exit_on_error=False)
    async def run_command(self, command: Command, number: str) -> None:
        """Stop, retrack or delete ``number`` after a confirmation."""
        questions = {
            "stop": (f"Stop tracking {number}?", "Stop"),
            "retrack": (f"Track {number} again? (17TRACK allows this once per number)", "Retrack"),
            "delete": (f"Delete {number} at 17TRACK and here? This cannot be undone.", "Delete"),
        }
        question, yes = questions[command]
        if not await self.push_screen_wait(ConfirmDialog(clean(question), yes=yes)):
            return
        with self.errors_shown(command):
            method = getattr(self.service, command)
            outcome = await method([number], actor=ACTOR)
            done = {"stop": "stopped", "retrack": "retracking", "delete": "deleted"}[command]
            self._report(done, outcome)
            if command == "delete" and isinstance(self.screen, DetailScreen):
                self.screen.dismiss(None)

    @work(exclusive=True, group="command", exit_on_error=False)
    async def register_shipments(self) -> None:
        """The register dialog, then the registration."""
        requests = await self.push_screen_wait(RegisterDialog(self.service))
        if not requests:
            return
        with self.errors_shown("register"):
            self.notify(f"registering {len(requests)} number(s)…", timeout=2)
            outcome = await self.service.register(requests, actor=ACTOR)
            self._report("registered", outcome)

    @work(exclusive=True, group="command", exit_on_error=False)
    async def change_carrier(self, number: str, current: str = "") -> None:
        """Pick a carrier, then change it."""
        code = await self.push_screen_wait(CarrierDialog(self.service, number, current))
        if code is None:
            return
        with self.errors_shown("change carrier"):
            outcome = await self.service.change_carrier(number, code, actor=ACTOR)
            self._report("carrier changed", outcome)

    @work(exclusive=True, group="command", exit_on_error=False)
    async def edit_tag(self, number: str, current: str = "") -> None:
        """Ask for the tag, then save it."""
        tag = await self.push_screen_wait(
            TextDialog(f"Tag for {clean(number)}", current, placeholder="tag")
        )
        if tag is None:
            return
        with self.errors_shown("tag"):
            outcome = await self.service.change_tag(number, tag.strip(), actor=ACTOR)
            self._report("tag saved", outcome)

    @work(exclusive=True, group="command", exit_on_error=False)
    async def resend(self, notification_id: int) -> None:
        """Send notification ``notification_id`` again, after a confirmation."""
        if not await self.push_screen_wait(
            ConfirmDialog(f"Send notification #{notification_id} again?", yes="Resend")
        ):
            return
        with self.errors_shown("resend"):
            row = await self.service.resend(notification_id, actor=ACTOR)
            self.notify(clean(f"notification #{row.id}: {row.send_status}"), markup=False)
            self.broadcast(NotificationsChanged(frozenset({row.id})))

    @work(exclusive=True, group="sync", exit_on_error=False)
    async def sync_now(self) -> None:
        """Fetch the latest tracking info of every tracked shipment, with a progress bar."""
        from trackops.tui.sync import SyncScreen

        screen = SyncScreen()
        await self.push_screen(screen)

        def progress(done: int, total: int) -> None:
            self.sync_progress = (done, total)
            screen.progress(done, total)

        try:
            with self.errors_shown("sync"):
                outcome = await self.service.sync(actor=ACTOR, progress=progress)
                self.notify(
                    f"sync: {outcome.asked} asked, {outcome.applied} updated, "
                    f"{outcome.notifications} notification(s), {len(outcome.rejected)} refused"
                )
        finally:
            screen.dismiss(None)
        self.broadcast(ShipmentsChanged(frozenset()))

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Register numbers", "Register tracking numbers", self.register_shipments
        )
        yield SystemCommand("Sync now", "Fetch the latest tracking info", self.sync_now)
        yield SystemCommand("History", "Notification history", self.action_history)
        yield SystemCommand("Statistics", "Deliveries, carriers, stuck parcels", self.action_stats)
        yield SystemCommand("Settings", "Notifications settings", self.action_settings)
        yield SystemCommand("Help", "Every key", self.action_help)
        number = self._selected_number(screen)
        if number:
            commands: tuple[Command, ...] = ("stop", "retrack", "delete")
            for command in commands:
                yield SystemCommand(
                    f"{command.capitalize()} {number}",
                    f"{command} the highlighted shipment",
                    lambda c=command: self.run_command(c, number),
                )
            yield SystemCommand(
                f"Change carrier of {number}", "", lambda: self.change_carrier(number)
            )
            yield SystemCommand(f"Edit tag of {number}", "", lambda: self.edit_tag(number))
        selected = self._selected_numbers(screen)
        for provided in self.extensions.palette_commands:
            yield SystemCommand(
                clean(provided.item.name),
                clean(f"{provided.item.help} (plugin {provided.plugin})"),
                lambda n=provided.item.name: self._plugin_command(n, selected),
            )
        for shown in self.extensions.screens:
            yield SystemCommand(
                clean(f"Open {shown.item.name}"),
                clean(f"{shown.item.help} (plugin {shown.plugin})"),
                lambda n=shown.item.name: self._plugin_screen(n, selected),
            )
        names = [(0, "all"), *((int(k), s.display) for k, s in STATUS_KEYS.items())]
        for key, name in names:
            yield SystemCommand(
                f"Show {name}", f"status key {key}", lambda k=key: self._show_status(k)
            )

    def _selected_number(self, screen: Screen[object]) -> str | None:
        if isinstance(screen, DetailScreen):
            return screen.number
        if isinstance(screen, MainScreen):
            row = screen.table.highlighted
            return row.number if row else None
        return None

    def _show_status(self, key: int) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.action_status(key)


def status_text(status: RuntimeStatus, now: datetime) -> str:
    """The status line: API rate limiter, last push, last sync, the store (masked)."""
    if status.rate_available is None:
        rate = f"API ≤{status.rate_limit:g}/s"
    else:
        rate = f"API {max(0.0, status.rate_available):.0f}/{status.rate_limit:g} req free"

    def ago(when: datetime | None) -> str:
        return f"{age(when, now)} ago" if when else "never"

    return (
        f"{rate} · last push {ago(status.last_push_at)} · last sync {ago(status.last_sync_at)}"
        f" · store {status.store}"
    )


def make_app(
    service: Service,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utcnow,
    config_path: Path | None = None,
    live: bool = True,
    title: str = "trackops",
) -> TrackopsApp:
    """The dashboard over ``service``; ``settings`` is what the settings screen edits."""
    return TrackopsApp(
        service, settings, clock=clock, config_path=config_path, live=live, title=title
    )
