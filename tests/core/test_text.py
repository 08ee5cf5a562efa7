"""core/text.py: outside text can neither drive a terminal nor break Rich markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text
from trackops.core.text import has_unsafe, safe_markup, safe_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Sorted at HUB-7", "Sorted at HUB-7"),
        ("Доставлено 已签收 📦", "Доставлено 已签收 📦"),
        ("\x1b[2J\x1b]0;pwned\x07", "␛[2J␛]0;pwned␇"),
        ("a\x00b", "a␀b"),
        ("del\x7f", "del␡"),
        ("c1\x9bcsi", "c1\ufffdcsi"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("\u2066iso\u2069 \u200fmark", "iso mark"),
        ("two\nlines\tand\rcr", "two lines and cr"),
        ("para\u2028sep", "para sep"),
        (None, ""),
        (1001, "1001"),
    ],
)
def test_safe_text(raw: object, shown: str) -> None:
    assert safe_text(raw) == shown


def test_multiline_keeps_newlines_only() -> None:
    assert safe_text("a\r\nb\tc\x1b", multiline=True) == "a\nb    c␛"


def test_result_has_nothing_unsafe() -> None:
    every = "".join(chr(c) for c in range(0x00, 0xA0)) + "\u202a\u202b\u202c\u202d\u202e\u2066"
    assert has_unsafe(every)
    cleaned = safe_text(every)
    assert not has_unsafe(cleaned)
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in cleaned)


@pytest.mark.parametrize("raw", ["Sorted [/HUB-7]", "[/]", "[/bold]", "[bold red]x", "end\\"])
def test_safe_markup_prints_as_written(raw: str) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    console.print(f"[bold]{safe_markup(raw)}[/bold]")  # would raise MarkupError unescaped
    assert out.getvalue().rstrip("\n") == raw
    assert Text.from_markup(f"x{safe_markup(raw)}[i]y[/i]").plain == f"x{raw}y"
