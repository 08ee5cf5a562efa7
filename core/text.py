"""Outside text made safe to show: carrier, merchant and push text is data, never code.

Every string that came from outside (17TRACK pushes and answers, CSV files, Slack, the config)
goes through :func:`safe_text` before it reaches a terminal, an email or the dashboard, and
through :func:`safe_markup` before it is embedded in Rich console markup. ``--json`` output does
not: it is exact.

What is changed, and why:

- C0 and C1 control characters (ESC, BEL, NUL, CSI ...) would drive the terminal (clear it, set
  its title, move the cursor); each becomes its visible Unicode "control picture" (ESC -> ``␛``)
  or ``U+FFFD`` for C1 codes, so the reader still sees that something was there.
- Bidirectional formatting characters (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C)
  reorder what follows them on screen ("Trojan source"); they are removed.
- Line breaks and tabs (and U+2028/U+2029) become a space unless ``multiline`` keeps newlines,
  so one record stays on one line of a table.

Pure and dependency-free apart from Rich's own escape rule for markup.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["has_unsafe", "safe_markup", "safe_text"]

# Bidi embedding/override/isolate marks and the implicit direction marks.
_BIDI: Final = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_LINE_BREAKS: Final = "\n\r\t\v\f\u2028\u2029\x85"


def _build_table(multiline: bool) -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in range(0x20):
        table[code] = chr(0x2400 + code)  # control pictures: NUL -> ␀, ESC -> ␛ ...
    table[0x7F] = "\u2421"  # DEL -> ␡
    for code in range(0x80, 0xA0):
        table[code] = "\ufffd"
    for char in _BIDI:
        table[ord(char)] = None
    for char in _LINE_BREAKS:
        table[ord(char)] = " "
    if multiline:
        table[ord("\n")] = "\n"
        table[ord("\t")] = "    "
        table[ord("\r")] = None  # CRLF -> LF; a bare CR would overwrite the line
    return table


_SINGLE_LINE: Final = _build_table(multiline=False)
_MULTILINE: Final = _build_table(multiline=True)
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f" + _BIDI + "\u2028\u2029]",
)


def safe_text(value: object, *, multiline: bool = False) -> str:
    """``value`` as plain text that cannot drive a terminal or reorder a line.

    ``None`` gives ``""``. Control characters become visible control pictures (``␛``), C1 codes
    ``U+FFFD``, bidi overrides are removed; newlines and tabs become spaces unless
    ``multiline`` (then newlines stay, tabs become four spaces, carriage returns go).
    Everything else, including non-Latin scripts and emoji, is kept exactly.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if not _UNSAFE.search(text):
        return text
    return text.translate(_MULTILINE if multiline else _SINGLE_LINE)


def safe_markup(value: object, *, multiline: bool = False) -> str:
    """``value`` made safe (:func:`safe_text`) and escaped for Rich console markup.

    Use it for outside text inside a Rich markup string (``console.print(f"[b]{...}[/b]")``),
    so ``[/bold]`` or ``Sorted [/HUB-7]`` prints as written instead of raising
    ``MarkupError``. Rich still turns ``:emoji_name:`` codes into emoji in markup; where
    that matters, prefer ``rich.text.Text(safe_text(value))`` (a ``Text`` is never parsed).
    Textual markup has its own escape: ``textual.markup.escape(safe_text(value))``, or give
    widgets ``Text``/``Content`` objects built from :func:`safe_text`.
    """
    from rich.markup import escape

    return escape(safe_text(value, multiline=multiline))


def has_unsafe(value: str) -> bool:
    """Whether ``value`` holds a character :func:`safe_text` would change (multiline=False)."""
    return bool(_UNSAFE.search(value))
