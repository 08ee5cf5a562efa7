"""The sync progress dialog: a progress bar fed by ``Service.sync``'s progress callback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, ProgressBar

__all__ = ["SyncScreen"]


class SyncScreen(ModalScreen[None]):
    """Shown while a sync runs; the app dismisses it when the sync ends."""

    def __init__(self) -> None:
        super().__init__(classes="dialog")

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label("Syncing with 17TRACK…")
            yield ProgressBar(id="sync-progress", show_eta=False)

    def progress(self, done: int, total: int) -> None:
        """The service's progress callback: ``done`` of ``total`` numbers."""
        self.query_one(ProgressBar).update(total=max(total, 1), progress=done)
