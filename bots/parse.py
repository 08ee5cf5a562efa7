"""``/track`` text in, a typed command out (pure: no Slack, no service).

Slack hands us the slash command's text exactly as a person typed it, so everything here is
hostile input: words are split shell-style (quotes keep a carrier name such as
``"China Post"`` together), lengths are bounded, control characters are refused, and every
problem is a ``CommandError`` whose message says what was wrong and what was expected. Nothing
here raises anything else.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Final, Literal

from trackops.core.wire import PackageStatus

__all__ = [
    "ADMIN_ACTIONS",
    "AUDIT_ACTIONS",
    "DEFAULT_ALERT_STATUSES",
    "MAX_TEXT",
    "Command",
    "CommandError",
    "Verb",
    "parse_command",
    "parse_statuses",
    "usage",
]

Verb = Literal[
    "add",
    "status",
    "list",
    "stop",
    "retrack",
    "delete",
    "carrier",
    "history",
    "subscribe",
    "unsubscribe",
    "help",
]

MAX_TEXT: Final = 1000
"""Longest ``/track`` text we read (Slack allows more; no real command needs it)."""

_MAX_WORD: Final = 100
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_QUOTES: Final = str.maketrans("“”‘’", "\"\"''")
_MAILTO_RE: Final = re.compile(r"<mailto:([^|<>\s]+)(?:\|[^<>]*)?>")
"""An address as Slack may send it, formatted as a link: ``<mailto:a@b.example|a@b.example>``."""

ADMIN_ACTIONS: Final = frozenset({"stop", "delete", "carrier"})
"""Verbs only ``[slack] admins`` may run (by command or by button)."""

AUDIT_ACTIONS: Final = {"carrier": "change-carrier", "add": "register"}
"""The audit log's name for a verb where it differs (the service's own action names)."""

DEFAULT_ALERT_STATUSES: Final = (PackageStatus.ALERT, PackageStatus.UNDELIVERED)
"""What ``/track subscribe`` with no statuses subscribes to."""

_USAGE: Final[dict[str, str]] = {
    "add": "add NUMBER [CARRIER] [PARAM] [TAG]",
    "status": "status NUMBER|ORDER",
    "list": "list [STATUS]",
    "stop": "stop NUMBER",
    "retrack": "retrack NUMBER",
    "delete": "delete NUMBER",
    "carrier": "carrier NUMBER CARRIER",
    "history": "history NUMBER|ORDER|EMAIL",
    "subscribe": "subscribe [STATUS ...]",
    "unsubscribe": "unsubscribe",
    "help": "help",
}

_ARITY: Final[dict[str, tuple[int, int]]] = {
    "add": (1, 4),
    "status": (1, 1),
    "list": (0, 1),
    "stop": (1, 1),
    "retrack": (1, 1),
    "delete": (1, 1),
    "carrier": (2, 2),
    "history": (1, 1),
    "subscribe": (0, 7),
    "unsubscribe": (0, 0),
    "help": (0, 1),
}


class CommandError(ValueError):
    """The text is not a valid ``/track`` command; ``str(exc)`` says why and what is expected."""


@dataclass(frozen=True)
class Command:
    """One parsed ``/track`` command: the verb and its words (already checked for count)."""

    verb: Verb
    args: tuple[str, ...] = ()
    unknown: str | None = None
    """The first word when it named no command (the answer is the help)."""


def usage(verb: str) -> str:
    """``/track status NUMBER|ORDER`` for ``verb``."""
    return f"/track {_USAGE[verb]}"


def parse_command(text: str | None) -> Command:
    """Split ``/track``'s text into a ``Command``; ``CommandError`` for malformed text.

    An empty text and an unknown first word both give ``help`` (the latter with ``unknown``).
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise CommandError("the command text is not text")
    if len(text) > MAX_TEXT:
        raise CommandError(f"the command is {len(text)} characters long; at most {MAX_TEXT}")
    # Slack turns typed quotes into curly ones; read them as the plain quotes people meant.
    text = text.translate(_QUOTES)
    # ... and e-mail addresses into links: the address is what was typed.
    text = _MAILTO_RE.sub(r"\1", text)
    if _CONTROL_RE.search(text.replace("\n", " ").replace("\t", " ")):
        raise CommandError("the command contains control characters; type plain text")
    try:
        words = shlex.split(text)
    except ValueError:
        raise CommandError(
            'a quote is not closed; put a carrier name in quotes, e.g. "China Post"'
        ) from None
    if not words:
        return Command("help")
    verb, args = words[0].lower(), tuple(words[1:])
    if verb not in _ARITY:
        return Command("help", args, unknown=_clip(words[0]))  # args: a plugin's subcommand
    for word in args:
        if len(word) > _MAX_WORD:
            raise CommandError(
                f"{_clip(word)!r} is {len(word)} characters long; at most {_MAX_WORD} per word"
            )
    low, high = _ARITY[verb]
    if not low <= len(args) <= high:
        if len(args) < low:
            raise CommandError(f"missing arguments; usage: {usage(verb)}")
        raise CommandError(f"too many arguments; usage: {usage(verb)}")
    return Command(verb, args)  # type: ignore[arg-type]  # verb checked against _ARITY


def parse_statuses(words: tuple[str, ...] | list[str]) -> tuple[PackageStatus, ...]:
    """Status names or codes (``alert``, ``undelivered``, ``50``; commas allowed) in order,
    without repeats; the default alert statuses for none. ``CommandError`` for an unknown one."""
    found: list[PackageStatus] = []
    for word in words:
        for part in word.split(","):
            if not part.strip():
                continue
            try:
                status = PackageStatus.parse(part)
            except ValueError:
                names = ", ".join(s.slug for s in PackageStatus)
                raise CommandError(
                    f"unknown status {_clip(part)!r}; expected one of: {names}"
                ) from None
            if status not in found:
                found.append(status)
    return tuple(found) or DEFAULT_ALERT_STATUSES


def _clip(word: str, limit: int = 40) -> str:
    return word if len(word) <= limit else word[: limit - 1] + "…"
