"""Logging while the dashboard owns the terminal.

A log line written to stderr would cut through the screen, so while the app runs the CLI's
stream handlers are set aside: records go to a file (the demo's folder) and warnings and
errors show as the app's notifications instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from textual.app import App
from trackops.tui.format import clean

__all__ = ["NotifyHandler", "logging_beside"]


class NotifyHandler(logging.Handler):
    """Shows each record as a notification of ``app`` (thread-safe)."""

    def __init__(self, app: App[Any], level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.app = app
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = clean(record.getMessage(), limit=300)
        except Exception:  # a bad format string must not break the app
            text = clean(record.msg, limit=300)
        severity: Literal["warning", "error"] = (
            "error" if record.levelno >= logging.ERROR else "warning"
        )
        self.loop.call_soon_threadsafe(
            lambda: self.app.notify(text, title=record.name, severity=severity, markup=False)
        )


@contextlib.contextmanager
def logging_beside(app: App[Any], path: Path | None = None) -> Iterator[None]:
    """Route logging away from the terminal for the block (to ``path`` and the app)."""
    root = logging.getLogger()
    streams: list[logging.Handler] = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    for handler in streams:
        root.removeHandler(handler)
    added: list[logging.Handler] = [NotifyHandler(app)]
    if path is not None:
        to_file = logging.FileHandler(path, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        added.append(to_file)
    for handler in added:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            root.removeHandler(handler)
            handler.close()
        for handler in streams:
            root.addHandler(handler)
