"""``/track`` text parsing (pure): what people type, and what hostile text gets back."""

from __future__ import annotations

import pytest
from trackops.bots.parse import (
    DEFAULT_ALERT_STATUSES,
    MAX_TEXT,
    Command,
    CommandError,
    parse_command,
    parse_statuses,
)
from trackops.core.wire import PackageStatus as S


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help")),
        ("   ", Command("help")),
        (None, Command("help")),
        ("help", Command("help")),
        ("HELP", Command("help")),
        ("add RR123456785CN", Command("add", ("RR123456785CN",))),
        (
            'add RR123456785CN "China Post" - gift',
            Command("add", ("RR123456785CN", "China Post", "-", "gift")),
        ),
        # Slack's clients turn typed quotes into curly ones.
        ("add RR123456785CN “China Post”", Command("add", ("RR123456785CN", "China Post"))),
        ("status 1001", Command("status", ("1001",))),
        ("list", Command("list")),
        ("list alert", Command("list", ("alert",))),
        ("stop RR123456785CN", Command("stop", ("RR123456785CN",))),
        ("retrack RR123456785CN", Command("retrack", ("RR123456785CN",))),
        ("delete RR123456785CN", Command("delete", ("RR123456785CN",))),
        ("carrier RR123456785CN 3011", Command("carrier", ("RR123456785CN", "3011"))),
        ("history ada@example.com", Command("history", ("ada@example.com",))),
        # ... and addresses into links
        (
            "history <mailto:ada@example.com|ada@example.com>",
            Command("history", ("ada@example.com",)),
        ),
        ("history <mailto:ada@example.com>", Command("history", ("ada@example.com",))),
        ("subscribe", Command("subscribe")),
        ("subscribe alert undelivered", Command("subscribe", ("alert", "undelivered"))),
        ("unsubscribe", Command("unsubscribe")),
        ("frobnicate RR1", Command("help", ("RR1",), unknown="frobnicate")),  # words kept: plugins
    ],
)
def test_commands_parse(text: str | None, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("status", "missing arguments; usage: /track status NUMBER|ORDER"),
        ("status a b", "too many arguments; usage: /track status NUMBER|ORDER"),
        ("carrier RR123456785CN", "missing arguments; usage: /track carrier NUMBER CARRIER"),
        ("unsubscribe now", "too many arguments; usage: /track unsubscribe"),
        ('add RR123456785CN "China Post', "a quote is not closed"),
        ("status RR1\x1b[2J", "control characters"),
        ("status RR1\x00", "control characters"),
        ("status " + "x" * 101, "at most 100 per word"),
        ("x" * (MAX_TEXT + 1), f"at most {MAX_TEXT}"),
    ],
)
def test_malformed_text_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    assert message in str(caught.value)


def test_a_non_string_text_is_refused_not_crashed() -> None:
    with pytest.raises(CommandError, match="not text"):
        parse_command(["status"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ((), DEFAULT_ALERT_STATUSES),
        (("alert",), (S.ALERT,)),
        (("alert,undelivered", "50"), (S.ALERT, S.UNDELIVERED)),
        (("Pick-up", "40"), (S.PICK_UP, S.DELIVERED)),
    ],
)
def test_statuses(words: tuple[str, ...], expected: tuple[S, ...]) -> None:
    assert parse_statuses(words) == expected


@pytest.mark.parametrize("word", ["lost", "99", "<!channel>"])
def test_unknown_status_names_the_accepted_ones(word: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_statuses((word,))
    assert "expected one of: not_found, in_transit" in str(caught.value)
