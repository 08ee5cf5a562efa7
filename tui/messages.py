"""App-wide messages of the dashboard, one dataclass each.

The app's change feed worker posts these to the active screens after coalescing the service's
``Change`` stream, so a burst of a thousand pushes becomes one refresh, not a thousand.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

__all__ = ["NotificationsChanged", "ShipmentsChanged", "StatusLineChanged"]


@dataclass(eq=False)
class ShipmentsChanged(Message):
    """Shipments changed (here or in another process); ``numbers`` empty means "maybe all"."""

    numbers: frozenset[str]


@dataclass(eq=False)
class NotificationsChanged(Message):
    """Notification rows were created or changed state (ids, when the feed said which)."""

    ids: frozenset[int]


@dataclass(eq=False)
class StatusLineChanged(Message):
    """The runtime status line's text changed."""

    text: str
