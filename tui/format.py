"""How values look on the dashboard: status colours and icons, ages, countries, safe text.

Everything a carrier, a merchant or a push wrote is data: it becomes a ``rich.text.Text``
(never parsed as markup) made safe by ``trackops.core.text.safe_text``, so a hostile description can
neither restyle the screen nor move the terminal's cursor.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from rich.text import Text
from trackops.core.text import safe_text
from trackops.core.wire import PackageStatus

__all__ = [
    "STATUS_KEYS",
    "age",
    "clean",
    "route",
    "safe",
    "status_style",
    "status_text",
]

# Keys 1-7 pick one status in code order; 0 shows all (DESIGN.md's contract).
STATUS_KEYS: Final[dict[str, PackageStatus]] = {
    str(i): status for i, status in enumerate(sorted(PackageStatus), start=1)
}

_STYLES: Final[dict[PackageStatus, tuple[str, str]]] = {
    PackageStatus.NOT_FOUND: ("?", "bright_black"),
    PackageStatus.IN_TRANSIT: ("→", "cyan"),
    PackageStatus.EXPIRED: ("×", "yellow"),
    PackageStatus.PICK_UP: ("◆", "magenta"),
    PackageStatus.UNDELIVERED: ("!", "dark_orange"),
    PackageStatus.DELIVERED: ("✓", "green"),
    PackageStatus.ALERT: ("▲", "bold red"),
}


def clean(value: object, *, limit: int | None = None) -> str:
    """``value`` as one line of safe text (``core.text.safe_text``: control characters shown
    as control pictures, bidi overrides removed), runs of blanks made one."""
    text = " ".join(safe_text(value).split())
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def safe(value: object, style: str = "", *, limit: int | None = None) -> Text:
    """A ``Text`` of ``clean(value)``: never markup, whatever brackets it holds."""
    return Text(clean(value, limit=limit), style=style, no_wrap=True, overflow="ellipsis")


def status_style(status: PackageStatus | int) -> tuple[str, str, str]:
    """(icon, colour, name) of a status; an unknown code shows as ``#code``."""
    try:
        known = PackageStatus(int(status))
    except ValueError:
        return "#", "white on red", f"code {int(status)}"
    icon, colour = _STYLES[known]
    return icon, colour, known.display


def status_text(status: PackageStatus | int) -> Text:
    """The status as the table shows it: icon and name in the status's colour."""
    icon, colour, name = status_style(status)
    return Text(f"{icon} {name}", style=colour, no_wrap=True)


def route(origin: str | None, destination: str | None) -> str:
    """``CN → US`` (``?`` for an unknown end; empty when both are unknown)."""
    if not origin and not destination:
        return ""
    return f"{clean(origin) or '?'} → {clean(destination) or '?'}"


def age(then: datetime | None, now: datetime) -> str:
    """How long ago, in the largest fitting unit: ``42s``, ``5m``, ``3h``, ``12d``."""
    if then is None:
        return ""
    seconds = (now - then) / timedelta(seconds=1)
    if seconds < 0:
        return "now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
